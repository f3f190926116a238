//! Guests that spin on the CPU share the host with everyone else: more
//! spinning requests than the host has worker threads, in Rust (fresh and
//! reused instances), JavaScript and Python, do not stop another route
//! from answering, and each still ends in a 504 at its deadline, counted
//! from when it reached the host.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use edge_session_tests::{BASE_CONFIG, Host, guest};

/// The routes' deadline, the default one (an operator's worst case).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The spinning routes: prefix, component, extra route settings.
fn spinners() -> [(&'static str, String, &'static str); 4] {
    [
        ("/spin/rust", guest_path("faulty"), ""),
        (
            "/spin/reuse",
            guest_path("faulty"),
            "reuse_instances = true\nmax_idle_instances = 1",
        ),
        ("/spin/js", guest_path("spin-js"), ""),
        ("/spin/py", guest_path("spin-py"), ""),
    ]
}

fn guest_path(name: &str) -> String {
    guest(name).display().to_string()
}

/// Spinning requests per route: together, many more than the host's
/// worker threads (tokio starts one per core).
fn per_route() -> usize {
    thread::available_parallelism().map_or(2, usize::from)
}

fn config() -> String {
    let mut config = format!(
        "{BASE_CONFIG}\n[[routes]]\nprefix = \"/counter\"\ncomponent = \"{}\"\nnamespace = \"counter\"\n",
        guest_path("counter")
    );
    for (prefix, component, settings) in spinners() {
        // As many instances as spinners: one more request finds the route
        // busy, which is how the test knows that they all arrived.
        config.push_str(&format!(
            "\n[[routes]]\nprefix = \"{prefix}\"\ncomponent = \"{component}\"\n\
             timeout = \"{}s\"\nmax_concurrency = {}\n{settings}\n",
            TIMEOUT.as_secs(),
            per_route(),
        ));
    }
    config
}

#[test]
fn spinning_guests_do_not_stall_other_requests_and_end_at_their_deadline() {
    let host = Host::start(&config());
    let (done, finished) = mpsc::channel();
    for (prefix, _, _) in spinners() {
        for _ in 0..per_route() {
            let (mut client, done) = (host.client(), done.clone());
            thread::spawn(move || {
                // Again if a probe below held an instance for too long.
                let (reply, sent) = loop {
                    let sent = Instant::now();
                    let reply = client.get(&format!("{prefix}/loop"));
                    if reply.status != 503 {
                        break (reply, sent);
                    }
                };
                let _ = done.send((prefix, reply.status, sent.elapsed(), Instant::now()));
            });
        }
    }
    drop(done);

    // Every spinner holds one of its route's instances once a probe finds
    // the route busy (503 after its short queue wait): only spinners could
    // hold them all, as the probes of a route go one at a time.
    for (prefix, _, _) in spinners() {
        let mut probe = host.client();
        let patience = Instant::now() + Duration::from_secs(60);
        loop {
            let status = probe.get(&format!("{prefix}/probe")).status;
            if status == 503 {
                break;
            }
            assert_eq!(status, 200, "{prefix}/probe");
            assert!(
                Instant::now() < patience,
                "{prefix}: the spinners never all arrived"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    let asked = Instant::now();
    let reply = host.client().get("/counter");
    let answered = Instant::now();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["count"], 1);
    eprintln!(
        "/counter answered in {:?} beside {} spinning requests",
        answered - asked,
        4 * per_route()
    );

    let results: Vec<_> = finished.iter().collect();
    assert_eq!(results.len(), 4 * per_route());
    for (prefix, status, elapsed, ended) in results {
        assert_eq!(status, 504, "{prefix}");
        assert!(
            ended > answered,
            "{prefix}: a spinner ended before /counter was answered"
        );
        // The deadline counts from arrival: never before it (the client
        // sent earlier), and never long after.
        assert!(
            elapsed >= TIMEOUT && elapsed < 2 * TIMEOUT,
            "{prefix}: 504 after {elapsed:?}"
        );
    }
    assert!(host.log().contains("guest timed out"));
}
