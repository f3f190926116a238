//! Login and shopping cart: a session per logged-in user.
//!
//! Routes, relative to the route prefix (e.g. `/shop`):
//! - `POST /login` `{"user":"ada"}`: starts a session (the host deletes any
//!   earlier session of this client: a login never reuses an id);
//! - `GET /cart`: the user and the cart;
//! - `POST /cart/items` `{"sku":"apple","qty":2}`: adds to an item;
//! - `DELETE /cart/items/{sku}`: removes an item;
//! - `POST /logout`: ends the session (deleted, cookie removed).
//!
//! The host manages the session cookie. Each cart item is its own session
//! field (`cart.<sku>`), updated with atomic field operations, so two tabs
//! adding items at once never overwrite each other's cart.

use edge_session_guest::sessions::Session;
use edge_session_guest::{Error, Handler, Request, Response, current, export_handler, sessions};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const ITEM_PREFIX: &str = "cart.";
const MAX_QTY: i64 = 1000;

struct Cart;

impl Handler for Cart {
    fn handle(request: Request) -> Response {
        // Dispatch on the end of the path, so any route prefix works.
        let path = request.path();
        let item = path.rsplit_once("/cart/items/").map(|(_, sku)| sku);
        let result = match (request.method(), item) {
            ("DELETE", Some(sku)) => remove_item(sku),
            ("POST", _) if path.ends_with("/login") => login(&request),
            ("POST", _) if path.ends_with("/logout") => logout(),
            ("GET", _) if path.ends_with("/cart") => show_cart(),
            ("POST", _) if path.ends_with("/cart/items") => add_item(&request),
            _ => Err(failure(404, "no such page")),
        };
        result.unwrap_or_else(|response| response)
    }
}

type Outcome = Result<Response, Response>;

fn failure(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

fn session_failure(error: Error) -> Response {
    match error {
        Error::NotFound => failure(401, "log in first"),
        error => failure(error.status(), &error.to_string()),
    }
}

/// The caller's session, or a 401.
fn logged_in() -> Result<Session<Map<String, Value>>, Response> {
    current::load()
        .map_err(session_failure)?
        .ok_or_else(|| failure(401, "log in first"))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

fn login(request: &Request) -> Outcome {
    let login: Login = request
        .json()
        .map_err(|e| failure(400, &format!("expected {{\"user\": \"name\"}}: {e}")))?;
    if !valid_name(&login.user) {
        return Err(failure(400, "user: 1 to 64 characters of a-z A-Z 0-9 - _"));
    }
    current::start(&json!({ "user": login.user })).map_err(session_failure)?;
    Ok(Response::json(200, &json!({ "user": login.user })))
}

fn logout() -> Outcome {
    match current::end().map_err(session_failure)? {
        true => Ok(Response::json(200, &json!({ "logged_out": true }))),
        false => Err(failure(401, "log in first")),
    }
}

fn show_cart() -> Outcome {
    let session = logged_in()?;
    let items: Map<String, Value> = session
        .data
        .iter()
        .filter_map(|(name, qty)| Some((name.strip_prefix(ITEM_PREFIX)?.to_owned(), qty.clone())))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "user": session.data.get("user"), "items": items }),
    ))
}

#[derive(Deserialize)]
struct AddItem {
    sku: String,
    qty: i64,
}

fn add_item(request: &Request) -> Outcome {
    let session = logged_in()?;
    let item: AddItem = request.json().map_err(|e| {
        failure(
            400,
            &format!("expected {{\"sku\": \"name\", \"qty\": 1}}: {e}"),
        )
    })?;
    if !valid_name(&item.sku) {
        return Err(failure(400, "sku: 1 to 64 characters of a-z A-Z 0-9 - _"));
    }
    if !(1..=MAX_QTY).contains(&item.qty) {
        return Err(failure(400, &format!("qty: between 1 and {MAX_QTY}")));
    }
    let field = format!("{ITEM_PREFIX}{}", item.sku);
    let total = sessions::incr_field(&session.id, &field, item.qty).map_err(session_failure)?;
    Ok(Response::json(
        200,
        &json!({ "sku": item.sku, "qty": total }),
    ))
}

fn remove_item(sku: &str) -> Outcome {
    let session = logged_in()?;
    if !valid_name(sku) {
        return Err(failure(400, "sku: 1 to 64 characters of a-z A-Z 0-9 - _"));
    }
    let field = format!("{ITEM_PREFIX}{sku}");
    match sessions::remove_field(&session.id, &field).map_err(session_failure)? {
        true => Ok(Response::json(200, &json!({ "removed": sku }))),
        false => Err(failure(404, "no such item in the cart")),
    }
}

export_handler!(Cart);
