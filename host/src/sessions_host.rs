//! The host side of the `edge:session/sessions` WIT interface, and the
//! per-request context that `current` ([`crate::current_host`]) shares.
//!
//! A thin layer over [`SessionStore`]: it checks what the guest passes (ids,
//! JSON, TTLs, sizes), scopes every id to the route's namespace, and maps
//! store errors to the WIT `error` variant. Guests never trap on bad input;
//! store internals (paths, I/O errors) go to the host log, not to guests.

use std::sync::Arc;
use std::time::Duration;

use crate::current_host::RequestSession;
use crate::json_object::{JsonObject, MAX_NESTING, check_portable, parse_value};
use crate::session_cookie::CookiePolicy;
use crate::session_id;
use crate::store::{SessionKey, SessionStore, StoreError};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/sessions.wit",
        world: "session-imports",
        imports: { default: async },
    });
}

pub use bindings::SessionImports;
pub use bindings::edge::session::current;
pub use bindings::edge::session::sessions::{self, Error, Session};

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
    /// Sessions in `namespace`: 30-minute idle timeout (default TTL), 30-day
    /// maximum TTL, expiry slid when less than half the TTL is left, 8-hour
    /// absolute lifetime, and the default cookie (`__Host-sid`).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            default_ttl: Duration::from_secs(30 * 60),
            max_ttl: Duration::from_secs(30 * 24 * 3600),
            cookie: CookiePolicy::default(),
            refresh_fraction: 0.5,
            max_lifetime: Duration::from_secs(8 * 3600),
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

type Result<T> = std::result::Result<T, Error>;

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
    fn key<'a>(&'a self, id: &'a str) -> Result<SessionKey<'a>> {
        let policy = self.policy()?;
        session_id::validate(id).map_err(|why| Error::InvalidArgument(format!("id: {why}")))?;
        Ok(SessionKey::new(&policy.namespace, id))
    }

    fn ttl(&self, ttl: Option<u32>) -> Result<Duration> {
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

    fn field_name<'a>(&self, name: &'a str) -> Result<&'a str> {
        if name.is_empty() || name.len() > MAX_FIELD_NAME_BYTES {
            return Err(Error::InvalidArgument(format!(
                "name: field names are 1 to {MAX_FIELD_NAME_BYTES} bytes"
            )));
        }
        Ok(name)
    }

    fn field_value<'a>(&self, value: &'a str) -> Result<&'a str> {
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

pub(crate) fn whole_seconds_left(left: Duration) -> u32 {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    seconds.clamp(1, u32::MAX.into()) as u32
}

impl sessions::Host for SessionsContext {
    async fn create(&mut self, data: String, ttl: Option<u32>) -> Result<String> {
        self.policy()?;
        let (data, ttl) = (self.data(&data)?, self.ttl(ttl)?);
        self.create_session(&data, ttl).await
    }

    async fn get(&mut self, id: String) -> Result<Option<Session>> {
        let key = self.key(&id)?;
        let session = self.store.load(key).await.map_err(|e| self.map_error(e))?;
        Ok(session.map(|s| Session {
            id,
            data: s.data,
            generation: s.generation,
            expires_in: whole_seconds_left(s.expires_in),
        }))
    }

    async fn save(&mut self, id: String, data: String, ttl: Option<u32>) -> Result<u64> {
        let (key, data, ttl) = (self.key(&id)?, self.data(&data)?, self.ttl(ttl)?);
        self.store
            .save(key, &data, ttl, None)
            .await
            .map_err(|e| self.map_error(e))
    }

    async fn save_if(
        &mut self,
        id: String,
        data: String,
        expected: u64,
        ttl: Option<u32>,
    ) -> Result<u64> {
        let (key, data, ttl) = (self.key(&id)?, self.data(&data)?, self.ttl(ttl)?);
        self.store
            .save(key, &data, ttl, Some(expected))
            .await
            .map_err(|e| self.map_error(e))
    }

    async fn touch(&mut self, id: String, ttl: Option<u32>) -> Result<bool> {
        let (key, ttl) = (self.key(&id)?, self.ttl(ttl)?);
        self.store
            .touch(key, ttl)
            .await
            .map_err(|e| self.map_error(e))
    }

    async fn delete(&mut self, id: String) -> Result<bool> {
        let key = self.key(&id)?;
        self.store.delete(key).await.map_err(|e| self.map_error(e))
    }

    async fn rotate(&mut self, id: String) -> Result<String> {
        let from = self.key(&id)?;
        self.move_session(from).await
    }

    async fn get_field(&mut self, id: String, name: String) -> Result<Option<String>> {
        let (key, name) = (self.key(&id)?, self.field_name(&name)?);
        self.store
            .get_field(key, name)
            .await
            .map_err(|e| self.map_error(e))
    }

    async fn set_field(&mut self, id: String, name: String, value: String) -> Result<u64> {
        let (key, name, value) = (
            self.key(&id)?,
            self.field_name(&name)?,
            self.field_value(&value)?,
        );
        self.store
            .set_field(key, name, value)
            .await
            .map_err(|e| self.map_error(e))
    }

    async fn remove_field(&mut self, id: String, name: String) -> Result<bool> {
        let (key, name) = (self.key(&id)?, self.field_name(&name)?);
        self.store
            .remove_field(key, name)
            .await
            .map_err(|e| self.map_error(e))
    }

