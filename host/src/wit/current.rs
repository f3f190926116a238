//! The host side of the `edge:session/current` WIT interface: the session
//! of the request being handled, with its cookie managed by the host.
//!
//! The request's cookie gives a candidate id
//! ([`CookiePolicy::read`](crate::session::cookie::CookiePolicy::read)); it is
//! adopted only if it names a live session of the route's namespace that is
//! younger than `max_lifetime` (strict mode: no id the host did not issue
//! ever becomes a session). What the guest does to the session decides the
//! `Set-Cookie` that [`RequestSession::settle`](super::RequestSession::settle) adds to its response head.

use std::time::SystemTime;

use super::context::{Result, whole_seconds_left};
use super::current_interface as current;
use super::{Error, Session, SessionsContext};
use crate::session::id as session_id;
use crate::store::SessionKey;

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
