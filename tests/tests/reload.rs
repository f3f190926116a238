//! Hot reload: a route's component is replaced while requests run, through
//! the real binary. No request fails: those in flight finish on the old
//! component, later ones get the new one, and a broken file is rejected
//! while the old component keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edge_session_tests::{BASE_CONFIG, Host, Reply, guest, metric_sample, with_admin};

/// One route, `/app`, serving the component at `component`.
fn config(component: &Path, watch: bool) -> String {
    format!(
        "{BASE_CONFIG}\n[reload]\nwatch = {watch}\nwatch_interval = \"50ms\"\n\n\
         [[routes]]\nprefix = \"/app\"\ncomponent = \"{}\"\nnamespace = \"app\"\n",
        component.display()
    )
}

/// Replaces `path` with a copy of `source` the way deploy tools do: write
/// aside, then rename over.
fn install(source: &Path, path: &Path) {
    let aside = path.with_extension("new");
    std::fs::copy(source, &aside).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// Which guest answered: the counter answers `{"count":…}`, the faulty
/// guest "ok" (or "slept N ms").
fn answered_by(reply: &Reply) -> &'static str {
    assert_eq!(reply.status, 200, "{reply:?}");
    if reply.body.contains("\"count\"") {
        "counter"
    } else {
        "faulty"
    }
}

fn wait_for(what: &str, host: &Host, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; host log:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_changed_component_is_swapped_under_load_and_a_broken_one_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("app.wasm");
    install(&guest("faulty"), &component);
    let host = Host::start(&with_admin(&config(&component, true)));

    // A request in flight on the old component across the swap: it has its
    // instance (the route's first) before the new file is installed, and it
    // ends after the new component serves.
    let slow = {
        let mut client = host.client();
        std::thread::spawn(move || {
            let reply = client.get("/app/sleep?ms=5000");
            (reply, Instant::now())
        })
    };
    let mut admin = host.admin();
    wait_for("the slow request's instance", &host, || {
        let metrics = admin.get("/metrics").body;
        let instances = metric_sample(
            &metrics,
            "edge_session_guest_instantiation_seconds_count",
            &[("route", "/app")],
        );
        instances.is_some_and(|count| count >= 1.0)
    });
    // Steady traffic: every reply must be a 200 from one guest or the other.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (mut client, stop) = (host.client(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(answered_by(&client.get("/app/hello")));
                }
                seen
            })
        })
        .collect();

    install(&guest("counter"), &component);
    let mut probe = host.client();
    wait_for("the counter to serve", &host, || {
        answered_by(&probe.get("/app/hello")) == "counter"
    });
    let swapped = Instant::now();
    let (slow, slow_ended) = slow.join().expect("the slow request");
    assert_eq!(
        (slow.status, slow.body.as_str()),
        (200, "slept 5000 ms\n"),
        "the request in flight finished on the old component"
    );
    assert!(
        slow_ended > swapped,
        "the slow request was still running when the new component served"
    );

    // A half-deployed or broken file: rejected, the counter keeps serving.
    std::fs::write(&component, b"\0asm not really").unwrap();
    wait_for("the rejection", &host, || {
        host.log().contains("reload rejected")
    });
    assert_eq!(answered_by(&probe.get("/app/hello")), "counter");

    stop.store(true, Ordering::Relaxed);
    for thread in load {
        let seen = thread.join().expect("no request failed");
        let swapped_at = seen.iter().position(|&g| g == "counter");
        assert!(
            swapped_at.is_some_and(|at| at > 0 && seen[at..].iter().all(|&g| g == "counter")),
            "one swap, old guest before, new guest after: {seen:?}"
        );
    }

    let metrics = host.admin().get("/metrics").body;
    let reloads = |result| {
        metric_sample(
            &metrics,
            "edge_session_route_reloads_total",
            &[("route", "/app"), ("result", result)],
        )
    };
    assert_eq!(reloads("swapped"), Some(1.0), "{metrics}");
    assert_eq!(reloads("rejected"), Some(1.0), "{metrics}");
}

#[test]
fn sighup_reloads_changed_components() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("app.wasm");
    install(&guest("faulty"), &component);
    let host = Host::start(&config(&component, false));
    let mut client = host.client();

    install(&guest("counter"), &component);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        answered_by(&client.get("/app/hello")),
        "faulty",
        "without `watch`, a changed file waits for the signal"
    );
    host.signal(libc::SIGHUP);
    wait_for("the counter to serve", &host, || {
        answered_by(&client.get("/app/hello")) == "counter"
    });
    // A signal with nothing changed swaps nothing and ends nothing.
    host.signal(libc::SIGHUP);
    wait_for("the second reload", &host, || {
        host.log().matches("reload done").count() == 2
    });
    assert!(host.log().contains("swapped=0"), "{}", host.log());
    assert_eq!(answered_by(&client.get("/app/hello")), "counter");
}
