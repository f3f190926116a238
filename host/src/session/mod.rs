//! Session primitives, pure and fuzzable (they build without the `runtime`
//! feature): ids, the cookie, its signature, the secret keys behind
//! signatures and encryption, and JSON objects with field operations.

pub mod cookie;
pub mod id;
pub mod json_object;
pub mod keys;
pub mod signing;
