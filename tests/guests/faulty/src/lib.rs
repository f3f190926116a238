//! A test guest that misbehaves on purpose, one way per path, so the tests
//! can check that each failure ends only its own request:
//!
//! - `/panic`: traps;
//! - `/loop`: spins forever (CPU deadline);
//! - `/alloc`: allocates until the memory cap stops it;
//! - `/sleep?ms=N`: answers after N milliseconds (timeouts, graceful shutdown);
//! - `/silent`: returns without sending any response;
//! - `/session`: tries to create a session and reports the outcome;
//! - `/outgoing?to=HOST:PORT`: tries an outgoing HTTP request (to
//!   example.com by default) and reports the outcome;
//! - `/env[?name=NAME]`: reports how many environment variables it can see,
//!   or the value of one;
//! - `/read?path=P`, `/write?path=P`: reads or tries to write a file;
//! - `/big?kb=N`: answers with N KiB (client-disconnect tests), and notes
//!   `big: N KiB` on stdout first, which the host logs when the run ends;
//! - `/stream?kb=N`: streams N KiB in 1 KiB writes, declaring no length
//!   (chunked), the way a guest that does not know its size answers;
//! - `/calls?n=N`: creates a session, reads one of its fields N times with
//!   the raw WIT call, deletes it (the benchmark's cost of one guest→host
//!   call: the difference between N = 0 and a large N);
//! - `/fill?n=N`: creates N sessions of about 1 KiB of random text each
//!   (the benchmark's scale runs);
//! - `/remember`: reports what it finds in its statics, then scribbles on
//!   them: a fresh instance finds `41` and `0` (see [`remember`]);
//! - `/print[?kb=N]`: writes to stdout (N KiB more with `kb`) and stderr,
//!   answers with its request id;
//! - `/late-start`, `/late-rotate`, `/late-end`: sends its response head,
//!   then tries `current::start` (or `rotate`, `end`) and writes the outcome
//!   into the body;
//! - `/current?op=load|start|rotate|end`: the `current` call, its outcome
//!   as JSON: `{"session": {"id", "data", "generation", "expires-in"}}`
//!   (`null` for none), `{"ended": bool}`, or `{"error": "…"}`;
//! - `/socket?to=IP:PORT`: tries to open a TCP socket and connect it to the
//!   IPv4 address, and a UDP socket, and reports each outcome;
//! - `/linger?ms=N`: sends its whole response ("ok"), then goes on running
//!   for N milliseconds, as a guest's after-response work would;
//! - `POST /ops`: makes the `sessions` call its JSON body describes, with
//!   raw arguments, and reports the typed result (see `ops.rs`);
//! - anything else: 200 "ok".

mod ops;

use edge_session_guest::{Request, Response, current, sessions};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Faulty;

impl wasip2::exports::http::incoming_handler::Guest for Faulty {
    fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
        let path = incoming.path_with_query().unwrap_or_default();
        if path.ends_with("/silent") {
            // Dropping the outparam unset is the fault under test.
            return;
        }
        for (suffix, op) in [
            ("/late-start", Late::Start),
            ("/late-rotate", Late::Rotate),
            ("/late-end", Late::End),
        ] {
            if path.ends_with(suffix) {
                return late(out, op);
            }
        }
        if let Some(kb) = path
            .split_once("/stream?kb=")
            .and_then(|(_, kb)| kb.parse::<usize>().ok())
        {
            return stream(out, kb);
        }
        let linger = path
            .split_once("/linger?ms=")
            .and_then(|(_, ms)| ms.parse::<u64>().ok());
        edge_session_guest::serve::<Faulty>(incoming, out);
        if let Some(ms) = linger {
            wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
        }
    }
}

