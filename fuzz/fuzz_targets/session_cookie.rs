//! Fuzzes how the host reads the session id from a request's Cookie
//! headers, and the id, cookie name and domain checks: whatever a client
//! sends, `read` must not panic and may only return a valid id, and the
//! cookie the host set must be read back from among other cookies.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use edge_session::session::cookie::{CookiePolicy, SessionCookie, validate_domain, validate_name};
use edge_session::session::id as session_id;
use edge_session::session::signing::SigningKeys;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Cookie header values as a client may send them.
    cookie_headers: Vec<&'a [u8]>,
    /// Where the host's own cookie goes among them.
    placement: Placement,
    /// Used as the session id when `session_id::validate` accepts it.
    id_candidate: &'a str,
    /// Otherwise the id is built from these: 21 base64url characters and a
    /// last one that leaves the spare bits zero.
    id_chars: [u8; 22],
    name: &'a str,
    domain: &'a str,
    secure: bool,
}

#[derive(Arbitrary, Debug)]
enum Placement {
    /// A Cookie header of its own, before the n-th fuzzed one.
    OwnHeader(u8),
    /// Appended to the n-th fuzzed header, after its cookies.
    After(u8),
    /// Prepended to the n-th fuzzed header, before its cookies.
    Before(u8),
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fuzz_target!(|input: Input| {
    let name_ok = validate_name(input.name).is_ok();
    let domain_ok = validate_domain(input.domain).is_ok();
    let id = if session_id::validate(input.id_candidate).is_ok() {
        input.id_candidate.to_owned()
    } else {
        let mut id: String = input.id_chars[..21]
            .iter()
            .map(|&b| BASE64URL[b as usize % 64] as char)
            .collect();
        id.push(['A', 'Q', 'g', 'w'][input.id_chars[21] as usize % 4]);
        assert_eq!(session_id::validate(&id), Ok(()), "{id}");
        id
    };

    let keys = SigningKeys::new([("k1", &[7u8; 32][..])]).expect("a valid key");
    let signed = CookiePolicy {
        signing: Some(Arc::new(keys)),
        ..CookiePolicy::default()
    };
    // A name and domain that pass the config checks must make valid cookies.
    let configured = CookiePolicy {
        name: if name_ok { input.name } else { "sid" }.to_owned(),
        domain: domain_ok.then(|| input.domain.to_owned()),
        secure: input.secure,
        ..CookiePolicy::default()
    };
    let plain = CookiePolicy {
        secure: false,
        ..CookiePolicy::default()
    };

    let fuzzed: Vec<HeaderValue> = input
        .cookie_headers
        .iter()
        .filter_map(|bytes| HeaderValue::from_bytes(bytes).ok())
        .collect();
    for policy in [CookiePolicy::default(), plain, configured, signed] {
        let cookie = policy.read(&headers(fuzzed.iter().cloned()));
        let named = |value: &HeaderValue| {
            let name = policy.wire_name();
            value
                .as_bytes()
                .windows(name.len())
                .any(|w| w == name.as_bytes())
        };
        if !fuzzed.iter().any(named) {
            assert_eq!(cookie, SessionCookie::Absent, "no cookie of the name");
        }
        if let Some(read) = cookie.id() {
            assert_eq!(session_id::validate(read), Ok(()), "{read:?}");
            assert!(
                policy.signing.is_none(),
                "forged signature accepted: {read:?}"
            );
            let sent =
                |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).contains(read);
            assert!(fuzzed.iter().any(sent), "{read:?} is not in the request");
        }
        read_back(&policy, &id, &fuzzed, &input.placement);
    }
});

/// The host's own cookie, placed among the fuzzed ones, reads back as `id`
/// when no cookie before it could have the same name.
fn read_back(policy: &CookiePolicy, id: &str, fuzzed: &[HeaderValue], placement: &Placement) {
    let set_cookie = policy.set(id);
    let set_cookie = set_cookie.to_str().expect("Set-Cookie is visible ASCII");
    let pair = set_cookie.split(';').next().unwrap();
    let wire_name = policy.wire_name();
    assert!(pair.starts_with(&format!("{wire_name}=")), "{set_cookie}");

    let mut all = fuzzed.to_vec();
    let index = |n: u8| n as usize % fuzzed.len().max(1);
    // The fuzzed headers, or parts of one, that come before the host's cookie.
    let before: Vec<&[u8]> = match *placement {
        Placement::After(n) | Placement::Before(n)
            if fuzzed
                .get(index(n))
                .is_some_and(|value| value.to_str().is_ok()) =>
        {
            let i = index(n);
            let other = all[i].to_str().unwrap();
            let joined = match placement {
                Placement::After(_) => format!("{other}; {pair}"),
                _ => format!("{pair}; {other}"),
            };
            all[i] = HeaderValue::from_str(&joined).expect("visible ASCII");
            let end = if matches!(placement, Placement::After(_)) {
                i + 1
            } else {
                i
            };
            fuzzed[..end].iter().map(HeaderValue::as_bytes).collect()
        }
        // Also when the header to join is not visible ASCII, so that it
        // cannot be joined as text.
        Placement::OwnHeader(n) | Placement::After(n) | Placement::Before(n) => {
            let i = n as usize % (fuzzed.len() + 1);
            all.insert(i, HeaderValue::from_str(pair).expect("visible ASCII"));
            fuzzed[..i].iter().map(HeaderValue::as_bytes).collect()
        }
    };
    let could_shadow = before.iter().any(|bytes| {
        bytes
            .windows(wire_name.len())
            .any(|w| w == wire_name.as_bytes())
    });
    if !could_shadow {
        assert_eq!(policy.read(&headers(all)).id(), Some(id), "{pair:?}");
    }
}

fn headers(values: impl IntoIterator<Item = HeaderValue>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(COOKIE, value);
    }
    headers
}
