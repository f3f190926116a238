//! The Aerospike backend through the real `aerospike` client: the
//! conformance body in both expiry modes and under encryption, on the
//! in-repo test server or on the cluster named by `AEROSPIKE_HOSTS`; then
//! what only a distributed store meets: a namespace that forbids TTLs, two
//! hosts sharing sessions, and the backend stalling, going away and coming
//! back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerospike_fixture::FixtureConfig;
use edge_session::session::id as session_id;
use edge_session::store::{
    AerospikeStore, EncryptedStore, EncryptionKeys, ExpiryMode, SessionKey, SessionStore,
    StoreError,
};
use edge_session_tests::aerospike::TestCluster;
use edge_session_tests::conformance;

const MINUTE: Duration = Duration::from_secs(60);

async fn open(cluster: &TestCluster, expiry: ExpiryMode) -> AerospikeStore {
    let config = cluster.store_config(expiry, conformance::MAX_SESSION_BYTES);
    AerospikeStore::open(config).await.unwrap()
}

/// A fixture cluster (for its faults), a store on it, and the id of one
/// session holding `data`.
async fn fixture_with_session(data: &str) -> (TestCluster, AerospikeStore, String) {
    let cluster = TestCluster::fixture(FixtureConfig::default());
    let store = open(&cluster, ExpiryMode::Server).await;
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    store.insert(key, data, MINUTE).await.unwrap();
    (cluster, store, id)
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
    let keys = Arc::new(EncryptionKeys::new([("k1", &[7u8; 32][..])]).unwrap());
    let limit = conformance::MAX_SESSION_BYTES;
    let config = cluster.store_config(ExpiryMode::Server, keys.stored_bytes(limit));
    let inner = AerospikeStore::open(config).await.unwrap();
    conformance::run(Arc::new(EncryptedStore::new(inner, keys, limit))).await;
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
    let started = Instant::now();
    let error = AerospikeStore::open(unreachable)
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(10));
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
    let (cluster, store, id) = fixture_with_session("{}").await;
    let key = SessionKey::new("app", &id);
    assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 1);

    cluster.server().stop();
    for _ in 0..5 {
        let started = Instant::now();
        let result = store.incr_field(key, "n", 1).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "failing took {:?}",
            started.elapsed()
        );
        assert!(matches!(
            store.load(key).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    cluster.server().resume().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let count = loop {
        match store.incr_field(key, "n", 1).await {
            Ok(count) => break count,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the store did not recover: {error}"),
        }
    };
    assert_eq!(
        count, 2,
        "the acknowledged increment survived, the failed ones did not apply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_times_out_within_the_deadline() {
    let (cluster, store, id) = fixture_with_session(r#"{"n":1}"#).await;
    let key = SessionKey::new("app", &id);

    cluster.server().set_latency(Duration::from_secs(5));
    let started = Instant::now();
    let result = store.load(key).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a 250 ms command deadline took {:?}",
        started.elapsed()
    );

    cluster.server().set_latency(Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.load(key).await {
            Ok(Some(session)) => break assert_eq!(session.data, r#"{"n":1}"#),
            Ok(None) => panic!("the session vanished"),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the store did not recover: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_replaced() {
    let (cluster, store, id) = fixture_with_session("{}").await;
    let key = SessionKey::new("app", &id);
    let mut acknowledged = 0;
    for _ in 0..20 {
        cluster.server().drop_connections();
        match store.incr_field(key, "n", 1).await {
            Ok(count) => {
                acknowledged += 1;
                assert_eq!(count, acknowledged);
            }
            // A write on a connection that died is not retried: it must
            // report, not guess.
            Err(StoreError::Unavailable(_)) => {}
            Err(error) => panic!("{error}"),
        }
        assert!(store.load(key).await.unwrap().is_some());
    }
    assert!(acknowledged > 0, "some increments went through");
    let stored = store.get_field(key, "n").await.unwrap();
    assert_eq!(stored, Some(acknowledged.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_after_a_lost_reply_and_writes_are_not() {
    let (cluster, store, id) = fixture_with_session(r#"{"n":1}"#).await;
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
