//! End to end: the real `edge-session` binary serving the real guest
//! components over HTTP, with sessions in the embedded store on disk.

use std::time::{Duration, Instant};

use edge_session_tests::flows::{self, COUNTER_COOKIE, SHOP_COOKIE};
use edge_session_tests::gate::Gate;
use edge_session_tests::{BASE_CONFIG, Client, Host, guest, with_admin};
use serde_json::{Value, json};

/// The example guests plus the faulty test guest, on the embedded store.
fn demo_config(counter_ttl: &str) -> String {
    flows::demo_config(counter_ttl, "")
}

#[test]
fn counter_counts_each_visitor_separately() {
    let host = Host::start(&demo_config("30m"));
    flows::counter_counts_each_visitor_separately(&host);
}

#[test]
fn login_cart_logout() {
    let host = Host::start(&demo_config("30m"));
    flows::login_cart_logout(&host);
}

#[test]
fn one_visitor_keeps_both_apps_sessions() {
    let host = Host::start(&demo_config("30m"));
    let mut visitor = host.client();
    assert_eq!(visitor.get("/counter").json()["count"], 1);
    visitor.post("/shop/login", r#"{"user":"ada"}"#);
    visitor.post("/shop/cart/items", r#"{"sku":"fig","qty":1}"#);
    assert_eq!(
        visitor.get("/counter").json()["count"],
        2,
        "the shop's cookie left the counter's alone"
    );
    assert_eq!(visitor.get("/shop/cart").json()["items"]["fig"], 1);
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let host = Host::start(&demo_config("30m"));
    let mut client = host.client();
    assert_eq!(client.get("/nowhere").status, 404, "no route");
    assert_eq!(client.post("/counter", "").status, 405);
    assert_eq!(client.post("/shop/login", "not json").status, 400);
    assert_eq!(client.post("/shop/login", r#"{"user":""}"#).status, 400);
    assert_eq!(client.post("/shop/login", r#"{"user":"a b"}"#).status, 400);
    client.post("/shop/login", r#"{"user":"ada"}"#);
    let bad_items = [
        r#"{"sku":"apple"}"#,
        r#"{"sku":"apple","qty":0}"#,
        r#"{"sku":"apple","qty":100000}"#,
        r#"{"sku":"a/b","qty":1}"#,
        r#"{"sku":"apple","qty":"2"}"#,
        "[]",
    ];
    for body in bad_items {
        let reply = client.post("/shop/cart/items", body);
        assert_eq!(reply.status, 400, "{body} -> {reply:?}");
        assert!(reply.json()["error"].is_string(), "the error says why");
    }
    assert_eq!(
        declared_post(&host.address, "/shop/cart/items", 2 * 1024 * 1024),
        413,
        "bodies over the route's max_request_bytes"
    );
    // Nothing above damaged the cart.
    assert_eq!(
        client.get("/shop/cart").json()["items"],
        serde_json::json!({})
    );
}

#[test]
fn concurrent_visits_lose_no_increment() {
    let host = Host::start(&demo_config("30m"));
    flows::concurrent_visits_lose_no_increment(&host);
}

#[test]
fn sessions_expire() {
    let host = Host::start(&demo_config(&flows::expiry_ttl_setting()));
    flows::sessions_expire(&host);
}

#[test]
fn acknowledged_sessions_survive_kill_9_and_restart() {
    let mut host = Host::start(&demo_config("30m"));
    let mut client = host.client();
    for expected in 1..=3 {
        assert_eq!(client.get("/counter").json()["count"], expected);
    }
    host.kill_hard();
    host.restart();
    assert!(
        host.log().contains("cached=true"),
        "the restart reuses precompiled components"
    );
    let mut returning = host.client();
    returning.set_cookie(COUNTER_COOKIE, client.cookie(COUNTER_COOKIE));
    assert_eq!(returning.get("/counter").json()["count"], 4);
}

#[test]
fn a_restart_after_a_graceful_stop_replays_nothing() {
    let mut host = Host::start(&demo_config("30m"));
    let mut client = host.client();
    for expected in 1..=50 {
        assert_eq!(client.get("/counter").json()["count"], expected);
    }
    host.stop();
    host.restart();
    assert_eq!(replayed_at_open(&host), 0, "closed: every write in tables");
    // The same visitor, at the restarted host's new port.
    client = client.at(&host.address);
    assert_eq!(client.get("/counter").json()["count"], 51);

    // The control: after a crash the writes since the last flush are
    // replayed, and the log says how much.
    host.kill_hard();
    host.restart();
    assert!(replayed_at_open(&host) > 0, "{}", host.log());
    client = client.at(&host.address);
    assert_eq!(client.get("/counter").json()["count"], 52);
}

/// The bytes of journal the store replayed at its last open, from its log.
fn replayed_at_open(host: &Host) -> u64 {
    let log = host.log();
    let line = log
        .lines()
        .rfind(|line| line.contains("session store open"))
        .unwrap_or_else(|| panic!("no line about opening the store:\n{log}"));
    let value = line
        .split_once("replayed_bytes=")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no replayed_bytes in {line}"));
    value.parse().unwrap()
}

#[test]
fn guest_faults_end_only_their_own_request() {
    let host = Host::start(&demo_config("30m"));
    let faults = [
        ("/faulty/panic", 500),
        ("/faulty/alloc", 500),
        ("/faulty/silent", 500),
        ("/faulty/loop", 504),
        ("/faulty/sleep?ms=3000", 504),
    ];
    let mut threads: Vec<_> = faults
        .into_iter()
        .map(|(path, expected)| {
            let mut client = host.client();
            std::thread::spawn(move || {
                for _ in 0..2 {
                    let reply = client.get(path);
                    assert_eq!(reply.status, expected, "{path}: {reply:?}");
                }
            })
        })
        .collect();
    let address = host.address.clone();
    threads.push(std::thread::spawn(move || {
        let huge = vec![b'x'; 4 * 1024 * 1024];
        for _ in 0..2 {
            assert_eq!(
                chunked_post(&address, "/faulty/fine", &huge),
                413,
                "a huge streamed body"
            );
        }
    }));
    // Meanwhile, everyone else is served.
    let mut visitor = host.client();
    for expected in 1..=20 {
        assert_eq!(visitor.get("/counter").json()["count"], expected);
    }
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(host.client().get("/faulty/fine").status, 200);
    let log = host.log();
    assert!(
        log.contains("the faulty guest panics on purpose"),
        "the panic message is logged"
    );
    assert!(log.contains("guest timed out"));
}

#[test]
fn every_request_finds_its_guest_memory_as_new() {
    let host = Host::start(&demo_config("30m"));
    // Slots are reused (reset in place or remapped): after requests that
    // scribbled on their statics, and one that filled its memory to the cap
    // and trapped, each instance still starts from the component's image.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut client = host.client();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    assert_eq!(client.get("/faulty/remember").body, "41 0\n");
                }
                assert_eq!(client.get("/faulty/alloc").status, 500);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for _ in 0..10 {
        assert_eq!(host.client().get("/faulty/remember").body, "41 0\n");
    }
}

#[test]
fn routes_without_a_namespace_have_no_session_access() {
    let host = Host::start(&demo_config("30m"));
    let reply = host.client().get("/no-sessions/session");
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("AccessDenied"), "{reply:?}");
    assert_eq!(host.client().get("/faulty/session").status, 200);
    // The benchmark's many-calls request (see bench/src/calls.rs).
    assert_eq!(host.client().get("/faulty/calls?n=3").body, "3 calls\n");
    // And its scale runs' filler (see bench/src/scale.rs).
    assert_eq!(host.client().get("/faulty/fill?n=2").body, "2 sessions\n");
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let mut gate = Gate::open();
    let mut host = Host::start(&held_config(&gate, 1));
    let mut client = host.client();
    let path = format!("/held/outgoing?to={}", gate.address);
    let in_flight = std::thread::spawn(move || client.get(&path));
    // The guest is running (it reached its outgoing call) and has not
    // responded: it waits for the gate.
    gate.wait_for(1);
    host.signal(libc::SIGTERM);
    host.wait_for_log("shutting down: finishing requests in flight");
    assert!(
        std::net::TcpStream::connect(&host.address).is_err(),
        "the listener closed at once"
    );
    // Only now, with the host draining, may the request finish.
    gate.release_all();
    let reply = in_flight.join().unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "sent! status 200\n")
    );
    let status = host.wait(Duration::from_secs(30));
    assert!(status.success(), "clean exit after draining: {status:?}");
    assert!(host.log().contains("SIGTERM received"));
}

/// A route of the faulty guest that may call `gate` (its `/outgoing?to=`
/// path), running at most `max_concurrency` requests at once, with a
/// deadline long enough that only the gate decides when they end.
fn held_config(gate: &Gate, max_concurrency: usize) -> String {
    format!(
        r#"
{BASE_CONFIG}
[[routes]]
prefix = "/held"
component = "{faulty}"
timeout = "5m"
max_concurrency = {max_concurrency}
outgoing_http = ["{gate}"]

[[routes]]
prefix = "/other"
component = "{faulty}"
"#,
        faulty = guest("faulty").display(),
        gate = gate.address,
    )
}

#[test]
fn guests_get_no_environment_and_no_outgoing_http() {
    let host = Host::start(&demo_config("30m"));
    let reply = host.client().get("/faulty/outgoing");
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains("refused: ErrorCode::HttpRequestDenied"),
        "{reply:?}"
    );
    assert_eq!(host.client().get("/faulty/env").body, "0 variables\n");
}

#[test]
fn clients_that_leave_mid_response_harm_nothing() {
    use std::io::{Read, Write};
    let host = Host::start(&demo_config("30m"));
    for i in 0..4 {
        let mut stream = std::net::TcpStream::connect(&host.address).unwrap();
        write!(
            stream,
            "GET /faulty/big?kb=6144 HTTP/1.1\r\nHost: test\r\nx-request-id: gone-{i}\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        // Gone before reading the 6 MiB body.
    }
    assert_eq!(host.client().get("/faulty/fine").status, 200);
    // Each run logs what its guest wrote (`big: …`) when it ends, after any
    // trap or timeout of that run: once all four are there, every run is
    // over and whatever went wrong in them is in the log.
    for i in 0..4 {
        host.wait_for_log(&format!("id=\"gone-{i}\""));
    }
    let log = host.log();
    for i in 0..4 {
        let ended = log
            .lines()
            .find(|line| line.contains(&format!("id=\"gone-{i}\"")))
            .unwrap();
        assert!(
            ended.contains("guest stdout") && ended.contains("big: 6144 KiB"),
            "{ended}"
        );
    }
    assert!(
        !log.contains("guest trapped"),
        "a write to a departed client must not trap the guest"
    );
    assert!(
        !log.contains("guest timed out"),
        "nor hang it until its deadline"
    );
}

#[test]
fn keep_alive_serves_many_requests_per_connection_and_rejects_hostless_ones() {
    use std::io::{BufRead, BufReader, Read, Write};
    let host = Host::start(&demo_config("30m"));
    let stream = std::net::TcpStream::connect(&host.address).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut exchange = |request: &str| -> (String, String) {
        writer.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (
            status.trim_end().to_owned(),
            String::from_utf8(body).unwrap(),
        )
    };
    for _ in 0..3 {
        let (status, body) = exchange("GET /faulty/fine HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "ok\n")
        );
    }
    let (status, _) = exchange("GET /faulty/fine HTTP/1.1\r\n\r\n");
    assert_eq!(
        status, "HTTP/1.1 400 Bad Request",
        "no Host header, no authority"
    );
}

/// Sends a request with a chunked body (no Content-Length) and returns the
/// status. The host may answer and close before reading it all, as servers
/// do with bodies they refuse: writing then stops.
fn chunked_post(address: &str, path: &str, body: &[u8]) -> u16 {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let _ = body.chunks(16 * 1024).try_for_each(|chunk| {
        write!(stream, "{:x}\r\n", chunk.len())?;
        stream.write_all(chunk)?;
        stream.write_all(b"\r\n")
    });
    let _ = stream.write_all(b"0\r\n\r\n");
    read_status(stream)
}

/// Sends only the head of a request that declares a `Content-Length` of
/// `length`, and returns the status.
fn declared_post(address: &str, path: &str, length: usize) -> u16 {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    read_status(stream)
}

fn read_status(stream: std::net::TcpStream) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).unwrap();
    status
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no status in {status:?}"))
        .parse()
        .unwrap()
}

#[test]
fn body_limits_end_only_the_offending_request() {
    let host = Host::start(&demo_config("30m"));
    let mut client = host.client();
    let too_big = vec![b'x'; 2048];
    assert_eq!(
        declared_post(&host.address, "/limited/fine", too_big.len()),
        413,
        "declared too large: refused before any guest runs"
    );
    assert_eq!(
        chunked_post(&host.address, "/limited/fine", &too_big),
        413,
        "chunked: cut off while streaming, the guest answers 413"
    );
    assert_eq!(
        chunked_post(&host.address, "/limited/fine", &[b'y'; 1000]),
        200
    );
    assert_eq!(
        client
            .send("POST", "/limited/fine", Some(&[b'y'; 1024]))
            .status,
        200
    );

    assert_eq!(
        client.get("/limited/big?kb=8").status,
        500,
        "response over the route's limit"
    );
    assert!(host.log().contains("guest response too large"));
    let fits = client.get("/limited/big?kb=2");
    assert_eq!((fits.status, fits.body.len()), (200, 2048));
}

#[test]
fn a_busy_route_waits_briefly_then_answers_503_with_retry_after() {
    const MAX_CONCURRENCY: usize = 2;
    let mut gate = Gate::open();
    let host = Host::start(&held_config(&gate, MAX_CONCURRENCY));
    let path = format!("/held/outgoing?to={}", gate.address);
    let holders: Vec<_> = (0..MAX_CONCURRENCY)
        .map(|_| {
            let (mut client, path) = (host.client(), path.clone());
            std::thread::spawn(move || client.get(&path))
        })
        .collect();
    // Every instance the route allows is running, held by the gate.
    gate.wait_for(MAX_CONCURRENCY);
    let mut visitor = host.client();
    for _ in 0..3 {
        let busy = visitor.get("/held/fine");
        assert_eq!(
            (busy.status, busy.header("retry-after"), busy.body.as_str()),
            (503, Some("1"), "busy, retry shortly\n"),
            "past max_concurrency a request waits only max_queue_wait: {busy:?}"
        );
    }
    // Meanwhile other routes are served as usual.
    assert_eq!(visitor.get("/other/fine").status, 200);
    gate.release_all();
    for holder in holders {
        let reply = holder.join().unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "sent! status 200\n")
        );
    }
    // The holders' runs end a moment after their responses.
    let after = visitor.get_while_busy("/held/fine", Duration::from_secs(60));
    assert_eq!(after.status, 200, "permits come back: {after:?}");
}

