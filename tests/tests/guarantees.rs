//! The host's guarantees (docs/sessions.md "Security", docs/sandbox.md),
//! each checked through the real binary over HTTP, each with a control
//! that shows the check would see the guarantee broken. Nothing here
//! depends on how long a step takes: where a guest must be running, a gate
//! it calls holds it until the test lets it go.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use edge_session_tests::gate::{Gate, read_head};
use edge_session_tests::{BASE_CONFIG, Client, Host, guest, metric_sample, with_admin};
use serde_json::{Value, json};

/// A route of the `guest` component at `prefix`, with extra TOML `settings`.
fn route(prefix: &str, component: &str, settings: &str) -> String {
    format!(
        "\n[[routes]]\nprefix = \"{prefix}\"\ncomponent = \"{}\"\n{settings}\n",
        guest(component).display()
    )
}

/// A route of the faulty guest at `prefix`, with extra TOML `settings`.
fn faulty_route(prefix: &str, settings: &str) -> String {
    route(prefix, "faulty", settings)
}

#[test]
fn rotate_gives_a_new_cookie_kills_the_old_id_and_keeps_the_lifetime() {
    // An idle timeout longer than the absolute one, slid on every load:
    // each load sets the expiry to what is left of the session's lifetime,
    // counted from its start, which is how the lifetime shows.
    let host = Host::start(&format!(
        "{BASE_CONFIG}{}",
        faulty_route(
            "/rot",
            "namespace = \"rot\"\ndefault_ttl = \"2h\"\nmax_lifetime = \"1h\"\n\
             refresh_fraction = 1.0\n[routes.cookie]\nname = \"rot\""
        )
    ));
    const COOKIE: &str = "__Host-rot";
    let mut user = host.client();
    let start = user.get("/rot/current?op=start").json();
    let started = Instant::now();
    assert_eq!(start["session"]["expires-in"], 3600, "{start}");
    let old = start["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(user.cookie(COOKIE), Some(old.as_str()));

    // Long enough for the lifetime left to drop by whole seconds.
    std::thread::sleep(Duration::from_secs(3));
    let reply = user.get("/rot/current?op=rotate");
    let rotated = reply.json();
    let new = rotated["session"]["id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        reply.header("set-cookie").and_then(|c| c.split(';').next()),
        Some(format!("{COOKIE}={new}").as_str()),
        "a new cookie"
    );
    assert_eq!(rotated["session"]["data"], r#"{"n":1}"#, "the same data");

    // The old id is dead: its cookie gets no session, and is removed.
    let mut stale = host.client();
    stale.set_cookie(COOKIE, Some(&old));
    let reply = stale.get("/rot/current?op=load");
    assert_eq!(reply.json(), json!({"session": null}));
    assert!(
        reply
            .header("set-cookie")
            .is_some_and(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")),
        "{reply:?}"
    );
    assert_eq!(
        stale.ops("/rot", json!({"op": "get", "id": old})),
        json!({"ok": null})
    );

    // The new one is the session, with the lifetime it had: what is left
    // of the hour since its start, not a fresh hour since the rotation.
    let sent = Instant::now();
    let load = user.get("/rot/current?op=load").json();
    assert_eq!(load["session"]["id"], new.as_str(), "{load}");
    assert_eq!(load["session"]["data"], r#"{"n":1}"#);
    // Whole seconds, rounded up, and a second of margin for the clocks.
    let most = (3600.0 - (sent - started).as_secs_f64()).ceil() + 1.0;
    for (what, left) in [
        ("after the rotation", &rotated["session"]["expires-in"]),
        ("at the next load", &load["session"]["expires-in"]),
    ] {
        let left = left.as_f64().unwrap();
        assert!(
            left <= most,
            "{what}: {left} s left, more than the {most} s its start left it"
        );
    }
}

#[test]
fn logs_never_show_a_session_id() {
    let mut host = Host::start_traced(&format!(
        "{BASE_CONFIG}\n[log]\nformat = \"json\"\n{}{}{}{}",
        route("/counter", "counter", "namespace = \"counter\""),
        faulty_route(
            "/brief",
            "namespace = \"brief\"\nmax_lifetime = \"1s\"\n[routes.cookie]\nname = \"brief\""
        ),
        faulty_route("/faulty", "namespace = \"faulty\""),
        route(
            "/shop",
            "cart",
            "namespace = \"shop\"\n[routes.cookie]\nname = \"shop_sid\""
        ),
    ));
    let mut ids = Vec::new();
    let keep = |client: &Client, name: &str, ids: &mut Vec<String>| {
        ids.extend(client.cookie(name).map(str::to_owned));
    };

    // Counter visits: start, then loads and field writes.
    let mut visitor = host.client();
    for _ in 0..3 {
        assert_eq!(visitor.get("/counter").status, 200);
        keep(&visitor, "__Host-sid", &mut ids);
    }
    // Login, cart, login again (a new id), logout.
    let mut shopper = host.client();
    for (path, body) in [
        ("/shop/login", r#"{"user":"ada"}"#),
        ("/shop/cart/items", r#"{"sku":"fig","qty":1}"#),
        ("/shop/login", r#"{"user":"ada"}"#),
    ] {
        assert_eq!(shopper.post(path, body).status, 200, "{path}");
        keep(&shopper, "__Host-shop_sid", &mut ids);
    }
    assert_eq!(shopper.post("/shop/logout", "").status, 200);
    // Every `current` call, and the raw interface.
    let mut probe = host.client();
    for op in ["start", "load", "rotate", "load", "end"] {
        let reply = probe.get(&format!("/faulty/current?op={op}")).json();
        ids.extend(reply["session"]["id"].as_str().map(str::to_owned));
    }
    let created = probe.ops("/faulty", json!({"op": "create", "data": "{}"}));
    let raw_id = created["ok"].as_str().unwrap().to_owned();
    assert_eq!(
        probe.ops(
            "/faulty",
            json!({"op": "get-field", "id": raw_id, "name": "x"})
        ),
        json!({"ok": null})
    );
    ids.push(raw_id);
    // Cookies the host refuses: an unknown id and garbage.
    for stale in ["AAAAAAAAAAAAAAAAAAAAAA", "garbage"] {
        let mut client = host.client();
        client.set_cookie("__Host-sid", Some(stale));
        assert_eq!(client.get("/counter").json()["count"], 1);
        keep(&client, "__Host-sid", &mut ids);
    }
    ids.push("AAAAAAAAAAAAAAAAAAAAAA".to_owned());
    // A session that outlives its max_lifetime (its TTL stretched past it
    // with the raw interface): the host logs its end.
    let mut brief = host.client();
    let start = brief.get("/brief/current?op=start").json();
    let expired = start["session"]["id"].as_str().unwrap().to_owned();
    let touch = json!({"op": "touch", "id": expired, "ttl": 3600});
    assert_eq!(brief.ops("/brief", touch), json!({"ok": true}));
    std::thread::sleep(Duration::from_millis(1500));
    let load = brief.get("/brief/current?op=load").json();
    assert_eq!(load, json!({"session": null}), "over after 1 s");
    ids.push(expired);
    // A guest that fails, and one that writes to stdout.
    assert_eq!(probe.get("/faulty/panic").status, 500);
    let marked = probe.send_with_header("GET", "/faulty/print", ("x-request-id", "log-marker"));
    assert_eq!(marked.status, 200);

    let log = host.stop();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "each session its own id: {ids:?}");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect();
    // The controls: the log has the requests' lines, with their span, and
    // the line about the expired session, with its keyed tag.
    assert!(
        lines.iter().any(|line| line["span"]["id"] == "log-marker"
            && line["fields"]["message"] == "guest stdout"),
        "the marker request's line:\n{log}"
    );
    let tag = lines
        .iter()
        .find(|line| line["fields"]["message"] == "session outlived max_lifetime")
        .map(|line| &line["fields"]["session"])
        .unwrap_or_else(|| panic!("the expired session's line:\n{log}"));
    for id in &ids {
        assert!(!log.contains(id.as_str()), "the log shows {id}:\n{log}");
    }
    // Where a line names a session, it is by its keyed tag.
    let tag = tag.as_str().unwrap_or_default();
    assert!(
        tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{tag}"
    );
}

#[test]
fn a_malformed_cookie_never_reaches_the_store() {
    let host = Host::start(&with_admin(&format!(
        "{BASE_CONFIG}{}",
        faulty_route("/probe", "namespace = \"probe\"")
    )));
    let load_with = |cookie: &[u8]| {
        let mut request = b"GET /probe/current?op=load HTTP/1.1\r\nHost: x\r\nCookie: ".to_vec();
        request.extend_from_slice(cookie);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let reply = host.raw_reply(&request);
        let shown = String::from_utf8_lossy(cookie);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, r#"{"session":null}"#),
            "{shown}"
        );
        let removal = reply.header("set-cookie").unwrap_or_default();
        assert!(
            removal.starts_with("__Host-sid=;") && removal.contains("Max-Age=0"),
            "{shown}: the cookie is removed: {reply:?}"
        );
    };
    let long = format!("__Host-sid={}", "A".repeat(10_000));
    let malformed: [&[u8]; 11] = [
        b"__Host-sid=",
        b"__Host-sid=garbage",
        // The right length, but the last character carries bits an id never has.
        b"__Host-sid=AAAAAAAAAAAAAAAAAAAAAB",
        b"__Host-sid=AAAAAAAAAAAAAAAAAAAAAAA",
        b"__Host-sid=AAAAAAAAAAAAAAAAAAAAA",
        b"__Host-sid=\"AAAAAAAAAAAAAAAAAAAAAA\"",
        b"__Host-sid=AAAAAAAAAAAAAAAAAAAA%41A",
        b"__Host-sid=AAAAAAAAAAAAAAAAAAAAA+",
        b"__Host-sid=../../../../etc/passwd",
        b"__Host-sid=\xff\xfeAAAAAAAAAAAAAAAAAAAA",
        long.as_bytes(),
    ];
    let before = host.store_operations();
    for cookie in malformed {
        load_with(cookie);
    }
    assert_eq!(
        host.store_operations(),
        before,
        "no store operation for a malformed cookie"
    );

    // The control: a well-formed id, unknown to the store, is looked up.
    load_with(b"__Host-sid=AAAAAAAAAAAAAAAAAAAAAA");
    load_with(b"__Host-sid=BBBBBBBBBBBBBBBBBBBBBA");
    let after = host.store_operations();
    let misses = |operations: &[(String, f64)]| {
        operations
            .iter()
            .find(|(series, _)| {
                series.contains("op=\"load\"") && series.contains("result=\"miss\"")
            })
            .map_or(0.0, |(_, count)| *count)
    };
    assert_eq!(misses(&after), misses(&before) + 2.0, "{after:?}");
    let others = |operations: Vec<(String, f64)>| {
        let miss =
            |series: &str| series.contains("op=\"load\"") && series.contains("result=\"miss\"");
        operations
            .into_iter()
            .filter(|(series, _)| !miss(series))
            .collect::<Vec<_>>()
    };
    assert_eq!(others(after), others(before), "nothing else");
}

#[test]
fn guests_have_no_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let host = Host::start(&format!(
        "{BASE_CONFIG}{}{}",
        faulty_route("/sandboxed", ""),
        faulty_route("/granted", &format!("outgoing_http = [\"{address}\"]")),
    ));
    let reply = host
        .client()
        .get(&format!("/sandboxed/socket?to={address}"));
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            200,
            "tcp: refused at create: access-denied\nudp: refused at create: access-denied\n"
        )
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing connected"
    );

    // The control: the same address is reachable from a guest, through the
    // outgoing HTTP its route grants.
    listener.set_nonblocking(false).unwrap();
    let upstream = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_head(&mut stream);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi")
            .unwrap();
    });
    let reply = host
        .client()
        .get(&format!("/granted/outgoing?to={address}"));
    assert_eq!(reply.body, "sent! status 200\n");
    upstream.join().unwrap();
}

