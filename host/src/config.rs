//! The TOML config file of `edge-session serve`.
//!
//! Every problem is reported with the path of the field at fault (for
//! example `routes[1].default_ttl`) and, for syntax errors, the line. Paths
//! in the file are relative to the file's directory. docs/configuration.md has the full
//! reference; `guest/demo.toml` is a working example.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::http::server::ServerSettings;
use crate::http::tls::{self, TlsFile};
use crate::session::cookie::{self as session_cookie, CookiePolicy};
use crate::session::keys::KeySpec;
use crate::session::signing::{self as cookie_signing, SigningKeys};
use crate::store::{
    AerospikeConfig, BreakerSettings, Durability, EmbeddedConfig, EncryptionKeys, ExpiryMode,
    SessionStore,
};
use crate::wasm::artifact_cache::ArtifactCache;
use crate::wasm::engine::EngineSettings;
use crate::wasm::outgoing_http::OutgoingHttp;
use crate::wasm::runtime::{self, RouteSpec, Runtime};
use crate::wasm::sandbox::{Capabilities, GuestLimits};
use crate::wit::SessionPolicy;

const MIB: usize = 1024 * 1024;

/// A config problem: the field at fault and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, so that one run of `check` (or a
/// failed start) lists them all rather than one per attempt.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(problem: ConfigError) -> Self {
        Self(vec![problem])
    }
}

fn error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// A parsed and validated config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the public HTTP listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub store: StoreSection,
    /// Keys that sign session cookies, the signing key first; without
    /// keys, cookies carry the bare id.
    #[serde(default)]
    pub cookie_keys: Vec<KeySpec>,
    /// Serve HTTPS rather than plain HTTP.
    pub tls: Option<TlsSection>,
    /// Health, readiness and metrics, on a listener of their own.
    pub admin: Option<AdminSection>,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub reload: ReloadSection,
    pub routes: Vec<RouteSection>,
    /// `tls` loaded, once validated.
    #[serde(skip)]
    tls_config: Option<Arc<rustls::ServerConfig>>,
    /// `cookie_keys` with their secrets, once validated.
    #[serde(skip)]
    cookie_signing: Option<Arc<SigningKeys>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Guest instances that may run at once, over all routes.
    pub max_instances: u32,
    /// Directory for precompiled components; defaults to the user's cache
    /// directory (`~/.cache/edge-session/components`).
    pub cache_dir: Option<PathBuf>,
    /// Set to false to compile components at every start.
    pub cache: bool,
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            max_instances: EngineSettings::default().max_instances,
            cache_dir: None,
            cache: true,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `"text"` for people, `"json"` (one object per line) for collectors.
    pub format: LogFormat,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Hot reload of route components. SIGHUP always reloads the components
/// that changed; `watch` also does so when their files change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSection {
    pub watch: bool,
    /// How often the watcher looks at the files. A file is reloaded once it
    /// has stayed the same for one interval, so a copy in progress is not.
    #[serde(deserialize_with = "duration")]
    pub watch_interval: Duration,
}

impl Default for ReloadSection {
    fn default() -> Self {
        Self {
            watch: false,
            watch_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Keep it off the public network: `/metrics` tells about traffic.
    pub listen: SocketAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Embedded,
    Aerospike,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub backend: Backend,
    /// Largest session guests may write, in bytes of JSON text.
    pub max_session_bytes: usize,
    pub embedded: EmbeddedSection,
    /// Required with `backend = "aerospike"`.
    pub aerospike: Option<AerospikeSection>,
    pub circuit_breaker: CircuitBreakerSection,
    /// Keys that encrypt session data at rest, the sealing key first;
    /// without keys, data is stored as it is.
    pub encryption_keys: Vec<KeySpec>,
    /// `encryption_keys` with their secrets, once validated.
    #[serde(skip)]
    encryption: Option<Arc<EncryptionKeys>>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            max_session_bytes: crate::store::DEFAULT_MAX_SESSION_BYTES,
            embedded: EmbeddedSection::default(),
            aerospike: None,
            circuit_breaker: CircuitBreakerSection::default(),
            encryption_keys: Vec::new(),
            encryption: None,
        }
    }
}

/// Fail fast while the backend is down (see [`crate::store::Breaker`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerSection {
    /// Unavailable results in a row that open the circuit; 0 turns it off.
    pub failures: u32,
    #[serde(deserialize_with = "duration")]
    pub open_for: Duration,
}