/// With one instance allowed, a client's next request arrives while its
/// previous run is still going (here: work after its response): it waits
/// for that instance (`max_queue_wait`) instead of getting a 503.
#[test]
fn the_next_request_waits_for_a_run_that_goes_on_after_its_response() {
    let host = Host::start(&format!(
        "{BASE_CONFIG}\n[[routes]]\nprefix = \"/single\"\ncomponent = \"{}\"\nmax_concurrency = 1\n",
        guest("faulty").display()
    ));
    let mut client = host.client();
    for request in 0..10 {
        let reply = client.get("/single/linger?ms=30");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "ok\n"),
            "request {request}"
        );
    }
}

#[test]
fn stale_and_malformed_cookies_are_removed_and_never_adopted() {
    let host = Host::start(&demo_config("30m"));
    for cookie in [
        "AAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
        // The right length, but the last character carries bits an id never has.
        "AAAAAAAAAAAAAAAAAAAAAB",
    ] {
        let mut client = host.client();
        client.set_cookie(SHOP_COOKIE, Some(cookie));
        let reply = client.get("/shop/cart");
        assert_eq!(reply.status, 401, "{cookie}");
        assert_cookie_removed(&reply, SHOP_COOKIE);
        assert_eq!(client.cookie(SHOP_COOKIE), None);
    }
}

