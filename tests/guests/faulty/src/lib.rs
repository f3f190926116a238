//! A test guest that misbehaves on purpose, one way per path, so the tests
//! can check that each failure ends only its own request:
//!
//! - `/panic`: traps;
//! - `/loop`: spins forever (CPU deadline);
//! - `/alloc`: allocates until the memory cap stops it;
//! - `/sleep?ms=N`: answers after N milliseconds (timeouts, graceful shutdown);
//! - `/silent`: returns without sending any response;
//! - `/session`: tries to create a session and reports the outcome;
//! - anything else: 200 "ok".

use edge_session_guest::{Request, Response, sessions};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Faulty;

impl wasip2::exports::http::incoming_handler::Guest for Faulty {
    fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
        let path = incoming.path_with_query().unwrap_or_default();
        if path.ends_with("/silent") {
            // Dropping the outparam unset is the fault under test.
            return;
        }
        edge_session_guest::serve::<Faulty>(incoming, out);
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
                let ms: u64 = request
                    .query()
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(100);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                Response::text(200, &format!("slept {ms} ms\n"))
            }
            "session" => match sessions::create(&serde_json_object(), None) {
                Ok(_) => Response::text(200, "created\n"),
                Err(error) => Response::text(error.status(), &format!("{error:?}\n")),
            },
            _ => Response::text(200, "ok\n"),
        }
    }
}

fn serde_json_object() -> std::collections::BTreeMap<String, u32> {
    std::collections::BTreeMap::from([("n".to_owned(), 1)])
}

wasip2::http::proxy::export!(Faulty);