impl Default for CircuitBreakerSection {
    fn default() -> Self {
        let settings = BreakerSettings::default();
        Self {
            failures: settings.failures,
            open_for: settings.open_for,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Buffered,
    Fsync,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedSection {
    pub path: PathBuf,
    pub durability: DurabilityMode,
    #[serde(deserialize_with = "duration")]
    pub sync_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub sweep_interval: Duration,
    pub cache_mib: u64,
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        let defaults = EmbeddedConfig::new("");
        Self {
            path: PathBuf::from("data/sessions"),
            durability: DurabilityMode::Buffered,
            sync_interval: crate::store::DEFAULT_SYNC_INTERVAL,
            sweep_interval: defaults.sweep_interval,
            cache_mib: defaults.cache_bytes / MIB as u64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AerospikeSection {
    /// Seed nodes, `host:port` (or `host:tls-name:port` with TLS).
    pub hosts: Vec<String>,
    #[serde(default = "aerospike_namespace")]
    pub namespace: String,
    #[serde(default = "aerospike_set")]
    pub set: String,
    /// Deadline of one command, retries included.
    #[serde(default = "aerospike_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "aerospike_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(default = "aerospike_read_retries")]
    pub read_retries: usize,
    #[serde(default = "aerospike_max_connections")]
    pub max_connections_per_node: usize,
    /// For clusters with security enabled; with `password` or `password_env`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// `"server"`: records carry a TTL (the namespace needs nsup-period > 0);
    /// `"host"`: edge-session expires sessions itself.
    #[serde(default = "aerospike_expiry")]
    pub expiry: ExpirySetting,
    pub tls: Option<AerospikeTlsSection>,
    /// `tls` loaded, once validated.
    #[serde(skip)]
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExpirySetting {
    Server,
    Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AerospikeTlsSection {
    /// PEM file of the CA certificates that issued the cluster's.
    pub ca: PathBuf,
}

impl AerospikeSection {
    fn validate(&self, problems: &mut Vec<ConfigError>) {
        let field = |name: &str| format!("store.aerospike.{name}");
        if self.hosts.is_empty() {
            problems.push(error(field("hosts"), "list at least one \"host:port\""));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            let port = host.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(port)) if port > 0) || host.contains(',') {
                problems.push(error(
                    format!("store.aerospike.hosts[{i}]"),
                    format!("{host:?} is not \"host:port\" (or \"host:tls-name:port\")"),
                ));
            }
        }
        if self.namespace.is_empty() || self.namespace.len() > 31 {
            problems.push(error(field("namespace"), "must be 1 to 31 characters"));
        }
        if self.set.is_empty() || self.set.len() > 63 {
            problems.push(error(field("set"), "must be 1 to 63 characters"));
        }
        if self.timeout.is_zero() {
            problems.push(error(field("timeout"), "must be more than zero"));
        }
        if self.connect_timeout.is_zero() {
            problems.push(error(field("connect_timeout"), "must be more than zero"));
        }
        if self.max_connections_per_node == 0 {
            problems.push(error(
                field("max_connections_per_node"),
                "must be at least 1",
            ));
        }
        let has_password = self.password.is_some() || self.password_env.is_some();
        if self.user.is_some() != has_password
            || (self.password.is_some() && self.password_env.is_some())
        {
            problems.push(error(
                field("user"),
                "give a user with exactly one of password and password_env",
            ));
        }
    }

    fn credentials(&self) -> Result<Option<(String, String)>, ConfigError> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = match (&self.password, &self.password_env) {
            (Some(password), _) => password.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                error(
                    "store.aerospike.password_env",
                    format!("environment variable {var} is not set"),
                )
            })?,
            (None, None) => unreachable!("validated"),
        };
        Ok(Some((user.clone(), password)))
    }

    fn store_config(&self, max_session_bytes: usize) -> Result<AerospikeConfig, ConfigError> {
        Ok(AerospikeConfig {
            hosts: self.hosts.join(","),
            namespace: self.namespace.clone(),
            set: self.set.clone(),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            read_retries: self.read_retries,
            max_connections_per_node: self.max_connections_per_node,
            credentials: self.credentials()?,
            tls: self.tls_config.clone(),
            expiry: match self.expiry {
                ExpirySetting::Server => ExpiryMode::Server,
                ExpirySetting::Host => ExpiryMode::Host,
            },
            max_session_bytes,
        })
    }
}

fn aerospike_defaults() -> AerospikeConfig {
    AerospikeConfig::new("")
}
fn aerospike_namespace() -> String {
    aerospike_defaults().namespace
}
fn aerospike_set() -> String {
    aerospike_defaults().set
}
fn aerospike_timeout() -> Duration {
    aerospike_defaults().timeout
}
fn aerospike_connect_timeout() -> Duration {
    aerospike_defaults().connect_timeout
}
fn aerospike_read_retries() -> usize {
    aerospike_defaults().read_retries
}
fn aerospike_max_connections() -> usize {
    aerospike_defaults().max_connections_per_node
}
fn aerospike_expiry() -> ExpirySetting {
    ExpirySetting::Server
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Path prefix: `/` or `/a[/b…]`, no trailing slash.
    pub prefix: String,
    /// The component (`.wasm`) serving the route.
    pub component: PathBuf,
    /// Session namespace; without one, the route has no session access.
    pub namespace: Option<String>,
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub default_ttl: Duration,
    #[serde(default = "max_ttl", deserialize_with = "duration")]
    pub max_ttl: Duration,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_memory_mib")]
    pub max_memory_mib: usize,
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How long a request waits for a busy route's instance before its 503.
    #[serde(default = "default_max_queue_wait", deserialize_with = "duration")]
    pub max_queue_wait: Duration,
    /// Keep instances between requests: faster, but a request sees what
    /// earlier ones left in the guest's memory.
    #[serde(default)]
    pub reuse_instances: bool,
    /// With `reuse_instances`, how many idle instances the route keeps.
    #[serde(default = "default_max_idle_instances")]
    pub max_idle_instances: usize,
    /// Absolute timeout of `current` sessions.
    #[serde(default = "default_max_lifetime", deserialize_with = "duration")]
    pub max_lifetime: Duration,
    /// `current.load` slides the expiry below this fraction of `default_ttl`.
    #[serde(default = "default_refresh_fraction")]
    pub refresh_fraction: f64,
    /// The session cookie of the `current` interface.
    #[serde(default)]
    pub cookie: CookieSection,
    /// `host:port` authorities the guest may send HTTP requests to.
    #[serde(default)]
    pub outgoing_http: Vec<String>,
    /// Environment variables the guest sees.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// A directory the guest may read (not write), mounted at `/`.
    pub read_only_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieSection {
    /// Name without prefix: the host adds `__Host-` (or `__Secure-`) when secure.
    pub name: String,
    /// Set to false only to serve plain HTTP locally.
    pub secure: bool,
    pub same_site: SameSiteSetting,
    /// Share the cookie with subdomains of this domain (none by default).
    pub domain: Option<String>,
}

impl Default for CookieSection {
    fn default() -> Self {
        let policy = CookiePolicy::default();
        Self {
            name: policy.name,
            secure: policy.secure,
            same_site: SameSiteSetting::Lax,
            domain: policy.domain,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSiteSetting {
    Strict,
    Lax,
    None,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_ttl() -> Duration {
    SessionPolicy::DEFAULT_TTL
}
fn max_ttl() -> Duration {
    SessionPolicy::MAX_TTL
}
fn default_timeout() -> Duration {
    GuestLimits::default().timeout
}
fn default_memory_mib() -> usize {
    GuestLimits::default().max_memory_bytes / MIB
}
fn default_max_request_bytes() -> u64 {
    GuestLimits::default().max_request_bytes
}
fn default_max_response_bytes() -> u64 {
    GuestLimits::default().max_response_bytes
}
fn default_max_concurrency() -> usize {
    GuestLimits::default().max_concurrency
}
fn default_max_queue_wait() -> Duration {
    GuestLimits::default().max_queue_wait
}
fn default_max_idle_instances() -> usize {
    8
}
fn default_max_lifetime() -> Duration {
    SessionPolicy::MAX_LIFETIME
}
fn default_refresh_fraction() -> f64 {
    SessionPolicy::REFRESH_FRACTION
}

/// Reads durations such as "30m", "1h 30m", "500ms".
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{e} (write durations like \"30s\", \"15m\", \"2h\")"
        ))
    })
}

impl Config {
    /// Reads, parses and validates a config file; relative paths in it are
    /// resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error("", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses and validates config text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigErrors> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().message().to_owned();
            // serde reports a missing field at its parent; name the field itself.
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|m| m.strip_suffix('`'));
            let field = match (path.as_str(), missing) {
                (".", Some(name)) => name.to_owned(),
                (".", None) => String::new(),
                (parent, Some(name)) => format!("{parent}.{name}"),
                (parent, None) => parent.to_owned(),
            };
            error(field, message)
        })?;
        config.resolve_paths(base);
        let mut problems = config.validate();
        let long_enough = |len| len >= cookie_signing::MIN_SECRET_BYTES;
        if let Some(secrets) = load_keys(
            "cookie_keys",
            &config.cookie_keys,
            long_enough,
            &mut problems,
        ) {
            match SigningKeys::new(secrets.iter().map(|(id, s)| (id.as_str(), &s[..]))) {
                Ok(keys) => config.cookie_signing = Some(Arc::new(keys)),
                Err(why) => problems.push(error("cookie_keys", why)),
            }
        }
        let data_keys = &config.store.encryption_keys;
        if let Some(secrets) = load_keys(
            "store.encryption_keys",
            data_keys,
            |len| len == 32,
            &mut problems,
        ) {
            match EncryptionKeys::new(secrets.iter().map(|(id, s)| (id.as_str(), &s[..]))) {
                Ok(keys) => config.store.encryption = Some(Arc::new(keys)),
                Err(why) => problems.push(error("store.encryption_keys", why)),
            }
        }
        if let Some(tls) = &config.tls {
            match tls::server_config(&tls.cert, &tls.key) {
                Ok(loaded) => config.tls_config = Some(loaded),
                Err((TlsFile::Cert, why)) => problems.push(error("tls.cert", why)),
                Err((TlsFile::Key, why)) => problems.push(error("tls.key", why)),
            }
        }
        if let Some(aerospike) = &mut config.store.aerospike
            && let Some(tls) = &aerospike.tls
        {
            match tls::client_config(&tls.ca) {
                Ok(loaded) => aerospike.tls_config = Some(loaded),
                Err(why) => problems.push(error("store.aerospike.tls.ca", why)),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        self.store.embedded.path = base.join(&self.store.embedded.path);
        if let Some(dir) = &mut self.engine.cache_dir {
            *dir = base.join(&*dir);
        }
        for route in &mut self.routes {
            route.component = base.join(&route.component);
            if let Some(dir) = &mut route.read_only_dir {
                *dir = base.join(&*dir);
            }
        }
        if let Some(tls) = self.store.aerospike.as_mut().and_then(|a| a.tls.as_mut()) {
            tls.ca = base.join(&tls.ca);
        }
        if let Some(tls) = &mut self.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
    }

    fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.engine.max_instances == 0 {
            problems.push(error("engine.max_instances", "must be at least 1"));
        }
        let store = &self.store;
        if !(2..=16 * MIB).contains(&store.max_session_bytes) {
            problems.push(error(
                "store.max_session_bytes",
                "must be between 2 and 16777216",
            ));
        }
        let embedded = &store.embedded;
        if embedded.sync_interval.is_zero() {
            problems.push(error(
                "store.embedded.sync_interval",
                "must be more than zero",
            ));
        }
        if embedded.sweep_interval.is_zero() {
            problems.push(error(
                "store.embedded.sweep_interval",
                "must be more than zero",
            ));
        }
        let breaker = &store.circuit_breaker;
        if breaker.failures > 0 && breaker.open_for.is_zero() {
            problems.push(error(
                "store.circuit_breaker.open_for",
                "must be more than zero",
            ));
        }
        if embedded.cache_mib == 0 {
            problems.push(error("store.embedded.cache_mib", "must be at least 1"));
        }
        match (store.backend, &store.aerospike) {
            (Backend::Aerospike, None) => {
                problems.push(error(
                    "store.aerospike",
                    "backend = \"aerospike\" needs a [store.aerospike] table with hosts",
                ));
            }
            (Backend::Aerospike, Some(aerospike)) => aerospike.validate(&mut problems),
            (Backend::Embedded, _) => {}
        }
        if self.reload.watch_interval < Duration::from_millis(10) {
            problems.push(error("reload.watch_interval", "must be at least 10ms"));
        }
        if self.routes.is_empty() {
            problems.push(error("routes", "add at least one [[routes]] table"));
        }
        let mut prefixes = HashSet::new();
        // Idle instances hold pool slots: the routes' together are capped.
        let (mut idle_instances, idle_cap) = (0, self.engine.max_instances as usize / 2);
        for (i, route) in self.routes.iter().enumerate() {
            let field = |name: &str| format!("routes[{i}].{name}");
            note(
                &mut problems,
                field("prefix"),
                validate_prefix(&route.prefix),
            );
            if !prefixes.insert(route.prefix.as_str()) {
                problems.push(error(
                    field("prefix"),
                    format!("{:?} is used by an earlier route", route.prefix),
                ));
            }
            if !route.component.is_file() {
                problems.push(error(
                    field("component"),
                    format!(
                        "{} is not a file (build the guests first?)",
                        route.component.display()
                    ),
                ));
            }
            if let Some(namespace) = &route.namespace {
                note(
                    &mut problems,
                    field("namespace"),
                    validate_namespace(namespace),
                );
            }
            if route.max_ttl < Duration::from_secs(1)
                || route.max_ttl > Duration::from_secs(3650 * 24 * 3600)
            {
                problems.push(error(
                    field("max_ttl"),
                    "must be at least 1s and at most 3650d",
                ));
            }
            if route.default_ttl < Duration::from_secs(1) || route.default_ttl > route.max_ttl {
                problems.push(error(
                    field("default_ttl"),
                    "must be at least 1s and at most max_ttl",
                ));
            }
            if route.timeout.is_zero() || route.timeout > Duration::from_secs(3600) {
                problems.push(error(
                    field("timeout"),
                    "must be more than zero and at most 1h",
                ));
            } else if route.max_queue_wait > route.timeout {
                // (Only against a valid timeout: one problem, one error.)
                problems.push(error(
                    field("max_queue_wait"),
                    "must be at most the route's timeout",
                ));
            }
            if !(1..=4096).contains(&route.max_memory_mib) {
                problems.push(error(field("max_memory_mib"), "must be between 1 and 4096"));
            }
            if route.max_request_bytes == 0 {
                problems.push(error(field("max_request_bytes"), "must be at least 1"));
            }
            if route.max_response_bytes == 0 {
                problems.push(error(field("max_response_bytes"), "must be at least 1"));
            }
            if route.max_lifetime < Duration::from_secs(1) {
                problems.push(error(field("max_lifetime"), "must be at least 1s"));
            }
            if !(0.0..=1.0).contains(&route.refresh_fraction) {
                problems.push(error(field("refresh_fraction"), "must be between 0 and 1"));
            }
            let cookie = &route.cookie;
            let name = session_cookie::validate_name(&cookie.name);
            note(&mut problems, field("cookie.name"), name);
            if let Some(domain) = &cookie.domain {
                let domain = session_cookie::validate_domain(domain);
                note(&mut problems, field("cookie.domain"), domain);
            }
            if cookie.same_site == SameSiteSetting::None && !cookie.secure {
                problems.push(error(
                    field("cookie.same_site"),
                    "\"none\" needs secure = true (browsers reject it otherwise)",
                ));
            }
            let outgoing = OutgoingHttp::allow(&route.outgoing_http);
            note(&mut problems, field("outgoing_http"), outgoing);
            if let Some(name) = route
                .env
                .keys()
                .find(|name| name.is_empty() || name.contains(['=', '\0']))
            {
                problems.push(error(
                    field("env"),
                    format!("{name:?} is not a variable name (empty, or holds '=' or NUL)"),
                ));
            }
            if let Some(dir) = &route.read_only_dir
                && !dir.is_dir()
            {
                problems.push(error(
                    field("read_only_dir"),
                    format!("{} is not a directory", dir.display()),
                ));
            }
            if route.max_concurrency == 0
                || route.max_concurrency > self.engine.max_instances as usize
            {
                problems.push(error(
                    field("max_concurrency"),
                    "must be at least 1 and at most engine.max_instances",
                ));
            }
            if route.reuse_instances {
                if route.max_idle_instances == 0 || route.max_idle_instances > route.max_concurrency
                {
                    problems.push(error(
                        field("max_idle_instances"),
                        "must be at least 1 and at most the route's max_concurrency",
                    ));
                }
                let before = idle_instances;
                idle_instances += route.max_idle_instances;
                // Reported once, at the route that crosses the cap.
                if before <= idle_cap && idle_instances > idle_cap {
                    problems.push(error(
                        field("max_idle_instances"),
                        "idle instances of all routes together must stay within half of \
                         engine.max_instances, which the other requests need",
                    ));
                }
            }
        }
        problems
    }

