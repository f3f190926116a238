//! The admin listener: health, readiness, and Prometheus metrics scraped and
//! parsed after real traffic through the real binary.

use edge_session_tests::{Client, Host, flows};

/// The value of the sample `name{labels…}` whose labels include `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let wanted = labels
            .iter()
            .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")));
        (metric == name && wanted).then(|| value.parse().ok())?
    })
}

#[test]
fn health_readiness_and_metrics_after_real_traffic() {
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        flows::demo_config("30m", "")
    );
    let host = Host::start(&config);
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

    let mut admin = Client::new(host.admin_address.as_deref().expect("admin listener"));
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
    assert_eq!(admin.post("/metrics", "").status, 405);
}
