//! Users and passwords: the client logs in with its bcrypt hash and reuses
//! the session token; nothing gets through without it.

use std::io::{Read, Write};
use std::net::TcpStream;

use aerospike::{AuthMode, Bins, Client, ClientPolicy, ReadPolicy, Value, WritePolicy, as_bin};
use aerospike_fixture::{AerospikeFixture, FixtureConfig};

use crate::common::{connect_with, key, start};

fn secured() -> AerospikeFixture {
    start(FixtureConfig {
        users: vec![("ann".into(), "s3cret".into())],
        ..FixtureConfig::default()
    })
}

fn login(user: &str, password: &str) -> ClientPolicy {
    let mut policy = ClientPolicy::default();
    policy.set_auth_mode(AuthMode::Internal(user.into(), password.into()));
    policy
}

#[tokio::test]
async fn a_user_logs_in_and_works() {
    let fixture = secured();
    let client = connect_with(&fixture, login("ann", "s3cret")).await;
    let key = key("private");
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 1)])
        .await
        .unwrap();
    // New connections authenticate with the session token.
    fixture.drop_connections();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(record.bins["a"], Value::from(1));
}

#[tokio::test]
async fn wrong_or_missing_credentials_cannot_connect() {
    let fixture = secured();
    for policy in [
        login("ann", "wrong"),
        login("bob", "s3cret"),
        ClientPolicy::default(),
    ] {
        let result = Client::new(&policy, &fixture.hosts()).await;
        assert!(result.is_err(), "{:?} connected", policy.auth_mode);
    }
    // Community Edition (no users) answers a login "security not supported".
    let community = start(FixtureConfig::default());
    assert!(
        Client::new(&login("ann", "s3cret"), &community.hosts())
            .await
            .is_err()
    );
}

#[test]
fn data_commands_need_an_authenticated_connection() {
    let fixture = secured();
    let mut socket = TcpStream::connect(fixture.addr()).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // A get of every bin: header, then the namespace and digest fields.
    let mut msg = vec![22, 0b11, 0, 0, 0, 0];
    msg.extend_from_slice(&[0; 12]);
    msg.extend_from_slice(&[0, 2, 0, 0]);
    msg.extend_from_slice(&[0, 0, 0, 5, 0]);
    msg.extend_from_slice(b"test");
    msg.extend_from_slice(&[0, 0, 0, 21, 4]);
    msg.extend_from_slice(&[9; 20]);
    let proto = msg.len() as u64 | (2 << 56) | (3 << 48);
    socket
        .write_all(&[&proto.to_be_bytes()[..], &msg].concat())
        .unwrap();
    let mut reply = [0; 30];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(reply[13], 80, "NOT_AUTHENTICATED");
}
