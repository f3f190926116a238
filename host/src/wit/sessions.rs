//! The `edge:session/sessions` interface: any session of the route's
//! namespace, by id, with atomic field operations.

use super::context::{Result, whole_seconds_left};
use super::sessions_interface as sessions;
use super::{Session, SessionsContext};

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
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::session::id as session_id;
    use crate::store::{EmbeddedConfig, EmbeddedStore};
    use crate::wit::context::MAX_FIELD_NAME_BYTES;
    use crate::wit::{Error, RequestSession, SessionPolicy};
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

    #[test]
    fn time_left_is_rounded_up_to_whole_seconds() {
        assert_eq!(whole_seconds_left(Duration::from_secs(5)), 5);
        assert_eq!(whole_seconds_left(Duration::from_millis(4001)), 5);
        assert_eq!(whole_seconds_left(Duration::from_millis(1)), 1);
        assert_eq!(
            whole_seconds_left(Duration::ZERO),
            1,
            "never 0: that reads as gone"
        );
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
        // Bounds far wider than any pause of a loaded machine between the
        // calls; the rounding itself is checked below, without a clock.
        assert!(
            (590..=600).contains(&session.expires_in),
            "default ttl: {}",
            session.expires_in
        );
        assert!(s.touch(id.clone(), Some(100)).await.unwrap());
        let expires_in = s.get(id.clone()).await.unwrap().unwrap().expires_in;
        assert!((90..=100).contains(&expires_in), "touched: {expires_in}");
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
