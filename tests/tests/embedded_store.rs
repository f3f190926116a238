//! The embedded store: the conformance body in both durability modes, plus
//! what only this backend promises (background sweep, reopening).

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_session::session::id as session_id;
use edge_session::store::{Durability, EmbeddedConfig, EmbeddedStore, SessionKey, SessionStore};
use edge_session_tests::conformance;

fn config(dir: &std::path::Path, durability: Durability) -> EmbeddedConfig {
    EmbeddedConfig {
        durability,
        max_session_bytes: conformance::MAX_SESSION_BYTES,
        ..EmbeddedConfig::new(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(dir.path(), Durability::default())).unwrap();
    conformance::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_fsync_with_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(dir.path(), Durability::Fsync)).unwrap();
    conformance::run(Arc::new(store)).await;
}

#[tokio::test]
async fn sweep_deletes_expired_sessions_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(dir.path(), Durability::default())).unwrap();
    let ids: Vec<String> = (0..20).map(|_| session_id::generate()).collect();
    let key = |i: usize| SessionKey::new("sweep", &ids[i]);
    // Long enough that a loaded machine cannot stall the touches below past
    // it; the sweep runs once it is certainly over.
    let short = Duration::from_secs(3);
    let inserted = Instant::now();
    for i in 0..20 {
        let ttl = if i < 10 {
            short
        } else {
            Duration::from_secs(3600)
        };
        store.insert(key(i), "{}", ttl).await.unwrap();
    }
    // Two short sessions are kept alive by touch: their index entries are
    // early and the sweep must move them, not delete the sessions.
    for i in [0, 1] {
        let touched = store
            .touch(key(i), Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(touched, "session {i} is still live");
    }
    // One long session is deleted: its index entry goes stale.
    store.delete(key(19)).await.unwrap();
    assert_eq!(store.stored_records().unwrap(), 19);

    tokio::time::sleep_until((inserted + short + Duration::from_millis(200)).into()).await;
    let stats = store.sweep_expired().unwrap();
    assert_eq!(stats.expired, 8, "the eight untouched short sessions");
    assert_eq!(stats.reindexed, 2, "the two touched sessions");
    assert_eq!(
        store.stored_records().unwrap(),
        11,
        "expired records are gone from disk"
    );
    for i in 0..20 {
        let live = store.load(key(i)).await.unwrap().is_some();
        assert_eq!(live, i < 2 || (10..19).contains(&i), "session {i}");
    }
    // Nothing is due any more: a second sweep has nothing to do.
    assert_eq!(store.sweep_expired().unwrap().expired, 0);
}

#[tokio::test]
async fn background_sweep_runs_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig {
        sweep_interval: Duration::from_millis(200),
        ..config(dir.path(), Durability::default())
    })
    .unwrap();
    let ttl = Duration::from_secs(1);
    let inserted = Instant::now();
    for _ in 0..5 {
        let id = session_id::generate();
        store
            .insert(SessionKey::new("bg", &id), "{}", ttl)
            .await
            .unwrap();
    }
    let stored = store.stored_records().unwrap();
    // Only while none can have expired: a stalled test proves nothing here.
    if inserted.elapsed() < ttl {
        assert_eq!(stored, 5);
    }
    // A generous bound, only to turn a sweep that never runs into a failure.
    let mut left = stored;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = store.stored_records().unwrap();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "the background sweep deletes expired sessions");
}

