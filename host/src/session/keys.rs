//! Secret keys as the config file names them: an id, and the secret either
//! inline or, better, in an environment variable, so the file can be
//! committed and the secret kept in the deployment's secret store.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

/// One key of a `[[…keys]]` list in the config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Travels with what the key protects, so the right key is found after
    /// a rotation.
    pub id: String,
    /// The secret, base64 (standard or URL-safe).
    pub secret: Option<String>,
    /// Name of an environment variable holding the base64 secret.
    pub secret_env: Option<String>,
}

impl KeySpec {
    /// The decoded secret, or what is wrong and in which field
    /// (`secret` or `secret_env`).
    pub fn secret(&self) -> Result<Vec<u8>, (&'static str, String)> {
        let (field, text) = match (&self.secret, &self.secret_env) {
            (Some(secret), None) => ("secret", secret.clone()),
            (None, Some(var)) => (
                "secret_env",
                std::env::var(var).map_err(|_| {
                    (
                        "secret_env",
                        format!("environment variable {var} is not set"),
                    )
                })?,
            ),
            _ => {
                return Err(("secret", "give exactly one of secret and secret_env".into()));
            }
        };
        decode_base64(text.trim()).ok_or((
            field,
            "must be base64 (make one with `openssl rand -base64 32`)".into(),
        ))
    }
}

impl std::fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print an inline secret.
        f.debug_struct("KeySpec")
            .field("id", &self.id)
            .field("secret_env", &self.secret_env)
            .finish_non_exhaustive()
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [alphabet::STANDARD, alphabet::URL_SAFE]
        .iter()
        .find_map(|alphabet| GeneralPurpose::new(alphabet, config).decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secret: Option<&str>, secret_env: Option<&str>) -> KeySpec {
        KeySpec {
            id: "k1".into(),
            secret: secret.map(Into::into),
            secret_env: secret_env.map(Into::into),
        }
    }

    #[test]
    fn secrets_decode_from_either_base64_alphabet_padded_or_not() {
        for text in ["+/8=", "+/8", "-_8", "-_8="] {
            assert_eq!(spec(Some(text), None).secret().unwrap(), [0xfb, 0xff]);
        }
        assert_eq!(
            spec(Some("not base64!"), None).secret().unwrap_err().0,
            "secret"
        );
        assert_eq!(spec(None, None).secret().unwrap_err().0, "secret");
        assert_eq!(
            spec(Some("AA"), Some("X")).secret().unwrap_err().0,
            "secret"
        );
        let missing = spec(None, Some("EDGE_SESSION_TEST_UNSET_KEY")).secret();
        assert_eq!(missing.unwrap_err().0, "secret_env");
        assert!(!format!("{:?}", spec(Some("c2VjcmV0"), None)).contains("c2VjcmV0"));
    }
}