/// The reply removes the cookie `name`.
fn assert_cookie_removed(reply: &edge_session_tests::Reply, name: &str) {
    let removal = reply
        .header("set-cookie")
        .unwrap_or_else(|| panic!("{name} is not removed: {reply:?}"));
    assert!(
        removal.starts_with(&format!("{name}=;")) && removal.contains("Max-Age=0"),
        "{removal}"
    );
}

#[test]
fn sessions_cannot_outlive_max_lifetime_however_active() {
    const LIFETIME: Duration = Duration::from_secs(4);
    // An idle timeout of an hour, slid on every visit: only max_lifetime
    // can end this session.
    let host = Host::start(&format!(
        r#"
{BASE_CONFIG}
[[routes]]
prefix = "/short-life"
component = "{counter}"
namespace = "short-life"
default_ttl = "1h"
refresh_fraction = 1.0
max_lifetime = "{}s"
[routes.cookie]
name = "short"
"#,
        LIFETIME.as_secs(),
        counter = guest("counter").display(),
    ));
    let mut client = host.client();
    let asked = Instant::now();
    assert_eq!(client.get("/short-life").json()["count"], 1);
    // The session started between `asked` and `started`.
    let started = Instant::now();
    let first = client.cookie("__Host-short").unwrap().to_owned();
    // A margin for the store's millisecond clock.
    let margin = Duration::from_millis(100);
    // A visit every 250 ms, each sliding the hour-long idle timeout, until
    // the session ends. Each check holds whatever the machine's pace.
    for count in 2.. {
        std::thread::sleep(Duration::from_millis(250));
        let sent = Instant::now();
        let reply = client.get("/short-life").json()["count"].as_i64().unwrap();
        let answered = Instant::now();
        let cookie = client.cookie("__Host-short").unwrap();
        if reply == 1 {
            // A new session: the old one ended, and not before its time.
            assert!(answered + margin >= asked + LIFETIME, "ended early");
            assert_ne!(cookie, first, "a new id");
            return;
        }
        assert_eq!((reply, cookie), (count, first.as_str()), "the same session");
        assert!(
            sent < started + LIFETIME + margin,
            "{LIFETIME:?} after its start the session is over, however active"
        );
    }
}

