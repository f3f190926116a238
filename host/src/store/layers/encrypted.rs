//! Encryption at rest: a [`SessionStore`] that seals session data with an
//! AEAD before any backend sees it, over any other store.
//!
//! Data is sealed with XChaCha20-Poly1305 (random 192-bit nonces, so no
//! nonce bookkeeping across hosts) and stored as the JSON object
//! `{"$sealed":"<key id>.<base64url(nonce ‖ ciphertext)>"}`, so backends keep
//! storing JSON objects. The namespace is authenticated with the data: a
//! sealed session cannot be moved to another namespace unnoticed. The key
//! id lets old data decrypt after a rotation: the first key seals, every
//! key opens.
//!
//! The trade-off: a backend cannot run field operations on data it cannot
//! read. Here they become generation-checked read-modify-writes (load,
//! open, change, seal, `save` only if the generation is unchanged, retry
//! otherwise): still atomic, never a lost update, but two round trips and a
//! retry under contention instead of one server-side operation.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::session::json_object::JsonObject;
use crate::store::{
    SessionKey, SessionStore, StoreError, StoreResult, StoreSize, StoredSession, increment_error,
};

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
/// Read-modify-write attempts before a field operation gives up; each
/// failed attempt means another write to the same session succeeded.
const MAX_ATTEMPTS: usize = 1000;

/// The keys data is sealed and opened with; the first one seals.
pub struct EncryptionKeys {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl EncryptionKeys {
    /// Keys as (id, 32-byte secret) pairs, the sealing key first. Ids are
    /// 1 to 32 characters of A-Z a-z 0-9 - _ and distinct.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Self, String> {
        let mut built: Vec<(String, XChaCha20Poly1305)> = Vec::new();
        for (id, secret) in keys {
            crate::session::signing::valid_key_id(id)?;
            if built.iter().any(|(known, _)| known == id) {
                return Err(format!("key id {id:?} is used twice"));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(secret)
                .map_err(|_| format!("the secret of key {id:?} must be exactly 32 bytes"))?;
            built.push((id.to_owned(), cipher));
        }
        if built.is_empty() {
            return Err("give at least one key".into());
        }
        Ok(Self { keys: built })
    }

    fn seal(&self, namespace: &str, plaintext: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: namespace.as_bytes(),
        };
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 seals any length we allow");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        serde_json::to_string(&Envelope {
            sealed: format!("{id}.{}", URL_SAFE_NO_PAD.encode(sealed)),
        })
        .expect("an envelope serializes")
    }

    fn open(&self, namespace: &str, stored: &str) -> StoreResult<String> {
        let envelope: Envelope = serde_json::from_str(stored).map_err(|_| {
            internal("a stored session is not encrypted (written before encryption was enabled?)")
        })?;
        let (id, body) = envelope
            .sealed
            .split_once('.')
            .ok_or_else(|| internal("a sealed session is malformed"))?;
        let (_, cipher) = self.keys.iter().find(|(known, _)| known == id).ok_or_else(|| {
            internal(&format!(
                "a session is sealed with key {id:?}, which is not configured: add it back to store.encryption.keys"
            ))
        })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .filter(|bytes| bytes.len() >= NONCE_BYTES + TAG_BYTES)
            .ok_or_else(|| internal("a sealed session is malformed"))?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: namespace.as_bytes(),
        };
        let plaintext = cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| {
                internal(&format!(
                    "a session sealed with key {id:?} fails authentication"
                ))
            })?;
        String::from_utf8(plaintext).map_err(|_| internal("a sealed session is not UTF-8"))
    }

    /// How large a backend must let sessions get to hold sealed sessions
    /// of `plaintext_bytes`.
    pub fn stored_bytes(&self, plaintext_bytes: usize) -> usize {
        let longest_id = self.keys.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
        let encoded = (NONCE_BYTES + plaintext_bytes + TAG_BYTES).div_ceil(3) * 4;
        r#"{"$sealed":""}"#.len() + longest_id + 1 + encoded
    }
}

impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("EncryptionKeys").field("ids", &ids).finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "$sealed")]
    sealed: String,
}

