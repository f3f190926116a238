//! The Redis backend through the real `redis` client against a real
//! `redis-server` (a local one started per test, or the server named by
//! `REDIS_URL`): the conformance body, plain and under encryption; then the
//! data model as Redis holds it, two stores sharing sessions, credentials,
//! TLS, scripts the server forgot, and the server going away, coming back
//! and stalling.
//!
//! The fault tests assert outcomes and their order, never elapsed time, so
//! a loaded machine cannot fail them; [`HANG`] only turns a hang into a
//! failure.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use edge_session::session::id as session_id;
use edge_session::store::{
    EncryptedStore, EncryptionKeys, RedisConfig, RedisStore, SessionKey, SessionStore, StoreError,
};
use edge_session_tests::aerospike::{HANG, eventually, unless_hung};
use edge_session_tests::conformance;
use edge_session_tests::redis::{RedisServer, TestRedis};

const MINUTE: Duration = Duration::from_secs(60);
/// The command deadline of the test that is about it (the default).
const DEADLINE: Duration = Duration::from_millis(250);

async fn open(redis: &TestRedis) -> RedisStore {
    RedisStore::open(redis.store_config(conformance::MAX_SESSION_BYTES))
        .await
        .unwrap()
}

/// A store sealing sessions with a test key over the Redis store, as
/// `[store.encryption]` layers it, and the config of the store underneath.
async fn encrypted(redis: &TestRedis) -> (EncryptedStore<RedisStore>, RedisConfig) {
    let keys = Arc::new(EncryptionKeys::new([("k1", &[7u8; 32][..])]).unwrap());
    let limit = conformance::MAX_SESSION_BYTES;
    let config = redis.store_config(keys.stored_bytes(limit));
    let inner = RedisStore::open(config.clone()).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let redis = TestRedis::shared();
    conformance::run(Arc::new(open(&redis).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_encrypted() {
    let redis = TestRedis::shared();
    conformance::run(Arc::new(encrypted(&redis).await.0)).await;
}

#[tokio::test]
async fn a_session_is_one_hash_whose_fields_cannot_collide_with_the_hosts() {
    let redis = TestRedis::shared();
    let config = redis.store_config(4096);
    let store = RedisStore::open(config.clone()).await.unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("shop", &id);
    // User fields named like the host's bookkeeping, and one whose name
    // needs escaping.
    let data = r#"{"gen":"mine","expires":0,"bytes":[1],"created":null,"a\"b":true}"#;
    assert!(store.insert(key, data, MINUTE).await.unwrap());
    assert_eq!(store.incr_field(key, "n", 5).await.unwrap(), 5);
    assert_eq!(
        store.get_field(key, "gen").await.unwrap().as_deref(),
        Some(r#""mine""#)
    );
    // Writes that replace, add and remove fields, for `bytes` to follow.
    store.set_field(key, "gen", r#""ours""#).await.unwrap();
    store.set_field(key, "gone", "[1,2,3]").await.unwrap();
    assert!(store.remove_field(key, "gone").await.unwrap());
    assert!(store.touch(key, 10 * MINUTE).await.unwrap());

    let name = format!("{}:shop:{id}", config.prefix);
    let mut connection = redis.connection();
    let hash: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&name)
        .query(&mut connection)
        .unwrap();
    let mut fields: Vec<(&str, &str)> = hash
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    fields.sort();
    let (meta, user): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .partition(|(name, _)| !name.starts_with('"'));
    assert_eq!(
        user,
        [
            (r#""a\"b""#, "true"),
            (r#""bytes""#, "[1]"),
            (r#""created""#, "null"),
            (r#""expires""#, "0"),
            (r#""gen""#, r#""ours""#),
            (r#""n""#, "5"),
        ]
    );
    let meta: HashMap<&str, &str> = meta.into_iter().collect();
    assert_eq!(meta["gen"], "5", "touch is no data write");
    let session = store.load(key).await.unwrap().expect("live");
    assert_eq!(
        meta["bytes"].parse::<usize>().unwrap(),
        session.data.len() - 2 - (user.len() - 1),
        "bytes: names, colons and values"
    );
    assert_eq!(
        session.data, r#"{"a\"b":true,"bytes":[1],"created":null,"expires":0,"gen":"ours","n":5}"#,
        "keys sorted"
    );
    // Redis evicts the key a second after the session expires, as the
    // touch moved it.
    let expires: i64 = meta["expires"].parse().unwrap();
    assert!(session.expires_in > 9 * MINUTE, "{:?}", session.expires_in);
    let evicted_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&name)
        .query(&mut connection)
        .unwrap();
    assert_eq!(evicted_at, expires + 1000);
}

#[tokio::test]
async fn with_encryption_no_hash_holds_the_plaintext() {
    const SECRET: &str = "hunter2-in-plain-sight";
    let data = format!(r#"{{"card":"{SECRET}"}}"#);
    let field = format!("\"{SECRET}\"");
    let redis = TestRedis::shared();
    let plain = open(&redis).await;
    let (sealed, sealed_config) = encrypted(&redis).await;
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
    // Every field of the session hash, as Redis holds it.
    let raw = async |store: &RedisStore| store.load(key).await.unwrap().expect("the hash").data;
    assert!(
        raw(&plain).await.contains(SECRET),
        "the control: without encryption the hash holds the secret"
    );
    let unsealed = RedisStore::open(sealed_config).await.unwrap();
    let stored = raw(&unsealed).await;
    assert!(!stored.contains(SECRET), "{stored}");
    assert!(stored.starts_with(r#"{"$sealed":"k1."#), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_share_sessions_and_their_increments_add_up() {
    const INCREMENTS: i64 = 300;
    let redis = TestRedis::shared();
    let config = redis.store_config(4096);
    let edge_a = Arc::new(RedisStore::open(config.clone()).await.unwrap());
    let edge_b = Arc::new(RedisStore::open(config).await.unwrap());
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

#[tokio::test]
async fn increments_follow_the_contract_exactly() {
    let redis = TestRedis::shared();
    let store = open(&redis).await;
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    let data = format!(r#"{{"min":{},"zero":-0,"f":1.0,"e":1e2}}"#, i64::MIN);
    store.insert(key, &data, MINUTE).await.unwrap();
    // Beyond 2^53, where a double (Lua's numbers) would round.
    store
        .set_field(key, "big", "9007199254740993")
        .await
        .unwrap();
    assert_eq!(
        store.incr_field(key, "big", 2).await.unwrap(),
        9_007_199_254_740_995
    );
    assert_eq!(store.incr_field(key, "zero", 3).await.unwrap(), 3);
    for (field, error) in [("f", "integer"), ("e", "integer")] {
        match store.incr_field(key, field, 1).await {
            Err(StoreError::InvalidArgument(message)) => {
                assert!(message.contains(error), "{message}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    match store.incr_field(key, "min", -1).await {
        Err(StoreError::InvalidArgument(message)) => {
            assert!(message.contains("overflows"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let session = store.load(key).await.unwrap().unwrap();
    assert_eq!(session.generation, 4, "refused increments write nothing");
    assert_eq!(
        session.data,
        format!(
            r#"{{"big":9007199254740995,"e":1e2,"f":1.0,"min":{},"zero":3}}"#,
            i64::MIN
        )
    );

    // An increment that would take the session past the limit changes
    // nothing: not the field, not the generation.
    let small = RedisStore::open(redis.store_config(34)).await.unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    small
        .insert(key, r#"{"pad":"xxxxxxxxxxxxxxxxx","n":9}"#, MINUTE)
        .await
        .unwrap();
    assert_eq!(small.incr_field(key, "n", 90).await.unwrap(), 99);
    assert!(matches!(
        small.incr_field(key, "n", 1).await,
        Err(StoreError::TooLarge { limit: 34 })
    ));
    assert!(matches!(
        small.incr_field(key, "m", 1).await,
        Err(StoreError::TooLarge { limit: 34 })
    ));
    let session = small.load(key).await.unwrap().unwrap();
    assert_eq!(session.data, r#"{"n":99,"pad":"xxxxxxxxxxxxxxxxx"}"#);
    assert_eq!(session.generation, 2);
}

#[tokio::test]
async fn scripts_the_server_forgot_are_loaded_again() {
    let redis = TestRedis::shared();
    let store = open(&redis).await;
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    store.insert(key, "{}", MINUTE).await.unwrap();
    for expected in 1..=3 {
        // As after a restart or a failover to a replica that never ran them.
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut redis.connection())
            .unwrap();
        assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), expected);
    }
}

#[tokio::test]
async fn passwords_and_acl_users_are_checked_at_start() {
    let redis = TestRedis::local(&[
        "--requirepass",
        "default-pass",
        "--user",
        "edge",
        "on",
        ">edge-pass",
        "~es-test-*",
        "+@all",
        "--user",
        "elsewhere",
        "on",
        ">other-pass",
        "~other:*",
        "+@all",
    ]);
    let config = |user: Option<&str>, password: Option<&str>| RedisConfig {
        user: user.map(str::to_owned),
        password: password.map(str::to_owned),
        ..redis.store_config(4096)
    };
    let refused = async |config: RedisConfig| match RedisStore::open(config).await {
        Ok(_) => panic!("opened"),
        Err(error) => format!("{error:#}"),
    };

    let error = refused(config(None, None)).await;
    assert!(
        error.contains("NOAUTH") && error.contains("password_env"),
        "no credentials: {error}"
    );
    let error = refused(config(None, Some("wrong"))).await;
    assert!(
        error.contains("cannot connect to Redis") && error.contains("password"),
        "a wrong password: {error}"
    );
    let error = refused(config(Some("edge"), Some("default-pass"))).await;
    assert!(
        error.contains("cannot connect to Redis"),
        "another user's password: {error}"
    );
    // The right password, but no access to the prefix's keys.
    let error = refused(config(Some("elsewhere"), Some("other-pass"))).await;
    assert!(
        error.contains("probe") && error.contains("no permissions"),
        "keys the user may not touch: {error}"
    );

    for (user, password) in [(None, "default-pass"), (Some("edge"), "edge-pass")] {
        let store = RedisStore::open(config(user, Some(password)))
            .await
            .unwrap();
        let id = session_id::generate();
        let key = SessionKey::new("app", &id);
        store.insert(key, r#"{"n":1}"#, MINUTE).await.unwrap();
        assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn tls_with_the_servers_ca() {
    let (server, ca) = RedisServer::start_tls();
    let config = RedisConfig {
        tls_ca: Some(std::fs::read(&ca).unwrap()),
        prefix: edge_session_tests::redis::new_prefix(),
        ..RedisConfig::new(server.url())
    };
    let store = RedisStore::open(config.clone()).await.unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    store.insert(key, r#"{"n":1}"#, MINUTE).await.unwrap();
    assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 2);
    store.ping().await.unwrap();

    // Without the CA, the server's certificate is not trusted; in the clear,
    // the TLS port does not answer.
    let untrusted = RedisStore::open(RedisConfig {
        tls_ca: None,
        ..config.clone()
    });
    let error = unless_hung("opening without the CA", untrusted)
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");
    let clear = RedisStore::open(RedisConfig {
        url: server.url().replace("rediss://", "redis://"),
        tls_ca: None,
        ..config
    });
    assert!(unless_hung("opening in the clear", clear).await.is_err());
}

#[tokio::test]
async fn an_unreachable_server_fails_at_start() {
    let mut redis = TestRedis::local(&[]);
    let config = redis.store_config(4096);
    redis.server().kill();
    let error = unless_hung(
        "opening a store on a stopped server",
        RedisStore::open(config),
    )
    .await
    .err()
    .expect("refused");
    assert!(
        format!("{error:#}").contains("cannot connect to Redis"),
        "{error:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_server_is_unavailable_fast_and_loses_no_acknowledged_write() {
    // Every write on disk before it is acknowledged, so that a restart
    // keeps them.
    let mut redis = TestRedis::local(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = open(&redis).await;
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    store.insert(key, "{}", MINUTE).await.unwrap();
    assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 1);

    // Fast: each call ends, unavailable, while the server is still down, so
    // a store that waited for the server to come back would hang here.
    redis.server().kill();
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
        let result = unless_hung("a ping", store.ping()).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }

    // Awaited with a read: an increment repeated until one got through
    // could apply twice.
    redis.server().restart();
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
async fn a_stalled_server_times_out_within_the_deadline() {
    let redis = TestRedis::local(&[]);
    let config = RedisConfig {
        timeout: DEADLINE,
        ..redis.store_config(4096)
    };
    let store = RedisStore::open(config.clone()).await.unwrap();
    // The same sessions through a store that waits as long as the test.
    let patient = RedisStore::open(RedisConfig {
        timeout: HANG,
        ..config
    })
    .await
    .unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("app", &id);
    patient.insert(key, r#"{"n":1}"#, MINUTE).await.unwrap();

    // The server stops answering, its connections open. Both stores ask it;
    // the one with the short deadline gives up while the patient one still
    // waits: so it gave up on its deadline, not on an answer or a broken
    // connection, and a store without one would hang here.
    redis.server.as_ref().unwrap().pause(true);
    let waiting = tokio::spawn({
        let id = id.clone();
        async move { patient.load(SessionKey::new("app", &id)).await }
    });
    let result = unless_hung("a load, server stalled", store.load(key)).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(!waiting.is_finished(), "the server has not answered yet");

    redis.server.as_ref().unwrap().pause(false);
    let answered = unless_hung("the patient load", waiting).await.unwrap();
    assert_eq!(answered.unwrap().expect("the session").data, r#"{"n":1}"#);
    let session = eventually("the store to recover", async || {
        available(store.load(key).await)
    })
    .await;
    assert_eq!(session.expect("the session").data, r#"{"n":1}"#);
}
