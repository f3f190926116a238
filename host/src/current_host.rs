//! The host side of the `edge:session/current` WIT interface: the session
//! of the request being handled, with its cookie managed by the host.
//!
//! The request's cookie gives a candidate id ([`CookiePolicy::read`]); it is
//! adopted only if it names a live session of the route's namespace that is
//! younger than `max_lifetime` (strict mode: no id the host did not issue
//! ever becomes a session). What the guest does to the session decides the
//! `Set-Cookie` that [`RequestSession::settle`] adds to its response head.

use std::sync::Mutex;
use std::time::SystemTime;

use http::HeaderValue;

use crate::session_cookie::{CookiePolicy, SessionCookie};
use crate::session_id;
use crate::sessions_host::{Error, Session, SessionsContext, current, whole_seconds_left};
use crate::store::SessionKey;

type Result<T> = std::result::Result<T, Error>;

/// The session of one request, shared by the guest's `current` calls and
/// the host code that sends the response head.
#[derive(Debug, Default)]
pub struct RequestSession {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The id the request's session has now, if any.
    id: Option<String>,
    /// What the response must tell the client about the cookie.
    change: Option<CookieChange>,
    /// Once the response head is out, the cookie can no longer change.
    head_sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CookieChange {
    Set(String),
    Remove,
}

impl RequestSession {
    /// A request with what its cookie says: an id (not yet checked against
    /// the store), or a cookie the host rejected, which the response removes
    /// unless the guest starts a session.
    pub fn new(cookie: SessionCookie) -> Self {
        let (id, change) = match cookie {
            SessionCookie::Absent => (None, None),
            SessionCookie::Id(id) => (Some(id), None),
            SessionCookie::Rejected => (None, Some(CookieChange::Remove)),
        };
        Self {
            state: Mutex::new(State {
                id,
                change,
                head_sent: false,
            }),
        }
    }

