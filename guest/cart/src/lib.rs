//! Login and shopping cart: a session per logged-in user.
//!
//! Routes, relative to the route prefix (e.g. `/shop`):
//! - `POST /login` `{"user":"ada"}`: starts a session (any earlier session of
//!   this client is deleted first: a login never reuses an id);
//! - `GET /cart`: the user and the cart;
//! - `POST /cart/items` `{"sku":"apple","qty":2}`: adds to an item;
//! - `DELETE /cart/items/{sku}`: removes an item;
//! - `POST /logout`: deletes the session and expires the cookie.
//!
//! Each cart item is its own session field (`cart.<sku>`), updated with
//! atomic field operations, so two tabs adding items at once never
//! overwrite each other's cart.

use edge_session_guest::cookie::{Cookie, SameSite};
use edge_session_guest::{Error, Handler, Request, Response, export_handler, sessions};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Not `sid`: the counter on the same site uses that name.
const COOKIE: &str = "shop_sid";
const ITEM_PREFIX: &str = "cart.";
const MAX_QTY: i64 = 1000;

struct Cart;

impl Handler for Cart {
    fn handle(request: Request) -> Response {
        // Dispatch on the end of the path, so any route prefix works.
        let path = request.path();
        let item = path.rsplit_once("/cart/items/").map(|(_, sku)| sku);
        let result = match (request.method(), item) {
            ("DELETE", Some(sku)) => remove_item(&request, sku),
            ("POST", _) if path.ends_with("/login") => login(&request),
            ("POST", _) if path.ends_with("/logout") => logout(&request),
            ("GET", _) if path.ends_with("/cart") => show_cart(&request),
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

/// The id of the caller's live session, touched to slide its expiry.
fn logged_in(request: &Request) -> Result<String, Response> {
    let id = request
        .cookie(COOKIE)
        .ok_or_else(|| failure(401, "log in first"))?;
    match sessions::touch(&id, None) {
        Ok(true) => Ok(id),
        Ok(false) | Err(Error::InvalidArgument(_)) => Err(failure(401, "log in first")),
        Err(error) => Err(session_failure(error)),
    }
}

fn cookie(request: &Request, id: String) -> Cookie<'static> {
    Cookie::build((COOKIE, id))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(request.is_https())
        .build()
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
    if let Some(old) = request.cookie(COOKIE) {
        // Never carry an id from before the login over into the new session.
        match sessions::delete(&old) {
            Ok(_) | Err(Error::InvalidArgument(_)) => {}
            Err(error) => return Err(session_failure(error)),
        }
    }
    let id = sessions::create(&json!({ "user": login.user }), None).map_err(session_failure)?;
    Ok(Response::json(200, &json!({ "user": login.user })).set_cookie(&cookie(request, id)))
}

fn logout(request: &Request) -> Outcome {
    let id = logged_in(request)?;
    sessions::delete(&id).map_err(session_failure)?;
    let mut expired = cookie(request, String::new());
    expired.make_removal();
    Ok(Response::json(200, &json!({ "logged_out": true })).set_cookie(&expired))
}

fn show_cart(request: &Request) -> Outcome {
    let id = logged_in(request)?;
    let session = sessions::get::<Map<String, Value>>(&id)
        .map_err(session_failure)?
        .ok_or_else(|| failure(401, "log in first"))?;
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
    let id = logged_in(request)?;
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
    let total = sessions::incr_field(&id, &format!("{ITEM_PREFIX}{}", item.sku), item.qty)
        .map_err(session_failure)?;
    Ok(Response::json(
        200,
        &json!({ "sku": item.sku, "qty": total }),
    ))
}

fn remove_item(request: &Request, sku: &str) -> Outcome {
    let id = logged_in(request)?;
    if !valid_name(sku) {
        return Err(failure(400, "sku: 1 to 64 characters of a-z A-Z 0-9 - _"));
    }
    match sessions::remove_field(&id, &format!("{ITEM_PREFIX}{sku}")).map_err(session_failure)? {
        true => Ok(Response::json(200, &json!({ "removed": sku }))),
        false => Err(failure(404, "no such item in the cart")),
    }
}

export_handler!(Cart);
