//! A route's session cookie, as the host reads and writes it for the
//! `current` interface.
//!
//! The rules are OWASP's, applied for every handler: `HttpOnly`; `Secure`
//! unless a route turns it off for local plain HTTP; `SameSite=Lax` by
//! default; `Path=/` and no `Domain` unless configured; the `__Host-` prefix
//! when secure (or `__Secure-` with a domain), so no other site or subdomain
//! can plant the cookie. No `Max-Age`: the browser drops the cookie when it
//! closes, and the server-side TTL decides how long the session lives.
//! With signing keys, the value is the id plus an HMAC ([`SigningKeys`]).

use std::sync::Arc;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue};

use crate::session::id as session_id;
use crate::session::signing::SigningKeys;

/// How a route's session cookie is named and flagged.
#[derive(Clone, Debug)]
pub struct CookiePolicy {
    /// The configured name, without prefix.
    pub name: String,
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
    /// Sign cookie values, and accept only values signed by one of these keys.
    pub signing: Option<Arc<SigningKeys>>,
}

impl Default for CookiePolicy {
    fn default() -> Self {
        Self {
            name: "sid".into(),
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            signing: None,
        }
    }
}

impl CookiePolicy {
    /// The cookie's name on the wire, with its security prefix.
    pub fn wire_name(&self) -> String {
        match (self.secure, &self.domain) {
            (true, None) => format!("__Host-{}", self.name),
            (true, Some(_)) => format!("__Secure-{}", self.name),
            (false, _) => self.name.clone(),
        }
    }

    /// What the request's cookies of the route's name say: the session id
    /// of the first one that has the shape of an id this host issues (and,
    /// with signing keys, a valid signature), so a junk cookie cannot hide
    /// the real one. Whether that id names a live session is for the store
    /// to say. Non-ASCII bytes in other cookies (a UTF-8 value, say) do not
    /// hide it either.
    pub fn read(&self, headers: &HeaderMap) -> SessionCookie {
        let name = self.wire_name();
        let mut rejected = false;
        for value in headers.get_all(http::header::COOKIE) {
            let text = String::from_utf8_lossy(value.as_bytes());
            let ours = Cookie::split_parse(text.as_ref())
                .filter_map(Result::ok)
                .filter(|cookie| cookie.name() == name);
            for cookie in ours {
                match self.accept(cookie.value()) {
                    Some(id) => return SessionCookie::Id(id.to_owned()),
                    None => rejected = true,
                }
            }
        }
        if rejected {
            SessionCookie::Rejected
        } else {
            SessionCookie::Absent
        }
    }

    /// The id in a cookie value, if the host could have issued the value.
    fn accept<'v>(&self, value: &'v str) -> Option<&'v str> {
        let id = match &self.signing {
            Some(keys) => keys.verify(&self.wire_name(), value)?,
            None => value,
        };
        session_id::validate(id).is_ok().then_some(id)
    }

    /// `Set-Cookie` for a session id.
    pub fn set(&self, id: &str) -> HeaderValue {
        let value = match &self.signing {
            Some(keys) => keys.sign(&self.wire_name(), id),
            None => id.to_owned(),
        };
        self.header(self.cookie(value))
    }

    /// `Set-Cookie` that removes the cookie.
    pub fn remove(&self) -> HeaderValue {
        let mut cookie = self.cookie(String::new());
        cookie.make_removal();
        self.header(cookie)
    }

    fn cookie(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::build((self.wire_name(), value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site);
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        cookie.build()
    }

    fn header(&self, cookie: Cookie<'_>) -> HeaderValue {
        // Names, ids and domains are validated tokens, so this cannot fail.
        HeaderValue::from_str(&cookie.to_string()).expect("cookie is a valid header value")
    }
}

/// What a request's cookies say about the route's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCookie {
    /// No cookie of the route's name.
    Absent,
    /// The id an acceptable cookie carries.
    Id(String),
    /// Cookies of the route's name that the host could not have issued
    /// (malformed, forged, signed with an unknown key): the response
    /// removes the cookie rather than leave it in the browser.
    Rejected,
}

impl SessionCookie {
    /// The id, when the cookie carries an acceptable one.
    pub fn id(&self) -> Option<&str> {
        match self {
            SessionCookie::Id(id) => Some(id),
            SessionCookie::Absent | SessionCookie::Rejected => None,
        }
    }
}

/// Checks a configured cookie name: an RFC 6265 token, without a prefix
/// (the host adds it).
pub fn validate_name(name: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || name.len() > 64 || !name.bytes().all(token) {
        return Err(format!(
            "{name:?} must be 1 to 64 characters of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?} must not start with \"__\": the host adds __Host- or __Secure-"
        ));
    }
    Ok(())
}

