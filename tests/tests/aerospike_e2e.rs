//! End to end on the Aerospike backend: the real binary and guests over
//! HTTP with sessions in Aerospike (the test server, or the cluster named by
//! `AEROSPIKE_HOSTS`). The user flows of the embedded e2e tests, then two
//! hosts sharing one backend, and a host riding out a backend outage.

use std::time::Duration;

use aerospike_fixture::FixtureConfig;
use edge_session_tests::aerospike::{HANG, TestCluster};
use edge_session_tests::flows::{self, COUNTER_COOKIE};
use edge_session_tests::{Client, Host, metric_sample, with_admin};

const TIMEOUT: Duration = Duration::from_millis(250);

fn start(cluster: &TestCluster, counter_ttl: &str, set: Option<&str>) -> Host {
    Host::start(&flows::demo_config(
        counter_ttl,
        &cluster.store_toml(set, TIMEOUT),
    ))
}

#[test]
fn user_flows() {
    let cluster = TestCluster::shared();
    let host = start(&cluster, "30m", None);
    flows::counter_counts_each_visitor_separately(&host);
    flows::login_cart_logout(&host);
    flows::concurrent_visits_lose_no_increment(&host);
}

#[test]
fn metrics_report_the_sessions_the_set_holds() {
    let cluster = TestCluster::shared();
    let host = Host::start(&with_admin(&flows::demo_config(
        "30m",
        &cluster.store_toml(None, TIMEOUT),
    )));
    for _ in 0..3 {
        assert_eq!(host.client().get("/counter").json()["count"], 1);
    }
    let metrics = host.admin().get("/metrics").body;
    let sample = |name| metric_sample(&metrics, name, &[]);
    assert_eq!(
        sample("edge_session_store_sessions"),
        Some(3.0),
        "{metrics}"
    );
    assert!(
        sample("edge_session_store_bytes").is_some_and(|bytes| bytes > 0.0),
        "{metrics}"
    );
}

#[test]
fn sessions_expire() {
    let cluster = TestCluster::shared();
    flows::sessions_expire(&start(&cluster, &flows::expiry_ttl_setting(), None));
}

#[test]
fn two_hosts_share_one_backend() {
    const VISITS: usize = 60;
    let cluster = TestCluster::shared();
    let set = cluster.new_set();
    let (edge_a, edge_b) = (
        start(&cluster, "30m", Some(&set)),
        start(&cluster, "30m", Some(&set)),
    );
    let mut at_a = edge_a.client();
    assert_eq!(at_a.get("/counter").json()["count"], 1);
    let mut at_b = at_a.at(&edge_b.address);
    assert_eq!(
        at_b.get("/counter").json()["count"],
        2,
        "host B reads and updates the session host A created"
    );
    at_b.post("/shop/login", r#"{"user":"ada"}"#);
    at_b.post("/shop/cart/items", r#"{"sku":"fig","qty":2}"#);
    assert_eq!(
        at_b.at(&edge_a.address).get("/shop/cart").json()["items"]["fig"],
        2
    );

    let tabs: Vec<_> = [&edge_a, &edge_b, &edge_a, &edge_b]
        .into_iter()
        .map(|edge| {
            let mut tab = at_a.at(&edge.address);
            std::thread::spawn(move || {
                for _ in 0..VISITS {
                    assert_eq!(tab.get("/counter").status, 200);
                }
            })
        })
        .collect();
    for tab in tabs {
        tab.join().unwrap();
    }
    assert_eq!(
        at_a.get("/counter").json()["count"],
        (2 + 4 * VISITS + 1) as u64,
        "concurrent increments through both hosts lose nothing"
    );
}

/// The counter's count at the first visit that gets through after the
/// backend is back (503s until then, for up to [`HANG`]: a bound that only
/// turns a host that never recovers into a failure).
fn count_once_recovered(visitor: &mut Client) -> u64 {
    let reply = visitor.get_while_busy("/counter", HANG);
    assert_eq!(reply.status, 200, "the host did not recover: {reply:?}");
    reply.json()["count"].as_u64().unwrap()
}

#[test]
fn a_backend_outage_gets_503s_fast_and_the_host_recovers_on_its_own() {
    let cluster = TestCluster::fixture(FixtureConfig::default());
    let store = cluster.store_toml(None, TIMEOUT);
    let host = Host::start(&with_admin(&flows::demo_config("30m", &store)));
    let mut admin = host.admin();
    assert_eq!(admin.get("/readyz").status, 200);
    let mut visitor = host.client();
    for expected in 1..=3 {
        assert_eq!(visitor.get("/counter").json()["count"], expected);
    }

    cluster.server().stop();
    let not_ready = admin.get("/readyz");
    assert_eq!(not_ready.status, 503, "{not_ready:?}");
    assert!(not_ready.body.contains("unavailable"), "{not_ready:?}");
    assert_eq!(admin.get("/healthz").status, 200, "alive, if not ready");
    // Fast: each visit is answered, 503, while the backend is still down, so
    // a host that waited for it to come back would hang here until the
    // client's own timeout failed the test. That the store gives up on its
    // deadline is aerospike_store's stalled-backend test.
    for _ in 0..5 {
        let reply = visitor.get("/counter");
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("unavailable"),
            "{reply:?}"
        );
        assert_eq!(
            visitor.get("/no-sessions/echo").status,
            200,
            "routes that need no store keep serving"
        );
    }
    assert_eq!(
        visitor.cookie(COUNTER_COOKIE).map(str::len),
        Some(22),
        "an outage never costs the visitor their cookie"
    );

    cluster.server().resume().unwrap();
    let count = count_once_recovered(&mut visitor);
    assert_eq!(count, 4, "no acknowledged visit was lost");
    assert_eq!(admin.get("/readyz").status, 200);
}

#[test]
fn a_stalled_backend_opens_the_circuit_and_a_probe_closes_it() {
    let cluster = TestCluster::fixture(FixtureConfig::default());
    let store = cluster.store_toml(None, TIMEOUT);
    let config = format!(
        "{}\n[store.circuit_breaker]\nfailures = 3\nopen_for = \"300ms\"\n",
        with_admin(&flows::demo_config("30m", &store))
    );
    let host = Host::start(&config);
    let mut visitor = host.client();
    assert_eq!(visitor.get("/counter").json()["count"], 1);

    // Each call now waits out the store timeout, until the circuit opens
    // and calls fail at once.
    cluster.server().set_latency(Duration::from_secs(30));
    let mut errors = Vec::new();
    while errors.len() < 10 {
        let reply = visitor.get("/counter");
        assert_eq!(reply.status, 503, "{reply:?}");
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        let open = error.contains("circuit open");
        errors.push(error);
        if open {
            break;
        }
    }
    assert!(
        errors.len() >= 3 && errors.last().unwrap().contains("circuit open"),
        "three failures in a row open the circuit: {errors:#?}"
    );
    let mut admin = host.admin();
    let not_ready = admin.get("/readyz");
    assert_eq!(not_ready.status, 503, "{not_ready:?}");
    let metrics = admin.get("/metrics").body;
    assert_eq!(
        metric_sample(&metrics, "edge_session_store_circuit_open", &[]),
        Some(1.0),
        "{metrics}"
    );

    cluster.server().set_latency(Duration::ZERO);
    let count = count_once_recovered(&mut visitor);
    assert_eq!(count, 2, "no visit counted twice or lost");
    assert_eq!(admin.get("/readyz").status, 200);
    let metrics = admin.get("/metrics").body;
    assert_eq!(
        metric_sample(&metrics, "edge_session_store_circuit_open", &[]),
        Some(0.0),
        "{metrics}"
    );
}
