//! The HTTP edge: the listener that accepts connections and hands each
//! request to the [`Runtime`](crate::Runtime), TLS, and the admin listener
//! (health, readiness, metrics).

pub mod admin;
pub mod server;
pub mod tls;
