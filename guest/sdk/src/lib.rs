//! Write edge-session request handlers in Rust.
//!
//! A handler is a type implementing [`Handler`], exported with
//! [`export_handler!`]; it receives a [`Request`] with the body already read
//! and returns a [`Response`]. The request's own session is in [`current`]
//! (the host handles its cookie); any session by id, with atomic field
//! operations, is in [`sessions`]. Values go in and out through serde:
//!
//! ```ignore
//! use edge_session_guest::{Handler, Request, Response, current, export_handler, sessions};
//! use serde_json::{Value, json};
//!
//! struct Visits;
//!
//! impl Handler for Visits {
//!     fn handle(_request: Request) -> Response {
//!         let visits = match current::load::<Value>() {
//!             Ok(Some(session)) => sessions::incr_field(&session.id, "visits", 1),
//!             Ok(None) => current::start(&json!({ "visits": 1 })).map(|_| 1),
//!             Err(error) => Err(error),
//!         };
//!         match visits {
//!             Ok(visits) => Response::json(200, &json!({ "visits": visits })),
//!             Err(error) => Response::text(error.status(), &format!("{error}\n")),
//!         }
//!     }
//! }
//!
//! export_handler!(Visits);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the result is
//! a component for the `edge:session/handler` world.

pub mod current;
mod http;
pub mod sessions;

pub use cookie;
pub use http::{MAX_REQUEST_BODY, Request, Response, serve};
pub use sessions::Error;

/// The generated WIT bindings, for handlers that pass JSON text as it is
/// (no serde round trip) or call the contract exactly as written.
pub mod raw {
    pub use crate::sessions::bindings::edge::session::{current, sessions};
}

/// Used by [`export_handler!`]; not part of the API.
#[doc(hidden)]
pub use wasip2 as __wasip2;

/// A request handler: one call per request, in a fresh instance.
pub trait Handler {
    fn handle(request: Request) -> Response;
}

/// Exports a [`Handler`] as the component's `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        struct __EdgeSessionIncomingHandler;

        impl $crate::__wasip2::exports::http::incoming_handler::Guest for __EdgeSessionIncomingHandler {
            fn handle(
                request: $crate::__wasip2::http::types::IncomingRequest,
                response_out: $crate::__wasip2::http::types::ResponseOutparam,
            ) {
                $crate::serve::<$handler>(request, response_out)
            }
        }

        $crate::__wasip2::http::proxy::export!(__EdgeSessionIncomingHandler with_types_in $crate::__wasip2);
    };
}
