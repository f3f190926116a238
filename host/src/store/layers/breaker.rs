//! A circuit breaker for any store: when the backend keeps failing as
//! unavailable, calls fail fast for a while rather than each waiting out
//! the backend's timeout.
//!
//! Without it, a stalled backend holds every request that touches a session
//! for the whole store timeout, so the routes' instance slots fill up and
//! even pages that would degrade gracefully queue behind it. After
//! `failures` unavailable results in a row the circuit opens: calls fail at
//! once with [`StoreError::Unavailable`] (guests see the typed `unavailable`
//! error) for `open_for`. Then one call goes through as a probe; its success
//! closes the circuit, its failure opens it again. Readiness follows, since
//! `/readyz` pings the store through the breaker.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::store::{SessionKey, SessionStore, StoreError, StoreResult, StoreSize, StoredSession};

/// When the circuit opens and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    /// Unavailable results in a row that open the circuit.
    pub failures: u32,
    /// How long calls fail fast before a probe may go through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            open_for: Duration::from_secs(1),
        }
    }
}

/// The breaker's state machine, apart from any store.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
    /// Whether the state is closed with no failure counted: then a call
    /// needs neither the lock nor the clock, before or after (every
    /// session call passes here).
    healthy: AtomicBool,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        reason: String,
    },
    /// One call is trying the backend; others still fail fast. A probe that
    /// never reports (its caller went away) is replaced after `open_for`.
    Probing {
        since: Instant,
    },
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
            healthy: AtomicBool::new(true),
        }
    }

    /// Whether a call may go to the backend now; the error to fail fast
    /// with when not.
    pub fn admit(&self) -> StoreResult<()> {
        if self.healthy.load(Ordering::Acquire) {
            return Ok(());
        }
        self.admit_at(Instant::now())
    }

    /// [`admit`](Self::admit) at `now` (the tests pass their own clock).
    fn admit_at(&self, now: Instant) -> StoreResult<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Closed { .. } => Ok(()),
            State::Open { until, reason } if now < *until => Err(StoreError::Unavailable(format!(
                "circuit open after repeated failures ({reason})"
            ))),
            State::Probing { since } if now < *since + self.settings.open_for => Err(
                StoreError::Unavailable("circuit open, a probe is testing the backend".into()),
            ),
            State::Open { .. } | State::Probing { .. } => {
                *state = State::Probing { since: now };
                Ok(())
            }
        }
    }

    /// Takes the outcome of an admitted call into account.
    pub fn record<T>(&self, result: &StoreResult<T>) {
        let failed = matches!(result, Err(StoreError::Unavailable(_)));
        if !failed && self.healthy.load(Ordering::Acquire) {
            return;
        }
        self.record_at(result, Instant::now());
    }

    /// [`record`](Self::record) at `now`.
    fn record_at<T>(&self, result: &StoreResult<T>, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.next_state(&mut state, result, now);
        let healthy = matches!(*state, State::Closed { failures: 0 });
        self.healthy.store(healthy, Ordering::Release);
    }

    fn next_state<T>(&self, state: &mut State, result: &StoreResult<T>, now: Instant) {
        let Err(StoreError::Unavailable(reason)) = result else {
            if !matches!(*state, State::Closed { .. }) {
                tracing::info!("store circuit closed: the backend answers again");
                crate::metrics::store_circuit_open(false);
            }
            *state = State::Closed { failures: 0 };
            return;
        };
        let failures = match &*state {
            State::Closed { failures } => failures + 1,
            State::Open { .. } | State::Probing { .. } => self.settings.failures,
        };
        if failures < self.settings.failures {
            *state = State::Closed { failures };
            return;
        }
        if matches!(*state, State::Closed { .. }) {
            tracing::warn!(
                failures,
                open_for = ?self.settings.open_for,
                reason,
                "store circuit opened: session calls fail fast until a probe succeeds"
            );
            crate::metrics::store_circuit_open(true);
        }
        *state = State::Open {
            until: now + self.settings.open_for,
            reason: reason.clone(),
        };
    }
}

