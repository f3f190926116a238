//! The session of one request: what its cookie said, what the guest has
//! done to it since, and so what `Set-Cookie` its response carries.

use std::sync::Mutex;

use http::HeaderValue;

use super::Error;
use crate::session::cookie::{CookiePolicy, SessionCookie};

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

    pub(super) fn id(&self) -> Option<String> {
        self.lock().id.clone()
    }

    /// Fails once the response head is out: the cookie can no longer follow.
    pub(super) fn check_open(&self) -> Result<()> {
        if self.lock().head_sent {
            return Err(Error::InvalidArgument(
                "the response head has been sent: start, rotate or end the session before responding".into(),
            ));
        }
        Ok(())
    }

    /// The request's session is now `id`.
    pub(super) fn replace(&self, id: String) {
        let mut state = self.lock();
        state.change = Some(CookieChange::Set(id.clone()));
        state.id = Some(id);
    }

    /// The request has no session any more; its cookie goes if it had one.
    pub(super) fn forget(&self) {
        let mut state = self.lock();
        if state.id.take().is_some() && !state.head_sent {
            state.change = Some(CookieChange::Remove);
        }
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
