//! What every section of the config file shares, wherever the section is
//! defined (`config/`, and each backend's own under `store/`): problems
//! that name the field at fault, and durations written as text.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub(crate) const MIB: usize = 1024 * 1024;

/// A config problem: the field at fault and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, so that one run of `check` (or a
/// failed start) lists them all rather than one per attempt.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(problem: ConfigError) -> Self {
        Self(vec![problem])
    }
}

pub(crate) fn error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Records the error of a check, if any, against `field`.
pub(crate) fn note<T>(problems: &mut Vec<ConfigError>, field: String, result: Result<T, String>) {
    if let Err(why) = result {
        problems.push(error(field, why));
    }
}

/// Reads durations such as "30m", "1h 30m", "500ms".
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{e} (write durations like \"30s\", \"15m\", \"2h\")"
        ))
    })
}