    /// How often to look for changed components; `None` when only SIGHUP
    /// reloads them.
    pub fn reload_watch(&self) -> Option<Duration> {
        self.reload.watch.then_some(self.reload.watch_interval)
    }

    /// How the server listens: TLS when configured.
    pub fn server_settings(&self) -> ServerSettings {
        ServerSettings {
            tls: self.tls_config.clone(),
            ..ServerSettings::default()
        }
    }

    /// The embedded backend's settings, for sessions of up to
    /// `max_session_bytes` as stored (sealed, when encrypted).
    pub fn embedded_config(&self, max_session_bytes: usize) -> EmbeddedConfig {
        let section = &self.store.embedded;
        EmbeddedConfig {
            path: section.path.clone(),
            durability: match section.durability {
                DurabilityMode::Buffered => Durability::Buffered {
                    sync_interval: section.sync_interval,
                },
                DurabilityMode::Fsync => Durability::Fsync,
            },
            sweep_interval: section.sweep_interval,
            cache_bytes: section.cache_mib * MIB as u64,
            max_session_bytes,
        }
    }

    /// The Aerospike backend's settings (with its password read from the
    /// environment), for sessions of up to `max_session_bytes` as stored.
    pub fn aerospike_config(
        &self,
        max_session_bytes: usize,
    ) -> Result<AerospikeConfig, ConfigError> {
        let section = self.store.aerospike.as_ref().expect("validated");
        section.store_config(max_session_bytes)
    }

