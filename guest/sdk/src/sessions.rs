//! Typed access to the host's session store (`edge:session/sessions`).
//!
//! Session data is any serde type that serializes to a JSON object; field
//! values are any serde value. Ids are scoped to the route's namespace by
//! the host. See `wit/sessions.wit` for the exact semantics of each call.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/sessions.wit",
        world: "session-imports",
    });
}

use bindings::edge::session::sessions as wit;

pub(crate) use bindings::edge::session::current as wit_current;

/// Why a session call failed.
#[derive(Debug)]
pub enum Error {
    /// The session does not exist (or has expired).
    NotFound,
    /// `save_if` found a newer generation.
    Conflict,
    /// The host rejected an argument; the text says which and why.
    InvalidArgument(String),
    /// The session would exceed the host's size limit.
    TooLarge,
    /// The session store is unreachable; retry later.
    Unavailable(String),
    /// This route has no session access.
    AccessDenied,
    /// The host failed; details are in its log.
    Internal(String),
    /// Session data did not (de)serialize as the requested type.
    Json(serde_json::Error),
}

impl Error {
    /// The HTTP status a handler would usually answer with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound => 404,
            Error::Conflict => 409,
            Error::InvalidArgument(_) | Error::Json(_) => 400,
            Error::TooLarge => 413,
            Error::AccessDenied => 403,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("session not found"),
            Error::Conflict => f.write_str("session changed since it was read"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::TooLarge => f.write_str("session too large"),
            Error::Unavailable(why) => write!(f, "session store unavailable: {why}"),
            Error::AccessDenied => f.write_str("this route has no session access"),
            Error::Internal(why) => write!(f, "session host failure: {why}"),
            Error::Json(error) => write!(f, "session data: {error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::Error> for Error {
    fn from(error: wit::Error) -> Self {
        match error {
            wit::Error::NotFound => Error::NotFound,
            wit::Error::Conflict => Error::Conflict,
            wit::Error::InvalidArgument(why) => Error::InvalidArgument(why),
            wit::Error::TooLarge => Error::TooLarge,
            wit::Error::Unavailable(why) => Error::Unavailable(why),
            wit::Error::AccessDenied => Error::AccessDenied,
            wit::Error::Internal(why) => Error::Internal(why),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Json(error)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A session read with [`get`].
#[derive(Debug, Clone, PartialEq)]
pub struct Session<T> {
    pub id: String,
    pub data: T,
    /// Bumps on every data write; pass it to [`save_if`].
    pub generation: u64,
    /// Time left before the session expires.
    pub expires_in: Duration,
}

/// Whole seconds for the host, rounded up; `None` uses the route default.
fn seconds(ttl: Option<Duration>) -> Option<u32> {
    ttl.map(|ttl| {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        u32::try_from(seconds).unwrap_or(u32::MAX)
    })
}

/// Creates a session and returns its new (host-generated) id.
pub fn create<T: Serialize + ?Sized>(data: &T, ttl: Option<Duration>) -> Result<String> {
    Ok(wit::create(&serde_json::to_string(data)?, seconds(ttl))?)
}

/// Reads a session; `None` when it does not exist.
pub fn get<T: DeserializeOwned>(id: &str) -> Result<Option<Session<T>>> {
    wit::get(id)?.map(Session::from_wit).transpose()
}

impl<T: DeserializeOwned> Session<T> {
    pub(crate) fn from_wit(session: wit::Session) -> Result<Self> {
        Ok(Session {
            data: serde_json::from_str(&session.data)?,
            id: session.id,
            generation: session.generation,
            expires_in: Duration::from_secs(session.expires_in.into()),
        })
    }
}

/// Replaces a session's data (creating it if needed); returns the generation.
pub fn save<T: Serialize + ?Sized>(id: &str, data: &T, ttl: Option<Duration>) -> Result<u64> {
    Ok(wit::save(id, &serde_json::to_string(data)?, seconds(ttl))?)
}

/// Replaces a session's data only if it is still at `expected_generation`.
pub fn save_if<T: Serialize + ?Sized>(
    id: &str,
    data: &T,
    expected_generation: u64,
    ttl: Option<Duration>,
) -> Result<u64> {
    Ok(wit::save_if(
        id,
        &serde_json::to_string(data)?,
        expected_generation,
        seconds(ttl),
    )?)
}

/// Resets a session's expiry without rewriting it; false when it does not exist.
pub fn touch(id: &str, ttl: Option<Duration>) -> Result<bool> {
    Ok(wit::touch(id, seconds(ttl))?)
}

/// Deletes a session; false when it did not exist.
pub fn delete(id: &str) -> Result<bool> {
    Ok(wit::delete(id)?)
}

/// Moves a session to a fresh id (on login, against session fixation).
pub fn rotate(id: &str) -> Result<String> {
    Ok(wit::rotate(id)?)
}

/// Reads one field; `None` when absent.
pub fn get_field<T: DeserializeOwned>(id: &str, name: &str) -> Result<Option<T>> {
    match wit::get_field(id, name)? {
        Some(json) => Ok(Some(serde_json::from_str(&json)?)),
        None => Ok(None),
    }
}

/// Sets one field atomically; returns the new generation.
pub fn set_field<T: Serialize + ?Sized>(id: &str, name: &str, value: &T) -> Result<u64> {
    Ok(wit::set_field(id, name, &serde_json::to_string(value)?)?)
}

/// Removes one field atomically; false when it was absent.
pub fn remove_field(id: &str, name: &str) -> Result<bool> {
    Ok(wit::remove_field(id, name)?)
}

/// Adds `delta` to an integer field atomically; returns the new value.
pub fn incr_field(id: &str, name: &str, delta: i64) -> Result<i64> {
    Ok(wit::incr_field(id, name, delta)?)
}
