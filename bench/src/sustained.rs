//! Sustained writes (issue 27): what millions of writes leave in the host's
//! memory and on disk, and how long the host then takes to start again.
//!
//! Each case on a fresh host and a fresh data directory: N increments of
//! the counter of one session (a hot key) or spread at random over many
//! sessions, created first (by default one case of each: 1 and 100 000
//! sessions). The bench reads the host's RSS after half the writes and after
//! all, its peak, and the store's files, then stops the host, once with
//! SIGTERM (a graceful stop) and, in a second run of the same writes, with
//! `kill -9` (a crash). It then times a new host on the same
//! directory from its start until it prints `listening on`, and reads what
//! its store logged about the replay (`journal_bytes`, `replayed_bytes`,
//! `took_ms`; hosts without those log lines show `-`). On the hot session,
//! the restarted host must still count every acknowledged increment.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper::header::HeaderValue;
use tokio::runtime::Runtime;

use crate::load::{self, Workload};
use crate::rows::Settings;
use crate::servers::{self, EdgeStore, Layout, Server};

/// The host's logs: warnings, and what the embedded store says at open.
const LOG_FILTER: &str = "warn,edge_session::store::embedded=info";

const MIB: f64 = 1024.0 * 1024.0;

/// How a run ends before the restart.
#[derive(Clone, Copy)]
enum Stop {
    Graceful,
    Crash,
}

impl Stop {
    fn label(self) -> &'static str {
        match self {
            Stop::Graceful => "SIGTERM",
            Stop::Crash => "kill -9",
        }
    }
}

/// What one run came to.
struct Figures {
    writes_per_second: f64,
    failed: u64,
    peak_rss: u64,
    /// After half the writes, and after all of them.
    half_rss: u64,
    end_rss: u64,
    /// The store's files at the end of the writes.
    disk: Disk,
    /// From the signal until the host exited (`None` for `kill -9`).
    stop: Option<Duration>,
    /// The same, after the stop: what the restart found.
    disk_at_start: Disk,
    /// From starting the host until its `listening on` line.
    start: Duration,
    restart_rss: u64,
    replayed: Option<u64>,
    open_ms: Option<u64>,
    /// The restarted host's log lines about opening the store.
    open_lines: Vec<String>,
}

pub fn run(
    layout: &Layout,
    settings: &Settings,
    runtime: &Runtime,
    writes: u64,
    cases: &[usize],
) -> Result<()> {
    let cases_text: Vec<String> = cases.iter().map(usize::to_string).collect();
    println!(
        "\nsustained writes: {writes} increments at {} connections to {} session(s); each case \
         twice, stopped by SIGTERM or kill -9, then restarted (embedded store)",
        settings.connections,
        cases_text.join(", then ")
    );
    println!(
        "{:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>7} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}",
        "sessions",
        "stop",
        "writes/s",
        "RSS peak",
        "RSS half",
        "RSS end",
        "jnl len",
        "jnl du",
        "store du",
        "stop s",
        "jnl@open",
        "du@open",
        "start s",
        "RSS start",
        "replayed",
        "open ms",
    );
    for &sessions in cases {
        for stop in [Stop::Graceful, Stop::Crash] {
            eprintln!(
                "sustained: {writes} writes to {sessions} session(s), then {}",
                stop.label()
            );
            let figures = run_case(layout, settings, runtime, writes, sessions, stop)
                .with_context(|| format!("{sessions} session(s), {}", stop.label()))?;
            let mib = |bytes: u64| bytes as f64 / MIB;
            let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
            println!(
                "{:>9} {:>8} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>8.1} {:>9.1} {:>7} {:>9.1} {:>9.1} {:>8.2} {:>9.1} {:>9} {:>8}",
                sessions,
                stop.label(),
                figures.writes_per_second,
                mib(figures.peak_rss),
                mib(figures.half_rss),
                mib(figures.end_rss),
                mib(figures.disk.journal_length),
                mib(figures.disk.journal_used),
                mib(figures.disk.used),
                or_dash(
                    figures
                        .stop
                        .map(|took| format!("{:.2}", took.as_secs_f64()))
                ),
                mib(figures.disk_at_start.journal_length),
                mib(figures.disk_at_start.used),
                figures.start.as_secs_f64(),
                mib(figures.restart_rss),
                or_dash(figures.replayed.map(|bytes| format!("{:.1}", mib(bytes)))),
                or_dash(figures.open_ms.map(|ms| ms.to_string())),
            );
            if figures.failed > 0 {
                println!("          ({} of the writes failed)", figures.failed);
            }
            for line in &figures.open_lines {
                println!("          {line}");
            }
        }
    }
    println!(
        "MiB throughout. RSS: peak (VmHWM), after half the writes and after all, and once restarted; \
         jnl len: the length of the *.jnl files (sparse; the log's journal_bytes), jnl du and \
         store du: the disk they and the whole store take, at the end of the writes and \
         (@open) after the stop; stop s: SIGTERM until exit; start s: start until `listening \
         on`; replayed and open ms: the restarted host's log"
    );
    Ok(())
}

