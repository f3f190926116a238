//! The Aerospike backend: sessions in a cluster that every edge host shares.
//!
//! One record per session in the configured namespace and set, keyed by
//! `<route namespace>/<id>`. The key itself is not stored (records are
//! addressed by its digest), so a dump of the cluster holds no session ids.
//! Bins:
//! - `data`: the session, a key-ordered map of native values ([`values`]);
//! - `gen`: the session generation. Aerospike's own record generation also
//!   moves on `touch`, which must not make a guest's save-if fail;
//! - `created` and `expires`: milliseconds since the Unix epoch.
//!
//! Expiry is decided by `expires`, to the millisecond, exactly as in the
//! embedded store. The server TTL only reclaims space, a second later. With
//! [`ExpiryMode::Host`] records get no server TTL at all (for namespaces with
//! `nsup-period 0`), and an expired record is deleted when it is next read.
//!
//! Every operation is atomic across edge hosts. `incr_field` and `get_field`
//! are one `operate` each, with server-side map operations. The server wraps
//! an increment that overflows; the store then undoes it with the opposite
//! increment and reports the overflow, so the wrapped value is visible for
//! one round trip. Writes that depend
//! on what is stored (save and save-if, touch, set_field with its size check,
//! remove_field, rename) read first, then write only if the record generation
//! is unchanged, and read again when another host wrote in between.

mod config;
mod values;

pub use config::{AerospikeSection, AerospikeTlsSection, ExpirySetting};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerospike::operations::{self, MapOrder};
use aerospike::{
    AdminPolicy, AuthMode, Bin, Client, ClientPolicy, ErrorKind, Expiration, GenerationPolicy, Key,
    MapPolicy, MapReturnType, MapWriteFlags, ReadPolicy, Record, RecordExistsAction, ResultCode,
    TlsPolicy, Value, WritePolicy,
};
use anyhow::anyhow;
use async_trait::async_trait;

use super::{SessionKey, SessionStore, StoreError, StoreResult, StoreSize, StoredSession};

const DATA: &str = "data";
const GEN: &str = "gen";
const CREATED: &str = "created";
const EXPIRES: &str = "expires";

/// The server refuses longer TTLs (ten years).
const MAX_SERVER_TTL_SECS: u64 = 315_360_000;

/// Compare-and-set rounds before giving up on a session other hosts keep
/// changing.
const MAX_ATTEMPTS: usize = 100;

/// Who expires sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryMode {
    /// Records carry a server TTL (the namespace needs `nsup-period` > 0).
    Server,
    /// Records never expire on the server; the host treats expired ones as
    /// absent and deletes them when it meets them.
    Host,
}

/// How to reach the cluster and where to keep sessions.
#[derive(Clone, Debug)]
pub struct AerospikeConfig {
    /// Seed hosts, `host:port` or `host:tls-name:port`, comma-separated.
    pub hosts: String,
    pub namespace: String,
    pub set: String,
    /// Deadline of one command, retries included.
    pub timeout: Duration,
    /// Deadline of opening a connection (TCP, TLS and login).
    pub connect_timeout: Duration,
    /// Retries of a read after a timeout or network error (writes are not
    /// retried: an increment must not apply twice).
    pub read_retries: usize,
    pub max_connections_per_node: usize,
    /// User and password, for clusters with security enabled.
    pub credentials: Option<(String, String)>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub expiry: ExpiryMode,
    pub max_session_bytes: usize,
}

impl AerospikeConfig {
    /// Defaults for a cluster at `hosts`: namespace `test`, set `sessions`.
    pub fn new(hosts: impl Into<String>) -> Self {
        Self {
            hosts: hosts.into(),
            namespace: "test".into(),
            set: "sessions".into(),
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            read_retries: 2,
            max_connections_per_node: 256,
            credentials: None,
            tls: None,
            expiry: ExpiryMode::Server,
            max_session_bytes: crate::store::DEFAULT_MAX_SESSION_BYTES,
        }
    }
}

