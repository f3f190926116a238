//! The Redis backend: sessions in a Redis server (or a Redis-compatible
//! one: Valkey, ElastiCache, MemoryDB) that every edge host shares.
//!
//! One hash per session at `{prefix}:{namespace}:{id}`. Its fields:
//! - one per session field, named by the field's name **as a JSON string**
//!   (with its quotes), holding the field's value as JSON text. Every user
//!   field's name thus starts with `"`;
//! - the host's bookkeeping, under names that do not: `gen` (the session
//!   generation), `created` and `expires` (milliseconds since the Unix
//!   epoch) and `bytes` (the sum, over the user fields, of name, colon and
//!   value lengths: with the field count, `HLEN` - 4, it gives the session's
//!   size as JSON text without reading it).
//!
//! A session loads as the object of its fields, keys sorted (a hash keeps
//! no order that survives its growth).
//!
//! Every operation is one round trip and atomic on the server: `load` is one
//! `HGETALL`, `get_field` one `HMGET`, the others one Lua script each
//! (`scripts/`, sent by hash with `EVALSHA`, loaded again after a
//! `NOSCRIPT`), which checks `expires` and writes only what the operation
//! changes. Increments are `HINCRBY`, signed 64-bit with overflow refused.
//!
//! Expiry is decided by `expires`, to the millisecond, against the host's
//! clock, exactly as in the embedded store: a session past it is absent even
//! while Redis still holds the key. The key's `PEXPIREAT`, a second later,
//! only reclaims memory (and absorbs small clock skews between hosts and the
//! server).
//!
//! Connections: one multiplexed connection under a `ConnectionManager`,
//! shared by all requests, replaced in the background when it breaks.
//! Commands are never retried (an increment must not apply twice); a command
//! that does not complete within `timeout`, or finds the server unreachable,
//! is [`StoreError::Unavailable`].

mod config;

pub use config::{RedisSection, RedisTlsSection};

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Script, ServerErrorKind,
    TlsCertificates, Value,
};
use serde_json::value::RawValue;

use super::{SessionKey, SessionStore, StoreError, StoreResult, StoredSession};
use crate::session::json_object::IncrementError;

/// The bookkeeping fields of every session hash that the host reads (the
/// scripts also keep `bytes`).
const GEN: &str = "gen";
const CREATED: &str = "created";
const EXPIRES: &str = "expires";

/// How long after a session's expiry Redis deletes its key.
const EVICTION_GRACE_MS: i64 = 1000;

/// Script results that are not a success.
const NOT_FOUND: i64 = -1;
const CONFLICT: i64 = -2;
const TOO_LARGE: i64 = -3;
const NOT_AN_INTEGER: i64 = -4;
const OVERFLOW: i64 = -5;

/// How to reach the server and where to keep sessions.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://host:port/db`, without
    /// credentials.
    pub url: String,
    /// The start of every key: `{prefix}:{namespace}:{id}`.
    pub prefix: String,
    /// Deadline of one command, waiting for a connection included.
    pub timeout: Duration,
    /// Deadline of opening a connection (TCP, TLS and AUTH).
    pub connect_timeout: Duration,
    /// An ACL user; without one, `password` is the default user's.
    pub user: Option<String>,
    pub password: Option<String>,
    /// PEM CA certificates for a `rediss://` url; without them, the
    /// system's roots.
    pub tls_ca: Option<Vec<u8>>,
    pub max_session_bytes: usize,
}

impl RedisConfig {
    /// Defaults for a server at `url`: prefix `edge-session`, commands
    /// within 250 ms.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "edge-session".into(),
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            user: None,
            password: None,
            tls_ca: None,
            max_session_bytes: crate::store::DEFAULT_MAX_SESSION_BYTES,
        }
    }
}

/// The scripts, compiled in.
struct Scripts {
    insert: Script,
    save: Script,
    touch: Script,
    delete: Script,
    rename: Script,
    set_field: Script,
    remove_field: Script,
    incr_field: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            insert: Script::new(include_str!("scripts/insert.lua")),
            save: Script::new(include_str!("scripts/save.lua")),
            touch: Script::new(include_str!("scripts/touch.lua")),
            delete: Script::new(include_str!("scripts/delete.lua")),
            rename: Script::new(include_str!("scripts/rename.lua")),
            set_field: Script::new(include_str!("scripts/set_field.lua")),
            remove_field: Script::new(include_str!("scripts/remove_field.lua")),
            incr_field: Script::new(include_str!("scripts/incr_field.lua")),
        }
    }

    fn all(&self) -> [(&'static str, &Script); 8] {
        [
            ("insert", &self.insert),
            ("save", &self.save),
            ("touch", &self.touch),
            ("delete", &self.delete),
            ("rename", &self.rename),
            ("set_field", &self.set_field),
            ("remove_field", &self.remove_field),
            ("incr_field", &self.incr_field),
        ]
    }
}

