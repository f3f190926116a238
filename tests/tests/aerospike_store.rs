//! The Aerospike backend through the real `aerospike` client: the
//! conformance body in both expiry modes and under encryption, on the
//! in-repo test server or on the cluster named by `AEROSPIKE_HOSTS`; then
//! what only a distributed store meets: a namespace that forbids TTLs, two
//! hosts sharing sessions, the backend stalling, going away and coming
//! back, and what encryption keeps off the cluster.
//!
//! The fault tests assert outcomes and their order (a store gives up while
//! the server still holds its reply), never elapsed time, so a loaded
//! machine cannot fail them; [`HANG`] only turns a hang into a failure.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use aerospike_fixture::FixtureConfig;
use edge_session::session::id as session_id;
use edge_session::store::{
    AerospikeConfig, AerospikeStore, EncryptedStore, EncryptionKeys, ExpiryMode, SessionKey,
    SessionStore, StoreError,
};
use edge_session_tests::aerospike::{HANG, TestCluster, eventually, unless_hung};
use edge_session_tests::conformance;

const MINUTE: Duration = Duration::from_secs(60);
/// The command deadline of the fault tests that are about it (the default).
const DEADLINE: Duration = Duration::from_millis(250);

async fn open(cluster: &TestCluster, expiry: ExpiryMode) -> AerospikeStore {
    let config = cluster.store_config(expiry, conformance::MAX_SESSION_BYTES);
    AerospikeStore::open(config).await.unwrap()
}

/// A fixture cluster (for its faults), the config of a store on it whose
/// commands have `timeout` as their deadline, that store, and the id of one
/// session holding `data`.
async fn fixture_with_session(
    data: &str,
    timeout: Duration,
) -> (TestCluster, AerospikeConfig, AerospikeStore, String) {
    let cluster = TestCluster::fixture(FixtureConfig::default());
    let config = AerospikeConfig {
        timeout,
        ..cluster.store_config(ExpiryMode::Server, conformance::MAX_SESSION_BYTES)
    };
    let store = AerospikeStore::open(config.clone()).await.unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    store.insert(key, data, MINUTE).await.unwrap();
    (cluster, config, store, id)
}

/// A store sealing sessions with a test key over the Aerospike store, as
/// `[store.encryption]` layers it, and the config of the store underneath
/// (to read what it holds unsealed).
async fn encrypted(cluster: &TestCluster) -> (EncryptedStore<AerospikeStore>, AerospikeConfig) {
    let keys = Arc::new(EncryptionKeys::new([("k1", &[7u8; 32][..])]).unwrap());
    let limit = conformance::MAX_SESSION_BYTES;
    let config = cluster.store_config(ExpiryMode::Server, keys.stored_bytes(limit));
    let inner = AerospikeStore::open(config.clone()).await.unwrap();
    (EncryptedStore::new(inner, keys, limit), config)
}

/// What the store gave, or `None` while it is unavailable.
fn available<T: Debug>(result: Result<T, StoreError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(StoreError::Unavailable(_)) => None,
        Err(error) => panic!("not an outage: {error}"),
    }
}