    /// Marks the response head as sent and returns the `Set-Cookie` it
    /// must carry, if any.
    pub fn settle(&self, policy: &CookiePolicy) -> Option<HeaderValue> {
        let mut state = self.lock();
        state.head_sent = true;
        match state.change.take()? {
            CookieChange::Set(id) => Some(policy.set(&id)),
            CookieChange::Remove => Some(policy.remove()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self) -> Option<String> {
        self.lock().id.clone()
    }

    /// Fails once the response head is out: the cookie can no longer follow.
    fn check_open(&self) -> Result<()> {
        if self.lock().head_sent {
            return Err(Error::InvalidArgument(
                "the response head has been sent: start, rotate or end the session before responding".into(),
            ));
        }
        Ok(())
    }

    /// The request's session is now `id`.
    fn replace(&self, id: String) {
        let mut state = self.lock();
        state.change = Some(CookieChange::Set(id.clone()));
        state.id = Some(id);
    }

    /// The request has no session any more; its cookie goes if it had one.
    fn forget(&self) {
        let mut state = self.lock();
        if state.id.take().is_some() && !state.head_sent {
            state.change = Some(CookieChange::Remove);
        }
    }
}

impl current::Host for SessionsContext {
    async fn load(&mut self) -> Result<Option<Session>> {
        let policy = self.policy()?;
        let Some(id) = self.request.id() else {
            return Ok(None);
        };
        let key = SessionKey::new(&policy.namespace, &id);
        let Some(stored) = self.store.load(key).await.map_err(|e| self.map_error(e))? else {
            self.request.forget();
            return Ok(None);
        };
        let age = SystemTime::now()
            .duration_since(stored.created_at)
            .unwrap_or_default();
        let Some(lifetime_left) = policy
            .max_lifetime
            .checked_sub(age)
            .filter(|left| !left.is_zero())
        else {
            tracing::debug!(session = %session_id::tag(&id), "session outlived max_lifetime");
            self.store
                .delete(key)
                .await
                .map_err(|e| self.map_error(e))?;
            self.request.forget();
            return Ok(None);
        };
        let mut expires_in = stored.expires_in;
        if expires_in < policy.default_ttl.mul_f64(policy.refresh_fraction) {
            // Activity slides the expiry, never past the absolute lifetime.
            let ttl = policy.default_ttl.min(lifetime_left);
            if self
                .store
                .touch(key, ttl)
                .await
                .map_err(|e| self.map_error(e))?
            {
                expires_in = ttl;
            }
        }
        Ok(Some(Session {
            id,
            data: stored.data,
            generation: stored.generation,
            expires_in: whole_seconds_left(expires_in),
        }))
    }

    async fn start(&mut self, data: String) -> Result<Session> {
        let policy = self.policy()?;
        let data = self.data(&data)?;
        self.request.check_open()?;
        if let Some(old) = self.request.id() {
            // A login never continues an id from before it (session fixation).
            let key = SessionKey::new(&policy.namespace, &old);
            self.store
                .delete(key)
                .await
                .map_err(|e| self.map_error(e))?;
        }
        let ttl = policy.default_ttl.min(policy.max_lifetime);
        let id = self.create_session(&data, ttl).await?;
        self.request.replace(id.clone());
        Ok(Session {
            id,
            data,
            generation: 1,
            expires_in: whole_seconds_left(ttl),
        })
    }

    async fn rotate(&mut self) -> Result<Session> {
        let policy = self.policy()?;
        self.request.check_open()?;
        let old = self.request.id().ok_or(Error::NotFound)?;
        let new_id = self
            .move_session(SessionKey::new(&policy.namespace, &old))
            .await?;
        self.request.replace(new_id.clone());
        let key = SessionKey::new(&policy.namespace, &new_id);
        let stored = self
            .store
            .load(key)
            .await
            .map_err(|e| self.map_error(e))?
            .ok_or(Error::NotFound)?;
        Ok(Session {
            id: new_id,
            data: stored.data,
            generation: stored.generation,
            expires_in: whole_seconds_left(stored.expires_in),
        })
    }

    async fn end(&mut self) -> Result<bool> {
        let policy = self.policy()?;
        self.request.check_open()?;
        let Some(old) = self.request.id() else {
            return Ok(false);
        };
        let existed = self
            .store
            .delete(SessionKey::new(&policy.namespace, &old))
            .await
            .map_err(|e| self.map_error(e))?;
        self.request.forget();
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_change_before_the_head_wins_and_nothing_after() {
        let policy = CookiePolicy::default();
        let request = RequestSession::new(SessionCookie::Id("AAAAAAAAAAAAAAAAAAAAAA".into()));
        request.forget();
        request.replace("BBBBBBBBBBBBBBBBBBBBBA".into());
        let header = request.settle(&policy).unwrap();
        assert!(
            header
                .to_str()
                .unwrap()
                .starts_with("__Host-sid=BBBBBBBBBBBBBBBBBBBBBA;")
        );
        assert!(request.check_open().is_err());
        request.forget();
        assert_eq!(
            request.settle(&policy),
            None,
            "nothing to add after the head"
        );
    }

    #[test]
    fn a_request_without_a_cookie_gets_none() {
        let request = RequestSession::new(SessionCookie::Absent);
        request.forget();
        assert_eq!(request.settle(&CookiePolicy::default()), None);
    }

    #[test]
    fn a_rejected_cookie_is_removed_unless_a_session_starts() {
        let policy = CookiePolicy::default();
        let request = RequestSession::new(SessionCookie::Rejected);
        request.forget();
        let removal = request.settle(&policy).unwrap();
        assert!(
            removal.to_str().unwrap().contains("Max-Age=0"),
            "{removal:?}"
        );

        let request = RequestSession::new(SessionCookie::Rejected);
        request.replace("BBBBBBBBBBBBBBBBBBBBBA".into());
        let header = request.settle(&policy).unwrap();
        assert!(header.to_str().unwrap().starts_with("__Host-sid=BBBB"));
    }
}
