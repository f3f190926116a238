//! End to end on the Redis backend: the real binary and guests over HTTP
//! with sessions in Redis (a local `redis-server`, or the server named by
//! `REDIS_URL`). The user flows of the embedded e2e tests, two hosts
//! sharing one server, a host riding out an outage, and the password read
//! from the environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use edge_session_tests::aerospike::HANG;
use edge_session_tests::flows::{self, COUNTER_COOKIE};
use edge_session_tests::redis::TestRedis;
use edge_session_tests::{BASE_CONFIG, Client, Host, host_binary, metric_sample, with_admin};

/// The store's command deadline: none of these tests is about it (the
/// outages here refuse connections at once), so one no loaded machine
/// reaches.
const TIMEOUT: Duration = edge_session_tests::redis::PATIENT;

fn start(redis: &TestRedis, counter_ttl: &str, prefix: Option<&str>) -> Host {
    Host::start(&flows::demo_config(
        counter_ttl,
        &redis.store_toml(prefix, TIMEOUT),
    ))
}

#[test]
fn user_flows() {
    let redis = TestRedis::shared();
    let host = start(&redis, "30m", None);
    flows::counter_counts_each_visitor_separately(&host);
    flows::login_cart_logout(&host);
    flows::concurrent_visits_lose_no_increment(&host);
}

#[test]
fn sessions_expire() {
    let redis = TestRedis::shared();
    flows::sessions_expire(&start(&redis, &flows::expiry_ttl_setting(), None));
}

#[test]
fn two_hosts_share_one_backend() {
    const VISITS: usize = 60;
    let redis = TestRedis::shared();
    let prefix = edge_session_tests::redis::new_prefix();
    let (edge_a, edge_b) = (
        start(&redis, "30m", Some(&prefix)),
        start(&redis, "30m", Some(&prefix)),
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

#[test]
fn a_backend_outage_gets_503s_fast_and_the_host_recovers_on_its_own() {
    // Every write on disk before it is acknowledged, so that a restart
    // keeps them.
    let mut redis = TestRedis::local(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = redis.store_toml(None, TIMEOUT);
    let host = Host::start(&with_admin(&flows::demo_config("30m", &store)));
    let mut admin = host.admin();
    assert_eq!(admin.get("/readyz").status, 200);
    let mut visitor = host.client();
    for expected in 1..=3 {
        assert_eq!(visitor.get("/counter").json()["count"], expected);
    }

    redis.server().kill();
    let not_ready = admin.get("/readyz");
    assert_eq!(not_ready.status, 503, "{not_ready:?}");
    assert!(not_ready.body.contains("unavailable"), "{not_ready:?}");
    assert_eq!(admin.get("/healthz").status, 200, "alive, if not ready");
    // Fast: each visit is answered, 503, while the backend is still down, so
    // a host that waited for it to come back would hang here until the
    // client's own timeout failed the test.
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

    redis.server().restart();
    let reply = visitor.get_while_busy("/counter", HANG);
    assert_eq!(reply.status, 200, "the host did not recover: {reply:?}");
    assert_eq!(reply.json()["count"], 4, "no acknowledged visit was lost");
    assert_eq!(admin.get("/readyz").status, 200);
}

#[test]
fn a_stalled_backend_opens_the_circuit_and_a_probe_closes_it() {
    let redis = TestRedis::local(&[]);
    // About the deadline: one a loaded machine still meets between visits,
    // short enough to wait out a few times.
    let store = redis.store_toml(None, Duration::from_secs(1));
    let config = format!(
        "{}\n[store.circuit_breaker]\nfailures = 3\nopen_for = \"300ms\"\n",
        with_admin(&flows::demo_config("30m", &store))
    );
    let host = Host::start(&config);
    let mut visitor = host.client();
    assert_eq!(visitor.get("/counter").json()["count"], 1);

    // The server stops answering, its connections open: each call waits out
    // the store's deadline, until the circuit opens and calls fail at once.
    redis.server.as_ref().unwrap().pause(true);
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
    assert_eq!(admin.get("/readyz").status, 503);
    let metrics = admin.get("/metrics").body;
    assert_eq!(
        metric_sample(&metrics, "edge_session_store_circuit_open", &[]),
        Some(1.0),
        "{metrics}"
    );

    redis.server.as_ref().unwrap().pause(false);
    let reply = visitor.get_while_busy("/counter", HANG);
    assert_eq!(reply.status, 200, "the host did not recover: {reply:?}");
    assert_eq!(reply.json()["count"], 2, "no visit counted twice or lost");
    assert_eq!(admin.get("/readyz").status, 200);
    let metrics = admin.get("/metrics").body;
    assert_eq!(
        metric_sample(&metrics, "edge_session_store_circuit_open", &[]),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        metric_sample(
            &metrics,
            "edge_session_store_operations_total",
            &[("backend", "redis")]
        )
        .is_some(),
        "{metrics}"
    );
}

/// A host started by [`serve_with_password`]: its address, its process and
/// its directory.
type Served = (String, std::process::Child, tempfile::TempDir);

/// `edge-session serve` on `config` with `PASSWORD_VAR` set to `password`,
/// or the exit code and log of a host that refused to start.
fn serve_with_password(config: &str, password: &str) -> Result<Served, (Option<i32>, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let config = config
        .replace("{data}", &dir.path().join("sessions").display().to_string())
        .replace(
            "{cache}",
            &edge_session_tests::target_dir()
                .join("test-artifact-cache")
                .display()
                .to_string(),
        );
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(host_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env(PASSWORD_VAR, password)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("host.log")).unwrap())
        .spawn()
        .expect("start edge-session");
    let stdout = child.stdout.take().unwrap();
    match BufReader::new(stdout).lines().next() {
        Some(Ok(line)) => {
            let address = line
                .strip_prefix("listening on http://")
                .expect("listening line");
            Ok((address.to_owned(), child, dir))
        }
        _ => {
            let status = child.wait().unwrap();
            let log = std::fs::read_to_string(dir.path().join("host.log")).unwrap();
            Err((status.code(), log))
        }
    }
}

const PASSWORD_VAR: &str = "EDGE_SESSION_TEST_REDIS_PASSWORD";

#[test]
fn the_password_comes_from_the_environment_and_a_wrong_one_stops_the_host_at_start() {
    let redis = TestRedis::local(&["--user", "edge", "on", ">edge-pass", "~es-test-*", "+@all"]);
    let store = format!(
        "{}user = \"edge\"\npassword_env = \"{PASSWORD_VAR}\"\n",
        redis.store_toml(None, TIMEOUT)
    );
    let config = format!(
        "{BASE_CONFIG}\n{store}\n{}",
        flows::app_routes(
            &edge_session_tests::guest("counter"),
            &edge_session_tests::guest("cart"),
            "30m",
            ""
        )
    );

    let (code, stderr) = serve_with_password(&config, "wrong-pass").expect_err("refused");
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot connect to Redis") && stderr.contains("store.redis.user"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-pass"), "the log never shows it");

    let (address, mut child, _dir) = serve_with_password(&config, "edge-pass").expect("started");
    let mut visitor = Client::new(&address);
    assert_eq!(visitor.get("/counter").json()["count"], 1);
    assert_eq!(visitor.get("/counter").json()["count"], 2);
    child.kill().unwrap();
    child.wait().unwrap();
}
