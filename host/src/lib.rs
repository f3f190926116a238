//! edge-session: a WebAssembly edge session runtime.
//!
//! Requests arrive at the [`server`], the [`Runtime`] routes each to a
//! [`guest`] component that runs in a fresh sandboxed instance, and guests
//! keep web sessions through the `edge:session/sessions` WIT interface
//! ([`sessions_host`]) in a [`store::SessionStore`] — by default the durable
//! [`store::EmbeddedStore`].
//!
//! The `edge-session` binary reads a [`config::Config`] file and serves it;
//! everything it does is available here to Rust programs.

pub mod artifact_cache;
pub mod body_limit;
pub mod config;
pub mod current_host;
pub mod engine;
pub mod guest;
pub mod json_object;
pub mod runtime;
pub mod server;
pub mod session_cookie;
pub mod session_id;
pub mod sessions_host;
pub mod store;

pub use runtime::{RouteSpec, Runtime, RuntimeBuilder};
