//! edge-session: a WebAssembly edge session runtime.
//!
//! Requests arrive at the HTTP edge, the [`Runtime`] routes each to a guest
//! component that runs in a fresh sandboxed instance, and guests keep web
//! sessions through the `edge:session` WIT interfaces in a
//! [`store::SessionStore`], by default the durable [`store::EmbeddedStore`].
//!
//! The `edge-session` binary reads a [`config::Config`] file and hands it to
//! [`app`]; everything it does is available here to Rust programs. Without
//! the default `runtime` feature only the pure [`session`] primitives build
//! (for fuzzing).
//!
//! Where things are: `http/` (the edge: server, TLS, admin, body limits),
//! `wasm/` (engine, routes, instances, reuse, reload), `wit/` (the WIT host
//! layer), `session/` (ids, cookies, keys, JSON), `store/` (the trait, its
//! layers and backends), `config/` (the file) and `app.rs` (the wiring).

#[cfg(feature = "runtime")]
pub mod app;
#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
mod http;
#[cfg(feature = "runtime")]
mod metrics;
pub mod session;
#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "runtime")]
pub mod store;
#[cfg(feature = "runtime")]
mod wasm;
#[cfg(feature = "runtime")]
mod wit;

#[cfg(feature = "runtime")]
pub use wasm::artifact_cache::ArtifactCache;
#[cfg(feature = "runtime")]
pub use wasm::engine::EngineSettings;
#[cfg(feature = "runtime")]
pub use wasm::outgoing_http::OutgoingHttp;
#[cfg(feature = "runtime")]
pub use wasm::runtime::{Reload, RouteSpec, Runtime, RuntimeBuilder};
#[cfg(feature = "runtime")]
pub use wasm::sandbox::{Capabilities, GuestLimits};
#[cfg(feature = "runtime")]
pub use wit::SessionPolicy;
