//! The one trait every session backend implements.
//!
//! The WIT host layer (`wit/` in this crate) validates what guests pass
//! and scopes ids to a route's namespace; a store only keeps records. Every
//! operation on one key is atomic, so concurrent requests never lose each
//! other's writes and no caller needs a read-modify-write of its own.
//!
//! Session data crosses this trait as JSON object text that the host has
//! already validated and made compact ([`crate::session::json_object`]); field values
//! are valid JSON texts.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use edge_session::store::{EmbeddedConfig, EmbeddedStore, SessionKey, SessionStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path()))?;
//! let key = SessionKey::new("shop", "bXktc2Vzc2lvbi1pZC0xMjM");
//!
//! assert!(store.insert(key, r#"{"user":"ada"}"#, Duration::from_secs(60)).await?);
//! assert_eq!(store.incr_field(key, "visits", 1).await?, 1);
//! let session = store.load(key).await?.expect("just created");
//! assert_eq!(session.data, r#"{"user":"ada","visits":1}"#);
//! assert_eq!(session.generation, 2);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "aerospike")]
mod aerospike;
mod embedded;
mod layers;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "aerospike")]
pub(crate) mod tls;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

#[cfg(feature = "aerospike")]
pub use aerospike::{
    AerospikeConfig, AerospikeSection, AerospikeStore, AerospikeTlsSection, ExpiryMode,
    ExpirySetting,
};
pub use embedded::{
    DEFAULT_SYNC_INTERVAL, Durability, DurabilityMode, EmbeddedConfig, EmbeddedSection,
    EmbeddedStore,
};
pub use layers::breaker::{Breaker, BreakerSettings, CircuitBreakerStore};
pub use layers::encrypted::{EncryptedStore, EncryptionKeys};
pub use layers::instrumented::InstrumentedStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisSection, RedisStore, RedisTlsSection};

use crate::session::json_object::IncrementError;

/// The largest session a store keeps unless configured otherwise, in bytes
/// of JSON text.
pub const DEFAULT_MAX_SESSION_BYTES: usize = 128 * 1024;

/// Which session a store operation addresses: a route's namespace plus the
/// session id. Both are validated by the host before they reach a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKey<'a> {
    pub namespace: &'a str,
    pub id: &'a str,
}

impl<'a> SessionKey<'a> {
    pub fn new(namespace: &'a str, id: &'a str) -> Self {
        Self { namespace, id }
    }
}

/// A live (unexpired) session as read from a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// Compact JSON object text.
    pub data: String,
    /// Bumps on every data write; `touch` leaves it alone.
    pub generation: u64,
    /// Time left before expiry; never zero for a returned session.
    pub expires_in: Duration,
    /// When the session was created; kept by `save`, `touch`, field writes
    /// and `rename`, so that an absolute lifetime can be enforced.
    pub created_at: SystemTime,
}

/// How much a store holds, for metrics; approximate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSize {
    /// Sessions, including expired ones not yet deleted.
    pub sessions: u64,
    /// Bytes of storage they take (the embedded store: its files; Aerospike:
    /// the set's data, one copy).
    pub bytes: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session not found")]
    NotFound,
    #[error("session generation changed")]
    Conflict,
    #[error("session exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The operation does not apply to the stored value, e.g. incrementing a
    /// field that holds a string.
    #[error("{0}")]
    InvalidArgument(String),
    /// The backend cannot be reached; the caller may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The error of `incr_field` on a field that cannot be incremented.
fn increment_error(name: &str, error: IncrementError) -> StoreError {
    StoreError::InvalidArgument(match error {
        IncrementError::NotAnInteger => format!("field {name:?} does not hold an integer"),
        IncrementError::Overflow => format!("incrementing field {name:?} overflows s64"),
    })
}

/// A session backend. See the module documentation for the guarantees.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The largest session, in bytes of JSON text, this store accepts
    /// (writes that would exceed it fail with [`StoreError::TooLarge`]).
    /// The host rejects larger input before even parsing it.
    fn max_session_bytes(&self) -> usize;

    /// Checks that the backend answers, for readiness probes.
    async fn ping(&self) -> StoreResult<()>;

    /// What the store holds, where the backend can tell cheaply; `None`
    /// when it cannot tell now.
    async fn size(&self) -> Option<StoreSize> {
        None
    }

    /// Creates a session unless a live one already has this key; returns
    /// whether it was created. New sessions start at generation 1.
    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool>;

    /// Reads a live session.
    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>>;

    /// Replaces the data and resets the expiry, creating the session when
    /// absent. With `expected_generation`, the session must exist
    /// ([`StoreError::NotFound`]) and still be at that generation
    /// ([`StoreError::Conflict`]). Returns the new generation.
    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64>;

    /// Resets the expiry of a live session without changing data or
    /// generation; returns false when there is none.
    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool>;

    /// Deletes a session; returns whether a live one existed.
    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool>;

    /// Moves a live session (data, generation, expiry) to `to` and deletes
    /// `from`, atomically. Returns false when `from` does not exist;
    /// [`StoreError::Conflict`] when a live session already has key `to`.
    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool>;

    /// Reads one field as JSON text. [`StoreError::NotFound`] when the session
    /// does not exist; `None` when the field is absent.
    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>>;

    /// Sets one field, keeping the expiry. Returns the new generation.
    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64>;

    /// Removes one field, keeping the expiry; returns whether it was present.
    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool>;

    /// Adds `delta` to an integer field (absent counts as 0), keeping the
    /// expiry. Returns the new value.
    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64>;
}
