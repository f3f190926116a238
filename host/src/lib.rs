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
//! Without the default `runtime` feature, only the pure modules build (for fuzzing).

#[cfg(feature = "runtime")]
pub mod admin;
#[cfg(feature = "runtime")]
pub mod artifact_cache;
#[cfg(feature = "runtime")]
pub mod body_limit;
#[cfg(feature = "runtime")]
pub mod config;
pub mod cookie_signing;
#[cfg(feature = "runtime")]
pub mod current_host;
#[cfg(feature = "runtime")]
pub mod engine;
#[cfg(feature = "runtime")]
pub mod guest;
#[cfg(feature = "runtime")]
pub mod guest_output;
#[cfg(feature = "runtime")]
pub mod idle_instances;
pub mod json_object;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod outgoing_http;
#[cfg(feature = "runtime")]
pub mod reload;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod secret_keys;
#[cfg(feature = "runtime")]
pub mod server;
pub mod session_cookie;
pub mod session_id;
#[cfg(feature = "runtime")]
pub mod sessions_host;
#[cfg(feature = "runtime")]
pub mod store;
#[cfg(feature = "runtime")]
pub mod tls;

#[cfg(feature = "runtime")]
pub use runtime::{RouteSpec, Runtime, RuntimeBuilder};
