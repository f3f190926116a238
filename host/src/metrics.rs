//! Prometheus metrics: what operators of an edge fleet scrape to watch
//! traffic, latency, session hit rates, guest faults and the backend.
//!
//! Recording goes through the `metrics` facade, which costs next to nothing
//! until [`install`] sets the Prometheus recorder (the binary does so when
//! the config has an `[admin]` listener). Names and labels:
//!
//! | metric | labels |
//! |---|---|
//! | `edge_session_requests_total` | `route`, `status` |
//! | `edge_session_request_duration_seconds` (histogram, to the response head) | `route` |
//! | `edge_session_guest_instantiation_seconds` (histogram) | `route` |
//! | `edge_session_guest_faults_total` | `route`, `reason` (trap, timeout, overloaded) |
//! | `edge_session_store_operations_total` | `backend`, `op`, `result` |
//! | `edge_session_store_operation_duration_seconds` (histogram) | `backend`, `op` |
//! | `edge_session_sessions_expired_total` (deleted by the embedded store's sweep) | |
//! | `edge_session_store_sessions`, `edge_session_store_bytes` (where the backend can tell) | |
//! | `edge_session_process_resident_memory_bytes` | |
//! | `edge_session_route_reloads_total` | `route`, `result` (swapped, rejected) |
//! | `edge_session_store_circuit_open` (1 while calls fail fast) | |
//!
//! Store results: `ok`, `hit` / `miss` (load, get-field, touch, delete,
//! rename, remove-field), `created` / `exists` (insert), `not_found`,
//! `conflict`, `too_large`, `invalid`, `unavailable`, `error`. The session
//! hit rate is `hit / (hit + miss)` of `op="load"`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets from 50 µs to 10 s: session reads are sub-millisecond,
/// guest deadlines are seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Sets the process-wide Prometheus recorder; the handle renders the text
/// format.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    Ok(handle)
}

/// The metrics in Prometheus text format, with the process memory and the
/// store's size (`sessions`, `bytes`, when the backend can tell) sampled now.
pub fn render(handle: &PrometheusHandle, store_size: Option<(u64, u64)>) -> String {
    if let Some((sessions, bytes)) = store_size {
        metrics::gauge!("edge_session_store_sessions").set(sessions as f64);
        metrics::gauge!("edge_session_store_bytes").set(bytes as f64);
    }
    if let Some(bytes) = resident_memory_bytes() {
        metrics::gauge!("edge_session_process_resident_memory_bytes").set(bytes as f64);
    }
    handle.render()
}

/// One route's request and instantiation metrics, with each handle looked
/// up once: the `counter!` macros build and hash a key (and here copy the
/// route and format the status) on every use, even with no recorder
/// installed. Handles are taken on first use, which comes after the binary
/// installed the recorder, so /metrics lists only series that moved.
pub struct RouteMetrics {
    route: Arc<str>,
    /// By status code, from [`FIRST_STATUS`].
    requests: Box<[OnceLock<Counter>]>,
    duration: OnceLock<Histogram>,
    instantiation: OnceLock<Histogram>,
}

/// Statuses from 100 to 599 have a slot each; others (rare, non-standard)
/// are looked up on every use.
const FIRST_STATUS: u16 = 100;
const STATUS_SLOTS: usize = 500;

