//! Session counter: counts each visitor's page loads.
//!
//! `GET` anywhere under the route. The first visit starts a session (the
//! host sets its cookie); each later visit increments the `count` field
//! atomically, so concurrent tabs never lose a visit. The host slides the
//! session's expiry on activity, without rewriting the session.

use edge_session_guest::{Error, Handler, Request, Response, current, export_handler, sessions};
use serde::de::IgnoredAny;
use serde_json::json;

struct Counter;

impl Handler for Counter {
    fn handle(request: Request) -> Response {
        if request.method() != "GET" {
            return Response::text(405, "use GET\n").header("allow", "GET");
        }
        match count_visit() {
            Ok(count) => Response::json(200, &json!({ "count": count })),
            Err(error) => Response::json(error.status(), &json!({ "error": error.to_string() })),
        }
    }
}

fn count_visit() -> Result<i64, Error> {
    // The data is not needed here, only the id: skip parsing it.
    if let Some(session) = current::load::<IgnoredAny>()? {
        match sessions::incr_field(&session.id, "count", 1) {
            Ok(count) => return Ok(count),
            // Expired between the two calls: start afresh below.
            Err(Error::NotFound) => {}
            Err(error) => return Err(error),
        }
    }
    current::start(&json!({ "count": 1 }))?;
    Ok(1)
}

export_handler!(Counter);
