//! The wasm runtime: one wasmtime engine, the routes that map request paths
//! to guest components, how a request runs in an instance (fresh, or reused
//! where a route allows it), the limits on its bodies and the responses the
//! host writes when a guest fails, what a guest may reach beyond its
//! sandbox, and hot reload.

pub mod artifact_cache;
pub(crate) mod body_limit;
pub mod engine;
pub mod guest;
pub(crate) mod guest_output;
pub(crate) mod idle_instances;
pub(crate) mod instance;
pub mod outgoing_http;
pub mod reload;
pub(crate) mod response;
pub mod runtime;
pub mod sandbox;
