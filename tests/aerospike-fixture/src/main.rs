//! Runs the Aerospike test fixture by hand, so a developer can point a host at
//! it without a real server. A TEST FIXTURE: data lives in memory only.

use std::io;

use aerospike_fixture::{AerospikeFixture, FixtureConfig};
use clap::Parser;

/// In-memory Aerospike stand-in for tests (not a database).
#[derive(Parser)]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Namespace to serve; repeat for several.
    #[arg(long = "namespace", default_value = "test")]
    namespaces: Vec<String>,
    /// Refuse writes that set a TTL, like a namespace with nsup-period 0.
    #[arg(long)]
    forbid_ttl: bool,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let fixture = AerospikeFixture::start(FixtureConfig {
        namespaces: args.namespaces,
        forbid_ttl: args.forbid_ttl,
        port: args.port,
        ..FixtureConfig::default()
    })?;
    eprintln!(
        "aerospike-fixture (test fixture, in memory) listening on {}; Ctrl-C stops it",
        fixture.hosts()
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tokio::signal::ctrl_c())
}
