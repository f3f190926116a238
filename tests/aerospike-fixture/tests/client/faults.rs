//! Faults a backend has to live through: the server going away and coming
//! back on the same port, slow or held replies, dropped connections. Also
//! that the fixture works from a plain `#[test]` and describes itself to the
//! client. Each asserts what happens and in what order, not how long it
//! took: a loaded machine must not turn a pass into a failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerospike::{AdminPolicy, Bins, ReadPolicy, Value, WritePolicy, as_bin};
use aerospike_fixture::{AerospikeFixture, FixtureConfig};

use crate::common::{HANG, connect, eventually, key, start};

/// A raw connection the fixture has certainly accepted: it answered on it.
fn connected(fixture: &AerospikeFixture) -> TcpStream {
    let mut socket = TcpStream::connect(fixture.addr()).unwrap();
    socket.set_read_timeout(Some(HANG)).unwrap();
    socket.write_all(&frame(2, 1, b"build\n")).unwrap();
    let mut reply = [0; 8 + 14];
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[8..], b"build\t8.1.2.0\n");
    socket
}

/// A proto frame: version, message type, body.
fn frame(version: u64, kind: u64, body: &[u8]) -> Vec<u8> {
    let header = body.len() as u64 | (version << 56) | (kind << 48);
    [&header.to_be_bytes()[..], body].concat()
}

fn read_within(millis: u32) -> ReadPolicy {
    let mut policy = ReadPolicy::default();
    policy.base_policy.total_timeout = millis;
    policy
}

/// Reads that wait as long as the test does before calling a hang.
fn patiently() -> ReadPolicy {
    let millis = HANG.as_millis() as u32;
    let mut policy = read_within(millis);
    policy.base_policy.socket_timeout = millis;
    policy
}

#[tokio::test]
async fn stop_cuts_clients_off_and_resume_keeps_the_data() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("durable");
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 1)])
        .await
        .unwrap();

    // Closed, not left silent: a client sees its connections end, which is
    // what lets it fail without waiting on a server that is not there.
    let mut bystander = connected(&fixture);
    fixture.stop();
    assert_eq!(
        bystander.read(&mut [0; 8]).unwrap(),
        0,
        "closed by the fixture"
    );
    assert!(
        TcpStream::connect(fixture.addr()).is_err(),
        "nothing listens"
    );
    let err = client
        .get(&read_within(300), &key, Bins::All)
        .await
        .unwrap_err();
    assert!(
        err.server_result_code().is_none(),
        "a client-side error: {err}"
    );

    fixture.resume().unwrap();
    let record = eventually("the client to reconnect", async || {
        client.get(&read_within(300), &key, Bins::All).await.ok()
    })
    .await;
    assert_eq!(record.bins["a"], Value::from(1));
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 2)])
        .await
        .unwrap();
}

#[tokio::test]
async fn latency_makes_impatient_commands_time_out() {
    const LATENCY: Duration = Duration::from_millis(400);
    const HOUR: Duration = Duration::from_secs(3600);
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("slow");
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 1)])
        .await
        .unwrap();

    fixture.set_latency(LATENCY);
    let asked = Instant::now();
    client.get(&patiently(), &key, Bins::All).await.unwrap();
    // A lower bound, the very thing `set_latency` promises: load only
    // lengthens the wait, so this cannot fail on a slow machine.
    assert!(asked.elapsed() >= LATENCY, "the reply was delayed");

    // With the reply an hour away, the client's deadline certainly comes
    // first, however slow the machine.
    fixture.set_latency(HOUR);
    let mut impatient = read_within(100);
    impatient.base_policy.max_retries = 0;
    let err = client.get(&impatient, &key, Bins::All).await.unwrap_err();
    assert!(err.is_client_timeout(), "{err}");

    // Were the hour still on, this would time out instead.
    fixture.set_latency(Duration::ZERO);
    client.get(&patiently(), &key, Bins::All).await.unwrap();
}