    async fn incr_field(&mut self, id: String, name: String, delta: i64) -> Result<i64> {
        let (key, name) = (self.key(&id)?, self.field_name(&name)?);
        self.store
            .incr_field(key, name, delta)
            .await
            .map_err(|e| self.map_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedConfig, EmbeddedStore};
    use sessions::Host as _;

    const MAX_BYTES: usize = 1024;

    struct Fixture {
        _dir: tempfile::TempDir,
        sessions: SessionsContext,
    }

    fn fixture(policy: Option<SessionPolicy>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedConfig {
            max_session_bytes: MAX_BYTES,
            ..EmbeddedConfig::new(dir.path())
        })
        .unwrap();
        Fixture {
            sessions: SessionsContext::new(
                policy.map(Arc::new),
                Arc::new(store),
                Arc::new(RequestSession::default()),
            ),
            _dir: dir,
        }
    }

    fn policy() -> SessionPolicy {
        SessionPolicy {
            default_ttl: Duration::from_secs(600),
            max_ttl: Duration::from_secs(3600),
            ..SessionPolicy::new("test")
        }
    }

    fn invalid(result: Result<impl std::fmt::Debug>, argument: &str) {
        match result {
            Err(Error::InvalidArgument(why)) => assert!(why.starts_with(argument), "{why}"),
            other => panic!("expected invalid-argument({argument}), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn routes_without_a_policy_are_denied_everything() {
        let mut f = fixture(None);
        let s = &mut f.sessions;
        let id = session_id::generate();
        assert!(matches!(
            s.create("{}".into(), None).await,
            Err(Error::AccessDenied)
        ));
        assert!(matches!(s.get(id.clone()).await, Err(Error::AccessDenied)));
        assert!(matches!(
            s.touch(id.clone(), None).await,
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            s.delete(id.clone()).await,
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            s.incr_field(id, "n".into(), 1).await,
            Err(Error::AccessDenied)
        ));
    }

    #[tokio::test]
    async fn bad_arguments_get_typed_errors() {
        let mut f = fixture(Some(policy()));
        let s = &mut f.sessions;
        let id = s.create(r#"{"n":1,"s":"x"}"#.into(), None).await.unwrap();

        invalid(s.get("nope".into()).await, "id");
        invalid(s.touch(format!("{id}="), None).await, "id");
        invalid(s.create("[1]".into(), None).await, "data");
        invalid(s.create("{".into(), None).await, "data");
        invalid(s.save(id.clone(), "null".into(), None).await, "data");
        invalid(s.create("{}".into(), Some(0)).await, "ttl");
        invalid(s.create("{}".into(), Some(3601)).await, "ttl");
        invalid(s.touch(id.clone(), Some(u32::MAX)).await, "ttl");
        invalid(s.get_field(id.clone(), String::new()).await, "name");
        invalid(
            s.set_field(id.clone(), "x".repeat(MAX_FIELD_NAME_BYTES + 1), "1".into())
                .await,
            "name",
        );
        invalid(
            s.set_field(id.clone(), "a".into(), "{oops".into()).await,
            "value",
        );
        invalid(s.incr_field(id.clone(), "s".into(), 1).await, "field \"s\"");

        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_BYTES));
        assert!(matches!(
            s.create(big.clone(), None).await,
            Err(Error::TooLarge)
        ));
        assert!(matches!(
            s.save(id.clone(), big, None).await,
            Err(Error::TooLarge)
        ));
        let half = format!(r#""{}""#, "y".repeat(MAX_BYTES / 2));
        s.set_field(id.clone(), "a".into(), half.clone())
            .await
            .unwrap();
        assert!(matches!(
            s.set_field(id.clone(), "b".into(), half).await,
            Err(Error::TooLarge)
        ));

        // None of the rejected calls changed the session.
        let session = s.get(id).await.unwrap().unwrap();
        assert_eq!(session.generation, 2);
        assert!(session.data.starts_with(r#"{"n":1,"s":"x","a":"#));
    }

    #[tokio::test]
    async fn data_is_stored_compact_and_ttls_apply() {
        let mut f = fixture(Some(policy()));
        let s = &mut f.sessions;
        let id = s
            .create(" { \"a\" : [1, 2],\n \"a\": 3 } ".into(), None)
            .await
            .unwrap();
        let session = s.get(id.clone()).await.unwrap().unwrap();
        assert_eq!(session.data, r#"{"a":3}"#);
        assert!(
            (599..=600).contains(&session.expires_in),
            "default ttl: {}",
            session.expires_in
        );
        assert!(s.touch(id.clone(), Some(5)).await.unwrap());
        assert_eq!(
            s.get(id.clone()).await.unwrap().unwrap().expires_in,
            5,
            "rounded up"
        );
        assert_eq!(
            s.get_field(id, "a".into()).await.unwrap().as_deref(),
            Some("3")
        );
    }

    #[tokio::test]
    async fn rotate_moves_the_session_to_a_fresh_id() {
        let mut f = fixture(Some(policy()));
        let s = &mut f.sessions;
        let old = s.create(r#"{"user":"ada"}"#.into(), None).await.unwrap();
        let new = s.rotate(old.clone()).await.unwrap();
        assert_ne!(new, old);
        assert_eq!(session_id::validate(&new), Ok(()));
        assert!(
            s.get(old.clone()).await.unwrap().is_none(),
            "the old id is dead"
        );
        assert_eq!(s.get(new).await.unwrap().unwrap().data, r#"{"user":"ada"}"#);
        assert!(matches!(s.rotate(old).await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn save_if_reports_conflicts() {
        let mut f = fixture(Some(policy()));
        let s = &mut f.sessions;
        let id = s.create("{}".into(), None).await.unwrap();
        assert_eq!(
            s.save_if(id.clone(), r#"{"v":1}"#.into(), 1, None)
                .await
                .unwrap(),
            2
        );
        assert!(matches!(
            s.save_if(id.clone(), r#"{"v":2}"#.into(), 1, None).await,
            Err(Error::Conflict)
        ));
        assert!(matches!(
            s.save_if(session_id::generate(), "{}".into(), 1, None)
                .await,
            Err(Error::NotFound)
        ));
    }
}
