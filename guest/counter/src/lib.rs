//! Session counter: counts each visitor's page loads.
//!
//! `GET` anywhere under the route. The first visit creates a session and
//! sets the `sid` cookie; each later visit increments the `count` field
//! atomically (concurrent tabs never lose a visit) and slides the expiry
//! with `touch`, which does not rewrite the session.

use edge_session_guest::cookie::{Cookie, SameSite};
use edge_session_guest::{Error, Handler, Request, Response, export_handler, sessions};
use serde_json::json;

const COOKIE: &str = "sid";

struct Counter;

impl Handler for Counter {
    fn handle(request: Request) -> Response {
        if request.method() != "GET" {
            return Response::text(405, "use GET\n").header("allow", "GET");
        }
        match count_visit(&request) {
            Ok(response) => response,
            Err(error) => Response::json(error.status(), &json!({ "error": error.to_string() })),
        }
    }
}

fn count_visit(request: &Request) -> Result<Response, Error> {
    if let Some(id) = request.cookie(COOKIE) {
        match sessions::incr_field(&id, "count", 1) {
            Ok(count) => {
                sessions::touch(&id, None)?;
                return Ok(Response::json(200, &json!({ "count": count })));
            }
            // Expired, deleted or never ours: start a fresh session below.
            Err(Error::NotFound | Error::InvalidArgument(_)) => {}
            Err(error) => return Err(error),
        }
    }
    let id = sessions::create(&json!({ "count": 1 }), None)?;
    let cookie = Cookie::build((COOKIE, id))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(request.is_https());
    Ok(Response::json(200, &json!({ "count": 1 })).set_cookie(&cookie.build()))
}

export_handler!(Counter);