impl RouteMetrics {
    /// Metrics under the `route` label: a route's prefix, or `none`.
    pub fn new(route: impl Into<Arc<str>>) -> Self {
        Self {
            route: route.into(),
            requests: (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
            duration: OnceLock::new(),
            instantiation: OnceLock::new(),
        }
    }

    pub fn request(&self, status: u16, elapsed: Duration) {
        let register = || {
            metrics::counter!(
                "edge_session_requests_total",
                "route" => self.route.to_string(),
                "status" => status.to_string()
            )
        };
        let slot = status
            .checked_sub(FIRST_STATUS)
            .and_then(|index| self.requests.get(usize::from(index)));
        match slot {
            Some(slot) => slot.get_or_init(register).increment(1),
            None => register().increment(1),
        }
        self.duration
            .get_or_init(|| {
                metrics::histogram!(
                    "edge_session_request_duration_seconds",
                    "route" => self.route.to_string()
                )
            })
            .record(elapsed);
    }

    pub fn instantiation(&self, elapsed: Duration) {
        self.instantiation
            .get_or_init(|| {
                metrics::histogram!(
                    "edge_session_guest_instantiation_seconds",
                    "route" => self.route.to_string()
                )
            })
            .record(elapsed);
    }
}

pub fn sessions_expired(count: u64) {
    metrics::counter!("edge_session_sessions_expired_total").increment(count);
}

pub fn guest_fault(route: &str, reason: &'static str) {
    metrics::counter!(
        "edge_session_guest_faults_total",
        "route" => route.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

/// A store operation, as the `op` label.
#[derive(Clone, Copy, Debug)]
pub enum StoreOp {
    Ping,
    Insert,
    Load,
    Save,
    Touch,
    Delete,
    Rename,
    GetField,
    SetField,
    RemoveField,
    IncrField,
}

impl StoreOp {
    const COUNT: usize = StoreOp::IncrField as usize + 1;

    fn label(self) -> &'static str {
        match self {
            StoreOp::Ping => "ping",
            StoreOp::Insert => "insert",
            StoreOp::Load => "load",
            StoreOp::Save => "save",
            StoreOp::Touch => "touch",
            StoreOp::Delete => "delete",
            StoreOp::Rename => "rename",
            StoreOp::GetField => "get_field",
            StoreOp::SetField => "set_field",
            StoreOp::RemoveField => "remove_field",
            StoreOp::IncrField => "incr_field",
        }
    }
}

/// How a store operation ended, as the `result` label.
#[derive(Clone, Copy, Debug)]
pub enum StoreOutcome {
    Ok,
    Hit,
    Miss,
    Created,
    Exists,
    NotFound,
    Conflict,
    TooLarge,
    Invalid,
    Unavailable,
    Error,
}

impl StoreOutcome {
    const COUNT: usize = StoreOutcome::Error as usize + 1;

    fn label(self) -> &'static str {
        match self {
            StoreOutcome::Ok => "ok",
            StoreOutcome::Hit => "hit",
            StoreOutcome::Miss => "miss",
            StoreOutcome::Created => "created",
            StoreOutcome::Exists => "exists",
            StoreOutcome::NotFound => "not_found",
            StoreOutcome::Conflict => "conflict",
            StoreOutcome::TooLarge => "too_large",
            StoreOutcome::Invalid => "invalid",
            StoreOutcome::Unavailable => "unavailable",
            StoreOutcome::Error => "error",
        }
    }
}

/// One backend's store operation metrics, with handles looked up once as
/// in [`RouteMetrics`]: building the keys cost a tenth of a session call.
pub struct StoreMetrics {
    backend: &'static str,
    operations: [[OnceLock<Counter>; StoreOutcome::COUNT]; StoreOp::COUNT],
    durations: [OnceLock<Histogram>; StoreOp::COUNT],
}

impl StoreMetrics {
    pub fn new(backend: &'static str) -> Self {
        Self {
            backend,
            operations: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            durations: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    pub fn record(&self, op: StoreOp, outcome: StoreOutcome, elapsed: Duration) {
        self.operations[op as usize][outcome as usize]
            .get_or_init(|| {
                metrics::counter!(
                    "edge_session_store_operations_total",
                    "backend" => self.backend,
                    "op" => op.label(),
                    "result" => outcome.label()
                )
            })
            .increment(1);
        self.durations[op as usize]
            .get_or_init(|| {
                metrics::histogram!(
                    "edge_session_store_operation_duration_seconds",
                    "backend" => self.backend,
                    "op" => op.label()
                )
            })
            .record(elapsed);
    }
}

pub fn store_circuit_open(open: bool) {
    metrics::gauge!("edge_session_store_circuit_open").set(if open { 1.0 } else { 0.0 });
}

pub fn route_reload(route: &str, result: &'static str) {
    metrics::counter!(
        "edge_session_route_reloads_total",
        "route" => route.to_owned(),
        "result" => result
    )
    .increment(1);
}

/// Resident set size, from `/proc/self/status` (Linux).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status_including_non_standard_ones() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let route = RouteMetrics::new("/shop");
        metrics::with_local_recorder(&recorder, || {
            for status in [200, 200, 404, 599, 799, 799] {
                route.request(status, Duration::from_micros(300));
            }
        });
        let text = handle.render();
        for (status, count) in [(200, 2), (404, 1), (599, 1), (799, 2)] {
            let line = format!(
                "edge_session_requests_total{{route=\"/shop\",status=\"{status}\"}} {count}"
            );
            assert!(text.contains(&line), "no `{line}` in\n{text}");
        }
        assert!(text.contains("edge_session_request_duration_seconds_count{route=\"/shop\"} 6"));
    }
}
