//! Each session operation on the embedded store, below the WIT layer: what
//! a guest's call costs once the host has checked it (issue 6). The store
//! holds 1000 sessions and every iteration picks the next one, as the
//! end-to-end benchmark's visitors do.
//!
//! `cargo bench -p edge-session --bench session_store`

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use edge_session::session::id as session_id;
use edge_session::store::{EmbeddedConfig, EmbeddedStore, SessionKey, SessionStore};

const SESSIONS: usize = 1000;
const TTL: Duration = Duration::from_secs(3600);
const DATA: &str = r#"{"count":1,"user":"ada","cart":{"apple":2}}"#;

fn store_operations(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("the store opens");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ids: Vec<String> = (0..SESSIONS).map(|_| session_id::generate()).collect();
    for id in &ids {
        runtime
            .block_on(store.insert(SessionKey::new("bench", id), DATA, TTL))
            .expect("insert");
    }
    let next = Cell::new(0);
    let key = || {
        next.set((next.get() + 1) % SESSIONS);
        SessionKey::new("bench", &ids[next.get()])
    };

    let mut group = c.benchmark_group("embedded store");
    group.bench_function("load", |b| {
        b.iter(|| black_box(runtime.block_on(store.load(key())).expect("load")))
    });
    group.bench_function("get-field", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .block_on(store.get_field(key(), "user"))
                    .expect("get"),
            )
        })
    });
    group.bench_function("incr-field", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .block_on(store.incr_field(key(), "count", 1))
                    .expect("incr"),
            )
        })
    });
    group.bench_function("touch", |b| {
        b.iter(|| black_box(runtime.block_on(store.touch(key(), TTL)).expect("touch")))
    });
    group.bench_function("save", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .block_on(store.save(key(), DATA, TTL, None))
                    .expect("save"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, store_operations);
criterion_main!(benches);