/// The session stored state that every write decision needs.
struct Meta {
    /// Aerospike's record generation, for compare-and-set.
    record_generation: u32,
    generation: u64,
    created_ms: i64,
    expires_ms: i64,
}

/// Sessions in an Aerospike cluster; one client, shared by all requests.
pub struct AerospikeStore {
    client: Client,
    namespace: String,
    set: String,
    read_policy: ReadPolicy,
    /// For `operate` commands that only read: the client takes a write
    /// policy for every `operate`, but these may be retried as reads are.
    read_operate_policy: WritePolicy,
    write_policy: WritePolicy,
    /// For the info commands that size the set.
    info_policy: AdminPolicy,
    expiry: ExpiryMode,
    max_session_bytes: usize,
}

impl AerospikeStore {
    /// Connects and checks that the namespace takes session records, so that
    /// a misconfigured cluster fails at start rather than on every request.
    pub async fn open(config: AerospikeConfig) -> anyhow::Result<Self> {
        let mut policy = ClientPolicy {
            timeout: millis(config.connect_timeout),
            connect_timeout: millis(config.connect_timeout),
            max_conns_per_node: config.max_connections_per_node,
            ..ClientPolicy::default()
        };
        if let Some((user, password)) = &config.credentials {
            policy.auth_mode = AuthMode::Internal(user.clone(), password.clone());
        }
        policy.tls_policy = config.tls.map(TlsPolicy::new);
        let client = Client::new(&policy, &config.hosts)
            .await
            .map_err(|e| anyhow!("cannot connect to Aerospike at {}: {e}", config.hosts))?;
        let mut read_policy = ReadPolicy::default();
        read_policy.base_policy.total_timeout = millis(config.timeout);
        read_policy.base_policy.socket_timeout = millis(config.timeout);
        read_policy.base_policy.max_retries = config.read_retries;
        let mut write_policy = WritePolicy::default();
        write_policy.base_policy.total_timeout = millis(config.timeout);
        write_policy.base_policy.socket_timeout = millis(config.timeout);
        write_policy.base_policy.max_retries = 0;
        let mut read_operate_policy = write_policy.clone();
        read_operate_policy.base_policy.max_retries = config.read_retries;
        let store = Self {
            client,
            namespace: config.namespace,
            set: config.set,
            read_policy,
            read_operate_policy,
            write_policy,
            info_policy: AdminPolicy {
                timeout: millis(config.timeout),
            },
            expiry: config.expiry,
            max_session_bytes: config.max_session_bytes,
        };
        store.check_namespace().await?;
        Ok(store)
    }