/// A store whose calls go through a [`Breaker`].
pub struct CircuitBreakerStore {
    inner: Arc<dyn SessionStore>,
    breaker: Breaker,
}

impl CircuitBreakerStore {
    pub fn new(inner: Arc<dyn SessionStore>, settings: BreakerSettings) -> Self {
        Self {
            inner,
            breaker: Breaker::new(settings),
        }
    }

    async fn call<T>(&self, run: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.breaker.admit()?;
        let result = run.await;
        self.breaker.record(&result);
        result
    }
}

#[async_trait]
impl SessionStore for CircuitBreakerStore {
    fn max_session_bytes(&self) -> usize {
        self.inner.max_session_bytes()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.call(self.inner.ping()).await
    }

    async fn size(&self) -> Option<StoreSize> {
        self.inner.size().await
    }

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        self.call(self.inner.insert(key, data, ttl)).await
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        self.call(self.inner.load(key)).await
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        self.call(self.inner.save(key, data, ttl, expected_generation))
            .await
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        self.call(self.inner.touch(key, ttl)).await
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        self.call(self.inner.delete(key)).await
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        self.call(self.inner.rename(from, to)).await
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        self.call(self.inner.get_field(key, name)).await
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        self.call(self.inner.set_field(key, name, value)).await
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        self.call(self.inner.remove_field(key, name)).await
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        self.call(self.inner.incr_field(key, name, delta)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> StoreResult<()> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    fn breaker(open_for: Duration) -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            open_for,
        })
    }

    #[test]
    fn opens_after_failures_in_a_row_only() {
        let breaker = breaker(Duration::from_secs(60));
        for _ in 0..2 {
            breaker.admit().unwrap();
            breaker.record(&unavailable());
        }
        // Any answer from the backend, even an error of the caller's, resets the count.
        breaker.admit().unwrap();
        breaker.record::<()>(&Err(StoreError::NotFound));
        for _ in 0..2 {
            breaker.admit().unwrap();
            breaker.record(&unavailable());
        }
        breaker.admit().unwrap();
        breaker.record(&unavailable());
        let error = breaker.admit().unwrap_err();
        assert!(
            matches!(&error, StoreError::Unavailable(why) if why.contains("connection refused")),
            "{error:?}"
        );
    }

    #[test]
    fn one_probe_after_open_for_closes_or_reopens_it() {
        let open_for = Duration::from_secs(30);
        let breaker = breaker(open_for);
        // The breaker's clock: each step says when it happens.
        let t0 = Instant::now();
        for _ in 0..3 {
            breaker.admit_at(t0).unwrap();
            breaker.record_at(&unavailable(), t0);
        }
        assert!(breaker.admit_at(t0 + open_for / 2).is_err(), "open");

        let t1 = t0 + open_for;
        breaker.admit_at(t1).expect("the probe goes through");
        assert!(breaker.admit_at(t1).is_err(), "one probe at a time");
        breaker.record_at(&unavailable(), t1);
        assert!(
            breaker.admit_at(t1).is_err(),
            "a failed probe opens it again"
        );
        assert!(breaker.admit_at(t1 + open_for / 2).is_err(), "for open_for");

        let t2 = t1 + open_for;
        breaker.admit_at(t2).expect("the next probe");
        breaker.record_at(&Ok(()), t2);
        breaker.admit_at(t2).expect("closed");
        breaker.admit().expect("closed");
    }

    #[test]
    fn an_abandoned_probe_is_replaced() {
        let open_for = Duration::from_secs(30);
        let breaker = breaker(open_for);
        let t0 = Instant::now();
        for _ in 0..3 {
            breaker.admit_at(t0).unwrap();
            breaker.record_at(&unavailable(), t0);
        }
        let t1 = t0 + open_for;
        breaker
            .admit_at(t1)
            .expect("a probe whose caller goes away");
        assert!(
            breaker.admit_at(t1 + open_for / 2).is_err(),
            "still probing"
        );
        breaker.admit_at(t1 + open_for).expect("another probe");
    }
}
