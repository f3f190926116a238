//! The side-by-side benchmark of issue 6: edge-session against the native
//! axum + tower-sessions app a Rust user would write instead, on the
//! "session counter" workload, one server after another with the same load
//! generator, the whole table twice. `scripts/bench.sh` builds everything
//! and runs it; see docs/performance.md.

mod calls;
mod load;
mod native;
mod rows;
mod scale;
mod servers;
mod sustained;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::native::NativeStore;
use crate::rows::{RowResult, Settings};
use crate::servers::Layout;

#[derive(Parser)]
#[command(about = "edge-session side by side with axum + tower-sessions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure every row and print the table.
    Run(RunArgs),
    /// Serve the native comparator (the bench starts it itself).
    Native {
        #[arg(long)]
        listen: SocketAddr,
        /// `memory`, or the `redis://` URL of a redis-server.
        #[arg(long)]
        store: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Length of each run (throughput and latency, per row).
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Connections of the throughput run.
    #[arg(short, long, default_value_t = 32)]
    connections: usize,
    /// Connections of the latency run.
    #[arg(long, default_value_t = 4)]
    latency_connections: usize,
    /// Sessions created before the runs; each request picks one at random.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Threads of the load generator (`wrk -t`).
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// How many times the whole table is measured.
    #[arg(long, default_value_t = 2)]
    passes: usize,
    /// Only these rows (e.g. `1,2,3a`, and `calls` for the cost of one
    /// guest→host call); default all.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// The edge-session binary to measure; by default the release build
    /// beside the bench. Run the bench once per build, alternating, to
    /// compare two builds in one sitting.
    #[arg(long)]
    host: Option<PathBuf>,
    /// Scale runs: the counter among this many stored sessions of ~1 KiB
    /// each (e.g. `10000,100000,1000000`); none by default.
    #[arg(long, value_delimiter = ',')]
    scale: Vec<usize>,
    /// Sustained writes: this many increments at `--connections`, spread
    /// over each of `--sustained-sessions` in turn, each case stopped once
    /// by SIGTERM and once by `kill -9` and restarted; reports RSS, the
    /// store's disk and the restart's time (e.g. `2000000`). None by
    /// default.
    #[arg(long)]
    sustained: Option<u64>,
    /// The sustained run's cases: how many sessions its writes go to (1: a
    /// hot counter).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100_000])]
    sustained_sessions: Vec<usize>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(&args),
        Command::Native { listen, store } => {
            let store = match store.as_str() {
                "memory" => NativeStore::Memory,
                url => NativeStore::Redis(url.to_owned()),
            };
            native::serve(listen, store)
        }
    }
}

fn run(args: &RunArgs) -> Result<()> {
    let layout = Layout::of_current_exe(args.host.clone())?;
    layout.host_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let settings = Settings {
        duration: args.duration,
        connections: args.connections,
        latency_connections: args.latency_connections,
        sessions: args.sessions,
    };
    let rows: Vec<_> = rows::all()
        .into_iter()
        .filter(|row| args.rows.is_empty() || args.rows.iter().any(|id| id == row.id))
        .collect();
    println!(
        "session counter: GET /count with a cookie picked from {} sessions; \
         each row {} at {} connections, then {} at {}; load generator: {} thread(s)",
        settings.sessions,
        humantime::format_duration(settings.duration),
        settings.connections,
        humantime::format_duration(settings.duration),
        settings.latency_connections,
        args.threads,
    );
    for pass in 1..=args.passes {
        let load_before = load_average();
        let mut results = Vec::new();
        for row in rows.iter() {
            eprintln!("pass {pass}/{}: row {} ({})", args.passes, row.id, row.name);
            let result = row.run(&layout, &settings, &runtime);
            if let RowResult::Failed(error) = &result {
                eprintln!("row {} failed: {error:#}", row.id);
            }
            results.push((row, result));
        }
        println!(
            "\npass {pass} of {} (load average {load_before} before, {} after):",
            args.passes,
            load_average()
        );
        table::print_pass(&results, &settings);
    }
    if !args.scale.is_empty() {
        scale::run(&layout, &settings, &runtime, &args.scale)?;
    }
    if let Some(writes) = args.sustained {
        sustained::run(
            &layout,
            &settings,
            &runtime,
            writes,
            &args.sustained_sessions,
        )?;
    }
    if args.rows.is_empty() || args.rows.iter().any(|id| id == "calls") {
        eprintln!("the cost of one guest→host call");
        match calls::per_call(&layout, &runtime) {
            Ok(cost) => println!(
                "\none guest→host call (get-field, embedded store): {:.2} µs (target < 1 µs: {})",
                cost.as_secs_f64() * 1e6,
                if cost < Duration::from_micros(1) {
                    "met"
                } else {
                    "missed"
                }
            ),
            Err(error) => eprintln!("measuring one guest→host call failed: {error:#}"),
        }
    }
    Ok(())
}

/// The 1-minute load average, to judge how noisy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