impl edge_session_guest::Handler for Faulty {
    fn handle(request: Request) -> Response {
        match request.path().rsplit('/').next().unwrap_or_default() {
            "panic" => panic!("the faulty guest panics on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "sleep" => {
                let ms = query_number(&request, "ms").unwrap_or(100);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                Response::text(200, &format!("slept {ms} ms\n"))
            }
            "session" => match sessions::create(&serde_json_object(), None) {
                Ok(_) => Response::text(200, "created\n"),
                Err(error) => Response::text(error.status(), &format!("{error:?}\n")),
            },
            "outgoing" => {
                let to = query(&request, "to").unwrap_or("example.com");
                Response::text(200, &format!("{}\n", outgoing_request(to)))
            }
            "ops" => ops::run(&request),
            "current" => current_call(query(&request, "op").unwrap_or_default()),
            "socket" => Response::text(200, &sockets(query(&request, "to").unwrap_or_default())),
            "env" => match query(&request, "name") {
                Some(name) => Response::text(200, &format!("{:?}\n", std::env::var(name).ok())),
                None => Response::text(200, &format!("{} variables\n", std::env::vars().count())),
            },
            "read" => {
                let path = query(&request, "path").unwrap_or("/");
                Response::text(200, &format!("{:?}\n", std::fs::read_to_string(path)))
            }
            "write" => {
                let path = query(&request, "path").unwrap_or("/x");
                Response::text(200, &format!("{:?}\n", std::fs::write(path, "x")))
            }
            "print" => {
                println!("hello from the guest's stdout");
                // More than the host keeps of a request's output.
                for _ in 0..query_number(&request, "kb").unwrap_or(0) {
                    println!("{}", "x".repeat(1023));
                }
                eprintln!("a note on stderr");
                let id = request.header("x-request-id").unwrap_or("none");
                Response::text(200, &format!("request {id}\n"))
            }
            "calls" => calls(query_number(&request, "n").unwrap_or(0)),
            "fill" => fill(query_number(&request, "n").unwrap_or(1)),
            "remember" => remember(),
            "big" => {
                let kb = query_number(&request, "kb").unwrap_or(1024);
                println!("big: {kb} KiB");
                Response::new(200, vec![b'x'; kb as usize * 1024])
            }
            _ => Response::text(200, "ok\n"),
        }
    }
}

/// Creates a session, reads one of its fields `n` times with the raw WIT
/// call, deletes it.
fn calls(n: u64) -> Response {
    use edge_session_guest::raw::sessions as wit;
    let outcome = sessions::create(&serde_json_object(), None).and_then(|id| {
        for _ in 0..n {
            std::hint::black_box(wit::get_field(&id, "n")?);
        }
        sessions::delete(&id)
    });
    match outcome {
        Ok(_) => Response::text(200, &format!("{n} calls\n")),
        Err(error) => Response::text(error.status(), &format!("{error:?}\n")),
    }
}

fn fill(n: u64) -> Response {
    use std::fmt::Write;
    for _ in 0..n {
        // Random hex: the store's block compression cannot shrink it, so the
        // disk each session takes is not flattered.
        let mut pad = String::with_capacity(1000);
        for byte in wasip2::random::random::get_random_bytes(500) {
            let _ = write!(pad, "{byte:02x}");
        }
        let data = std::collections::BTreeMap::from([("pad", pad)]);
        if let Err(error) = sessions::create(&data, None) {
            return Response::text(error.status(), &format!("{error:?}\n"));
        }
    }
    Response::text(200, &format!("{n} sessions\n"))
}

/// An initialized static (in the component's data image) and a zeroed one
/// (beyond it), both written by every request: what the next request finds
/// in them shows whether its memory was reset, however the host reuses the
/// slot.
fn remember() -> Response {
    use std::sync::Mutex;
    static SEEN: Mutex<u64> = Mutex::new(41);
    static SCRATCH: Mutex<[u8; 256 * 1024]> = Mutex::new([0; 256 * 1024]);
    let mut seen = SEEN.lock().unwrap();
    let mut scratch = SCRATCH.lock().unwrap();
    let dirty = scratch.iter().filter(|&&byte| byte != 0).count();
    let reply = format!("{} {dirty}\n", *seen);
    *seen += 1;
    scratch.fill(0xff);
    Response::text(200, &reply)
}

/// What `/late-…` tries once its response head is out.
#[derive(Clone, Copy)]
enum Late {
    Start,
    Rotate,
    End,
}