#[test]
fn activity_slides_the_expiry_only_where_configured() {
    // Hour-long TTLs that nothing here can reach: what is compared is the
    // expiry each session has in the store after a visit.
    let route = |prefix: &str, refresh_fraction: f64| {
        format!(
            r#"
[[routes]]
prefix = "/{prefix}"
component = "{faulty}"
namespace = "{prefix}"
default_ttl = "1h"
refresh_fraction = {refresh_fraction:.1}
[routes.cookie]
name = "{prefix}"
"#,
            faulty = guest("faulty").display(),
        )
    };
    let host = Host::start(&format!(
        "{BASE_CONFIG}{}{}",
        route("slide", 1.0),
        route("fixed", 0.0)
    ));
    let mut visitors = Vec::new();
    for prefix in ["slide", "fixed"] {
        let mut client = host.client();
        let start = client.get(&format!("/{prefix}/current?op=start")).json();
        assert_eq!(start["session"]["expires-in"], 3600, "{start}");
        let id = start["session"]["id"].as_str().unwrap().to_owned();
        visitors.push((prefix, client, id, Instant::now()));
    }
    // Time for the expiries to run down by whole seconds.
    std::thread::sleep(Duration::from_millis(2500));
    for (prefix, client, id, started) in &mut visitors {
        let sent = Instant::now();
        let load = client.get(&format!("/{prefix}/current?op=load")).json();
        assert_eq!(load["session"]["id"], id.as_str(), "{load}");
        let stored = client.ops(&format!("/{prefix}"), json!({"op": "get", "id": id}));
        let answered = Instant::now();
        let seconds = |value: &Value| value.as_f64().unwrap_or_else(|| panic!("{load} {stored}"));
        let loaded = seconds(&load["session"]["expires-in"]);
        let in_store = seconds(&stored["ok"]["expires-in"]);
        // Whole seconds, rounded up; a second of margin for the clocks.
        if *prefix == "slide" {
            // The visit slid the expiry back to the full TTL, in the store.
            assert_eq!(loaded, 3600.0, "{load}");
            let least = 3600.0 - (answered - sent).as_secs_f64() - 1.0;
            assert!(in_store >= least, "the store has the slid expiry: {stored}");
        } else {
            // Still the expiry set at the start, run down since.
            let most = (3600.0 - (sent - *started).as_secs_f64()).ceil() + 1.0;
            assert!(loaded <= most, "not slid: {load}");
            assert!(in_store <= most, "not slid in the store: {stored}");
        }
    }
}