    /// The keys that encrypt session data at rest, when configured.
    pub fn encryption_keys(&self) -> Option<Arc<EncryptionKeys>> {
        self.store.encryption.clone()
    }

    /// The circuit breaker's settings; `None` when it is off.
    pub fn breaker_settings(&self) -> Option<BreakerSettings> {
        let breaker = &self.store.circuit_breaker;
        (breaker.failures > 0).then_some(BreakerSettings {
            failures: breaker.failures,
            open_for: breaker.open_for,
        })
    }

    /// Builds the runtime with every route, over `store` (see
    /// [`crate::app::open_store`]).
    pub fn build_runtime(&self, store: Arc<dyn SessionStore>) -> anyhow::Result<Runtime> {
        let mut builder = Runtime::builder(store)
            .engine(self.engine_settings())
            .artifact_cache(self.artifact_cache());
        for route in self.route_specs() {
            builder = builder.route(route);
        }
        builder.build()
    }

    /// Compiles and links every route's component against the host's WIT
    /// world, without opening the store: one error per failing route, named
    /// by its `component` field.
    pub fn check_routes(&self) -> anyhow::Result<Vec<ConfigError>> {
        let cache = self.artifact_cache();
        let failures =
            runtime::check_routes(self.engine_settings(), cache.as_ref(), &self.route_specs())?;
        Ok(failures
            .into_iter()
            .map(|(i, why)| error(format!("routes[{i}].component"), format!("{why:#}")))
            .collect())
    }

    fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            max_instances: self.engine.max_instances,
            ..EngineSettings::default()
        }
    }

    fn artifact_cache(&self) -> Option<ArtifactCache> {
        match (&self.engine.cache, &self.engine.cache_dir) {
            (false, _) => None,
            (true, Some(dir)) => Some(ArtifactCache::new(dir)),
            (true, None) => ArtifactCache::default_dir().map(ArtifactCache::new),
        }
    }

    fn route_specs(&self) -> Vec<RouteSpec> {
        self.routes
            .iter()
            .map(|route| RouteSpec {
                prefix: route.prefix.clone(),
                component: route.component.clone(),
                sessions: route.namespace.as_ref().map(|namespace| SessionPolicy {
                    namespace: namespace.clone(),
                    default_ttl: route.default_ttl,
                    max_ttl: route.max_ttl,
                    cookie: CookiePolicy {
                        name: route.cookie.name.clone(),
                        secure: route.cookie.secure,
                        same_site: match route.cookie.same_site {
                            SameSiteSetting::Strict => cookie::SameSite::Strict,
                            SameSiteSetting::Lax => cookie::SameSite::Lax,
                            SameSiteSetting::None => cookie::SameSite::None,
                        },
                        domain: route.cookie.domain.clone(),
                        signing: self.cookie_signing.clone(),
                    },
                    refresh_fraction: route.refresh_fraction,
                    max_lifetime: route.max_lifetime,
                }),
                capabilities: Capabilities {
                    outgoing_http: OutgoingHttp::allow(&route.outgoing_http)
                        .expect("validated with the config"),
                    env: route.env.clone().into_iter().collect(),
                    read_only_dir: route.read_only_dir.clone(),
                },
                limits: GuestLimits {
                    max_memory_bytes: route.max_memory_mib * MIB,
                    timeout: route.timeout,
                    max_request_bytes: route.max_request_bytes,
                    max_response_bytes: route.max_response_bytes,
                    max_concurrency: route.max_concurrency,
                    max_queue_wait: route.max_queue_wait,
                    max_idle_instances: if route.reuse_instances {
                        route.max_idle_instances
                    } else {
                        0
                    },
                },
            })
            .collect()
    }
}

