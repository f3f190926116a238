//! The store conformance body: what every [`SessionStore`] must do.
//!
//! Each backend's test file opens a store and calls [`run`]. Every check
//! uses fresh random ids under its own namespace, so the body can run
//! against a shared, real backend without assuming it owns the data.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use edge_session::session::id as session_id;
use edge_session::store::{SessionKey, SessionStore, StoreError};

const MINUTE: Duration = Duration::from_secs(60);
/// The size limit the store under test must be opened with.
pub const MAX_SESSION_BYTES: usize = 4096;

/// Asserts that two JSON texts hold the same value. Stores need not keep
/// the order of object keys (Aerospike returns them sorted).
#[track_caller]
fn assert_json(actual: &str, expected: &str) {
    let parse = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
    };
    assert_eq!(parse(actual), parse(expected), "{actual} != {expected}");
}

/// A namespace unique to this run, so concurrent runs never collide.
fn namespace(check: &str) -> String {
    format!("conformance-{check}-{}", &session_id::generate()[..8])
}

/// Runs every check against `store`, which must enforce [`MAX_SESSION_BYTES`].
pub async fn run(store: Arc<dyn SessionStore>) {
    insert_and_load(&*store).await;
    save_upserts_and_bumps_generation(&*store).await;
    save_if_checks_the_generation(&*store).await;
    touch_extends_without_rewriting(&*store).await;
    delete_removes(&*store).await;
    rename_moves_everything(&*store).await;
    field_operations(&*store).await;
    size_limit_is_enforced(&*store).await;
    namespaces_are_separate(&*store).await;
    creation_time_survives_every_write(&*store).await;
    expired_sessions_are_gone_everywhere(&*store).await;
    concurrent_increments_lose_nothing(store.clone()).await;
    concurrent_field_writes_lose_nothing(store.clone()).await;
    concurrent_save_if_loses_nothing(store).await;
}

