//! One request through the runtime in-process, without HTTP or sockets: a
//! fresh instance of the guest, its run and the instance's release (issue
//! 6). `hello` does no session work, so it is the sandbox's own cost;
//! `counter` adds the cookie, `load`, `incr-field` and `touch` of a
//! returning visitor. Needs the guests built (`scripts/build-guests.sh`).
//!
//! `cargo bench -p edge-session --bench request`

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use edge_session::store::{EmbeddedConfig, EmbeddedStore};
use edge_session::{RouteSpec, Runtime};
use http_body_util::{BodyExt, Empty};

fn guest(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/guest")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-guests.sh first",
        path.display()
    );
    path
}

/// Sends one GET and reads the whole response; returns its `Set-Cookie`.
async fn visit(runtime: &Runtime, path: &str, cookie: Option<&str>) -> Option<String> {
    let mut request = http::Request::get(format!("http://localhost{path}"));
    if let Some(cookie) = cookie {
        request = request.header(http::header::COOKIE, cookie);
    }
    let response = runtime
        .handle(request.body(Empty::<Bytes>::new()).expect("a request"))
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    let set_cookie = response
        .headers()
        .get(http::header::SET_COOKIE)
        .map(|value| value.to_str().expect("ASCII").to_owned());
    response.into_body().collect().await.expect("the body");
    set_cookie
}

fn requests(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("store"));
    let runtime = Runtime::builder(store)
        .route(RouteSpec::new("/hello", guest("hello")))
        .route(RouteSpec::new("/count", guest("counter")).sessions("bench"))
        .build()
        .expect("the runtime");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let set_cookie = tokio
        .block_on(visit(&runtime, "/count", None))
        .expect("the counter sets a session cookie");
    let cookie = set_cookie.split(';').next().expect("name=value");

    let mut group = c.benchmark_group("request in-process");
    group.bench_function("hello", |b| {
        b.iter(|| tokio.block_on(visit(&runtime, "/hello", None)))
    });
    group.bench_function("counter, returning visitor", |b| {
        b.iter(|| tokio.block_on(visit(&runtime, "/count", Some(cookie))))
    });
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
