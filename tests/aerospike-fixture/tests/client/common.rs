//! Starting fixtures and clients, and reading result codes out of errors.

use std::fmt::Debug;

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
