//! Scale: does the counter stay as fast when the embedded store holds many
//! more sessions than it touches, and what does a stored session cost? For
//! each size, a fresh host serves the counter at `/count` and the faulty test
//! guest at `/fill`, whose `/fill/fill?n=N` creates N sessions of about
//! 1 KiB. The bench fills the store, then runs the counter workload (its
//! 1000 sessions among the filled ones) and reports its throughput with the
//! memory and disk each filled session added.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use tokio::runtime::Runtime;

use crate::load::{self, Workload};
use crate::rows::Settings;
use crate::servers::{self, EdgeStore, Layout};

/// Sessions created per fill request.
const PER_REQUEST: usize = 100;

/// Connections filling the store.
const FILL_CONNECTIONS: usize = 4;

pub fn run(layout: &Layout, settings: &Settings, runtime: &Runtime, sizes: &[usize]) -> Result<()> {
    println!(
        "\nscale: the counter among N sessions of ~1 KiB (embedded store), {} at {} connections",
        humantime::format_duration(settings.duration),
        settings.connections
    );
    println!(
        "{:>9} {:>12} {:>9} {:>9} {:>13} {:>13}",
        "sessions", "filled/s", "req/s", "RSS MiB", "RSS B/session", "disk B/session"
    );
    for &size in sizes {
        eprintln!("scale: {size} sessions");
        let dir = layout.scratch_dir(&format!("scale-{size}-"))?;
        let filler = format!(
            "[[routes]]\nprefix = \"/fill\"\ncomponent = {:?}\nnamespace = \"fill\"\ndefault_ttl = \"1h\"\n",
            layout.guest("faulty").display().to_string()
        );
        let counter = layout.guest("counter");
        let server = servers::edge_session(
            layout,
            &counter,
            true,
            "",
            EdgeStore::Embedded,
            dir.path(),
            &filler,
        )?;
        let rss_before = server.rss_bytes()?;
        let started = Instant::now();
        runtime.block_on(fill(server.addr, size))?;
        let filled_per_second = size as f64 / started.elapsed().as_secs_f64();
        let cookies = runtime.block_on(load::create_sessions(
            server.addr,
            "/count",
            settings.sessions,
            settings.latency_connections,
        ))?;
        let workload = Workload {
            addr: server.addr,
            path: "/count".to_owned(),
            cookies: cookies.into(),
        };
        let outcome = runtime.block_on(load::run(
            &workload,
            settings.connections,
            settings.duration,
        ))?;
        let rss = server.rss_bytes()?;
        let disk = bytes_under(&dir.path().join("sessions"))?;
        println!(
            "{:>9} {:>12.0} {:>9.0} {:>9.1} {:>13.0} {:>13.0}",
            size,
            filled_per_second,
            outcome.requests_per_second(),
            rss as f64 / (1024.0 * 1024.0),
            rss.saturating_sub(rss_before) as f64 / size as f64,
            disk as f64 / size as f64,
        );
    }
    Ok(())
}

/// Creates `size` sessions through the filler route.
async fn fill(addr: std::net::SocketAddr, size: usize) -> Result<()> {
    let requests = size.div_ceil(PER_REQUEST);
    let mut tasks = Vec::new();
    for connection in 0..FILL_CONNECTIONS {
        let mine = (connection..requests).step_by(FILL_CONNECTIONS).count();
        tasks.push(tokio::spawn(async move {
            let path = format!("/fill/fill?n={PER_REQUEST}");
            load::sequential_times(addr, &path, mine).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// The bytes of the files under `dir` (the store's journal and tables).
fn bytes_under(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            bytes_under(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}