/// Checks a configured cookie domain: a plain host name.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    let label_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if domain.is_empty()
        || domain.len() > 253
        || !domain.bytes().all(label_char)
        || domain.starts_with('.')
    {
        return Err(format!(
            "{domain:?} must be a host name such as example.com"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append(http::header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        headers
    }

    #[test]
    fn secure_cookies_get_the_host_prefix_and_every_flag() {
        let policy = CookiePolicy::default();
        let id = session_id::generate();
        assert_eq!(
            policy.set(&id).to_str().unwrap(),
            format!("__Host-sid={id}; HttpOnly; SameSite=Lax; Secure; Path=/")
        );
        let removal = policy.remove();
        let removal = removal.to_str().unwrap();
        assert!(
            removal.starts_with("__Host-sid=; HttpOnly; SameSite=Lax; Secure; Path=/"),
            "{removal}"
        );
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }

    #[test]
    fn domain_and_plain_http_variants() {
        let with_domain = CookiePolicy {
            domain: Some("example.com".into()),
            same_site: SameSite::Strict,
            ..CookiePolicy::default()
        };
        let header = with_domain.set("AAAAAAAAAAAAAAAAAAAAAA");
        let header = header.to_str().unwrap();
        assert!(
            header.starts_with("__Secure-sid=AAAAAAAAAAAAAAAAAAAAAA;"),
            "{header}"
        );
        assert!(
            header.contains("SameSite=Strict") && header.contains("Domain=example.com"),
            "{header}"
        );
        let plain = CookiePolicy {
            secure: false,
            ..CookiePolicy::default()
        };
        assert_eq!(plain.wire_name(), "sid");
        assert!(
            !plain
                .set("AAAAAAAAAAAAAAAAAAAAAA")
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn reads_only_well_formed_ids_under_the_prefixed_name() {
        use SessionCookie::{Absent, Id, Rejected};
        let policy = CookiePolicy::default();
        let id = session_id::generate();
        assert_eq!(
            policy.read(&headers(&format!("a=1; __Host-sid={id}; b=2"))),
            Id(id.clone())
        );
        assert_eq!(
            policy.read(&headers(&format!("sid={id}"))),
            Absent,
            "the unprefixed name is someone else's"
        );
        assert_eq!(policy.read(&headers("__Host-sid=short")), Rejected);
        assert_eq!(
            policy.read(&headers("__Host-sid=AAAAAAAAAAAAAAAAAAAAAB")),
            Rejected,
            "not an id we issue"
        );
        assert_eq!(policy.read(&headers("garbage;;;=")), Absent);
        let mut utf8 = HeaderMap::new();
        let text = format!("lang=français; __Host-sid={id}");
        utf8.append(
            http::header::COOKIE,
            HeaderValue::from_bytes(text.as_bytes()).unwrap(),
        );
        assert_eq!(policy.read(&utf8), Id(id.clone()), "other cookies' UTF-8");
        assert_eq!(policy.read(&HeaderMap::new()), Absent);
    }

    #[test]
    fn signed_cookies_carry_and_require_a_valid_signature() {
        use SessionCookie::{Id, Rejected};
        let keys = SigningKeys::new([("k1", &[7u8; 32][..])]).unwrap();
        let policy = CookiePolicy {
            signing: Some(Arc::new(keys)),
            ..CookiePolicy::default()
        };
        let id = session_id::generate();
        let header = policy.set(&id);
        let pair = header.to_str().unwrap().split(';').next().unwrap();
        assert!(pair.starts_with(&format!("__Host-sid={id}.k1.")), "{pair}");
        assert_eq!(policy.read(&headers(pair)), Id(id.clone()));

        let unsigned = format!("__Host-sid={id}");
        assert_eq!(policy.read(&headers(&unsigned)), Rejected, "unsigned id");
        let forged = pair.replace(&id, &session_id::generate());
        assert_eq!(policy.read(&headers(&forged)), Rejected, "id swapped");
        let unknown_key = pair.replace(".k1.", ".k2.");
        assert_eq!(policy.read(&headers(&unknown_key)), Rejected, "key id");
        // A junk cookie of the same name does not hide the real one.
        assert_eq!(
            policy.read(&headers(&format!("{unsigned}; {pair}"))),
            Id(id)
        );
    }

    #[test]
    fn names_and_domains_are_checked() {
        assert!(validate_name("sid").is_ok());
        assert!(validate_name("shop_sid").is_ok());
        for bad in ["", "a b", "a;b", "__Host-sid", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_domain("example.com").is_ok());
        for bad in ["", ".example.com", "exa mple.com", "example.com;x"] {
            assert!(validate_domain(bad).is_err(), "{bad:?}");
        }
    }
}
