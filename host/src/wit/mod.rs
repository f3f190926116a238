//! The WIT host layer: the host side of the `edge:session/sessions` and
//! `edge:session/current` interfaces (`wit/sessions.wit`).
//!
//! A thin layer over [`SessionStore`](crate::store::SessionStore): it checks
//! what the guest passes (ids, JSON, TTLs, sizes), scopes every id to the
//! route's namespace, and maps store errors to the WIT `error` variant.
//! Guests never trap on bad input; store internals (paths, I/O errors) go
//! to the host log, not to guests. One per-request [`SessionsContext`]
//! serves both interfaces: `sessions` (any session of the namespace, by id)
//! in `sessions.rs`, `current` (the request's own, cookie managed by the
//! host) in `current.rs`.

mod context;
mod current;
mod request_session;
mod sessions;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/sessions.wit",
        world: "session-imports",
        imports: { default: async },
    });
}

pub use bindings::SessionImports;
pub(crate) use bindings::edge::session::current as current_interface;
pub(crate) use bindings::edge::session::sessions::{self as sessions_interface, Error, Session};
pub use context::{SessionPolicy, SessionsContext};
pub use request_session::RequestSession;