#[test]
fn a_full_engine_answers_503_with_retry_after_at_once() {
    let mut gate = Gate::open();
    // Two instances for the whole engine, two per route: the routes
    // together allow more than the engine holds.
    let route = |prefix: &str| {
        faulty_route(
            prefix,
            &format!(
                "max_concurrency = 2\ntimeout = \"5m\"\noutgoing_http = [\"{}\"]",
                gate.address
            ),
        )
    };
    let config = format!(
        "{}{}{}",
        BASE_CONFIG.replacen("[engine]\n", "[engine]\nmax_instances = 2\n", 1),
        route("/a"),
        route("/b")
    );
    let host = Host::start(&with_admin(&config));
    let holders: Vec<_> = ["/a", "/b"]
        .into_iter()
        .map(|route| {
            let mut client = host.client();
            let path = format!("{route}/outgoing?to={}", gate.address);
            std::thread::spawn(move || client.get(&path))
        })
        .collect();
    // One instance of each route runs: neither route is at its limit, the
    // engine is.
    gate.wait_for(2);
    for route in ["/a", "/b"] {
        let reply = host.client().get(&format!("{route}/fine"));
        assert_eq!(
            (
                reply.status,
                reply.header("retry-after"),
                reply.body.as_str()
            ),
            (503, Some("1"), "busy, retry shortly\n"),
            "{route}: {reply:?}"
        );
    }
    // Counted as the engine's overload, not as a route's queue.
    let metrics = host.admin().get("/metrics").body;
    for route in ["/a", "/b"] {
        let overloaded = metric_sample(
            &metrics,
            "edge_session_guest_faults_total",
            &[("route", route), ("reason", "overloaded")],
        );
        assert_eq!(overloaded, Some(1.0), "{route}:\n{metrics}");
    }

    gate.release_all();
    for holder in holders {
        let reply = holder.join().unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "sent! status 200\n")
        );
    }
    // The pool's slots come back once the runs have ended.
    let mut client = host.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reply = client.get("/a/fine");
    while reply.status == 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        reply = client.get("/a/fine");
    }
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn an_oversized_streamed_response_is_cut_off() {
    const LIMIT: usize = 4096;
    let host = Host::start(&format!(
        "{BASE_CONFIG}{}",
        faulty_route("/limited", &format!("max_response_bytes = {LIMIT}"))
    ));
    // No declared length: the host can only count while it streams.
    let (status, body, complete) = streamed(&host, "/limited/stream?kb=64");
    assert_eq!(status, 200, "the head went out before the body");
    assert!(
        body <= LIMIT && !complete,
        "cut off at the limit: {body} bytes, complete: {complete}"
    );
    // The control: a streamed body of exactly the limit arrives whole.
    assert_eq!(
        streamed(&host, &format!("/limited/stream?kb={}", LIMIT / 1024)),
        (200, LIMIT, true)
    );
    assert_eq!(host.client().get("/limited/fine").status, 200);
}

/// GETs `path` on a connection of its own and reads until the host closes
/// it: the status, the body bytes that arrived (chunked), and whether the
/// body was complete (its last chunk arrived).
fn streamed(host: &Host, path: &str) -> (u16, usize, bool) {
    let mut stream = TcpStream::connect(&host.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    // A connection the host aborts may end in a reset: what came is enough.
    let _ = stream.read_to_end(&mut reply);
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
    assert!(
        head.contains("transfer-encoding: chunked") && !head.contains("content-length"),
        "{head}"
    );
    let status = head[9..12].parse().unwrap();
    let (mut rest, mut body) = (&reply[split + 4..], 0);
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (status, body, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
        if size == 0 {
            return (status, body, true);
        }
        let data = &rest[end + 2..];
        body += size.min(data.len());
        if data.len() < size + 2 {
            return (status, body, false);
        }
        rest = &data[size + 2..];
    }
}