#[tokio::test]
async fn held_replies_wait_for_their_release() {
    let fixture = start(FixtureConfig::default());
    let client = Arc::new(connect(&fixture).await);
    let key = key("held");
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 1)])
        .await
        .unwrap();

    fixture.hold_replies();
    let patient = tokio::spawn({
        let (client, key) = (Arc::clone(&client), key.clone());
        async move { client.get(&patiently(), &key, Bins::All).await }
    });
    eventually("the patient get to reach the fixture", async || {
        (fixture.held_commands() == 1).then_some(())
    })
    .await;
    let mut impatient = read_within(100);
    impatient.base_policy.max_retries = 0;
    let err = client.get(&impatient, &key, Bins::All).await.unwrap_err();
    assert!(err.is_client_timeout(), "{err}");
    assert!(!patient.is_finished(), "no reply before the release");

    fixture.release_replies();
    let record = patient.await.unwrap().expect("answered once released");
    assert_eq!(record.bins["a"], Value::from(1));
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 2)])
        .await
        .expect("replies flow again");
}

#[tokio::test]
async fn dropped_connections_are_replaced() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("blip");
    let write = WritePolicy::default();
    client.put(&write, &key, &[as_bin!("a", 1)]).await.unwrap();
    let mut bystander = connected(&fixture);
    fixture.drop_connections();
    assert_eq!(
        bystander.read(&mut [0; 8]).unwrap(),
        0,
        "closed by the fixture"
    );
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(record.bins["a"], Value::from(1));
    fixture.drop_connections();
    // Writes default to no retries; the pool still notices the dead socket.
    client.put(&write, &key, &[as_bin!("a", 2)]).await.unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(
        (record.bins["a"].clone(), record.generation),
        (Value::from(2), 2)
    );
}

#[tokio::test]
async fn info_describes_one_node() {
    let fixture = start(FixtureConfig {
        namespaces: vec!["test".into(), "cache".into()],
        ..FixtureConfig::default()
    });
    let client = connect(&fixture).await;
    assert_eq!(client.node_names(), [fixture.node_name()]);
    let info = client
        .info(&AdminPolicy::default(), &["namespaces", "build", "bogus"])
        .await
        .unwrap();
    assert_eq!(info["namespaces"], "test;cache");
    assert_eq!(info["build"], "8.1.2.0");
    assert_eq!(info["bogus"], "ERROR:4:unrecognized command");
}

#[test]
fn works_from_plain_tests_and_frees_its_port() {
    let fixture = start(FixtureConfig::default());
    let addr = fixture.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(fixture.hosts(), addr.to_string());
    TcpStream::connect(addr).expect("listening");
    fixture.stop();
    fixture.stop();
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
    fixture.resume().unwrap();
    fixture.resume().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = connect(&fixture).await;
        let key = key("sync");
        client
            .put(&WritePolicy::default(), &key, &[as_bin!("a", 1)])
            .await
            .unwrap();
        assert!(client.exists(&ReadPolicy::default(), &key).await.unwrap());
        client.close().await.unwrap();
    });

    drop(fixture);
    let again = start(FixtureConfig {
        port: addr.port(),
        ..FixtureConfig::default()
    });
    assert_eq!(again.addr(), addr, "dropping the fixture freed the port");
    assert_eq!(again.record_count(), 0, "a new fixture starts empty");
}

#[test]
fn malformed_frames_close_the_connection() {
    let fixture = start(FixtureConfig::default());
    // Wrong protocol version, unknown message type, and an AS_MSG whose
    // header promises a field that is not there.
    let mut short_msg = vec![22, 1, 0, 0, 0, 0];
    short_msg.extend_from_slice(&[0; 12]);
    short_msg.extend_from_slice(&[0, 1, 0, 0]);
    for bad in [
        frame(9, 3, &[0; 22]),
        frame(2, 77, b"hello"),
        frame(2, 3, &short_msg),
    ] {
        let mut socket = connected(&fixture);
        socket.write_all(&bad).unwrap();
        // Closing with unread bytes pending resets the connection.
        let closed = match socket.read(&mut [0; 64]) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "closed without a reply");
    }
    connected(&fixture);
}