fn run_case(
    layout: &Layout,
    settings: &Settings,
    runtime: &Runtime,
    writes: u64,
    sessions: usize,
    stop: Stop,
) -> Result<Figures> {
    let dir = layout.scratch_dir(&format!("sustained-{sessions}-"))?;
    let data_dir = dir.path().join("sessions");
    let counter = layout.guest("counter");
    let config = servers::edge_session_config(
        layout,
        &counter,
        true,
        "",
        EdgeStore::Embedded,
        dir.path(),
        "",
    )?;
    let mut server =
        servers::start_edge_session(layout, &config, &dir.path().join("server.log"), LOG_FILTER)?;
    let cookies = runtime.block_on(load::create_sessions(
        server.addr,
        "/count",
        sessions,
        settings.connections.min(sessions),
    ))?;
    let workload = Workload {
        addr: server.addr,
        path: "/count".to_owned(),
        cookies: cookies.into(),
    };
    // In two halves, to see whether the memory still grows in the second.
    let write = |count| {
        runtime
            .block_on(load::run_count(&workload, settings.connections, count))
            .with_context(|| format!("the server's log:\n{}", server.log_tail()))
    };
    let first = write(writes / 2)?;
    let half_rss = server.rss_bytes()?;
    let second = write(writes - writes / 2)?;
    let (peak_rss, end_rss) = (server.peak_rss_bytes()?, server.rss_bytes()?);
    let succeeded = first.tally.succeeded + second.tally.succeeded;
    let disk = Disk::of(&data_dir)?;
    let stopped = match stop {
        Stop::Graceful => Some(server.terminate()?),
        Stop::Crash => {
            server.kill()?;
            None
        }
    };
    drop(server);
    let disk_at_start = Disk::of(&data_dir)?;
    let started = Instant::now();
    let restarted =
        servers::start_edge_session(layout, &config, &dir.path().join("restart.log"), LOG_FILTER)?;
    let start = started.elapsed();
    let restart_rss = restarted.rss_bytes()?;
    let log = restarted.log();
    if sessions == 1 {
        check_counted(runtime, &restarted, &workload.cookies[0], succeeded)?;
    }
    Ok(Figures {
        writes_per_second: succeeded as f64 / (first.elapsed + second.elapsed).as_secs_f64(),
        failed: first.tally.failed + second.tally.failed,
        peak_rss,
        half_rss,
        end_rss,
        disk,
        stop: stopped,
        disk_at_start,
        start,
        restart_rss,
        replayed: log_field(&log, "replayed_bytes"),
        open_ms: log_field(&log, "took_ms"),
        open_lines: log
            .lines()
            .filter(|line| line.contains("session store"))
            .map(|line| {
                // Without the timestamp.
                let at = line.find("INFO").unwrap_or(0);
                line[at..].to_owned()
            })
            .collect(),
    })
}

/// The restarted host still counts every increment acknowledged before the
/// stop: the session's creation made 1, each increment one more, and this
/// visit one more again.
fn check_counted(
    runtime: &Runtime,
    server: &Server,
    cookie: &HeaderValue,
    acknowledged: u64,
) -> Result<()> {
    let count = runtime.block_on(load::session_count(server.addr, "/count", cookie))?;
    let least = acknowledged as i64 + 2;
    if count < least {
        bail!("after the restart the hot session counts {count}, not at least {least}");
    }
    Ok(())
}

/// The store's files. fjall sizes each journal file at 64 MiB when it
/// opens it, a sparse file that fills as writes land, so a journal's length
/// (what the host logs as `journal_bytes`) and the disk it takes differ.
#[derive(Default)]
struct Disk {
    /// The length of the journal files (`*.jnl`).
    journal_length: u64,
    /// The disk blocks they take (`du`).
    journal_used: u64,
    /// The disk blocks the whole directory takes.
    used: u64,
}

impl Disk {
    fn of(dir: &Path) -> Result<Self> {
        let mut disk = Self::default();
        disk.add(dir)?;
        Ok(disk)
    }

    fn add(&mut self, dir: &Path) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                self.add(&entry.path())?;
                continue;
            }
            let used = metadata.blocks() * 512;
            self.used += used;
            if entry.file_name().to_string_lossy().ends_with(".jnl") {
                self.journal_length += metadata.len();
                self.journal_used += used;
            }
        }
        Ok(())
    }
}

/// The number logged as `name=…` (text logs) or `"name":…` (JSON logs),
/// its last occurrence.
fn log_field(log: &str, name: &str) -> Option<u64> {
    [format!("{name}="), format!("\"{name}\":")]
        .iter()
        .filter_map(|key| {
            let at = log.rfind(key.as_str())? + key.len();
            let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::log_field;

    #[test]
    fn reads_the_store_open_line() {
        let log = "2026-12-06T08:00:00Z  INFO edge_session::store::embedded: opening the session \
                   store: replaying what its journal holds beyond its tables journal_bytes=123\n\
                   2026-12-06T08:00:01Z  INFO edge_session::store::embedded: session store open \
                   replayed_bytes=45 took_ms=6\n";
        assert_eq!(log_field(log, "journal_bytes"), Some(123));
        assert_eq!(log_field(log, "replayed_bytes"), Some(45));
        assert_eq!(log_field(log, "took_ms"), Some(6));
        assert_eq!(
            log_field("{\"fields\":{\"took_ms\":7}}", "took_ms"),
            Some(7)
        );
        assert_eq!(log_field("listening", "took_ms"), None);
    }
}
