//! Routes that opt into instance reuse (`reuse_instances = true`), through
//! the real binary: what a reused instance keeps (its memory: the documented
//! trade-off), what it never shares (each request's session and output),
//! and that a failed run never hands its instance to another request.

use std::time::{Duration, Instant};

use edge_session_tests::{BASE_CONFIG, Host, guest, metric_sample, with_admin};
use serde_json::Value;

/// `/faulty` keeps one instance, so that consecutive requests meet it;
/// `/counter` keeps up to eight; `/fresh` does not reuse.
fn config() -> String {
    format!(
        r#"{BASE_CONFIG}
[log]
format = "json"

[[routes]]
prefix = "/faulty"
component = "{faulty}"
namespace = "faulty"
timeout = "1s"
max_memory_mib = 32
max_concurrency = 1
reuse_instances = true
max_idle_instances = 1

[[routes]]
prefix = "/counter"
component = "{counter}"
namespace = "counter"
reuse_instances = true

[[routes]]
prefix = "/fresh"
component = "{faulty}"
"#,
        faulty = guest("faulty").display(),
        counter = guest("counter").display(),
    )
}

#[test]
fn a_reused_instance_keeps_its_memory_until_a_request_fails() {
    let host = Host::start(&with_admin(&config()));
    let remember = || host.client().get("/faulty/remember").body;
    assert_eq!(remember(), "41 0\n", "a fresh instance");
    // The trade-off: the next request sees what the last one left behind.
    assert_eq!(remember(), "42 262144\n");
    assert_eq!(remember(), "43 262144\n");
    // A request the host refuses before the guest sees it leaves the
    // instance as it was.
    let refused = host.raw(b"GET /faulty/remember HTTP/1.1\r\nconnection: close\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert_eq!(remember(), "44 262144\n");
    // A trap, a timeout or a panic: the instance is dropped, never reused.
    for (failure, status) in [("alloc", 500), ("loop", 504), ("panic", 500)] {
        let reply = host.client().get(&format!("/faulty/{failure}"));
        assert_eq!(reply.status, status);
        assert_eq!(remember(), "41 0\n", "a fresh instance after /{failure}");
        assert_eq!(remember(), "42 262144\n");
    }
    // A route without reuse is untouched.
    for _ in 0..3 {
        assert_eq!(host.client().get("/fresh/remember").body, "41 0\n");
    }
    // Of the 12 requests that /faulty served, 4 ran in a fresh instance:
    // only those count as instantiations.
    let metrics = host.admin().get("/metrics").body;
    assert_eq!(
        metric_sample(
            &metrics,
            "edge_session_guest_instantiation_seconds_count",
            &[("route", "/faulty")]
        ),
        Some(4.0),
        "{metrics}"
    );
}

#[test]
fn each_request_on_a_reused_instance_gets_its_own_session() {
    let host = Host::start(&config());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut visitor = host.client();
            std::thread::spawn(move || {
                for expected in 1..=25 {
                    assert_eq!(visitor.get("/counter").json()["count"], expected);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let newcomer = host.client().get("/counter");
    assert_eq!(newcomer.json()["count"], 1, "no session carried over");
    assert!(newcomer.header("set-cookie").is_some());
}

#[test]
fn each_request_logs_its_own_output_and_a_chatty_guest_keeps_working() {
    let host = Host::start(&config());
    for id in ["req-1", "req-2"] {
        let reply = host
            .client()
            .send_with_header("GET", "/faulty/print", ("x-request-id", id));
        assert_eq!(reply.body, format!("request {id}\n"));
    }
    // Far more output than the host keeps of a request, reused or not.
    for (path, id) in [
        ("/faulty/print?kb=64", "big-1"),
        ("/fresh/print?kb=64", "big-2"),
    ] {
        let reply = host
            .client()
            .send_with_header("GET", path, ("x-request-id", id));
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let stdout_of = |id: &str| wait_for_stdout(&host, id);
    assert_eq!(stdout_of("req-1"), "hello from the guest's stdout");
    assert_eq!(stdout_of("req-2"), "hello from the guest's stdout");
    for id in ["big-1", "big-2"] {
        let stdout = stdout_of(id);
        assert!(stdout.starts_with("hello from the guest's stdout\nxxx"));
        assert!(stdout.len() <= 4096, "{} bytes kept", stdout.len());
    }
}

/// The `guest stdout` field logged under request `id`.
fn wait_for_stdout(host: &Host, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = host.log().lines().find_map(|line| {
            let line: Value = serde_json::from_str(line).ok()?;
            (line["fields"]["message"] == "guest stdout" && line["span"]["id"] == id).then(|| {
                line["fields"]["stdout"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
        });
        match found {
            Some(stdout) => return stdout,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("no stdout logged under {id}:\n{}", host.log()),
        }
    }
}
