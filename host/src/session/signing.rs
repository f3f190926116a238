//! HMAC signatures on session cookies, with key ids for rotation.
//!
//! Defence in depth over strict adoption: with signing on, a cookie whose
//! value the host did not sign is dropped before any store lookup, so
//! guessed or forged ids cost the store nothing. The first key signs; every
//! key verifies, so a new key can be put first while cookies signed with the
//! old one stay valid until it is removed from the list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Secrets shorter than this are refused (the HMAC-SHA256 block of safety).
pub const MIN_SECRET_BYTES: usize = 32;

/// The keys a host signs and verifies cookies with; the first one signs.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

#[derive(Clone)]
struct SigningKey {
    id: String,
    mac: Hmac<Sha256>,
}

impl SigningKeys {
    /// Keys as (id, secret) pairs, the signing key first. Ids must be
    /// distinct [`valid_key_id`]s and secrets at least [`MIN_SECRET_BYTES`].
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Self, String> {
        let mut built: Vec<SigningKey> = Vec::new();
        for (id, secret) in keys {
            valid_key_id(id)?;
            if built.iter().any(|key| key.id == id) {
                return Err(format!("key id {id:?} is used twice"));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "the secret of key {id:?} must be at least {MIN_SECRET_BYTES} bytes"
                ));
            }
            let mac = Hmac::new_from_slice(secret).expect("HMAC takes keys of any length");
            built.push(SigningKey { id: id.into(), mac });
        }
        if built.is_empty() {
            return Err("give at least one key".into());
        }
        Ok(Self { keys: built })
    }

    /// `value.<key id>.<signature>`, where the signature covers `context`
    /// (the cookie's name, so a value cannot move to another cookie) and
    /// the value.
    pub fn sign(&self, context: &str, value: &str) -> String {
        let key = &self.keys[0];
        let tag = URL_SAFE_NO_PAD.encode(Self::tag(key, context, value).finalize().into_bytes());
        format!("{value}.{}.{tag}", key.id)
    }

    /// The value of a [`sign`](Self::sign)ed string whose signature is
    /// valid under one of the keys; `None` for anything else.
    pub fn verify<'a>(&self, context: &str, signed: &'a str) -> Option<&'a str> {
        let mut parts = signed.rsplitn(3, '.');
        let (tag, key_id, value) = (parts.next()?, parts.next()?, parts.next()?);
        let key = self.keys.iter().find(|key| key.id == key_id)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // verify_slice compares in constant time.
        Self::tag(key, context, value)
            .verify_slice(&tag)
            .ok()
            .map(|()| value)
    }

    fn tag(key: &SigningKey, context: &str, value: &str) -> Hmac<Sha256> {
        let mut mac = key.mac.clone();
        // The length prefix keeps (context, value) pairs unambiguous.
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context.as_bytes());
        mac.update(value.as_bytes());
        mac
    }
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        let ids: Vec<&str> = self.keys.iter().map(|key| key.id.as_str()).collect();
        f.debug_struct("SigningKeys").field("ids", &ids).finish()
    }
}

/// Checks a key id: 1 to 32 characters of A-Z a-z 0-9 - _ (it travels in
/// cookies and must not contain the `.` separator).
pub fn valid_key_id(id: &str) -> Result<(), String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if id.is_empty() || id.len() > 32 || !id.bytes().all(ok) {
        return Err(format!(
            "key id {id:?} must be 1 to 32 characters of A-Z a-z 0-9 - _"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = &[1; 32];
    const NEW: &[u8] = &[2; 32];

    #[test]
    fn signed_values_verify_and_tampering_does_not() {
        let keys = SigningKeys::new([("k1", OLD)]).unwrap();
        let signed = keys.sign("__Host-sid", "abc");
        assert!(signed.starts_with("abc.k1."));
        assert_eq!(keys.verify("__Host-sid", &signed), Some("abc"));

        assert_eq!(keys.verify("__Host-other", &signed), None, "other cookie");
        let swapped = signed.replacen("abc", "abd", 1);
        assert_eq!(keys.verify("__Host-sid", &swapped), None, "other value");
        let mut flipped = signed.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(keys.verify("__Host-sid", &flipped), None, "other tag");
        for junk in [
            "",
            "abc",
            "abc.k1",
            "abc.k1.",
            ".k1.x",
            "abc.k9.AAAA",
            "a.b.c.d",
        ] {
            assert_eq!(keys.verify("__Host-sid", junk), None, "{junk:?}");
        }
    }

    #[test]
    fn rotation_keeps_old_cookies_until_their_key_is_removed() {
        let before = SigningKeys::new([("k1", OLD)]).unwrap();
        let during = SigningKeys::new([("k2", NEW), ("k1", OLD)]).unwrap();
        let after = SigningKeys::new([("k2", NEW)]).unwrap();

        let old_cookie = before.sign("sid", "abc");
        assert_eq!(during.verify("sid", &old_cookie), Some("abc"));
        assert!(during.sign("sid", "abc").contains(".k2."));
        assert_eq!(after.verify("sid", &old_cookie), None);

        // Same id, other secret: a key id alone proves nothing.
        let impostor = SigningKeys::new([("k1", NEW)]).unwrap();
        assert_eq!(before.verify("sid", &impostor.sign("sid", "abc")), None);
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        let short = SigningKeys::new([("k1", &[0u8; 31][..])]).unwrap_err();
        assert!(short.contains("at least 32 bytes"), "{short}");
        let twice = SigningKeys::new([("k1", OLD), ("k1", NEW)]).unwrap_err();
        assert!(twice.contains("used twice"), "{twice}");
        assert!(SigningKeys::new([("a.b", OLD)]).is_err());
        assert!(SigningKeys::new([]).is_err());
        assert!(!format!("{:?}", SigningKeys::new([("k1", OLD)]).unwrap()).contains("1, 1"));
    }
}
