//! Starting fixtures and clients, reading result codes out of errors, and
//! waiting for what happens in its own time without a bound on that time.

use std::fmt::Debug;
use std::time::Duration;

use aerospike::{Client, ClientPolicy, Key, ResultCode, as_key};
use aerospike_fixture::{AerospikeFixture, FixtureConfig};

pub fn start(config: FixtureConfig) -> AerospikeFixture {
    AerospikeFixture::start(config).expect("the fixture starts")
}

pub async fn connect(fixture: &AerospikeFixture) -> Client {
    connect_with(fixture, ClientPolicy::default()).await
}

pub async fn connect_with(fixture: &AerospikeFixture, policy: ClientPolicy) -> Client {
    Client::new(&policy, &fixture.hosts())
        .await
        .expect("the client connects")
}

pub fn key(name: &str) -> Key {
    as_key!("test", "sessions", name)
}

/// The server result code of a failed command.
pub fn code<T: Debug>(result: aerospike::Result<T>) -> ResultCode {
    let err = result.expect_err("the command should fail");
    err.server_result_code()
        .unwrap_or_else(|| panic!("not a server error: {err}"))
}

/// How long a test waits for something before calling it hung. Not a
/// performance bound: it only turns a hang into a failure, so it is far
/// above anything a loaded machine needs (the waits here are for at most
/// a couple of seconds of TTL, or for a command to reach the fixture).
pub const HANG: Duration = Duration::from_secs(60);

/// Calls `attempt` a little apart until it gives `Some`; panics naming
/// `what` if that takes [`HANG`].
pub async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let poll = async {
        loop {
            if let Some(done) = attempt().await {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(HANG, poll)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {HANG:?}"))
}