/// Whether any record the test server holds contains `needle`.
fn stored_anywhere(cluster: &TestCluster, needle: &str) -> bool {
    cluster.server().record_bytes().iter().any(|record| {
        record
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

#[tokio::test]
async fn the_size_is_the_sets_sessions_and_their_bytes() {
    let cluster = TestCluster::shared();
    let store = open(&cluster, ExpiryMode::Server).await;
    let size = store.size().await.expect("the cluster answers");
    assert_eq!(size.sessions, 0, "a fresh set");
    let ids: Vec<String> = (0..3).map(|_| session_id::generate()).collect();
    let data = format!(r#"{{"note":"{}"}}"#, "x".repeat(500));
    for id in &ids {
        store
            .insert(SessionKey::new("app", id), &data, MINUTE)
            .await
            .unwrap();
    }
    let size = store.size().await.expect("the cluster answers");
    assert_eq!(size.sessions, 3);
    assert!(size.bytes >= 3 * 500, "{} bytes", size.bytes);
    store.delete(SessionKey::new("app", &ids[0])).await.unwrap();
    assert_eq!(store.size().await.unwrap().sessions, 2);
    if !cluster.is_real() {
        cluster.server().stop();
        assert!(store.size().await.is_none(), "unknown, not zero");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_with_server_ttl() {
    let cluster = TestCluster::shared();
    conformance::run(Arc::new(open(&cluster, ExpiryMode::Server).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_with_host_expiry_where_the_namespace_forbids_ttls() {
    // On the test server, mimic a namespace with `nsup-period 0`.
    let cluster = match TestCluster::shared() {
        real if real.is_real() => real,
        _ => TestCluster::fixture(FixtureConfig {
            forbid_ttl: true,
            ..FixtureConfig::default()
        }),
    };
    conformance::run(Arc::new(open(&cluster, ExpiryMode::Host).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_encrypted() {
    let cluster = TestCluster::shared();
    conformance::run(Arc::new(encrypted(&cluster).await.0)).await;
}

#[tokio::test]
async fn with_encryption_no_record_holds_the_plaintext() {
    const SECRET: &str = "hunter2-in-plain-sight";
    let data = format!(r#"{{"card":"{SECRET}"}}"#);
    let field = format!("\"{SECRET}\"");
    // Test servers, whose records the test reads; one for each store, so
    // that each search sees only what its store wrote.
    let plain_cluster = TestCluster::fixture(FixtureConfig::default());
    let sealed_cluster = TestCluster::fixture(FixtureConfig::default());
    let plain = open(&plain_cluster, ExpiryMode::Server).await;
    let (sealed, sealed_config) = encrypted(&sealed_cluster).await;
    let id = session_id::generate();
    let key = SessionKey::new("at-rest", &id);
    for store in [&plain as &dyn SessionStore, &sealed] {
        store.insert(key, &data, MINUTE).await.unwrap();
        store.set_field(key, "cvv", &field).await.unwrap();
        assert_eq!(
            store.get_field(key, "cvv").await.unwrap(),
            Some(field.clone())
        );
    }
    assert!(
        stored_anywhere(&plain_cluster, SECRET),
        "the control: without encryption the records hold the secret"
    );
    assert!(!stored_anywhere(&sealed_cluster, SECRET));

    // The records do hold the session: sealed.
    let raw = AerospikeStore::open(sealed_config)
        .await
        .unwrap()
        .load(key)
        .await
        .unwrap()
        .expect("the session's record");
    assert!(raw.data.starts_with(r#"{"$sealed":"k1."#), "{}", raw.data);
}

#[tokio::test]
async fn a_namespace_that_forbids_ttls_is_named_at_start_with_the_fix() {
    let cluster = TestCluster::fixture(FixtureConfig {
        forbid_ttl: true,
        ..FixtureConfig::default()
    });
    let error = match AerospikeStore::open(cluster.store_config(ExpiryMode::Server, 4096)).await {
        Ok(_) => panic!("a namespace without nsup must be refused in server expiry mode"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("nsup-period") && error.contains("expiry = \"host\""),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_namespaces_and_unreachable_clusters_fail_at_start() {
    let cluster = TestCluster::fixture(FixtureConfig::default());
    let mut config = cluster.store_config(ExpiryMode::Server, 4096);
    config.namespace = "no-such-namespace".into();
    let error = AerospikeStore::open(config).await.err().expect("refused");
    assert!(
        format!("{error:#}").contains("no-such-namespace"),
        "{error:#}"
    );

    let unreachable = cluster.store_config(ExpiryMode::Server, 4096);
    cluster.server().stop();
    let opening = unless_hung(
        "opening a store on a stopped cluster",
        AerospikeStore::open(unreachable),
    );
    let error = opening.await.err().expect("refused");
    assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_share_sessions_and_their_increments_add_up() {
    const INCREMENTS: i64 = 300;
    let cluster = TestCluster::shared();
    let config = cluster.store_config(ExpiryMode::Server, 4096);
    let edge_a = Arc::new(AerospikeStore::open(config.clone()).await.unwrap());
    let edge_b = Arc::new(AerospikeStore::open(config).await.unwrap());
    let id = session_id::generate();
    let key = SessionKey::new("shop", &id);
    edge_a
        .insert(key, r#"{"user":"ada"}"#, MINUTE)
        .await
        .unwrap();
    let seen = edge_b.load(key).await.unwrap().expect("written through A");
    assert_eq!(seen.data, r#"{"user":"ada"}"#);
    edge_b.set_field(key, "cart", r#"["fig"]"#).await.unwrap();
    assert_eq!(
        edge_a.get_field(key, "cart").await.unwrap().as_deref(),
        Some(r#"["fig"]"#)
    );
    let tasks: Vec<_> = [edge_a.clone(), edge_b.clone()]
        .into_iter()
        .map(|edge| {
            let id = id.clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    edge.incr_field(SessionKey::new("shop", &id), "views", 1)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let views = edge_a.get_field(key, "views").await.unwrap();
    assert_eq!(views, Some((2 * INCREMENTS).to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_backend_is_unavailable_fast_and_loses_no_acknowledged_write() {
    let (cluster, _, store, id) = fixture_with_session("{}", DEADLINE).await;
    let key = SessionKey::new("app", &id);
    assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 1);

    // Fast: each call ends, unavailable, while the server is still down, so
    // a store that waited for the server to come back would hang here. That
    // it gives up on its own deadline is the stalled backend's test.
    cluster.server().stop();
    for _ in 0..5 {
        let result = unless_hung("an increment", store.incr_field(key, "n", 1)).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        let result = unless_hung("a load", store.load(key)).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }

    // Awaited with a read: an increment repeated until one got through
    // could apply twice.
    cluster.server().resume().unwrap();
    let stored = eventually("the store to reconnect", async || {
        available(store.get_field(key, "n").await)
    })
    .await;
    assert_eq!(
        stored.as_deref(),
        Some("1"),
        "the acknowledged increment survived, the failed ones did not apply"
    );
    assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_times_out_within_the_deadline() {
    let (cluster, config, store, id) = fixture_with_session(r#"{"n":1}"#, DEADLINE).await;
    let key = SessionKey::new("app", &id);
    // The same sessions through a store that waits as long as the test.
    let patient = AerospikeStore::open(AerospikeConfig {
        timeout: HANG,
        ..config
    })
    .await
    .unwrap();

    // The server stops answering until told to. Both stores ask it; the one
    // with the short deadline gives up while the patient one, which asked
    // first, still waits: so it gave up on its deadline, not on an answer
    // or a broken connection, and a store without one would hang here.
    cluster.server().hold_replies();
    let waiting = tokio::spawn({
        let id = id.clone();
        async move { patient.load(SessionKey::new("app", &id)).await }
    });
    eventually("the patient load to reach the server", async || {
        (cluster.server().held_commands() > 0).then_some(())
    })
    .await;
    let result = unless_hung("a load, backend stalled", store.load(key)).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(!waiting.is_finished(), "the server has not answered yet");

    cluster.server().release_replies();
    let answered = unless_hung("the patient load", waiting).await.unwrap();
    assert_eq!(answered.unwrap().expect("the session").data, r#"{"n":1}"#);
    let session = eventually("the store to recover", async || {
        available(store.load(key).await)
    })
    .await;
    assert_eq!(session.expect("the session").data, r#"{"n":1}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_replaced() {
    // A deadline no slow machine reaches: opening the replacement must not
    // race the clock.
    let (cluster, _, store, id) = fixture_with_session("{}", HANG).await;
    let key = SessionKey::new("app", &id);
    for count in 1..=20 {
        // Dropped while idle in the pool, so no command was in flight on
        // them: every write must go through, on a new connection. (A write
        // whose connection dies under it is not retried; the lost-reply test
        // covers that.)
        cluster.server().drop_connections();
        assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), count);
        assert!(store.load(key).await.unwrap().is_some());
    }
    let stored = store.get_field(key, "n").await.unwrap();
    assert_eq!(stored.as_deref(), Some("20"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_after_a_lost_reply_and_writes_are_not() {
    // A deadline no slow machine reaches: a retry must not race the clock.
    let (cluster, _, store, id) = fixture_with_session(r#"{"n":1}"#, HANG).await;
    let key = SessionKey::new("app", &id);

    cluster.server().cut_replies(1);
    let session = store.load(key).await.unwrap().expect("retried");
    assert_eq!(session.data, r#"{"n":1}"#);
    cluster.server().cut_replies(1);
    assert_eq!(
        store.get_field(key, "n").await.unwrap().as_deref(),
        Some("1")
    );

    // The increment ran, but its reply was lost: the store says so, and
    // does not run it again.
    cluster.server().cut_replies(1);
    let lost = store.incr_field(key, "n", 1).await;
    assert!(matches!(lost, Err(StoreError::Unavailable(_))), "{lost:?}");
    assert_eq!(
        store.get_field(key, "n").await.unwrap().as_deref(),
        Some("2")
    );

    // Reads give up after `read_retries` (2) retries.
    cluster.server().cut_replies(3);
    let gone = store.get_field(key, "n").await;
    assert!(matches!(gone, Err(StoreError::Unavailable(_))), "{gone:?}");
    assert_eq!(
        store.get_field(key, "n").await.unwrap().as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn clusters_with_security_need_the_right_password() {
    let cluster = TestCluster::fixture(FixtureConfig {
        users: vec![("edge".into(), "s3cret-pass".into())],
        ..FixtureConfig::default()
    });
    let mut config = cluster.store_config(ExpiryMode::Server, 4096);
    assert!(
        AerospikeStore::open(config.clone()).await.is_err(),
        "no credentials"
    );
    config.credentials = Some(("edge".into(), "wrong".into()));
    let error = AerospikeStore::open(config.clone())
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");

    config.credentials = Some(("edge".into(), "s3cret-pass".into()));
    let store = AerospikeStore::open(config).await.unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    store.insert(key, r#"{"n":1}"#, MINUTE).await.unwrap();
    assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 2);
}

#[tokio::test]
async fn tests_truncate_their_sets_afterwards() {
    let cluster = TestCluster::fixture(FixtureConfig::default());
    let store = open(&cluster, ExpiryMode::Host).await;
    let id = session_id::generate();
    store
        .insert(SessionKey::new("app", &id), "{}", MINUTE)
        .await
        .unwrap();
    assert_eq!(cluster.server().record_count(), 1);
    cluster.truncate_sets();
    assert_eq!(cluster.server().record_count(), 0);
}
