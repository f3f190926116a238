//! Write edge-session request handlers in Rust.
//!
//! A handler is a type implementing [`Handler`], exported with
//! [`export_handler!`]; it receives a [`Request`] with the body already read
//! and returns a [`Response`]. Sessions live behind the [`sessions`]
//! functions, with serde values in and out:
//!
//! ```ignore
//! use edge_session_guest::{Handler, Request, Response, export_handler, sessions};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle(request: Request) -> Response {
//!         let Some(id) = request.cookie("sid") else {
//!             return Response::text(401, "no session\n");
//!         };
//!         match sessions::incr_field(&id, "visits", 1) {
//!             Ok(visits) => Response::json(200, &serde_json::json!({ "visits": visits })),
//!             Err(error) => Response::text(error.status(), &format!("{error}\n")),
//!         }
//!     }
//! }
//!
//! export_handler!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the result is
//! a component for the `edge:session/handler` world.

mod http;
pub mod sessions;

pub use cookie;
pub use http::{MAX_REQUEST_BODY, Request, Response, serve};
pub use sessions::Error;

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
