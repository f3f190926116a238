//! The `[store.embedded]` section of the config file: where the embedded
//! store keeps its files and how durable its writes are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{DEFAULT_SYNC_INTERVAL, Durability, EmbeddedConfig, MIN_JOURNAL_BYTES};
use crate::settings::{ConfigError, MIB, duration, error};

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Buffered,
    Fsync,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedSection {
    pub path: PathBuf,
    pub durability: DurabilityMode,
    #[serde(deserialize_with = "duration")]
    pub sync_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub sweep_interval: Duration,
    pub cache_mib: u64,
    pub write_buffer_mib: u64,
    pub max_journal_mib: u64,
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        let defaults = EmbeddedConfig::new("");
        Self {
            path: PathBuf::from("data/sessions"),
            durability: DurabilityMode::Buffered,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            sweep_interval: defaults.sweep_interval,
            cache_mib: defaults.cache_bytes / MIB as u64,
            write_buffer_mib: defaults.write_buffer_bytes / MIB as u64,
            max_journal_mib: defaults.max_journal_bytes / MIB as u64,
        }
    }
}

impl EmbeddedSection {
    pub(crate) fn validate(&self, problems: &mut Vec<ConfigError>) {
        if self.sync_interval.is_zero() {
            problems.push(error(
                "store.embedded.sync_interval",
                "must be more than zero",
            ));
        }
        if self.sweep_interval.is_zero() {
            problems.push(error(
                "store.embedded.sweep_interval",
                "must be more than zero",
            ));
        }
        if self.cache_mib == 0 {
            problems.push(error("store.embedded.cache_mib", "must be at least 1"));
        }
        if self.write_buffer_mib == 0 {
            problems.push(error(
                "store.embedded.write_buffer_mib",
                "must be at least 1",
            ));
        }
        let least = MIN_JOURNAL_BYTES / MIB as u64;
        if self.max_journal_mib < least {
            problems.push(error(
                "store.embedded.max_journal_mib",
                format!("must be at least {least} (the storage engine's minimum)"),
            ));
        }
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        self.path = base.join(&self.path);
    }

    /// The store's settings, for sessions of up to `max_session_bytes` as
    /// stored (sealed, when encrypted).
    pub(crate) fn store_config(&self, max_session_bytes: usize) -> EmbeddedConfig {
        EmbeddedConfig {
            path: self.path.clone(),
            durability: match self.durability {
                DurabilityMode::Buffered => Durability::Buffered {
                    sync_interval: self.sync_interval,
                },
                DurabilityMode::Fsync => Durability::Fsync,
            },
            sweep_interval: self.sweep_interval,
            cache_bytes: self.cache_mib * MIB as u64,
            max_session_bytes,
            write_buffer_bytes: self.write_buffer_mib * MIB as u64,
            max_journal_bytes: self.max_journal_mib * MIB as u64,
        }
    }
}