/// Validates a key list (`list` names it in problems) and decodes its
/// secrets, which must have a length `size_ok` accepts (32 bytes is always
/// fine). `None` when the list is empty or has a problem.
fn load_keys(
    list: &str,
    specs: &[KeySpec],
    size_ok: fn(usize) -> bool,
    problems: &mut Vec<ConfigError>,
) -> Option<Vec<(String, Vec<u8>)>> {
    let before = problems.len();
    let mut keys = Vec::new();
    for (i, key) in specs.iter().enumerate() {
        let field = |name: &str| format!("{list}[{i}].{name}");
        note(problems, field("id"), cookie_signing::valid_key_id(&key.id));
        let secret = match key.secret() {
            Ok(secret) => secret,
            Err((name, why)) => {
                problems.push(error(field(name), why));
                continue;
            }
        };
        if !size_ok(secret.len()) {
            let name = if key.secret.is_some() {
                "secret"
            } else {
                "secret_env"
            };
            problems.push(error(
                field(name),
                format!(
                    "decodes to {} bytes; give 32 random bytes (make them with `openssl rand -base64 32`)",
                    secret.len()
                ),
            ));
        }
        keys.push((key.id.clone(), secret));
    }
    (problems.len() == before && !keys.is_empty()).then_some(keys)
}

/// Records the error of a check, if any, against `field`.
fn note<T>(problems: &mut Vec<ConfigError>, field: String, result: Result<T, String>) {
    if let Err(why) = result {
        problems.push(error(field, why));
    }
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
    let message = e.message().trim_end().to_owned();
    match line {
        Some(line) => error("", format!("TOML syntax error on line {line}: {message}")),
        None => error("", format!("TOML syntax error: {message}")),
    }
}

fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix == "/" {
        return Ok(());
    }
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(format!(
            "{prefix:?} must start with '/' and not end with '/'"
        ));
    }
    if prefix.contains("//")
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(format!(
            "{prefix:?} must be a plain path (no '//', '?', '#', spaces or non-ASCII)"
        ));
    }
    Ok(())
}