fn late(out: ResponseOutparam, op: Late) {
    use wasip2::http::types::{Fields, OutgoingBody, OutgoingResponse};
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("first call");
    ResponseOutparam::set(out, Ok(response));
    let outcome = match op {
        Late::Start => format!(
            "{:?}",
            current::start(&serde_json_object()).map(|session| session.id)
        ),
        Late::Rotate => format!(
            "{:?}",
            current::rotate::<serde_json::Value>().map(|session| session.id)
        ),
        Late::End => format!("{:?}", current::end()),
    };
    let stream = body.write().expect("first call");
    let _ = stream.blocking_write_and_flush(format!("{outcome}\n").as_bytes());
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// Streams `kb` KiB with no `content-length`, 1 KiB per write, until done
/// or until a write fails (the host cut the response off).
fn stream(out: ResponseOutparam, kb: usize) {
    use wasip2::http::types::{Fields, OutgoingBody, OutgoingResponse};
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("first call");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("first call");
    let chunk = [b's'; 1024];
    for _ in 0..kb {
        if stream.blocking_write_and_flush(&chunk).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// One `current` call, its outcome as JSON.
fn current_call(op: &str) -> Response {
    use edge_session_guest::raw::current as wit;
    use serde_json::{Value, json};
    let session = |s: edge_session_guest::raw::sessions::Session| json!({ "id": s.id, "data": s.data, "generation": s.generation, "expires-in": s.expires_in });
    let outcome = match op {
        "load" => wit::load().map(|s| json!({ "session": s.map_or(Value::Null, session) })),
        "start" => wit::start(r#"{"n":1}"#).map(|s| json!({ "session": session(s) })),
        "rotate" => wit::rotate().map(|s| json!({ "session": session(s) })),
        "end" => wit::end().map(|ended| json!({ "ended": ended })),
        other => return Response::text(400, &format!("unknown op {other:?}\n")),
    };
    match outcome {
        Ok(value) => Response::json(200, &value),
        Err(error) => Response::json(200, &json!({ "error": format!("{error:?}") })),
    }
}

/// Tries a TCP connection to `to` (an IPv4 `a.b.c.d:port`) and a UDP
/// socket, one line each: what the sandbox allowed.
fn sockets(to: &str) -> String {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasip2::sockets::{instance_network, tcp_create_socket, udp_create_socket};
    let tcp = match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Err(code) => format!("tcp: refused at create: {}", code.name()),
        Ok(socket) => {
            let address = to
                .parse::<std::net::SocketAddrV4>()
                .map(|to| {
                    let [a, b, c, d] = to.ip().octets();
                    IpSocketAddress::Ipv4(Ipv4SocketAddress {
                        port: to.port(),
                        address: (a, b, c, d),
                    })
                })
                .expect("?to=a.b.c.d:port");
            let network = instance_network::instance_network();
            match socket.start_connect(&network, address) {
                Err(code) => format!("tcp: refused at connect: {}", code.name()),
                Ok(()) => {
                    socket.subscribe().block();
                    match socket.finish_connect() {
                        Ok(_) => "tcp: connected".to_owned(),
                        Err(code) => format!("tcp: failed to connect: {}", code.name()),
                    }
                }
            }
        }
    };
    let udp = match udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
        Err(code) => format!("udp: refused at create: {}", code.name()),
        Ok(_) => "udp: created".to_owned(),
    };
    format!("{tcp}\n{udp}\n")
}

/// The value of `name` in a `?name=value&…` query.
fn query<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The number in a `?name=N` query.
fn query_number(request: &Request, name: &str) -> Option<u64> {
    query(request, name)?.parse().ok()
}

/// Sends `GET http://{authority}/` and describes what happened.
fn outgoing_request(authority: &str) -> String {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some("/"));
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return format!("refused: {code:?}"),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => format!("sent! status {}", response.status()),
        Some(Ok(Err(code))) => format!("refused: {code:?}"),
        other => format!("unexpected: {other:?}"),
    }
}

fn serde_json_object() -> std::collections::BTreeMap<String, u32> {
    std::collections::BTreeMap::from([("n".to_owned(), 1)])
}

wasip2::http::proxy::export!(Faulty);
