//! Layers that wrap any [`SessionStore`](super::SessionStore): encryption at
//! rest, a circuit breaker, and metrics.
//!
//! A new trait method is one line in each of the three, on purpose: each
//! layer decides something per operation (whether a result counts against
//! the breaker, which metric label and hit/miss outcome it records, what
//! encryption must seal or open), so a forwarding macro or a generic
//! delegating layer would hide exactly the decision a reviewer should see.

pub mod breaker;
pub mod encrypted;
pub mod instrumented;