fn validate_namespace(namespace: &str) -> Result<(), String> {
    let valid_chars = namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if namespace.is_empty() || namespace.len() > 64 || !valid_chars {
        return Err(format!(
            "{namespace:?} must be 1 to 64 characters of A-Z a-z 0-9 - _ ."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"\0asm").unwrap();
        Config::parse(text, dir.path())
    }

    const ROUTE: &str =
        "[[routes]]\nprefix = \"/app\"\ncomponent = \"app.wasm\"\nnamespace = \"app\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(ROUTE).unwrap();
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.routes[0].default_ttl, Duration::from_secs(1800));
        assert_eq!(config.store.backend, Backend::Embedded);
        assert!(config.store.embedded.path.ends_with("data/sessions"));
    }

    #[test]
    fn a_busy_route_queues_only_briefly() {
        let wait = |text: &str| parse(text).unwrap().route_specs()[0].limits.max_queue_wait;
        assert_eq!(wait(ROUTE), Duration::from_millis(100));
        assert_eq!(
            wait(&format!("{ROUTE}max_queue_wait = \"0s\"")),
            Duration::ZERO
        );
        assert_eq!(
            field_of(&format!("{ROUTE}timeout = \"1s\"\nmax_queue_wait = \"2s\"")),
            "routes[0].max_queue_wait"
        );
    }

    #[test]
    fn instance_reuse_is_opt_in_and_idle_instances_are_capped() {
        let idle = |text: &str| {
            parse(text).unwrap().route_specs()[0]
                .limits
                .max_idle_instances
        };
        assert_eq!(idle(ROUTE), 0);
        assert_eq!(idle(&format!("{ROUTE}max_idle_instances = 3")), 0);
        assert_eq!(idle(&format!("{ROUTE}reuse_instances = true")), 8);
        assert_eq!(
            idle(&format!(
                "{ROUTE}reuse_instances = true\nmax_idle_instances = 3"
            )),
            3
        );
        for bad in ["0", "101"] {
            assert_eq!(
                field_of(&format!(
                    "{ROUTE}reuse_instances = true\nmax_idle_instances = {bad}"
                )),
                "routes[0].max_idle_instances"
            );
        }
        // Two routes' idle instances, 4 each, pass half of 10 at the second.
        let reusing =
            format!("{ROUTE}max_concurrency = 4\nreuse_instances = true\nmax_idle_instances = 4\n");
        assert_eq!(
            field_of(&format!(
                "[engine]\nmax_instances = 10\n{reusing}{}",
                reusing.replace("/app", "/other")
            )),
            "routes[1].max_idle_instances"
        );
    }

    /// The field named by the one problem in `text`.
    fn field_of(text: &str) -> String {
        let ConfigErrors(mut problems) = parse(text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.remove(0).field
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = format!(
            "[store]\nmax_session_bytes = 1\n{ROUTE}max_memory_mib = 0\n\
             [routes.cookie]\nname = \"a b\"\n{}",
            ROUTE
                .replace("/app", "/other")
                .replace("app.wasm", "missing.wasm")
        );
        let ConfigErrors(problems) = parse(&text).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "store.max_session_bytes",
                "routes[0].max_memory_mib",
                "routes[0].cookie.name",
                "routes[1].component",
            ]
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(&format!("{ROUTE}default_ttl = \"soon\"")),
            "routes[0].default_ttl"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}max_memory_mib = 0")),
            "routes[0].max_memory_mib"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}outgoing_http = [\"api.example.com\"]")),
            "routes[0].outgoing_http"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}read_only_dir = \"missing\"")),
            "routes[0].read_only_dir"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[routes.env]\n\"A=B\" = \"x\"")),
            "routes[0].env"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}max_request_bytes = 0")),
            "routes[0].max_request_bytes"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}max_response_bytes = -1")),
            "routes[0].max_response_bytes"
        );
        assert_eq!(
            field_of(&format!(
                "[engine]\nmax_instances = 4\n{ROUTE}max_concurrency = 5"
            )),
            "routes[0].max_concurrency"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}colour = \"red\"")),
            "routes[0].colour"
        );
        assert_eq!(
            field_of(&format!("listen = \"nowhere\"\n{ROUTE}")),
            "listen"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[store]\nbackend = \"floppy\"")),
            "store.backend"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[store.embedded]\ndurability = \"maybe\"")),
            "store.embedded.durability"
        );
        assert_eq!(
            field_of("[[routes]]\nprefix = \"/a\"\ncomponent = \"missing.wasm\""),
            "routes[0].component"
        );
        assert_eq!(field_of(&format!("{ROUTE}{ROUTE}")), "routes[1].prefix");
        assert_eq!(field_of(&ROUTE.replace("/app", "app/")), "routes[0].prefix");
        assert_eq!(
            field_of(&ROUTE.replace("\"app\"\n", "\"a b\"\n")),
            "routes[0].namespace"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}default_ttl = \"2d\"\nmax_ttl = \"1d\"")),
            "routes[0].default_ttl"
        );
        assert_eq!(field_of("listen = \"127.0.0.1:1\""), "routes");
    }

    #[test]
    fn cookie_keys_are_checked_and_named_by_index() {
        const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let key = |id: &str, secret: &str| {
            format!("[[cookie_keys]]\nid = \"{id}\"\nsecret = \"{secret}\"\n")
        };
        let config = parse(&format!("{}{}{ROUTE}", key("new", KEY), key("old", KEY))).unwrap();
        assert!(config.cookie_signing.is_some());
        assert!(parse(ROUTE).unwrap().cookie_signing.is_none());

        let short = format!("{}{}{ROUTE}", key("new", KEY), key("old", "AAAA"));
        assert_eq!(field_of(&short), "cookie_keys[1].secret");
        assert_eq!(
            field_of(&format!("{}{ROUTE}", key("a.b", KEY))),
            "cookie_keys[0].id"
        );
        assert_eq!(
            field_of(&format!("{}{}{ROUTE}", key("k", KEY), key("k", KEY))),
            "cookie_keys"
        );
        let unset = "[[cookie_keys]]\nid = \"k\"\nsecret_env = \"EDGE_SESSION_TEST_UNSET\"\n";
        assert_eq!(
            field_of(&format!("{unset}{ROUTE}")),
            "cookie_keys[0].secret_env"
        );

        let data_key = |secret: &str| {
            format!("[[store.encryption_keys]]\nid = \"d1\"\nsecret = \"{secret}\"\n{ROUTE}")
        };
        assert!(parse(&data_key(KEY)).unwrap().store.encryption.is_some());
        let longer = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
        assert_eq!(
            field_of(&data_key(longer)),
            "store.encryption_keys[0].secret"
        );
    }

    #[test]
    fn cookie_and_lifetime_settings_are_checked() {
        let config = parse(&format!(
            "{ROUTE}max_lifetime = \"4h\"\n[routes.cookie]\nname = \"shop\"\nsecure = false"
        ))
        .unwrap();
        assert_eq!(config.routes[0].max_lifetime, Duration::from_secs(4 * 3600));
        assert_eq!(
            (
                config.routes[0].cookie.name.as_str(),
                config.routes[0].cookie.secure
            ),
            ("shop", false)
        );
        assert_eq!(
            field_of(&format!("{ROUTE}refresh_fraction = 1.5")),
            "routes[0].refresh_fraction"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}max_lifetime = \"0s\"")),
            "routes[0].max_lifetime"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[routes.cookie]\nname = \"a b\"")),
            "routes[0].cookie.name"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[routes.cookie]\nname = \"__Host-x\"")),
            "routes[0].cookie.name"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[routes.cookie]\ndomain = \".x\"")),
            "routes[0].cookie.domain"
        );
        assert_eq!(
            field_of(&format!(
                "{ROUTE}[routes.cookie]\nsame_site = \"none\"\nsecure = false"
            )),
            "routes[0].cookie.same_site"
        );
        assert_eq!(
            field_of(&format!(
                "{ROUTE}[routes.cookie]\nsame_site = \"sometimes\""
            )),
            "routes[0].cookie.same_site"
        );
    }

    #[test]
    fn aerospike_backend_settings_are_checked_by_field() {
        let aerospike = |table: &str| {
            format!("[store]\nbackend = \"aerospike\"\n[store.aerospike]\n{table}\n{ROUTE}")
        };
        let config = parse(&aerospike("hosts = [\"a:3000\", \"b:tls-b:4333\"]")).unwrap();
        let section = config.store.aerospike.as_ref().unwrap();
        let store = section.store_config(1024).unwrap();
        assert_eq!(store.hosts, "a:3000,b:tls-b:4333");
        assert_eq!(
            (store.namespace.as_str(), store.set.as_str()),
            ("test", "sessions")
        );
        assert_eq!(store.expiry, ExpiryMode::Server);

        assert_eq!(
            field_of(&format!("[store]\nbackend = \"aerospike\"\n{ROUTE}")),
            "store.aerospike"
        );
        let cases = [
            ("hosts = []", "store.aerospike.hosts"),
            (
                "hosts = [\"a:3000\", \"nohost\"]",
                "store.aerospike.hosts[1]",
            ),
            ("hosts = [\"a:0\"]", "store.aerospike.hosts[0]"),
            ("hosts = [\"a:1,b:2\"]", "store.aerospike.hosts[0]"),
            (
                "hosts = [\"a:1\"]\nnamespace = \"\"",
                "store.aerospike.namespace",
            ),
            (
                "hosts = [\"a:1\"]\ntimeout = \"0s\"",
                "store.aerospike.timeout",
            ),
            (
                "hosts = [\"a:1\"]\nexpiry = \"never\"",
                "store.aerospike.expiry",
            ),
            ("hosts = [\"a:1\"]\nuser = \"u\"", "store.aerospike.user"),
            (
                "hosts = [\"a:1\"]\nuser = \"u\"\npassword_env = \"EDGE_SESSION_NO_SUCH_VAR\"",
                "store.aerospike.password_env",
            ),
            (
                "hosts = [\"a:1\"]\n[store.aerospike.tls]\nca = \"missing.pem\"",
                "store.aerospike.tls.ca",
            ),
        ];
        for (table, field) in cases {
            let result = parse(&aerospike(table)).and_then(|config| {
                config
                    .store
                    .aerospike
                    .as_ref()
                    .unwrap()
                    .store_config(1024)?;
                Ok(config)
            });
            assert_eq!(
                result.err().map(|e| e.0[0].field.clone()).as_deref(),
                Some(field),
                "{table}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse(&format!("{ROUTE}\ntimeout = = 3")).unwrap_err();
        assert!(err.to_string().contains("line 6"), "{err}");
    }
}