    async fn check_namespace(&self) -> anyhow::Result<()> {
        let probe = self.key(SessionKey::new(
            "edge-session-probe",
            &crate::session::id::generate(),
        ))?;
        let bins = [Bin::new(GEN, Value::Int(0))];
        let policy = self.policy(
            RecordExistsAction::CreateOnly,
            None,
            self.server_ttl(Duration::from_secs(60)),
        );
        self.client.put(&policy, &probe, &bins).await.map_err(|e| {
            match e.server_result_code() {
                Some(ResultCode::FailForbidden) => anyhow!(forbidden_hint(&self.namespace)),
                _ => anyhow!(
                    "cannot write to Aerospike namespace {:?}, set {:?}: {e}",
                    self.namespace,
                    self.set
                ),
            }
        })?;
        self.client
            .delete(&self.write_policy, &probe)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot delete from Aerospike namespace {:?}: {e}",
                    self.namespace
                )
            })?;
        Ok(())
    }

    fn key(&self, key: SessionKey<'_>) -> StoreResult<Key> {
        let user_key = Value::String(format!("{}/{}", key.namespace, key.id));
        Key::new(self.namespace.as_str(), self.set.as_str(), user_key)
            .map_err(|e| StoreError::Internal(e.into()))
    }

    fn policy(
        &self,
        exists: RecordExistsAction,
        record_generation: Option<u32>,
        expiration: Expiration,
    ) -> WritePolicy {
        let mut policy = self.write_policy.clone();
        policy.record_exists_action = exists;
        if let Some(generation) = record_generation {
            policy.generation_policy = GenerationPolicy::ExpectGenEqual;
            policy.generation = generation;
        }
        policy.expiration = expiration;
        policy
    }

    /// The server TTL of a record whose session expires at `expires_ms`:
    /// a whole second after, since the server counts in seconds.
    fn server_ttl_until(&self, expires_ms: i64) -> Expiration {
        match self.expiry {
            ExpiryMode::Host => Expiration::Never,
            ExpiryMode::Server => {
                let left_ms = u64::try_from(expires_ms - now_ms()).unwrap_or(0);
                let seconds = (left_ms.div_ceil(1000) + 1).min(MAX_SERVER_TTL_SECS);
                Expiration::Seconds(seconds as u32)
            }
        }
    }

    fn server_ttl(&self, ttl: Duration) -> Expiration {
        self.server_ttl_until(now_ms().saturating_add(ms(ttl)))
    }

    /// Maps a client error; `TooLarge` needs this store's limit.
    fn error(&self, error: aerospike::Error) -> StoreError {
        match error.server_result_code() {
            Some(ResultCode::RecordTooBig) => StoreError::TooLarge {
                limit: self.max_session_bytes,
            },
            Some(ResultCode::FailForbidden) => {
                StoreError::Internal(anyhow!(forbidden_hint(&self.namespace)))
            }
            Some(
                ResultCode::Timeout
                | ResultCode::DeviceOverload
                | ResultCode::KeyBusy
                | ResultCode::PartitionUnavailable
                | ResultCode::ServerMemError,
            ) => StoreError::Unavailable(error.to_string()),
            Some(_) => StoreError::Internal(anyhow!("Aerospike: {error}")),
            None => match error.kind() {
                ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::ConnectionPoolEmpty
                | ErrorKind::NoMoreConnections
                | ErrorKind::MaxErrorRate
                | ErrorKind::InvalidNode => StoreError::Unavailable(error.to_string()),
                _ => StoreError::Internal(anyhow!("Aerospike client: {error}")),
            },
        }
    }

    fn check_size(&self, bytes: usize) -> StoreResult<()> {
        if bytes > self.max_session_bytes {
            return Err(StoreError::TooLarge {
                limit: self.max_session_bytes,
            });
        }
        Ok(())
    }

    /// Reads the bookkeeping bins (and `extra` ones); `None` when absent.
    async fn read(&self, key: &Key, extra: &[&str]) -> StoreResult<Option<(Meta, Record)>> {
        let mut bins = vec![GEN, CREATED, EXPIRES];
        bins.extend_from_slice(extra);
        match self.client.get(&self.read_policy, key, bins).await {
            Ok(record) => Ok(Some((meta(&record)?, record))),
            Err(e) if is(&e, ResultCode::KeyNotFoundError) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Like [`Self::read`], but an expired record counts as absent (and is
    /// deleted when the server will not do it).
    async fn read_live(&self, key: &Key, extra: &[&str]) -> StoreResult<Option<(Meta, Record)>> {
        match self.read(key, extra).await? {
            Some((meta, _)) if !is_live(&meta) => {
                self.forget(key, &meta).await;
                Ok(None)
            }
            found => Ok(found),
        }
    }

    /// Deletes an expired record in host expiry mode, unless it was written
    /// since it was read. Best effort: the next reader tries again.
    async fn forget(&self, key: &Key, meta: &Meta) {
        if self.expiry == ExpiryMode::Host {
            let policy = self.policy(
                RecordExistsAction::Update,
                Some(meta.record_generation),
                Expiration::DontUpdate,
            );
            let _ = self.client.delete(&policy, key).await;
        }
    }

    /// Writes a new session over an absent (`record_generation` None) or
    /// expired record. Returns false when another host got there first.
    async fn create(
        &self,
        key: &Key,
        data: &Value,
        generation: u64,
        created_ms: i64,
        expires_ms: i64,
        record_generation: Option<u32>,
    ) -> StoreResult<bool> {
        let bins = [
            Bin::new(DATA, data.clone()),
            Bin::new(GEN, int(generation)),
            Bin::new(CREATED, Value::Int(created_ms)),
            Bin::new(EXPIRES, Value::Int(expires_ms)),
        ];
        let exists = match record_generation {
            None => RecordExistsAction::CreateOnly,
            Some(_) => RecordExistsAction::Replace,
        };
        let policy = self.policy(exists, record_generation, self.server_ttl_until(expires_ms));
        match self.client.put(&policy, key, &bins).await {
            Ok(()) => Ok(true),
            Err(e)
                if is(&e, ResultCode::KeyExistsError)
                    || is(&e, ResultCode::GenerationError)
                    || is(&e, ResultCode::KeyNotFoundError) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// A write guarded by the record generation read just before; false when
    /// the record changed (or vanished) in between.
    async fn write_if_unchanged(
        &self,
        key: &Key,
        meta: &Meta,
        expiration: Expiration,
        ops: &[operations::Operation],
    ) -> StoreResult<bool> {
        let policy = self.policy(
            RecordExistsAction::UpdateOnly,
            Some(meta.record_generation),
            expiration,
        );
        match self.client.operate(&policy, key, ops).await {
            Ok(_) => Ok(true),
            Err(e)
                if is(&e, ResultCode::GenerationError) || is(&e, ResultCode::KeyNotFoundError) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// One field's stored value (as `get_by_key` with KEY_VALUE returns it)
    /// and the session's bookkeeping, in one read; `None` when no live session.
    async fn read_field(
        &self,
        key: &Key,
        name: &str,
    ) -> StoreResult<Option<(Meta, Option<Value>)>> {
        let ops = [
            operations::maps::get_by_key(DATA, Value::from(name), MapReturnType::KEY_VALUE),
            operations::get_bin(GEN),
            operations::get_bin(CREATED),
            operations::get_bin(EXPIRES),
        ];
        let record = match self
            .client
            .operate(&self.read_operate_policy, key, &ops)
            .await
        {
            Ok(record) => record,
            Err(e) if is(&e, ResultCode::KeyNotFoundError) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let meta = meta(&record)?;
        if !is_live(&meta) {
            self.forget(key, &meta).await;
            return Ok(None);
        }
        let value = record.bins.get(DATA).and_then(|found| {
            values::map_entries(found)
                .into_iter()
                .next()
                .map(|(_, value)| value.clone())
        });
        Ok(Some((meta, value)))
    }
}

#[async_trait]
impl SessionStore for AerospikeStore {
    fn max_session_bytes(&self) -> usize {
        self.max_session_bytes
    }

    /// One read of a key that is never written: not found is the answer.
    async fn ping(&self) -> StoreResult<()> {
        let probe = self.key(SessionKey::new("edge-session-probe", "ping"))?;
        match self.client.exists(&self.read_policy, &probe).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The set's records and data bytes from each node's statistics (info
    /// `sets/<namespace>/<set>`), divided by the namespace's replication
    /// factor, since each node counts the replicas it holds too. `None` when
    /// a node does not answer: a partial sum would look like lost sessions.
    async fn size(&self) -> Option<StoreSize> {
        let set_command = format!("sets/{}/{}", self.namespace, self.set);
        let namespace_command = format!("namespace/{}", self.namespace);
        let nodes = self.client.nodes();
        if nodes.is_empty() {
            return None;
        }
        let (mut sessions, mut bytes, mut replicas) = (0, 0, 1);
        for node in nodes {
            let info = node
                .info(&self.info_policy, &[&set_command, &namespace_command])
                .await
                .ok()?;
            // Empty until the set has had a record.
            let set = info.get(&set_command)?;
            sessions += info_stat(set, "objects").unwrap_or(0);
            bytes += info_stat(set, "data_used_bytes").unwrap_or(0);
            let namespace = info.get(&namespace_command)?;
            replicas = info_stat(namespace, "effective_replication_factor")
                .or_else(|| info_stat(namespace, "replication-factor"))
                .unwrap_or(1)
                .max(1);
        }
        Some(StoreSize {
            sessions: sessions / replicas,
            bytes: bytes / replicas,
        })
    }

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        self.check_size(data.len())?;
        let (key, data) = (self.key(key)?, values::object_to_map(data)?);
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ms();
            let expires = now.saturating_add(ms(ttl));
            if self.create(&key, &data, 1, now, expires, None).await? {
                return Ok(true);
            }
            match self.read(&key, &[]).await? {
                Some((meta, _)) if is_live(&meta) => return Ok(false),
                Some((meta, _)) => {
                    let replaced = Some(meta.record_generation);
                    if self.create(&key, &data, 1, now, expires, replaced).await? {
                        return Ok(true);
                    }
                }
                None => {}
            }
        }
        Err(contention())
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        let key = self.key(key)?;
        let Some((meta, record)) = self.read_live(&key, &[DATA]).await? else {
            return Ok(None);
        };
        let data = values::map_to_object(record.bins.get(DATA))?;
        Ok(Some(StoredSession {
            data: serde_json::to_string(&data).map_err(|e| StoreError::Internal(e.into()))?,
            generation: meta.generation,
            expires_in: Duration::from_millis(
                u64::try_from(meta.expires_ms - now_ms()).unwrap_or(1),
            ),
            created_at: UNIX_EPOCH + Duration::from_millis(meta.created_ms.max(0) as u64),
        }))
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        self.check_size(data.len())?;
        let (key, data) = (self.key(key)?, values::object_to_map(data)?);
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ms();
            let expires = now.saturating_add(ms(ttl));
            let found = self.read(&key, &[]).await?.map(|(meta, _)| meta);
            match found {
                Some(meta) if is_live(&meta) => {
                    if expected_generation.is_some_and(|expected| expected != meta.generation) {
                        return Err(StoreError::Conflict);
                    }
                    let next = meta.generation + 1;
                    let ops = [
                        operations::put(&Bin::new(DATA, data.clone())),
                        operations::put(&Bin::new(GEN, int(next))),
                        operations::put(&Bin::new(EXPIRES, Value::Int(expires))),
                    ];
                    if self
                        .write_if_unchanged(&key, &meta, self.server_ttl_until(expires), &ops)
                        .await?
                    {
                        return Ok(next);
                    }
                }
                _ if expected_generation.is_some() => return Err(StoreError::NotFound),
                expired => {
                    let replaced = expired.map(|meta| meta.record_generation);
                    if self.create(&key, &data, 1, now, expires, replaced).await? {
                        return Ok(1);
                    }
                }
            }
        }
        Err(contention())
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        let key = self.key(key)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((meta, _)) = self.read_live(&key, &[]).await? else {
                return Ok(false);
            };
            let expires = now_ms().saturating_add(ms(ttl));
            let ops = [operations::put(&Bin::new(EXPIRES, Value::Int(expires)))];
            if self
                .write_if_unchanged(&key, &meta, self.server_ttl_until(expires), &ops)
                .await?
            {
                return Ok(true);
            }
        }
        Err(contention())
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        let key = self.key(key)?;
        let ops = [operations::get_bin(EXPIRES), operations::delete()];
        match self.client.operate(&self.write_policy, &key, &ops).await {
            Ok(record) => Ok(int_bin(&record, EXPIRES)? > now_ms()),
            Err(e) if is(&e, ResultCode::KeyNotFoundError) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        let (from, to) = (self.key(from)?, self.key(to)?);
        for _ in 0..MAX_ATTEMPTS {
            let Some((meta, record)) = self.read_live(&from, &[DATA]).await? else {
                return Ok(false);
            };
            let data = record
                .bins
                .get(DATA)
                .cloned()
                .unwrap_or(Value::SortedMap(Default::default()));
            let copy = |replaced| {
                self.create(
                    &to,
                    &data,
                    meta.generation,
                    meta.created_ms,
                    meta.expires_ms,
                    replaced,
                )
            };
            if !copy(None).await? {
                match self.read(&to, &[]).await? {
                    Some((taken, _)) if is_live(&taken) => return Err(StoreError::Conflict),
                    Some((expired, _)) => {
                        if !copy(Some(expired.record_generation)).await? {
                            continue;
                        }
                    }
                    None => continue,
                }
            }
            // The old record goes only if nothing wrote it since it was read;
            // otherwise the copy is stale: drop it and start over.
            let policy = self.policy(
                RecordExistsAction::Update,
                Some(meta.record_generation),
                Expiration::DontUpdate,
            );
            match self.client.delete(&policy, &from).await {
                Ok(_) => return Ok(true),
                Err(e) if is(&e, ResultCode::GenerationError) => {}
                Err(e) if is(&e, ResultCode::KeyNotFoundError) => {
                    self.client
                        .delete(&self.write_policy, &to)
                        .await
                        .map_err(|e| self.error(e))?;
                    return Ok(false);
                }
                Err(e) => return Err(self.error(e)),
            }
            self.client
                .delete(&self.write_policy, &to)
                .await
                .map_err(|e| self.error(e))?;
        }
        Err(contention())
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        let key = self.key(key)?;
        let (_, value) = self
            .read_field(&key, name)
            .await?
            .ok_or(StoreError::NotFound)?;
        value
            .map(|value| {
                let json = values::to_json(&value)?;
                serde_json::to_string(&json).map_err(|e| StoreError::Internal(e.into()))
            })
            .transpose()
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        let key = self.key(key)?;
        let stored = values::field_to_value(value)?;
        let json = values::to_json(&stored)?;
        for _ in 0..MAX_ATTEMPTS {
            let (meta, record) = self
                .read_live(&key, &[DATA])
                .await?
                .ok_or(StoreError::NotFound)?;
            let mut data = values::map_to_object(record.bins.get(DATA))?;
            data.insert(name.to_owned(), json.clone());
            let size = serde_json::to_string(&data).map_err(|e| StoreError::Internal(e.into()))?;
            self.check_size(size.len())?;
            let next = meta.generation + 1;
            // `put_items`, not `put`: the client's `put` drops a nil value.
            let item = BTreeMap::from([(Value::from(name), stored.clone())]);
            let ops = [
                operations::maps::put_items(&data_map_policy(), DATA, item),
                operations::put(&Bin::new(GEN, int(next))),
            ];
            if self
                .write_if_unchanged(&key, &meta, Expiration::DontUpdate, &ops)
                .await?
            {
                return Ok(next);
            }
        }
        Err(contention())
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        let key = self.key(key)?;
        for _ in 0..MAX_ATTEMPTS {
            let (meta, value) = self
                .read_field(&key, name)
                .await?
                .ok_or(StoreError::NotFound)?;
            if value.is_none() {
                return Ok(false);
            }
            let ops = [
                operations::maps::remove_by_key(DATA, Value::from(name), MapReturnType::NONE),
                operations::put(&Bin::new(GEN, int(meta.generation + 1))),
            ];
            if self
                .write_if_unchanged(&key, &meta, Expiration::DontUpdate, &ops)
                .await?
            {
                return Ok(true);
            }
        }
        Err(contention())
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        let key = self.key(key)?;
        let ops = [
            operations::maps::get_by_key(DATA, Value::from(name), MapReturnType::VALUE),
            operations::maps::increment_value(
                &data_map_policy(),
                DATA,
                Value::from(name),
                Value::Int(delta),
            ),
            operations::add(&Bin::new(GEN, Value::Int(1))),
            operations::get_bin(EXPIRES),
        ];
        let policy = self.policy(RecordExistsAction::UpdateOnly, None, Expiration::DontUpdate);
        let record = match self.client.operate(&policy, &key, &ops).await {
            Ok(record) => record,
            Err(e) if is(&e, ResultCode::KeyNotFoundError) => return Err(StoreError::NotFound),
            Err(e)
                if is(&e, ResultCode::BinTypeError)
                    || is(&e, ResultCode::ParameterError)
                    || is(&e, ResultCode::OpNotApplicable) =>
            {
                return Err(super::increment_error(
                    name,
                    crate::session::json_object::IncrementError::NotAnInteger,
                ));
            }
            Err(e) => return Err(self.error(e)),
        };
        // An increment that reached an expired record changed nothing anyone
        // can see: such records read as absent until replaced.
        if int_bin(&record, EXPIRES)? <= now_ms() {
            return Err(StoreError::NotFound);
        }
        // Both map results, in op order: the value before and after.
        let (before, after) = match record.bins.get(DATA) {
            Some(Value::MultiResult(results)) => match results.as_slice() {
                [Value::Nil, Value::Int(after)] => (0, *after),
                [Value::Int(before), Value::Int(after)] => (*before, *after),
                _ => return Err(unexpected_increment(results)),
            },
            other => return Err(unexpected_increment(other)),
        };
        if before.checked_add(delta).is_none() {
            // The server wraps on overflow where the contract refuses. Adding
            // the opposite restores the field exactly, whatever increments
            // ran in between, since wrapping additions commute.
            let undo = [
                operations::maps::increment_value(
                    &data_map_policy(),
                    DATA,
                    Value::from(name),
                    Value::Int(delta.wrapping_neg()),
                ),
                operations::add(&Bin::new(GEN, Value::Int(1))),
            ];
            self.client
                .operate(&policy, &key, &undo)
                .await
                .map_err(|e| self.error(e))?;
            return Err(super::increment_error(
                name,
                crate::session::json_object::IncrementError::Overflow,
            ));
        }
        Ok(after)
    }
}

/// The data bin is kept key-ordered: lookups by field name are then
/// logarithmic on the server.
fn data_map_policy() -> MapPolicy {
    MapPolicy::new(MapOrder::KeyOrdered, MapWriteFlags::DEFAULT)
}

fn unexpected_increment(results: impl std::fmt::Debug) -> StoreError {
    StoreError::Internal(anyhow!(
        "Aerospike answered a map increment with {results:?}"
    ))
}

/// A number from an info answer's `name=value` pairs, which sets separate
/// with `:` and namespaces with `;`.
fn info_stat(answer: &str, name: &str) -> Option<u64> {
    answer
        .split([':', ';'])
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

fn forbidden_hint(namespace: &str) -> String {
    format!(
        "Aerospike namespace {namespace:?} refuses records with a TTL: its `nsup-period` is 0. \
         Set `nsup-period` (e.g. 120) in the namespace's server config, \
         or set `store.aerospike.expiry = \"host\"` to let edge-session expire sessions itself"
    )
}

fn contention() -> StoreError {
    StoreError::Unavailable(format!(
        "the session changed on each of {MAX_ATTEMPTS} attempts to write it"
    ))
}

fn is(error: &aerospike::Error, code: ResultCode) -> bool {
    error.server_result_code() == Some(code)
}

fn meta(record: &Record) -> StoreResult<Meta> {
    Ok(Meta {
        record_generation: record.generation,
        generation: u64::try_from(int_bin(record, GEN)?).unwrap_or(0),
        created_ms: int_bin(record, CREATED)?,
        expires_ms: int_bin(record, EXPIRES)?,
    })
}

fn int_bin(record: &Record, name: &str) -> StoreResult<i64> {
    match record.bins.get(name) {
        Some(Value::Int(value)) => Ok(*value),
        other => Err(StoreError::Internal(anyhow!(
            "Aerospike record without an integer {name:?} bin (found {other:?}): \
             the set holds records edge-session did not write"
        ))),
    }
}

fn is_live(meta: &Meta) -> bool {
    meta.expires_ms > now_ms()
}

fn int(value: u64) -> Value {
    Value::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}
