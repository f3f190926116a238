//! The admin listener: health, readiness, and Prometheus metrics scraped and
//! parsed after real traffic through the real binary.

use edge_session_tests::{Host, flows, metric_sample as sample, with_admin};

#[test]
fn health_readiness_and_metrics_after_real_traffic() {
    let host = Host::start(&with_admin(&flows::demo_config("30m", "")));
    let mut visitor = host.client();
    for _ in 0..3 {
        assert_eq!(visitor.get("/counter").status, 200);
    }
    assert_eq!(visitor.get("/nowhere").status, 404);
    assert_eq!(visitor.get("/faulty/panic").status, 500);
    assert_eq!(
        visitor.get("/metrics").status,
        404,
        "metrics are not on the public listener"
    );

    let mut admin = host.admin();
    assert_eq!(admin.get("/healthz").status, 200);
    let ready = admin.get("/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let scrape = admin.get("/metrics");
    assert_eq!(scrape.status, 200);
    let metrics = scrape.body;
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&metrics, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{metrics}"))
    };
    let counter = [("route", "/counter")];
    assert_eq!(
        value(
            "edge_session_requests_total",
            &[("route", "/counter"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        value(
            "edge_session_requests_total",
            &[("route", "none"), ("status", "404")]
        ),
        2.0,
        "/nowhere and the public /metrics"
    );
    assert_eq!(
        value("edge_session_request_duration_seconds_count", &counter),
        3.0
    );
    assert_eq!(
        value("edge_session_guest_instantiation_seconds_count", &counter),
        3.0
    );
    assert_eq!(
        value(
            "edge_session_guest_faults_total",
            &[("route", "/faulty"), ("reason", "trap")]
        ),
        1.0
    );
    let store = |op: &str, result: &str| {
        value(
            "edge_session_store_operations_total",
            &[("backend", "embedded"), ("op", op), ("result", result)],
        )
    };
    assert_eq!(
        store("insert", "created"),
        1.0,
        "the first visit starts a session"
    );
    assert_eq!(store("load", "hit"), 2.0, "the next two find it");
    assert_eq!(store("incr_field", "ok"), 2.0);
    assert!(value("edge_session_process_resident_memory_bytes", &[]) > 1e6);
    assert!(value("edge_session_store_sessions", &[]) >= 1.0);
    assert!(value("edge_session_store_bytes", &[]) > 0.0);
    assert_eq!(admin.post("/metrics", "").status, 405);
}

#[test]
fn json_logs_carry_the_request_id_and_the_guests_output() {
    let config = format!(
        "{}\n[log]\nformat = \"json\"\n",
        flows::demo_config("30m", "")
    );
    let host = Host::start(&config);
    let mut client = host.client();

    let mut request = host.client();
    let reply = request.send_with_header("GET", "/faulty/print", ("x-request-id", "req-42"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "request req-42\n", "the guest sees the id");
    assert_eq!(reply.header("x-request-id"), Some("req-42"));

    // Ids that are not plain tokens are replaced, never echoed.
    let forged = request.send_with_header("GET", "/faulty/print", ("x-request-id", "a b\"c"));
    let fresh = forged.header("x-request-id").expect("an id").to_owned();
    assert_eq!(fresh.len(), 16, "{fresh}");
    assert_ne!(
        client.get("/counter").header("x-request-id"),
        Some(fresh.as_str()),
        "each request its own id"
    );

    // The log is JSON lines; the guest's output is logged under its request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (stdout, stderr) = loop {
        let lines: Vec<serde_json::Value> = host
            .log()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        let find = |message: &str| {
            lines
                .iter()
                .find(|line| line["fields"]["message"] == message && line["span"]["id"] == "req-42")
                .cloned()
        };
        match (find("guest stdout"), find("guest stderr")) {
            (Some(stdout), Some(stderr)) => break (stdout, stderr),
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => panic!("no guest output logged under req-42:\n{}", host.log()),
        }
    };
    assert_eq!(stdout["fields"]["stdout"], "hello from the guest's stdout");
    assert_eq!(stdout["span"]["route"], "/faulty");
    assert_eq!(stderr["fields"]["stderr"], "a note on stderr");
    assert_eq!(stderr["level"], "INFO", "a guest that did not fail");
}

#[test]
fn expired_sessions_swept_from_disk_are_counted() {
    let config = flows::demo_config("1s", "").replace(
        "[store.embedded]\n",
        "[store.embedded]\nsweep_interval = \"200ms\"\n",
    );
    let host = Host::start(&with_admin(&config));
    for _ in 0..2 {
        assert_eq!(host.client().get("/counter").status, 200);
    }
    let mut admin = host.admin();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = admin.get("/metrics").body;
        match sample(&metrics, "edge_session_sessions_expired_total", &[]) {
            Some(expired) if expired >= 2.0 => break,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            _ => panic!("the two 1 s sessions were not counted as expired:\n{metrics}"),
        }
    }
}
