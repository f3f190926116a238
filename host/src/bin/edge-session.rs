//! The `edge-session` command: parses flags and config, then hands over to
//! the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_session::app;
use edge_session::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Our logs at info; the storage engine's only when something is wrong.
const DEFAULT_LOG_FILTER: &str = "info,fjall=warn,lsm_tree=warn";

#[derive(Parser)]
#[command(version, about = "A WebAssembly edge session runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the routes of a config file.
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Listen on this address instead of the config's `listen`
        /// (port 0 picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check a config file: validate it, then compile and link every
    /// route's component against the host's WIT world. Exits 0 when all is
    /// well, 1 when a component fails, 2 when the config is invalid.
    Check {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen } => serve(&config, listen),
        Command::Check { config } => {
            init_logs(LogFormat::Text);
            check(&config)
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG`.
fn init_logs(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        for problem in &errors.0 {
            eprintln!("error: invalid config {}: {problem}", path.display());
        }
        ExitCode::from(2)
    })
}

fn check(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match app::check(&config) {
        Ok(problems) if problems.is_empty() => {
            println!("{}: ok, {} routes", path.display(), config.routes.len());
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            for problem in &problems {
                eprintln!("error: {}: {problem}", path.display());
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &Path, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logs(config.log.format);
    match app::serve(&config, listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