#[test]
fn the_cookie_cannot_change_after_the_response_head() {
    let host = Host::start(&with_admin(&demo_config("30m")));
    let mut visitor = host.client();
    let started = visitor.get("/faulty/current?op=start").json();
    let id = started["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(visitor.cookie(COUNTER_COOKIE), Some(id.as_str()));

    let operations = host.store_operations();
    let refused = "Err(InvalidArgument(\"the response head has been sent: \
                   start, rotate or end the session before responding\"))\n";
    for path in [
        "/faulty/late-start",
        "/faulty/late-rotate",
        "/faulty/late-end",
    ] {
        for client in [&mut visitor, &mut host.client()] {
            let reply = client.get(path);
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, refused),
                "{path}"
            );
            assert!(reply.header("set-cookie").is_none(), "{path}: {reply:?}");
        }
    }
    assert_eq!(
        host.store_operations(),
        operations,
        "nothing created, renamed or deleted in the store"
    );
    // The session is as it was, under its old id.
    assert_eq!(visitor.cookie(COUNTER_COOKIE), Some(id.as_str()));
    let reply = visitor.get("/faulty/current?op=load");
    assert!(reply.header("set-cookie").is_none(), "{reply:?}");
    assert_eq!(reply.json()["session"]["id"], id.as_str());
    assert_eq!(reply.json()["session"]["data"], r#"{"n":1}"#);
}

/// The counter and the shop on a host that signs its cookies with `keys`
/// (id, base64 secret), the signing key first.
fn signed_config(keys: &[(&str, &str)]) -> String {
    let keys: String = keys
        .iter()
        .map(|(id, secret)| format!("[[cookie_keys]]\nid = \"{id}\"\nsecret = \"{secret}\"\n"))
        .collect();
    let apps = flows::app_routes(&guest("counter"), &guest("cart"), "30m", "");
    format!("{keys}\n{BASE_CONFIG}\n{apps}")
}