/// Sessions in Redis; one multiplexed connection, shared by all requests.
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    scripts: Scripts,
    max_session_bytes: usize,
}

impl RedisStore {
    /// Connects (with AUTH and TLS as configured), loads the scripts and
    /// writes and deletes a probe session, so that a wrong address,
    /// password or ACL fails at start rather than on every request.
    pub async fn open(config: RedisConfig) -> anyhow::Result<Self> {
        let url = &config.url;
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| anyhow!("{url:?} is not a Redis url: {e}"))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &config.user {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password);
        }
        let info = info.set_redis_settings(settings);
        let client = match config.tls_ca {
            Some(ca) => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            ),
            None => Client::open(info),
        }
        .map_err(|e| anyhow!("cannot use Redis at {url}: {e}"))?;
        // Reconnecting happens in the background, while commands give up on
        // their own deadline (`run`, the one deadline: none from the client);
        // a short backoff brings the server back soon after it returns.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connecting = ConnectionManager::new_with_config(client, manager_config);
        // Two connection attempts, with the backoff between them.
        let connection = tokio::time::timeout(config.connect_timeout * 3, connecting)
            .await
            .map_err(|_| {
                anyhow!(
                    "cannot connect to Redis at {url}: no connection within {:?}",
                    config.connect_timeout * 3
                )
            })?
            .map_err(|e| anyhow!("cannot connect to Redis at {url}: {}", describe(&e)))?;
        let mut store = Self {
            connection,
            prefix: config.prefix,
            // A server slow to answer its first commands is no reason to
            // refuse to start: until then, the longer of both deadlines.
            timeout: config.timeout.max(config.connect_timeout),
            scripts: Scripts::new(),
            max_session_bytes: config.max_session_bytes,
        };
        store
            .check_server()
            .await
            .map_err(|e| anyhow!("Redis at {url}: {e:#}"))?;
        store.timeout = config.timeout;
        Ok(store)
    }

    async fn check_server(&self) -> anyhow::Result<()> {
        for (name, script) in self.scripts.all() {
            let mut connection = self.connection.clone();
            let loading = script.load_async(&mut connection);
            tokio::time::timeout(self.timeout, loading)
                .await
                .map_err(|_| anyhow!("loading the {name} script timed out"))?
                .map_err(|e| anyhow!("cannot load the {name} script: {}", describe(&e)))?;
        }
        let id = crate::session::id::generate();
        let probe = SessionKey::new("edge-session-probe", &id);
        self.insert(probe, "{}", Duration::from_secs(60))
            .await
            .map_err(|e| anyhow!("cannot write a probe session: {e}"))?;
        self.delete(probe)
            .await
            .map_err(|e| anyhow!("cannot delete a probe session: {e}"))?;
        Ok(())
    }

    fn key(&self, key: SessionKey<'_>) -> String {
        format!("{}:{}:{}", self.prefix, key.namespace, key.id)
    }

    /// Runs one command with this store's deadline.
    async fn run<T>(&self, command: impl Future<Output = RedisResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(store_error(e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    fn too_large(&self) -> StoreError {
        StoreError::TooLarge {
            limit: self.max_session_bytes,
        }
    }

    /// Session data as hash fields (name as a JSON string, value as JSON
    /// text) and their `bytes`, once checked against the size limit.
    fn fields<'a>(&self, data: &'a str) -> StoreResult<(Vec<(String, &'a str)>, usize)> {
        if data.len() > self.max_session_bytes {
            return Err(self.too_large());
        }
        // Later duplicates win, as in the host's own parser.
        let object: HashMap<String, &'a RawValue> = serde_json::from_str(data).map_err(|e| {
            StoreError::InvalidArgument(format!("data: expected a JSON object: {e}"))
        })?;
        let fields: Vec<(String, &str)> = object
            .into_iter()
            .map(|(name, value)| (json_string(&name), value.get()))
            .collect();
        let bytes: usize = fields.iter().map(|(n, v)| n.len() + 1 + v.len()).sum();
        if json_size(bytes, fields.len()) > self.max_session_bytes {
            return Err(self.too_large());
        }
        Ok((fields, bytes))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn max_session_bytes(&self) -> usize {
        self.max_session_bytes
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut connection = self.connection.clone();
        let pong: String = self
            .run(redis::cmd("PING").query_async(&mut connection))
            .await?;
        if pong != "PONG" {
            return Err(StoreError::Internal(anyhow!(
                "Redis answered PING with {pong:?}"
            )));
        }
        Ok(())
    }

    // `size` stays `None`: Redis counts keys per database (`DBSIZE`, `INFO
    // keyspace`), not per prefix, and a database may hold more than
    // sessions; counting the prefix would take a `SCAN` of every key.

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        let (fields, bytes) = self.fields(data)?;
        let now = now_ms();
        let expires = now.saturating_add(ms(ttl));
        let mut invocation = self.scripts.insert.key(self.key(key));
        invocation
            .arg(now)
            .arg(expires)
            .arg(evict_at(expires))
            .arg(bytes);
        for (name, value) in &fields {
            invocation.arg(name).arg(*value);
        }
        let mut connection = self.connection.clone();
        let created: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(created == 1)
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        let mut connection = self.connection.clone();
        let hash: Vec<(String, String)> = self
            .run(
                redis::cmd("HGETALL")
                    .arg(self.key(key))
                    .query_async(&mut connection),
            )
            .await?;
        if hash.is_empty() {
            return Ok(None);
        }
        let (mut meta, mut fields) = (HashMap::new(), Vec::new());
        for (name, value) in hash {
            if name.starts_with('"') {
                let key: String = serde_json::from_str(&name).map_err(|e| corrupt(&name, e))?;
                fields.push((key, name, value));
            } else {
                meta.insert(name, value);
            }
        }
        let number = |name: &str| -> StoreResult<i64> {
            meta.get(name)
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| {
                    StoreError::Internal(anyhow!(
                        "a Redis session hash without an integer {name:?} field: \
                         the prefix holds keys edge-session did not write"
                    ))
                })
        };
        let now = now_ms();
        let expires = number(EXPIRES)?;
        if expires <= now {
            return Ok(None);
        }
        fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut data = String::with_capacity(
            2 + fields
                .iter()
                .map(|(_, n, v)| n.len() + v.len() + 2)
                .sum::<usize>(),
        );
        data.push('{');
        for (i, (_, name, value)) in fields.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            data.push_str(name);
            data.push(':');
            data.push_str(value);
        }
        data.push('}');
        Ok(Some(StoredSession {
            data,
            generation: u64::try_from(number(GEN)?).unwrap_or(0),
            expires_in: Duration::from_millis(u64::try_from(expires - now).unwrap_or(1)),
            created_at: UNIX_EPOCH + Duration::from_millis(number(CREATED)?.max(0) as u64),
        }))
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        let (fields, bytes) = self.fields(data)?;
        let now = now_ms();
        let expires = now.saturating_add(ms(ttl));
        let mut invocation = self.scripts.save.key(self.key(key));
        invocation
            .arg(now)
            .arg(expires)
            .arg(evict_at(expires))
            .arg(bytes)
            .arg(expected_generation.map_or_else(String::new, |g| g.to_string()));
        for (name, value) in &fields {
            invocation.arg(name).arg(*value);
        }
        let mut connection = self.connection.clone();
        match self.run(invocation.invoke_async(&mut connection)).await? {
            NOT_FOUND => Err(StoreError::NotFound),
            CONFLICT => Err(StoreError::Conflict),
            generation => u64::try_from(generation).map_err(|_| unexpected("save", generation)),
        }
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        let now = now_ms();
        let expires = now.saturating_add(ms(ttl));
        let mut invocation = self.scripts.touch.key(self.key(key));
        invocation.arg(now).arg(expires).arg(evict_at(expires));
        let mut connection = self.connection.clone();
        let touched: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(touched == 1)
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        let mut invocation = self.scripts.delete.key(self.key(key));
        invocation.arg(now_ms());
        let mut connection = self.connection.clone();
        let deleted: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(deleted == 1)
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        let mut invocation = self.scripts.rename.key(self.key(from));
        invocation.key(self.key(to)).arg(now_ms());
        let mut connection = self.connection.clone();
        match self.run(invocation.invoke_async(&mut connection)).await? {
            1 => Ok(true),
            0 => Ok(false),
            CONFLICT => Err(StoreError::Conflict),
            other => Err(unexpected("rename", other)),
        }
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        let mut connection = self.connection.clone();
        let (expires, value): (Option<String>, Option<String>) = self
            .run(
                redis::cmd("HMGET")
                    .arg(self.key(key))
                    .arg(EXPIRES)
                    .arg(json_string(name))
                    .query_async(&mut connection),
            )
            .await?;
        match expires.and_then(|expires| expires.parse::<i64>().ok()) {
            Some(expires) if expires > now_ms() => Ok(value),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        let mut invocation = self.scripts.set_field.key(self.key(key));
        invocation
            .arg(now_ms())
            .arg(json_string(name))
            .arg(value)
            .arg(self.max_session_bytes);
        let mut connection = self.connection.clone();
        match self.run(invocation.invoke_async(&mut connection)).await? {
            NOT_FOUND => Err(StoreError::NotFound),
            TOO_LARGE => Err(self.too_large()),
            generation => {
                u64::try_from(generation).map_err(|_| unexpected("set_field", generation))
            }
        }
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        let mut invocation = self.scripts.remove_field.key(self.key(key));
        invocation.arg(now_ms()).arg(json_string(name));
        let mut connection = self.connection.clone();
        match self.run(invocation.invoke_async(&mut connection)).await? {
            1 => Ok(true),
            0 => Ok(false),
            NOT_FOUND => Err(StoreError::NotFound),
            other => Err(unexpected("remove_field", other)),
        }
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        let mut invocation = self.scripts.incr_field.key(self.key(key));
        invocation
            .arg(now_ms())
            .arg(json_string(name))
            .arg(delta)
            .arg(self.max_session_bytes);
        let mut connection = self.connection.clone();
        let result: Value = self.run(invocation.invoke_async(&mut connection)).await?;
        match result {
            Value::BulkString(sum) => std::str::from_utf8(&sum)
                .ok()
                .and_then(|sum| sum.parse().ok())
                .ok_or_else(|| unexpected("incr_field", String::from_utf8_lossy(&sum))),
            Value::Int(NOT_FOUND) => Err(StoreError::NotFound),
            Value::Int(TOO_LARGE) => Err(self.too_large()),
            Value::Int(NOT_AN_INTEGER) => {
                Err(super::increment_error(name, IncrementError::NotAnInteger))
            }
            Value::Int(OVERFLOW) => Err(super::increment_error(name, IncrementError::Overflow)),
            other => Err(unexpected("incr_field", format!("{other:?}"))),
        }
    }
}

