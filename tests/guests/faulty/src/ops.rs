//! `POST …/ops`: one raw `edge:session/sessions` call per request, so the
//! end-to-end tests can reach every function with any argument — invalid
//! JSON, absurd TTLs, ids of another namespace — and see the typed result.
//!
//! Body: `{"op": "save", "id": "…", "data": "<raw text>", "ttl": 60, …}`
//! with the WIT parameter names (`data`, `ttl`, `generation`, `name`,
//! `value`, `delta`). Reply: 200 `{"ok": <result>}` or `{"error": "<variant>"}`
//! (`invalid-argument: why` for variants with a reason); 400 when the body
//! itself does not describe a call.

use edge_session_guest::raw::sessions::{self as wit, Error};
use edge_session_guest::{Request, Response};
use serde_json::{Value, json};

pub fn run(request: &Request) -> Response {
    let call: Value = match request.json() {
        Ok(call) => call,
        Err(error) => return Response::text(400, &format!("bad call: {error}\n")),
    };
    let text = |name: &str| call[name].as_str().unwrap_or_default().to_owned();
    let ttl = call["ttl"]
        .as_u64()
        .map(|ttl| u32::try_from(ttl).unwrap_or(u32::MAX));
    let (id, name) = (text("id"), text("name"));
    let outcome = match call["op"].as_str().unwrap_or_default() {
        "create" => wit::create(&text("data"), ttl).map(Value::from),
        "get" => wit::get(&id).map(|session| {
            session.map_or(Value::Null, |s| {
                json!({ "data": s.data, "generation": s.generation, "expires-in": s.expires_in })
            })
        }),
        "save" => wit::save(&id, &text("data"), ttl).map(Value::from),
        "save-if" => {
            let generation = call["generation"].as_u64().unwrap_or_default();
            wit::save_if(&id, &text("data"), generation, ttl).map(Value::from)
        }
        "touch" => wit::touch(&id, ttl).map(Value::from),
        "delete" => wit::delete(&id).map(Value::from),
        "rotate" => wit::rotate(&id).map(Value::from),
        "get-field" => wit::get_field(&id, &name).map(Value::from),
        "set-field" => wit::set_field(&id, &name, &text("value")).map(Value::from),
        "remove-field" => wit::remove_field(&id, &name).map(Value::from),
        "incr-field" => {
            let delta = call["delta"].as_i64().unwrap_or_default();
            wit::incr_field(&id, &name, delta).map(Value::from)
        }
        other => return Response::text(400, &format!("unknown op {other:?}\n")),
    };
    match outcome {
        Ok(result) => Response::json(200, &json!({ "ok": result })),
        Err(error) => Response::json(200, &json!({ "error": describe(error) })),
    }
}

fn describe(error: Error) -> String {
    match error {
        Error::NotFound => "not-found".into(),
        Error::Conflict => "conflict".into(),
        Error::InvalidArgument(why) => format!("invalid-argument: {why}"),
        Error::TooLarge => "too-large".into(),
        Error::Unavailable(why) => format!("unavailable: {why}"),
        Error::AccessDenied => "access-denied".into(),
        Error::Internal(why) => format!("internal: {why}"),
    }
}
