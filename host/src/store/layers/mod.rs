//! Layers that wrap any [`SessionStore`](super::SessionStore): encryption at
//! rest, a circuit breaker, and metrics. Each forwards what it does not
//! change to the store it wraps.

pub mod breaker;
pub mod encrypted;
pub mod instrumented;
