//! The printed result of one pass: a line per row, then the ratios to the
//! reference rows and the latency figures that issue 6 sets targets for.
//! Targets are reported as met or missed, never asserted: on a shared,
//! noisy machine only ratios from the same run mean something.

use crate::rows::{Measurement, Row, RowResult, Settings};

/// Throughput ratios: (row, reference row, target).
const RATIOS: [(&str, &str, f64); 3] = [("1", "3a", 0.5), ("1", "2", 0.9), ("4", "3b", 1.0)];
/// p99 latency at the latency run's connections: (row, target in ms).
const LATENCY_TARGETS: [(&str, f64); 2] = [("1", 1.0), ("4", 1.5)];

pub fn print_pass(results: &[(&Row, RowResult)], settings: &Settings) {
    let (many, few) = (settings.connections, settings.latency_connections);
    println!(
        "{:<9} {:<62} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "row",
        "server",
        format!("req/s@{many}"),
        format!("req/s@{few}"),
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "RSS MiB",
        "failed",
    );
    for (row, result) in results {
        match result {
            RowResult::Measured(m) => println!(
                "{:<9} {:<62} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>7}",
                row.id,
                row.name,
                m.throughput.requests_per_second(),
                m.latency.requests_per_second(),
                m.latency.tally.latency_ms(0.5),
                m.latency.tally.latency_ms(0.99),
                m.latency.tally.latency_ms(0.999),
                m.rss_bytes as f64 / (1024.0 * 1024.0),
                m.throughput.tally.failed + m.latency.tally.failed,
            ),
            RowResult::Skipped(why) => println!("{:<9} {:<62} skipped: {why}", row.id, row.name),
            RowResult::Failed(error) => {
                println!("{:<9} {:<62} FAILED: {error:#}", row.id, row.name)
            }
        }
    }
    println!("req/s ratios (target):");
    for (row, reference, target) in RATIOS {
        let ratio = match (measured(results, row), measured(results, reference)) {
            (Some(a), Some(b)) => {
                let ratio = a.throughput.requests_per_second() / b.throughput.requests_per_second();
                format!("{ratio:.2} (≥ {target:.2}: {})", verdict(ratio >= target))
            }
            _ => "n/a (a row did not run)".to_owned(),
        };
        println!("  row {row} / row {reference}: {ratio}");
    }
    println!("p99 latency at {few} connections (target):");
    for (row, target) in LATENCY_TARGETS {
        let p99 = match measured(results, row) {
            Some(m) => {
                let p99 = m.latency.tally.latency_ms(0.99);
                format!("{p99:.2} ms (< {target} ms: {})", verdict(p99 < target))
            }
            None => "n/a (the row did not run)".to_owned(),
        };
        println!("  row {row}: {p99}");
    }
}

fn measured<'a>(results: &'a [(&Row, RowResult)], id: &str) -> Option<&'a Measurement> {
    results.iter().find_map(|(row, result)| match result {
        RowResult::Measured(m) if row.id == id => Some(&**m),
        _ => None,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}