#[test]
fn signed_cookies_reject_forgeries_and_survive_key_rotation() {
    const OLD: (&str, &str) = ("old", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
    const NEW: (&str, &str) = ("new", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
    let mut host = Host::start(&signed_config(&[OLD]));
    let mut client = host.client();
    assert_eq!(client.get("/counter").json()["count"], 1);
    let signed = client.cookie(COUNTER_COOKIE).unwrap().to_owned();
    let (id, signature) = signed.split_once('.').expect("id.key.signature");
    assert!(signature.starts_with("old."), "{signed}");
    assert_eq!(client.get("/counter").json()["count"], 2);

    // The bare id, another id under the same signature, an unknown key id
    // or a signature made for another cookie name: none is adopted, and a
    // route that starts no session removes it.
    let forgeries = [
        id.to_owned(),
        format!("AAAAAAAAAAAAAAAAAAAAAA.{signature}"),
        signed.replacen(".old.", ".gone.", 1),
    ];
    for forged in forgeries {
        let mut forger = host.client();
        forger.set_cookie(COUNTER_COOKIE, Some(&forged));
        assert_eq!(forger.get("/counter").json()["count"], 1, "{forged}");
        forger.set_cookie(SHOP_COOKIE, Some(&forged));
        let reply = forger.get("/shop/cart");
        assert_eq!(reply.status, 401, "{forged}");
        assert_cookie_removed(&reply, SHOP_COOKIE);
    }
    assert_eq!(
        client.get("/counter").json()["count"],
        3,
        "the real one still counts"
    );

    // A new signing key: cookies signed with the old key stay valid ...
    host.kill_hard();
    host.reconfigure(&signed_config(&[NEW, OLD]));
    host.restart();
    let mut returning = host.client();
    returning.set_cookie(COUNTER_COOKIE, Some(&signed));
    assert_eq!(returning.get("/counter").json()["count"], 4);
    let mut newcomer = host.client();
    assert_eq!(newcomer.get("/counter").json()["count"], 1);
    assert!(newcomer.cookie(COUNTER_COOKIE).unwrap().contains(".new."));

    // ... until the old key is retired.
    host.kill_hard();
    host.reconfigure(&signed_config(&[NEW]));
    host.restart();
    let mut returning = host.client();
    returning.set_cookie(COUNTER_COOKIE, Some(&signed));
    assert_eq!(returning.get("/counter").json()["count"], 1);
}

#[test]
fn a_guest_cannot_reach_another_namespace_whatever_id_it_passes() {
    let host = Host::start(&demo_config("30m"));
    let client = &mut host.client();
    let created = client.ops(
        "/tenant-a",
        json!({"op": "create", "data": r#"{"secret":7}"#}),
    );
    let id = created["ok"].as_str().expect("an id").to_owned();
    let before = client.ops("/tenant-a", json!({"op": "get", "id": id}));
    assert_eq!(before["ok"]["data"], r#"{"secret":7}"#);

    // Tenant B tries every operation on tenant A's id.
    let attempts = [
        (json!({"op": "get", "id": id}), json!({"ok": null})),
        (
            json!({"op": "get-field", "id": id, "name": "secret"}),
            json!({"error": "not-found"}),
        ),
        (
            json!({"op": "touch", "id": id, "ttl": 5}),
            json!({"ok": false}),
        ),
        (json!({"op": "delete", "id": id}), json!({"ok": false})),
        (
            json!({"op": "rotate", "id": id}),
            json!({"error": "not-found"}),
        ),
        (
            json!({"op": "set-field", "id": id, "name": "secret", "value": "0"}),
            json!({"error": "not-found"}),
        ),
        (
            json!({"op": "remove-field", "id": id, "name": "secret"}),
            json!({"error": "not-found"}),
        ),
        (
            json!({"op": "incr-field", "id": id, "name": "secret", "delta": 1}),
            json!({"error": "not-found"}),
        ),
        (
            json!({"op": "save-if", "id": id, "data": "{}", "generation": 1}),
            json!({"error": "not-found"}),
        ),
    ];
    for (attempt, expected) in attempts {
        assert_eq!(
            client.ops("/tenant-b", attempt.clone()),
            expected,
            "{attempt}"
        );
    }
    // An upsert under the same id lands in B's own namespace.
    assert_eq!(
        client.ops(
            "/tenant-b",
            json!({"op": "save", "id": id, "data": r#"{"mine":1}"#})
        ),
        json!({"ok": 1})
    );
    let b_view = client.ops("/tenant-b", json!({"op": "get", "id": id}));
    assert_eq!(b_view["ok"]["data"], r#"{"mine":1}"#);

    // A's session is exactly as it was: data, generation and expiry.
    let after = client.ops("/tenant-a", json!({"op": "get", "id": id}));
    assert_eq!(after["ok"]["data"], before["ok"]["data"]);
    assert_eq!(after["ok"]["generation"], before["ok"]["generation"]);
    assert!(
        after["ok"]["expires-in"].as_u64().unwrap() > 5,
        "not touched by B"
    );

    // A request-bound session does not cross namespaces either: the
    // counter's cookie, presented to a route of another namespace, is ignored.
    let mut visitor = host.client();
    assert_eq!(visitor.get("/counter").json()["count"], 1);
    assert_eq!(visitor.get("/counter").json()["count"], 2);
    let stolen = visitor.cookie(COUNTER_COOKIE).unwrap().to_owned();
    let mut elsewhere = host.client();
    elsewhere.set_cookie("__Host-short", Some(&stolen));
    assert_eq!(elsewhere.get("/short-life").json()["count"], 1);
    assert_ne!(elsewhere.cookie("__Host-short"), Some(stolen.as_str()));
    assert_eq!(visitor.get("/counter").json()["count"], 3);
}

#[test]
fn bad_arguments_get_typed_errors_and_lose_nothing() {
    let host = Host::start(&demo_config("30m"));
    let client = &mut host.client();
    let created = client.ops(
        "/tenant-a",
        json!({"op": "create", "data": r#"{"n":1,"s":"x"}"#}),
    );
    let id = created["ok"].as_str().unwrap().to_owned();
    let huge = format!(r#"{{"blob":"{}"}}"#, "x".repeat(200 * 1024));
    let long_name = "n".repeat(257);
    let too_deep_value = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let too_deep = format!(r#"{{"a":{too_deep_value}}}"#);
    let invalid = |why: &str| format!("invalid-argument: {why}");
    let cases = [
        (
            json!({"op": "save", "id": id, "data": "not json"}),
            "invalid-argument",
        ),
        (
            json!({"op": "save", "id": id, "data": "[1,2]"}),
            "invalid-argument",
        ),
        // Valid JSON syntax that JSON readers (the guest SDKs) then fail on.
        (
            json!({"op": "save", "id": id, "data": r#"{"n":1e999}"#}),
            "invalid-argument: data: expected a JSON object: number out of range",
        ),
        (
            json!({"op": "create", "data": r#"{"s":"\ud800"}"#}),
            "invalid-argument: data: expected a JSON object: unexpected end of hex escape",
        ),
        (
            json!({"op": "save", "id": id, "data": too_deep}),
            "invalid-argument: data: expected a JSON object: nested too deep",
        ),
        (
            json!({"op": "set-field", "id": id, "name": "n", "value": "-1e400"}),
            "invalid-argument: value: not valid JSON: number out of range",
        ),
        (
            json!({"op": "set-field", "id": id, "name": "n", "value": r#"["\udc00"]"#}),
            "invalid-argument: value: not valid JSON: lone leading surrogate",
        ),
        (
            // 101 levels in the session object.
            json!({"op": "set-field", "id": id, "name": "n", "value": too_deep_value}),
            "invalid-argument: value: not valid JSON: nested too deep",
        ),
        (json!({"op": "save", "id": id, "data": huge}), "too-large"),
        (json!({"op": "create", "data": huge}), "too-large"),
        (
            json!({"op": "set-field", "id": id, "name": "", "value": "1"}),
            "invalid-argument",
        ),
        (
            json!({"op": "set-field", "id": id, "name": long_name, "value": "1"}),
            "invalid-argument",
        ),
        (
            json!({"op": "set-field", "id": id, "name": "n", "value": "{oops"}),
            "invalid-argument",
        ),
        (
            json!({"op": "incr-field", "id": id, "name": "s", "delta": 1}),
            "invalid-argument",
        ),
        (
            json!({"op": "incr-field", "id": id, "name": "n", "delta": i64::MAX}),
            "invalid-argument",
        ),
        (
            json!({"op": "touch", "id": id, "ttl": 0}),
            "invalid-argument",
        ),
        (
            json!({"op": "touch", "id": id, "ttl": 86_401}),
            "invalid-argument",
        ),
        (
            json!({"op": "save", "id": id, "data": "{}", "ttl": u64::MAX}),
            "invalid-argument",
        ),
        (json!({"op": "get", "id": ""}), "invalid-argument"),
        (
            json!({"op": "get", "id": "../../etc/passwd"}),
            "invalid-argument",
        ),
        (
            json!({"op": "get", "id": "A".repeat(10_000)}),
            "invalid-argument",
        ),
    ];
    for (attempt, expected) in cases {
        let reply = client.ops("/tenant-a", attempt.clone());
        let error = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{attempt} -> {reply}"));
        assert!(error.starts_with(expected), "{attempt} -> {error}");
        if expected == "invalid-argument" {
            assert!(error.len() > invalid("").len(), "says why: {error}");
        }
    }
    let after = client.ops("/tenant-a", json!({"op": "get", "id": id}));
    assert_eq!(after["ok"]["data"], r#"{"n":1,"s":"x"}"#, "nothing lost");
    assert_eq!(after["ok"]["generation"], 1, "nothing written");
}

#[test]
fn malformed_and_oversized_cookies_and_headers_get_no_session_or_a_4xx() {
    let host = Host::start(&demo_config("30m"));
    let raw = |head: &str| {
        host.raw(
            format!("GET /counter HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    // Garbage in the cookie: no session is adopted, a fresh one starts.
    for cookie in [
        "__Host-sid=",
        "__Host-sid=%00%ff; ;;=;==",
        "__Host-sid=\"AAAAAAAAAAAAAAAAAAAAAA\"",
        "__Host-sid=AAAAAAAAAAAAAAAAAAAAAA; __Host-sid=../../x",
    ] {
        let reply = raw(&format!("Cookie: {cookie}\r\n"));
        assert!(reply.starts_with("HTTP/1.1 200"), "{cookie}: {reply}");
        assert!(reply.contains(r#"{"count":1}"#), "{cookie}: {reply}");
    }
    // Bytes that are not text in a cookie header: HTTP allows them in a
    // header value (obs-text), so the request is served. The host reads the
    // cookie as lossy UTF-8, where such a value is no id: no session is
    // adopted, and the counter starts a fresh one.
    let cookie_head = |cookie: &[u8]| {
        let mut request = b"GET /counter HTTP/1.1\r\nHost: x\r\nCookie: ".to_vec();
        request.extend_from_slice(cookie);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        host.raw_reply(&request)
    };
    let reply = cookie_head(b"__Host-sid=\xff\xfe");
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"{"count":1}"#));
    let fresh = reply.header("set-cookie").unwrap_or_default();
    let fresh_id = fresh
        .strip_prefix("__Host-sid=")
        .and_then(|rest| rest.split_once(';'))
        .map_or("", |(id, _)| id);
    assert_eq!(fresh_id.len(), 22, "a new session's cookie: {fresh}");
    // Nor do such bytes in another cookie hide the session's own.
    let mut visitor = host.client();
    assert_eq!(visitor.get("/counter").json()["count"], 1);
    let sid = visitor.cookie(COUNTER_COOKIE).unwrap().to_owned();
    let mut both = b"lang=fran\xe7ais; __Host-sid=".to_vec();
    both.extend_from_slice(sid.as_bytes());
    let reply = cookie_head(&both);
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"{"count":2}"#));
    assert!(reply.header("set-cookie").is_none(), "{reply:?}");

    // Oversized headers are refused before any guest runs.
    let oversized = raw(&format!("Cookie: a={}\r\n", "x".repeat(1024 * 1024)));
    assert!(oversized.starts_with("HTTP/1.1 431"), "{oversized}");
    let many: String = (0..200).map(|i| format!("X-Junk-{i}: {i}\r\n")).collect();
    let too_many = raw(&many);
    assert!(too_many.starts_with("HTTP/1.1 431"), "{too_many}");
    let malformed = raw("No colon here\r\n");
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");

    // The host is unharmed.
    assert_eq!(host.client().get("/counter").json()["count"], 1);
}

#[test]
fn encrypted_sessions_work_end_to_end_and_never_reach_the_disk_in_clear() {
    const USER: &str = "ada-lovelace-1815";
    let encrypted = demo_config("30m").replacen(
        "[store.embedded]",
        "[[store.encryption_keys]]\nid = \"d1\"\nsecret = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n\n[store.embedded]",
        1,
    );
    let (mut host, shopper, cart) = shop_then_kill(&encrypted, USER);
    let files = files_holding(&host, USER);
    assert!(files.is_empty(), "the user name is in clear in {files:?}");
    host.restart();
    let mut returning = host.client();
    returning.set_cookie(SHOP_COOKIE, shopper.cookie(SHOP_COOKIE));
    assert_eq!(
        returning.get("/shop/cart").json(),
        cart,
        "decrypts after a restart"
    );

    // The control: the same traffic without encryption does leave the name
    // in those files, so the search above looks where the sessions are.
    let (plain, _, _) = shop_then_kill(&demo_config("30m"), USER);
    assert!(
        !files_holding(&plain, USER).is_empty(),
        "without encryption the user name is on disk"
    );
}

/// Logs `user` in to the shop on a host with `config`, fills the cart, then
/// kills the host (nothing flushed on the way out).
fn shop_then_kill(config: &str, user: &str) -> (Host, Client, Value) {
    let mut host = Host::start(config);
    let mut shopper = host.client();
    assert_eq!(
        shopper
            .post("/shop/login", &format!(r#"{{"user":"{user}"}}"#))
            .status,
        200
    );
    for _ in 0..3 {
        shopper.post("/shop/cart/items", r#"{"sku":"apple","qty":2}"#);
    }
    let cart = shopper.get("/shop/cart").json();
    assert_eq!(
        (cart["user"].as_str(), &cart["items"]["apple"]),
        (Some(user), &json!(6))
    );
    host.kill_hard();
    (host, shopper, cart)
}

/// The files of the host's session store that hold `text`.
fn files_holding(host: &Host, text: &str) -> Vec<std::path::PathBuf> {
    let files = walk(&host.dir.path().join("sessions"));
    assert!(!files.is_empty(), "the store has files");
    files
        .into_iter()
        .filter(|file| {
            let bytes = std::fs::read(file).unwrap();
            bytes.windows(text.len()).any(|w| w == text.as_bytes())
        })
        .collect()
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn capabilities_are_granted_per_route_and_only_as_listed() {
    use std::io::{Read, Write};
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("motd.txt"), "welcome").unwrap();
    // A tiny upstream API, and a second port nobody listed.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unlisted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (api, other) = (
        upstream.local_addr().unwrap().to_string(),
        unlisted.local_addr().unwrap().to_string(),
    );
    std::thread::spawn(move || {
        for stream in upstream.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
        }
    });
    let config = format!(
        r#"
{BASE_CONFIG}
[[routes]]
prefix = "/allowed"
component = "{faulty}"
outgoing_http = ["{api}"]
read_only_dir = "{files}"
[routes.env]
GREETING = "hello"

[[routes]]
prefix = "/denied"
component = "{faulty}"
"#,
        faulty = guest("faulty").display(),
        files = files.path().display(),
    );
    let host = Host::start(&config);
    let outgoing =
        |route: &str, to: &str| host.client().get(&format!("{route}/outgoing?to={to}")).body;
    assert_eq!(outgoing("/allowed", &api), "sent! status 200\n");
    for (route, to) in [
        ("/denied", &api),
        ("/allowed", &other),
        ("/allowed", &"example.com".to_owned()),
    ] {
        assert!(
            outgoing(route, to).contains("HttpRequestDenied"),
            "{route} -> {to}"
        );
    }

    // Environment and a read-only directory, for the listing route only.
    let get = |path: &str| host.client().get(path).body;
    assert_eq!(get("/allowed/env?name=GREETING"), "Some(\"hello\")\n");
    assert_eq!(get("/allowed/env"), "1 variables\n");
    assert_eq!(get("/denied/env"), "0 variables\n");
    assert_eq!(get("/allowed/read?path=/motd.txt"), "Ok(\"welcome\")\n");
    assert!(get("/allowed/write?path=/motd.txt").starts_with("Err("));
    assert!(get("/allowed/read?path=/../../etc/passwd").starts_with("Err("));
    assert!(get("/denied/read?path=/motd.txt").starts_with("Err("));
    assert_eq!(
        std::fs::read_to_string(files.path().join("motd.txt")).unwrap(),
        "welcome"
    );
}
