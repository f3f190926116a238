//! Metrics for any store: every operation counted by kind and result, and
//! timed, under the backend's name (see [`crate::metrics`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{SessionKey, SessionStore, StoreError, StoreResult, StoreSize, StoredSession};

/// A store that records metrics for the one it wraps.
pub struct InstrumentedStore {
    inner: Arc<dyn SessionStore>,
    backend: &'static str,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn SessionStore>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    async fn measure<T>(
        &self,
        op: &'static str,
        run: impl Future<Output = StoreResult<T>>,
        label: fn(&T) -> &'static str,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = run.await;
        let outcome = match &result {
            Ok(value) => label(value),
            Err(error) => error_label(error),
        };
        crate::metrics::store_operation(self.backend, op, outcome, started.elapsed());
        result
    }
}

fn ok<T>(_: &T) -> &'static str {
    "ok"
}

fn hit_or_miss(found: &bool) -> &'static str {
    if *found { "hit" } else { "miss" }
}

fn found<T>(value: &Option<T>) -> &'static str {
    hit_or_miss(&value.is_some())
}

fn error_label(error: &StoreError) -> &'static str {
    match error {
        StoreError::NotFound => "not_found",
        StoreError::Conflict => "conflict",
        StoreError::TooLarge { .. } => "too_large",
        StoreError::InvalidArgument(_) => "invalid",
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Internal(_) => "error",
    }
}

#[async_trait]
impl SessionStore for InstrumentedStore {
    fn max_session_bytes(&self) -> usize {
        self.inner.max_session_bytes()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.measure("ping", self.inner.ping(), ok).await
    }

    fn size(&self) -> Option<StoreSize> {
        self.inner.size()
    }

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        let created = |created: &bool| if *created { "created" } else { "exists" };
        self.measure("insert", self.inner.insert(key, data, ttl), created)
            .await
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        self.measure("load", self.inner.load(key), found).await
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        let run = self.inner.save(key, data, ttl, expected_generation);
        self.measure("save", run, ok).await
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        self.measure("touch", self.inner.touch(key, ttl), hit_or_miss)
            .await
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        self.measure("delete", self.inner.delete(key), hit_or_miss)
            .await
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        self.measure("rename", self.inner.rename(from, to), hit_or_miss)
            .await
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        self.measure("get_field", self.inner.get_field(key, name), found)
            .await
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        self.measure("set_field", self.inner.set_field(key, name, value), ok)
            .await
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        let run = self.inner.remove_field(key, name);
        self.measure("remove_field", run, hit_or_miss).await
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        let run = self.inner.incr_field(key, name, delta);
        self.measure("incr_field", run, ok).await
    }
}