/// With `durability = "fsync"` a write is acknowledged only once it is on
/// disk; buffered (the control, with an interval no test outlasts) it is
/// acknowledged before.
#[tokio::test]
async fn fsync_mode_syncs_each_write_before_acknowledging_it() {
    for (durability, synced_first) in [
        (Durability::Fsync, true),
        (
            Durability::Buffered {
                sync_interval: Duration::from_secs(3600),
            },
            false,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(config(dir.path(), durability)).unwrap();
        for i in 0..20 {
            let id = session_id::generate();
            let key = SessionKey::new("durable", &id);
            store
                .insert(key, "{}", Duration::from_secs(3600))
                .await
                .unwrap();
            store.incr_field(key, "n", 1).await.unwrap();
            let (written, on_disk) = store.writes_on_disk();
            assert_eq!(written, 2 * (i + 1), "{durability:?}");
            assert_eq!(
                on_disk == written,
                synced_first,
                "{durability:?}: {on_disk} of {written}"
            );
        }
    }
}

#[tokio::test]
async fn sessions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("reopen", &id);
    {
        let store = EmbeddedStore::open(config(dir.path(), Durability::default())).unwrap();
        store
            .insert(key, r#"{"n":1}"#, Duration::from_secs(3600))
            .await
            .unwrap();
        store.incr_field(key, "n", 41).await.unwrap();
    }
    let store = EmbeddedStore::open(config(dir.path(), Durability::default())).unwrap();
    let session = store.load(key).await.unwrap().expect("still there");
    assert_eq!(
        (session.data.as_str(), session.generation),
        (r#"{"n":42}"#, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_leaves_nothing_to_replay() {
    // Sustained writes: versions of one hot session, and many sessions.
    const VERSIONS: u64 = 300_000;
    const SESSIONS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let hot = session_id::generate();
    let hot = SessionKey::new("sustained", &hot);
    let others: Vec<String> = (0..SESSIONS).map(|_| session_id::generate()).collect();
    {
        let store = EmbeddedStore::open(config(dir.path(), Durability::default())).unwrap();
        assert_eq!(store.recovery().journal_bytes, 0, "a new store");
        store
            .insert(hot, "{}", Duration::from_secs(3600))
            .await
            .unwrap();
        for _ in 0..VERSIONS {
            store.incr_field(hot, "n", 1).await.unwrap();
        }
        for id in &others {
            let key = SessionKey::new("sustained", id);
            store
                .insert(key, r#"{"a":1}"#, Duration::from_secs(3600))
                .await
                .unwrap();
        }
    }
    let store = EmbeddedStore::open(config(dir.path(), Durability::default())).unwrap();
    let recovery = store.recovery();
    assert!(
        recovery.journal_bytes > 0,
        "the writes went through the journal"
    );
    assert_eq!(recovery.replayed_bytes, 0, "closed: {recovery:?}");
    let n = store.get_field(hot, "n").await.unwrap();
    assert_eq!(n, Some(VERSIONS.to_string()));
    for id in &others {
        let key = SessionKey::new("sustained", id);
        assert!(store.load(key).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn unflushed_writes_are_flushed_past_the_write_buffer_ceiling() {
    const MIB: u64 = 1024 * 1024;
    const WRITTEN: u64 = 8 * MIB;
    let data = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
    let fill = async |store: &EmbeddedStore| {
        for _ in 0..WRITTEN / 1000 {
            let id = session_id::generate();
            let key = SessionKey::new("buffer", &id);
            store
                .insert(key, &data, Duration::from_secs(3600))
                .await
                .unwrap();
        }
    };
    let open = |dir: &std::path::Path, ceiling: u64| {
        EmbeddedStore::open(EmbeddedConfig {
            write_buffer_bytes: ceiling,
            ..config(dir, Durability::default())
        })
        .unwrap()
    };

    // The control: under a ceiling above it, what was written stays in
    // memory (the memtables' own limit is twice as large).
    let dir = tempfile::tempdir().unwrap();
    let roomy = open(dir.path(), 64 * MIB);
    fill(&roomy).await;
    assert!(
        roomy.unflushed_bytes() >= WRITTEN,
        "{}",
        roomy.unflushed_bytes()
    );

    let dir = tempfile::tempdir().unwrap();
    let capped = open(dir.path(), MIB);
    fill(&capped).await;
    let waited = Instant::now();
    while capped.unflushed_bytes() > MIB {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "never flushed: {} bytes unflushed",
            capped.unflushed_bytes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
