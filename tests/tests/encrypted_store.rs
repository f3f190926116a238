//! Encryption at rest: the conformance body through `EncryptedStore` over
//! the embedded store (field operations become generation-checked
//! read-modify-writes there, so the concurrency checks matter), plus what
//! encryption itself promises: no plaintext on disk, key rotation, tamper
//! detection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edge_session::session::id as session_id;
use edge_session::store::{
    EmbeddedConfig, EmbeddedStore, EncryptedStore, EncryptionKeys, SessionKey, SessionStore,
    StoreError,
};
use edge_session_tests::conformance;

const OLD: (&str, &[u8]) = ("old", &[1; 32]);
const NEW: (&str, &[u8]) = ("new", &[2; 32]);
const SECRET: &str = "hunter2-in-plain-sight";

fn keys(keys: &[(&str, &[u8])]) -> Arc<EncryptionKeys> {
    Arc::new(EncryptionKeys::new(keys.iter().copied()).unwrap())
}

fn embedded(dir: &Path, max_session_bytes: usize) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedConfig {
        max_session_bytes,
        ..EmbeddedConfig::new(dir)
    })
    .unwrap()
}

fn encrypted(dir: &Path, keys: Arc<EncryptionKeys>) -> EncryptedStore<EmbeddedStore> {
    let limit = conformance::MAX_SESSION_BYTES;
    EncryptedStore::new(embedded(dir, keys.stored_bytes(limit)), keys, limit)
}

/// Whether any file under `dir` contains `needle`.
fn disk_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            disk_contains(&path, needle)
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            bytes.windows(needle.len()).any(|window| window == needle)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_through_encryption() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(Arc::new(encrypted(dir.path(), keys(&[OLD])))).await;
}

#[tokio::test]
async fn no_plaintext_reaches_the_disk() {
    let id = session_id::generate();
    let key = SessionKey::new("at-rest", &id);
    let data = format!(r#"{{"card":"{SECRET}"}}"#);
    let ttl = Duration::from_secs(3600);
    let (plain_dir, sealed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    {
        let plain = embedded(plain_dir.path(), 4096);
        plain.insert(key, &data, ttl).await.unwrap();
        let sealed = encrypted(sealed_dir.path(), keys(&[OLD]));
        sealed.insert(key, &data, ttl).await.unwrap();
        sealed
            .set_field(key, "cvv", &format!("\"{SECRET}\""))
            .await
            .unwrap();
        assert_eq!(
            sealed.get_field(key, "cvv").await.unwrap().unwrap(),
            format!("\"{SECRET}\"")
        );
    }
    assert!(
        disk_contains(plain_dir.path(), SECRET.as_bytes()),
        "the control: without encryption the secret is on disk"
    );
    assert!(!disk_contains(sealed_dir.path(), SECRET.as_bytes()));

    // The backend holds only the sealed envelope.
    let raw = embedded(sealed_dir.path(), 4096)
        .load(key)
        .await
        .unwrap()
        .unwrap();
    assert!(raw.data.starts_with(r#"{"$sealed":"old."#), "{}", raw.data);
}

#[tokio::test]
async fn old_data_opens_after_a_key_rotation_until_its_key_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let id = session_id::generate();
    let key = SessionKey::new("rotation", &id);
    let ttl = Duration::from_secs(3600);
    encrypted(dir.path(), keys(&[OLD]))
        .insert(key, r#"{"n":1}"#, ttl)
        .await
        .unwrap();

    let other_id = session_id::generate();
    let other = SessionKey::new("rotation", &other_id);
    {
        let store = encrypted(dir.path(), keys(&[NEW, OLD]));
        assert_eq!(store.load(key).await.unwrap().unwrap().data, r#"{"n":1}"#);
        // A write re-seals with the new key.
        assert_eq!(store.incr_field(key, "n", 1).await.unwrap(), 2);
        store.insert(other, r#"{"m":1}"#, ttl).await.unwrap();
    }

    let store = encrypted(dir.path(), keys(&[NEW]));
    assert_eq!(store.load(key).await.unwrap().unwrap().data, r#"{"n":2}"#);
    assert_eq!(store.load(other).await.unwrap().unwrap().data, r#"{"m":1}"#);
    drop(store);

    // Data sealed only with a dropped key fails loudly, naming the key.
    let id = session_id::generate();
    let stale = SessionKey::new("rotation", &id);
    encrypted(dir.path(), keys(&[OLD]))
        .insert(stale, "{}", ttl)
        .await
        .unwrap();
    match encrypted(dir.path(), keys(&[NEW])).load(stale).await {
        Err(StoreError::Internal(error)) => assert!(error.to_string().contains("\"old\"")),
        other => panic!("expected an error naming the key, got {other:?}"),
    }
}

#[tokio::test]
async fn tampered_or_moved_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = session_id::generate();
    let (home, elsewhere) = (
        SessionKey::new("home", &id),
        SessionKey::new("elsewhere", &id),
    );
    let ttl = Duration::from_secs(3600);
    encrypted(dir.path(), keys(&[OLD]))
        .insert(home, r#"{"role":"user"}"#, ttl)
        .await
        .unwrap();

    let sealed = {
        let raw = embedded(dir.path(), 4096);
        let sealed = raw.load(home).await.unwrap().unwrap().data;
        // Moved to another namespace as it is; and a flipped byte at home.
        raw.insert(elsewhere, &sealed, ttl).await.unwrap();
        let mut flipped = sealed.clone().into_bytes();
        let inside = sealed.find("old.").unwrap() + 40;
        flipped[inside] = if flipped[inside] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        raw.save(home, &flipped, ttl, None).await.unwrap();
        sealed
    };
    assert!(sealed.contains("$sealed"));
    let store = encrypted(dir.path(), keys(&[OLD]));
    for key in [home, elsewhere] {
        assert!(
            matches!(store.load(key).await, Err(StoreError::Internal(_))),
            "{key:?}"
        );
    }
}
