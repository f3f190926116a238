//! The `[store]` section of the config file: which backend keeps the
//! sessions, how large one may be, encryption at rest and the circuit
//! breaker. Each backend's own section is defined beside the backend.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::session::keys::KeySpec;
use crate::settings::{ConfigError, MIB, duration, error};
#[cfg(feature = "aerospike")]
use crate::store::{AerospikeConfig, AerospikeSection};
use crate::store::{BreakerSettings, EmbeddedConfig, EmbeddedSection, EncryptionKeys};
#[cfg(feature = "redis")]
use crate::store::{RedisConfig, RedisSection};

/// The `[store.aerospike]` table; in a build without the backend, any table,
/// so that a config naming it gets the error that says why.
#[cfg(feature = "aerospike")]
type AerospikeTable = AerospikeSection;
#[cfg(not(feature = "aerospike"))]
type AerospikeTable = toml::Table;

/// The `[store.redis]` table; in a build without the backend, any table.
#[cfg(feature = "redis")]
type RedisTable = RedisSection;
#[cfg(not(feature = "redis"))]
type RedisTable = toml::Table;

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Embedded,
    Aerospike,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub backend: Backend,
    /// Largest session guests may write, in bytes of JSON text.
    pub max_session_bytes: usize,
    pub embedded: EmbeddedSection,
    /// Required with `backend = "aerospike"`.
    pub aerospike: Option<AerospikeTable>,
    /// Required with `backend = "redis"`.
    pub redis: Option<RedisTable>,
    pub circuit_breaker: CircuitBreakerSection,
    /// Keys that encrypt session data at rest, the sealing key first;
    /// without keys, data is stored as it is.
    pub encryption_keys: Vec<KeySpec>,
    /// `encryption_keys` with their secrets, once validated.
    #[serde(skip)]
    pub(super) encryption: Option<Arc<EncryptionKeys>>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            max_session_bytes: crate::store::DEFAULT_MAX_SESSION_BYTES,
            embedded: EmbeddedSection::default(),
            aerospike: None,
            redis: None,
            circuit_breaker: CircuitBreakerSection::default(),
            encryption_keys: Vec::new(),
            encryption: None,
        }
    }
}

/// Fail fast while the backend is down (see [`crate::store::Breaker`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerSection {
    /// Unavailable results in a row that open the circuit; 0 turns it off.
    pub failures: u32,
    #[serde(deserialize_with = "duration")]
    pub open_for: Duration,
}

impl Default for CircuitBreakerSection {
    fn default() -> Self {
        let settings = BreakerSettings::default();
        Self {
            failures: settings.failures,
            open_for: settings.open_for,
        }
    }
}

impl StoreSection {
    pub(super) fn validate(&self, problems: &mut Vec<ConfigError>) {
        if !(2..=16 * MIB).contains(&self.max_session_bytes) {
            problems.push(error(
                "store.max_session_bytes",
                "must be between 2 and 16777216",
            ));
        }
        self.embedded.validate(problems);
        if self.circuit_breaker.failures > 0 && self.circuit_breaker.open_for.is_zero() {
            problems.push(error(
                "store.circuit_breaker.open_for",
                "must be more than zero",
            ));
        }
        if self.backend == Backend::Aerospike {
            if cfg!(not(feature = "aerospike")) {
                problems.push(error(
                    "store.backend",
                    "this build has no Aerospike backend: build edge-session with its \
                     `aerospike` feature (on by default)",
                ));
            } else if self.aerospike.is_none() {
                problems.push(error(
                    "store.aerospike",
                    "backend = \"aerospike\" needs a [store.aerospike] table with hosts",
                ));
            }
        }
        #[cfg(feature = "aerospike")]
        if let (Backend::Aerospike, Some(aerospike)) = (self.backend, &self.aerospike) {
            aerospike.validate(problems);
        }
        if self.backend == Backend::Redis {
            if cfg!(not(feature = "redis")) {
                problems.push(error(
                    "store.backend",
                    "this build has no Redis backend: build edge-session with its \
                     `redis` feature (on by default)",
                ));
            } else if self.redis.is_none() {
                problems.push(error(
                    "store.redis",
                    "backend = \"redis\" needs a [store.redis] table with a url",
                ));
            }
        }
        #[cfg(feature = "redis")]
        if let (Backend::Redis, Some(redis)) = (self.backend, &self.redis) {
            redis.validate(problems);
        }
    }

    pub(super) fn resolve_paths(&mut self, base: &Path) {
        self.embedded.resolve_paths(base);
        #[cfg(feature = "aerospike")]
        if let Some(aerospike) = &mut self.aerospike {
            aerospike.resolve_paths(base);
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &mut self.redis {
            redis.resolve_paths(base);
        }
    }

    /// The embedded backend's settings, for sessions of up to
    /// `max_session_bytes` as stored (sealed, when encrypted).
    pub fn embedded_config(&self, max_session_bytes: usize) -> EmbeddedConfig {
        self.embedded.store_config(max_session_bytes)
    }

    #[cfg(feature = "aerospike")]
    /// The Aerospike backend's settings (with its password read from the
    /// environment), for sessions of up to `max_session_bytes` as stored.
    pub fn aerospike_config(
        &self,
        max_session_bytes: usize,
    ) -> Result<AerospikeConfig, ConfigError> {
        let section = self.aerospike.as_ref().expect("validated");
        section.store_config(max_session_bytes)
    }

    #[cfg(feature = "redis")]
    /// The Redis backend's settings (with its password read from the
    /// environment), for sessions of up to `max_session_bytes` as stored.
    pub fn redis_config(&self, max_session_bytes: usize) -> Result<RedisConfig, ConfigError> {
        let section = self.redis.as_ref().expect("validated");
        section.store_config(max_session_bytes)
    }

    /// The keys that encrypt session data at rest, when configured.
    pub fn encryption_keys(&self) -> Option<Arc<EncryptionKeys>> {
        self.encryption.clone()
    }

    /// The circuit breaker's settings; `None` when it is off.
    pub fn breaker_settings(&self) -> Option<BreakerSettings> {
        let breaker = &self.circuit_breaker;
        (breaker.failures > 0).then_some(BreakerSettings {
            failures: breaker.failures,
            open_for: breaker.open_for,
        })
    }
}