async fn insert_and_load(store: &dyn SessionStore) {
    let ns = namespace("insert");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    assert!(store.load(key).await.unwrap().is_none());
    assert!(
        store
            .insert(key, r#"{"user":"ada"}"#, MINUTE)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert(key, r#"{"user":"eve"}"#, MINUTE)
            .await
            .unwrap(),
        "insert must not replace a live session"
    );
    let session = store.load(key).await.unwrap().expect("inserted");
    assert_json(&session.data, r#"{"user":"ada"}"#);
    assert_eq!(session.generation, 1);
    assert!(session.expires_in <= MINUTE && session.expires_in > MINUTE - Duration::from_secs(5));
}

async fn save_upserts_and_bumps_generation(store: &dyn SessionStore) {
    let ns = namespace("save");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    assert_eq!(
        store
            .save(key, r#"{"a":1}"#, Duration::from_secs(10), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.save(key, r#"{"a":2}"#, MINUTE, None).await.unwrap(),
        2
    );
    let session = store.load(key).await.unwrap().expect("saved");
    assert_json(&session.data, r#"{"a":2}"#);
    assert_eq!(session.generation, 2);
    assert!(
        session.expires_in > Duration::from_secs(30),
        "save resets the expiry"
    );
}

async fn save_if_checks_the_generation(store: &dyn SessionStore) {
    let ns = namespace("save-if");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    assert!(matches!(
        store.save(key, "{}", MINUTE, Some(1)).await,
        Err(StoreError::NotFound)
    ));
    store.insert(key, r#"{"v":0}"#, MINUTE).await.unwrap();
    assert_eq!(
        store
            .save(key, r#"{"v":1}"#, MINUTE, Some(1))
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store.save(key, r#"{"v":9}"#, MINUTE, Some(1)).await,
        Err(StoreError::Conflict)
    ));
    let session = store.load(key).await.unwrap().unwrap();
    assert_json(&session.data, r#"{"v":1}"#);
    assert_eq!(session.generation, 2, "a conflict changes nothing");
}

async fn touch_extends_without_rewriting(store: &dyn SessionStore) {
    let ns = namespace("touch");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    assert!(!store.touch(key, MINUTE).await.unwrap(), "touching nothing");
    store
        .insert(key, r#"{"n":1}"#, Duration::from_secs(5))
        .await
        .unwrap();
    store.incr_field(key, "n", 1).await.unwrap();
    assert!(store.touch(key, Duration::from_secs(3600)).await.unwrap());
    let session = store.load(key).await.unwrap().unwrap();
    assert_json(&session.data, r#"{"n":2}"#);
    assert_eq!(session.generation, 2, "touch leaves the generation alone");
    assert!(session.expires_in > MINUTE, "touch extends the expiry");
    // And can shorten it: the session must then expire on the new schedule.
    assert!(store.touch(key, Duration::from_secs(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        store.load(key).await.unwrap().is_none(),
        "a shortened session expires on time"
    );
}

async fn delete_removes(store: &dyn SessionStore) {
    let ns = namespace("delete");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    assert!(!store.delete(key).await.unwrap());
    store.insert(key, "{}", MINUTE).await.unwrap();
    assert!(store.delete(key).await.unwrap());
    assert!(!store.delete(key).await.unwrap());
    assert!(store.load(key).await.unwrap().is_none());
    assert!(matches!(
        store.incr_field(key, "n", 1).await,
        Err(StoreError::NotFound)
    ));
}

async fn rename_moves_everything(store: &dyn SessionStore) {
    let ns = namespace("rename");
    let (old, new, taken) = (
        session_id::generate(),
        session_id::generate(),
        session_id::generate(),
    );
    let (from, to, busy) = (
        SessionKey::new(&ns, &old),
        SessionKey::new(&ns, &new),
        SessionKey::new(&ns, &taken),
    );
    assert!(!store.rename(from, to).await.unwrap(), "nothing to rename");
    store
        .insert(from, r#"{"role":"user"}"#, MINUTE)
        .await
        .unwrap();
    store.set_field(from, "role", r#""admin""#).await.unwrap();
    store.insert(busy, "{}", MINUTE).await.unwrap();
    assert!(matches!(
        store.rename(from, busy).await,
        Err(StoreError::Conflict)
    ));
    assert!(store.rename(from, to).await.unwrap());
    assert!(
        store.load(from).await.unwrap().is_none(),
        "the old id stops working"
    );
    let moved = store.load(to).await.unwrap().expect("moved");
    assert_json(&moved.data, r#"{"role":"admin"}"#);
    assert_eq!(moved.generation, 2);
    assert!(
        moved.expires_in > MINUTE - Duration::from_secs(5),
        "the expiry moves along"
    );
}

async fn field_operations(store: &dyn SessionStore) {
    let ns = namespace("fields");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    assert!(matches!(
        store.get_field(key, "a").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_field(key, "a", "1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.remove_field(key, "a").await,
        Err(StoreError::NotFound)
    ));
    store
        .insert(key, r#"{"name":"ada","n":5,"s":"x"}"#, MINUTE)
        .await
        .unwrap();

    assert_eq!(
        store.get_field(key, "name").await.unwrap().as_deref(),
        Some(r#""ada""#)
    );
    assert_eq!(store.get_field(key, "missing").await.unwrap(), None);
    assert_eq!(
        store.set_field(key, "tags", r#"["a","b"]"#).await.unwrap(),
        2
    );
    assert_eq!(
        store.get_field(key, "tags").await.unwrap().as_deref(),
        Some(r#"["a","b"]"#)
    );
    assert!(store.remove_field(key, "name").await.unwrap());
    assert!(!store.remove_field(key, "name").await.unwrap());
    assert_eq!(
        store.load(key).await.unwrap().unwrap().generation,
        3,
        "removing an absent field writes nothing"
    );

    assert_eq!(store.incr_field(key, "n", 10).await.unwrap(), 15);
    assert_eq!(store.incr_field(key, "fresh", -2).await.unwrap(), -2);
    assert!(matches!(
        store.incr_field(key, "s", 1).await,
        Err(StoreError::InvalidArgument(_))
    ));
    store
        .set_field(key, "big", &i64::MAX.to_string())
        .await
        .unwrap();
    assert!(matches!(
        store.incr_field(key, "big", 1).await,
        Err(StoreError::InvalidArgument(_))
    ));
    let session = store.load(key).await.unwrap().unwrap();
    assert_json(
        &session.data,
        &format!(
            r#"{{"n":15,"s":"x","tags":["a","b"],"fresh":-2,"big":{}}}"#,
            i64::MAX
        ),
    );
}

async fn size_limit_is_enforced(store: &dyn SessionStore) {
    let ns = namespace("size");
    let id = session_id::generate();
    let key = SessionKey::new(&ns, &id);
    let too_big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_SESSION_BYTES));
    assert!(matches!(
        store.insert(key, &too_big, MINUTE).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert!(matches!(
        store.save(key, &too_big, MINUTE, None).await,
        Err(StoreError::TooLarge { .. })
    ));
    store.insert(key, r#"{"keep":1}"#, MINUTE).await.unwrap();
    let half = format!(r#""{}""#, "y".repeat(MAX_SESSION_BYTES / 2));
    store.set_field(key, "a", &half).await.unwrap();
    assert!(matches!(
        store.set_field(key, "b", &half).await,
        Err(StoreError::TooLarge { .. })
    ));
    let session = store.load(key).await.unwrap().unwrap();
    assert_eq!(session.generation, 2, "a rejected write changes nothing");
    assert!(!session.data.contains("\"b\""));
}

async fn creation_time_survives_every_write(store: &dyn SessionStore) {
    let ns = namespace("created");
    let (id, new_id) = (session_id::generate(), session_id::generate());
    let key = SessionKey::new(&ns, &id);
    let before = SystemTime::now() - Duration::from_secs(1);
    store.insert(key, "{}", MINUTE).await.unwrap();
    let created = store.load(key).await.unwrap().unwrap().created_at;
    assert!(
        created >= before && created <= SystemTime::now(),
        "{created:?}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.save(key, r#"{"a":1}"#, MINUTE, None).await.unwrap();
    store.touch(key, MINUTE).await.unwrap();
    store.set_field(key, "b", "2").await.unwrap();
    store.incr_field(key, "c", 3).await.unwrap();
    store
        .rename(key, SessionKey::new(&ns, &new_id))
        .await
        .unwrap();
    let session = store
        .load(SessionKey::new(&ns, &new_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.created_at, created,
        "writes and rotation continue the session"
    );
    // A save that creates a session starts a new life.
    let fresh = session_id::generate();
    store
        .save(SessionKey::new(&ns, &fresh), "{}", MINUTE, None)
        .await
        .unwrap();
    let fresh = store
        .load(SessionKey::new(&ns, &fresh))
        .await
        .unwrap()
        .unwrap();
    assert!(fresh.created_at > created);
}

async fn namespaces_are_separate(store: &dyn SessionStore) {
    let (a, b) = (namespace("ns-a"), namespace("ns-b"));
    let id = session_id::generate();
    store
        .insert(SessionKey::new(&a, &id), r#"{"in":"a"}"#, MINUTE)
        .await
        .unwrap();
    assert!(
        store
            .load(SessionKey::new(&b, &id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.touch(SessionKey::new(&b, &id), MINUTE).await.unwrap());
    assert!(!store.delete(SessionKey::new(&b, &id)).await.unwrap());
    assert!(
        store
            .insert(SessionKey::new(&b, &id), r#"{"in":"b"}"#, MINUTE)
            .await
            .unwrap()
    );
    let in_a = store.load(SessionKey::new(&a, &id)).await.unwrap().unwrap();
    assert_json(&in_a.data, r#"{"in":"a"}"#);
}

async fn expired_sessions_are_gone_everywhere(store: &dyn SessionStore) {
    let ns = namespace("expiry");
    let (id, other) = (session_id::generate(), session_id::generate());
    let key = SessionKey::new(&ns, &id);
    let ttl = Duration::from_secs(1);
    let inserted = Instant::now();
    store.insert(key, r#"{"n":1}"#, ttl).await.unwrap();
    let loaded = store.load(key).await.unwrap();
    // Asserted only while the session cannot have expired yet: a loaded
    // machine that paused the test for its whole TTL proves nothing here.
    if inserted.elapsed() < ttl {
        assert!(loaded.is_some(), "a live session loads");
    }
    tokio::time::sleep_until((inserted + ttl + Duration::from_millis(200)).into()).await;
    assert!(store.load(key).await.unwrap().is_none());
    assert!(!store.touch(key, MINUTE).await.unwrap());
    assert!(matches!(
        store.get_field(key, "n").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.incr_field(key, "n", 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.save(key, "{}", MINUTE, Some(1)).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        !store
            .rename(key, SessionKey::new(&ns, &other))
            .await
            .unwrap()
    );
    assert!(!store.delete(key).await.unwrap());
    assert!(
        store.insert(key, r#"{"n":7}"#, MINUTE).await.unwrap(),
        "an expired id can be created anew"
    );
    assert_json(&store.load(key).await.unwrap().unwrap().data, r#"{"n":7}"#);
}

async fn concurrent_increments_lose_nothing(store: Arc<dyn SessionStore>) {
    const TASKS: i64 = 8;
    const INCREMENTS: i64 = 500;
    let ns = namespace("incr");
    let id = session_id::generate();
    store
        .insert(SessionKey::new(&ns, &id), "{}", MINUTE)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, ns, id) = (store.clone(), ns.clone(), id.clone());
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    store
                        .incr_field(SessionKey::new(&ns, &id), "hits", 1)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let hits = store
        .get_field(SessionKey::new(&ns, &id), "hits")
        .await
        .unwrap();
    assert_eq!(
        hits.as_deref(),
        Some((TASKS * INCREMENTS).to_string().as_str())
    );
}

/// Tasks that each set fields of their own on one session, and remove half
/// of them again, concurrently: every write lands, none undoes another's
/// (a store that rewrote the whole session from a stale read would).
async fn concurrent_field_writes_lose_nothing(store: Arc<dyn SessionStore>) {
    const TASKS: usize = 6;
    const FIELDS: usize = 40;
    let ns = namespace("fields");
    let id = session_id::generate();
    store
        .insert(SessionKey::new(&ns, &id), r#"{"kept":true}"#, MINUTE)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, ns, id) = (store.clone(), ns.clone(), id.clone());
            tokio::spawn(async move {
                let key = SessionKey::new(&ns, &id);
                for field in 0..FIELDS {
                    let name = format!("t{task}f{field}");
                    store
                        .set_field(key, &name, &field.to_string())
                        .await
                        .unwrap();
                }
                for field in (0..FIELDS).step_by(2) {
                    let name = format!("t{task}f{field}");
                    assert!(store.remove_field(key, &name).await.unwrap(), "{name}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let session = store
        .load(SessionKey::new(&ns, &id))
        .await
        .unwrap()
        .unwrap();
    let data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&session.data).unwrap();
    let mut expected = serde_json::Map::new();
    expected.insert("kept".into(), serde_json::Value::Bool(true));
    for task in 0..TASKS {
        for field in (1..FIELDS).step_by(2) {
            expected.insert(format!("t{task}f{field}"), field.into());
        }
    }
    assert_eq!(data, expected);
}

async fn concurrent_save_if_loses_nothing(store: Arc<dyn SessionStore>) {
    const TASKS: usize = 4;
    const UPDATES: usize = 50;
    let ns = namespace("cas");
    let id = session_id::generate();
    store
        .insert(SessionKey::new(&ns, &id), r#"{"n":0}"#, MINUTE)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, ns, id) = (store.clone(), ns.clone(), id.clone());
            tokio::spawn(async move {
                let key = SessionKey::new(&ns, &id);
                for _ in 0..UPDATES {
                    // The classic read-modify-write loop that save-if makes safe.
                    loop {
                        let session = store.load(key).await.unwrap().unwrap();
                        let data: serde_json::Value = serde_json::from_str(&session.data).unwrap();
                        let next =
                            serde_json::json!({ "n": data["n"].as_u64().unwrap() + 1 }).to_string();
                        match store
                            .save(key, &next, MINUTE, Some(session.generation))
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict) => continue,
                            Err(error) => panic!("save-if failed: {error}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let session = store
        .load(SessionKey::new(&ns, &id))
        .await
        .unwrap()
        .unwrap();
    assert_json(&session.data, &format!(r#"{{"n":{}}}"#, TASKS * UPDATES));
    assert_eq!(session.generation, 1 + (TASKS * UPDATES) as u64);
}