/// Maps a client error: what says the server cannot be reached, or cannot
/// serve now, is `Unavailable` (the caller may retry later); the rest is a
/// failure.
fn store_error(error: RedisError) -> StoreError {
    let unreachable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
        || error.code() == Some("BUSY");
    if unreachable {
        StoreError::Unavailable(format!("Redis: {}", describe(&error)))
    } else {
        StoreError::Internal(anyhow!("Redis: {}", describe(&error)))
    }
}

/// An error's text, with a hint where the usual cause is known.
fn describe(error: &RedisError) -> String {
    match error.kind() {
        ErrorKind::AuthenticationFailed => format!(
            "{error} (check store.redis.user and the password; with an ACL user, \
             that the user is `on`)"
        ),
        ErrorKind::Server(ServerErrorKind::NoPerm) => format!(
            "{error} (the ACL user needs the hash, key and scripting commands on the \
             prefix's keys: `~<prefix>:* +@hash +@keyspace +@scripting +ping`)"
        ),
        _ if error.code() == Some("NOAUTH") => format!(
            "{error} (the server needs a password: set store.redis.password_env, and \
             store.redis.user for an ACL user)"
        ),
        _ => error.to_string(),
    }
}

fn unexpected(operation: &str, result: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(anyhow!(
        "Redis answered the {operation} script with {result}"
    ))
}

