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

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::SessionStore;

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
/// store's size sampled now.
pub fn render(handle: &PrometheusHandle, store: &dyn SessionStore) -> String {
    if let Some(size) = store.size() {
        metrics::gauge!("edge_session_store_sessions").set(size.sessions as f64);
        metrics::gauge!("edge_session_store_bytes").set(size.bytes as f64);
    }
    if let Some(bytes) = resident_memory_bytes() {
        metrics::gauge!("edge_session_process_resident_memory_bytes").set(bytes as f64);
    }
    handle.render()
}

pub fn request(route: &str, status: u16, elapsed: Duration) {
    metrics::counter!(
        "edge_session_requests_total",
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("edge_session_request_duration_seconds", "route" => route.to_owned())
        .record(elapsed);
}

pub fn sessions_expired(count: u64) {
    metrics::counter!("edge_session_sessions_expired_total").increment(count);
}

pub fn instantiation(route: &str, elapsed: Duration) {
    metrics::histogram!("edge_session_guest_instantiation_seconds", "route" => route.to_owned())
        .record(elapsed);
}

pub fn guest_fault(route: &str, reason: &'static str) {
    metrics::counter!(
        "edge_session_guest_faults_total",
        "route" => route.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

pub fn store_operation(
    backend: &'static str,
    op: &'static str,
    result: &'static str,
    elapsed: Duration,
) {
    metrics::counter!(
        "edge_session_store_operations_total",
        "backend" => backend,
        "op" => op,
        "result" => result
    )
    .increment(1);
    metrics::histogram!(
        "edge_session_store_operation_duration_seconds",
        "backend" => backend,
        "op" => op
    )
    .record(elapsed);
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
