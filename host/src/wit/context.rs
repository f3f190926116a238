//! The per-request context both interfaces share: the route's session
//! policy, the store, and the request's own session; the checks every call
//! makes on what the guest passes, and the mapping of store errors.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, RequestSession};
use crate::session::cookie::CookiePolicy;
use crate::session::id as session_id;
use crate::session::json_object::{JsonObject, MAX_NESTING, check_portable, parse_value};
use crate::store::{SessionKey, SessionStore, StoreError};

pub(super) type Result<T> = std::result::Result<T, Error>;

/// Longest field name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 256;
/// How often `create` and `rotate` draw a new id after hitting a live one.
/// With 128 random bits a single retry is already astronomically unlikely.
const ID_ATTEMPTS: usize = 3;

/// How a route uses sessions: fixed when the route is loaded.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// Every id the route's guest passes is scoped to this namespace.
    pub namespace: String,
    /// TTL when the guest passes none; for `current` sessions, the idle timeout.
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    /// The cookie that carries `current` sessions.
    pub cookie: CookiePolicy,
    /// `current.load` slides the expiry once less than this fraction of
    /// `default_ttl` remains (0: never, 1: on every load).
    pub refresh_fraction: f64,
    /// Absolute timeout of `current` sessions, however active.
    pub max_lifetime: Duration,
}

impl SessionPolicy {
    /// The idle timeout: TTL when the guest passes none.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
    /// The longest TTL a guest may ask for.
    pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
    /// Expiry slides once less than half the TTL is left.
    pub const REFRESH_FRACTION: f64 = 0.5;
    /// The absolute timeout of `current` sessions (OWASP: 4 to 8 hours).
    pub const MAX_LIFETIME: Duration = Duration::from_secs(8 * 3600);

    /// Sessions in `namespace` with the defaults above and the default
    /// cookie (`__Host-sid`).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            default_ttl: Self::DEFAULT_TTL,
            max_ttl: Self::MAX_TTL,
            cookie: CookiePolicy::default(),
            refresh_fraction: Self::REFRESH_FRACTION,
            max_lifetime: Self::MAX_LIFETIME,
        }
    }
}

/// Per-request session access, held in the request's wasmtime store.
pub struct SessionsContext {
    /// `None` for routes that declare no namespace: every call is denied.
    pub(crate) policy: Option<Arc<SessionPolicy>>,
    pub(crate) store: Arc<dyn SessionStore>,
    /// The request's own session, for `current`.
    pub(crate) request: Arc<RequestSession>,
}

impl SessionsContext {
    pub fn new(
        policy: Option<Arc<SessionPolicy>>,
        store: Arc<dyn SessionStore>,
        request: Arc<RequestSession>,
    ) -> Self {
        Self {
            policy,
            store,
            request,
        }
    }

    pub(crate) fn policy(&self) -> Result<&SessionPolicy> {
        self.policy.as_deref().ok_or(Error::AccessDenied)
    }

    /// The store key for a guest-supplied id, after checking the id.
    pub(super) fn key<'a>(&'a self, id: &'a str) -> Result<SessionKey<'a>> {
        let policy = self.policy()?;
        session_id::validate(id).map_err(|why| Error::InvalidArgument(format!("id: {why}")))?;
        Ok(SessionKey::new(&policy.namespace, id))
    }

    pub(super) fn ttl(&self, ttl: Option<u32>) -> Result<Duration> {
        let policy = self.policy()?;
        match ttl {
            None => Ok(policy.default_ttl),
            Some(0) => Err(Error::InvalidArgument(
                "ttl: must be at least 1 second".into(),
            )),
            Some(seconds) if Duration::from_secs(seconds.into()) > policy.max_ttl => {
                Err(Error::InvalidArgument(format!(
                    "ttl: at most {} seconds on this route",
                    policy.max_ttl.as_secs()
                )))
            }
            Some(seconds) => Ok(Duration::from_secs(seconds.into())),
        }
    }

    /// Validates session data and returns its compact form.
    pub(crate) fn data(&self, data: &str) -> Result<String> {
        if data.len() > self.store.max_session_bytes() {
            return Err(Error::TooLarge);
        }
        let object = check_portable(data, MAX_NESTING)
            .and_then(|()| JsonObject::parse(data))
            .map_err(|e| Error::InvalidArgument(format!("data: expected a JSON object: {e}")))?;
        Ok(object.to_json())
    }

    pub(super) fn field_name<'a>(&self, name: &'a str) -> Result<&'a str> {
        if name.is_empty() || name.len() > MAX_FIELD_NAME_BYTES {
            return Err(Error::InvalidArgument(format!(
                "name: field names are 1 to {MAX_FIELD_NAME_BYTES} bytes"
            )));
        }
        Ok(name)
    }

    pub(super) fn field_value<'a>(&self, value: &'a str) -> Result<&'a str> {
        if value.len() > self.store.max_session_bytes() {
            return Err(Error::TooLarge);
        }
        // The value nests one level inside the session object.
        check_portable(value, MAX_NESTING - 1)
            .and_then(|()| parse_value(value))
            .map_err(|e| Error::InvalidArgument(format!("value: not valid JSON: {e}")))
    }

    pub(crate) fn map_error(&self, error: StoreError) -> Error {
        match error {
            StoreError::NotFound => Error::NotFound,
            StoreError::Conflict => Error::Conflict,
            StoreError::TooLarge { .. } => Error::TooLarge,
            StoreError::InvalidArgument(why) => Error::InvalidArgument(why),
            StoreError::Unavailable(why) => Error::Unavailable(why),
            StoreError::Internal(error) => {
                let namespace = self.policy.as_ref().map_or("", |p| p.namespace.as_str());
                tracing::error!(
                    namespace,
                    error = format!("{error:#}"),
                    "session store failure"
                );
                Error::Internal("session store failure; see the host log".into())
            }
        }
    }
}

impl SessionsContext {
    /// Creates a session under a fresh id and returns the id.
    pub(crate) async fn create_session(&self, data: &str, ttl: Duration) -> Result<String> {
        let namespace = &self.policy()?.namespace;
        for _ in 0..ID_ATTEMPTS {
            let id = session_id::generate();
            let key = SessionKey::new(namespace, &id);
            if self
                .store
                .insert(key, data, ttl)
                .await
                .map_err(|e| self.map_error(e))?
            {
                return Ok(id);
            }
        }
        Err(self
            .map_error(anyhow::anyhow!("{ID_ATTEMPTS} random session ids were all taken").into()))
    }

    /// Moves a live session to a fresh id and returns the id.
    pub(crate) async fn move_session(&self, from: SessionKey<'_>) -> Result<String> {
        for _ in 0..ID_ATTEMPTS {
            let new_id = session_id::generate();
            let to = SessionKey::new(from.namespace, &new_id);
            match self.store.rename(from, to).await {
                Ok(true) => return Ok(new_id),
                Ok(false) => return Err(Error::NotFound),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(self.map_error(error)),
            }
        }
        Err(self
            .map_error(anyhow::anyhow!("{ID_ATTEMPTS} random session ids were all taken").into()))
    }
}

pub(super) fn whole_seconds_left(left: Duration) -> u32 {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    seconds.clamp(1, u32::MAX.into()) as u32
}