/// Opened session data as an object; it was validated before sealing, so
/// failure means a corrupt store.
fn parse_object(plaintext: &str) -> StoreResult<JsonObject<'_>> {
    JsonObject::parse(plaintext)
        .map_err(|e| StoreError::Internal(anyhow!("sealed session is not a JSON object: {e}")))
}

fn internal(message: &str) -> StoreError {
    StoreError::Internal(anyhow!("{message}"))
}

/// A store whose backend only ever sees sealed data.
pub struct EncryptedStore<S> {
    inner: S,
    keys: Arc<EncryptionKeys>,
    max_session_bytes: usize,
}

impl<S: SessionStore> EncryptedStore<S> {
    /// Seals sessions of up to `max_session_bytes` for `inner`, which must
    /// accept sessions of `keys.stored_bytes(max_session_bytes)`.
    pub fn new(inner: S, keys: Arc<EncryptionKeys>, max_session_bytes: usize) -> Self {
        Self {
            inner,
            keys,
            max_session_bytes,
        }
    }

    fn seal(&self, key: SessionKey<'_>, data: &str) -> StoreResult<String> {
        if data.len() > self.max_session_bytes {
            return Err(StoreError::TooLarge {
                limit: self.max_session_bytes,
            });
        }
        Ok(self.keys.seal(key.namespace, data))
    }

    /// Applies `change` to the session's data atomically: retried from a
    /// fresh read whenever another write got in between.
    async fn modify<T>(
        &self,
        key: SessionKey<'_>,
        change: impl Fn(&mut JsonObject<'_>) -> StoreResult<(T, bool)>,
    ) -> StoreResult<(T, u64)> {
        for _ in 0..MAX_ATTEMPTS {
            let session = self.inner.load(key).await?.ok_or(StoreError::NotFound)?;
            let plaintext = self.keys.open(key.namespace, &session.data)?;
            let mut object = parse_object(&plaintext)?;
            let (result, changed) = change(&mut object)?;
            if !changed {
                return Ok((result, session.generation));
            }
            let sealed = self.seal(key, &object.to_json())?;
            // The same expiry: field writes do not slide it.
            let ttl = session.expires_in.max(Duration::from_millis(1));
            match self
                .inner
                .save(key, &sealed, ttl, Some(session.generation))
                .await
            {
                Ok(generation) => return Ok((result, generation)),
                Err(StoreError::Conflict) => tokio::task::yield_now().await,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent writes to this session; retry".into(),
        ))
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for EncryptedStore<S> {
    fn max_session_bytes(&self) -> usize {
        self.max_session_bytes
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn size(&self) -> Option<StoreSize> {
        self.inner.size().await
    }

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        self.inner.insert(key, &self.seal(key, data)?, ttl).await
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        let Some(mut session) = self.inner.load(key).await? else {
            return Ok(None);
        };
        session.data = self.keys.open(key.namespace, &session.data)?;
        Ok(Some(session))
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        let sealed = self.seal(key, data)?;
        self.inner
            .save(key, &sealed, ttl, expected_generation)
            .await
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        self.inner.touch(key, ttl).await
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        self.inner.delete(key).await
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        // Sealed data is bound to the namespace, not the id, so it moves as is.
        debug_assert_eq!(from.namespace, to.namespace);
        self.inner.rename(from, to).await
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        let session = self.load(key).await?.ok_or(StoreError::NotFound)?;
        let object = parse_object(&session.data)?;
        Ok(object.get(name).map(str::to_owned))
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        let value = value.to_owned();
        let ((), generation) = self
            .modify(key, |object| {
                object.set(name, value.clone().into());
                Ok(((), true))
            })
            .await?;
        Ok(generation)
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        let (removed, _) = self
            .modify(key, |object| {
                let removed = object.remove(name);
                Ok((removed, removed))
            })
            .await?;
        Ok(removed)
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        let (value, _) = self
            .modify(key, |object| {
                let value = object
                    .increment(name, delta)
                    .map_err(|e| increment_error(name, e))?;
                Ok((value, true))
            })
            .await?;
        Ok(value)
    }
}
