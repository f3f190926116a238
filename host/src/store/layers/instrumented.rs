//! Metrics for any store: every operation counted by kind and result, and
//! timed, under the backend's name (see [`crate::metrics`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::metrics::{StoreMetrics, StoreOp, StoreOutcome};
use crate::store::{SessionKey, SessionStore, StoreError, StoreResult, StoreSize, StoredSession};

/// A store that records metrics for the one it wraps.
pub struct InstrumentedStore {
    inner: Arc<dyn SessionStore>,
    metrics: StoreMetrics,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn SessionStore>, backend: &'static str) -> Self {
        Self {
            inner,
            metrics: StoreMetrics::new(backend),
        }
    }

    async fn measure<T>(
        &self,
        op: StoreOp,
        run: impl Future<Output = StoreResult<T>>,
        outcome_of: fn(&T) -> StoreOutcome,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = run.await;
        let outcome = match &result {
            Ok(value) => outcome_of(value),
            Err(error) => error_outcome(error),
        };
        self.metrics.record(op, outcome, started.elapsed());
        result
    }
}

fn ok<T>(_: &T) -> StoreOutcome {
    StoreOutcome::Ok
}

fn hit_or_miss(found: &bool) -> StoreOutcome {
    if *found {
        StoreOutcome::Hit
    } else {
        StoreOutcome::Miss
    }
}

fn found<T>(value: &Option<T>) -> StoreOutcome {
    hit_or_miss(&value.is_some())
}

fn error_outcome(error: &StoreError) -> StoreOutcome {
    match error {
        StoreError::NotFound => StoreOutcome::NotFound,
        StoreError::Conflict => StoreOutcome::Conflict,
        StoreError::TooLarge { .. } => StoreOutcome::TooLarge,
        StoreError::InvalidArgument(_) => StoreOutcome::Invalid,
        StoreError::Unavailable(_) => StoreOutcome::Unavailable,
        StoreError::Internal(_) => StoreOutcome::Error,
    }
}

#[async_trait]
impl SessionStore for InstrumentedStore {
    fn max_session_bytes(&self) -> usize {
        self.inner.max_session_bytes()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.measure(StoreOp::Ping, self.inner.ping(), ok).await
    }

    async fn size(&self) -> Option<StoreSize> {
        self.inner.size().await
    }

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        let created = |created: &bool| {
            if *created {
                StoreOutcome::Created
            } else {
                StoreOutcome::Exists
            }
        };
        self.measure(StoreOp::Insert, self.inner.insert(key, data, ttl), created)
            .await
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        self.measure(StoreOp::Load, self.inner.load(key), found)
            .await
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        let run = self.inner.save(key, data, ttl, expected_generation);
        self.measure(StoreOp::Save, run, ok).await
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        self.measure(StoreOp::Touch, self.inner.touch(key, ttl), hit_or_miss)
            .await
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        self.measure(StoreOp::Delete, self.inner.delete(key), hit_or_miss)
            .await
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        self.measure(StoreOp::Rename, self.inner.rename(from, to), hit_or_miss)
            .await
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        self.measure(StoreOp::GetField, self.inner.get_field(key, name), found)
            .await
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        self.measure(
            StoreOp::SetField,
            self.inner.set_field(key, name, value),
            ok,
        )
        .await
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        let run = self.inner.remove_field(key, name);
        self.measure(StoreOp::RemoveField, run, hit_or_miss).await
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        let run = self.inner.incr_field(key, name, delta);
        self.measure(StoreOp::IncrField, run, ok).await
    }
}
