//! The session of the request being handled (`edge:session/current`).
//!
//! The host reads the session cookie and writes `Set-Cookie` on your
//! response, with every flag right; a handler never touches the cookie.
//! Change the session ([`start`], [`rotate`], [`end`]) before returning the
//! response. Use the session's `id` with the [`sessions`](crate::sessions)
//! field operations.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sessions::{Result, Session, wit_current as wit};

/// The request's session, if its cookie names a live one. Loading slides
/// the session's expiry when it is running low.
pub fn load<T: DeserializeOwned>() -> Result<Option<Session<T>>> {
    wit::load()?.map(Session::from_wit).transpose()
}

/// Starts a new session (deleting the request's old one: call it on login).
pub fn start<T: Serialize + DeserializeOwned>(data: &T) -> Result<Session<T>> {
    Session::from_wit(wit::start(&serde_json::to_string(data)?)?)
}

/// Moves the request's session to a fresh id (call it on privilege change).
pub fn rotate<T: DeserializeOwned>() -> Result<Session<T>> {
    Session::from_wit(wit::rotate()?)
}

/// Ends the request's session (logout); false when there was none.
pub fn end() -> Result<bool> {
    Ok(wit::end()?)
}