fn corrupt(field: &str, error: serde_json::Error) -> StoreError {
    StoreError::Internal(anyhow!(
        "a Redis session hash holds field {field:?}, not a JSON string: {error}"
    ))
}

/// A field name as a JSON string: its name in the session's hash.
fn json_string(name: &str) -> String {
    serde_json::to_string(name).expect("strings always serialize")
}

/// The length of a JSON object's text whose `fields` take `bytes` (names,
/// colons and values).
fn json_size(bytes: usize, fields: usize) -> usize {
    2 + bytes + fields.saturating_sub(1)
}

fn evict_at(expires_ms: i64) -> i64 {
    expires_ms.saturating_add(EVICTION_GRACE_MS)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_a_session_is_its_json_texts() {
        for data in [
            "{}",
            r#"{"a":1}"#,
            r#"{"a":1,"b":"two","c\"q":{"d":[1,2]}}"#,
            r#"{"é":"ü","\u0001":null}"#,
        ] {
            let object: HashMap<String, &RawValue> = serde_json::from_str(data).unwrap();
            let bytes: usize = object
                .iter()
                .map(|(name, value)| json_string(name).len() + 1 + value.get().len())
                .sum();
            let compact = crate::session::json_object::JsonObject::parse(data)
                .unwrap()
                .to_json();
            assert_eq!(json_size(bytes, object.len()), compact.len(), "{data}");
        }
    }
}
