//! The TOML config file of `edge-session serve`.
//!
//! Every problem is reported with the path of the field at fault (for
//! example `routes[1].default_ttl`) and, for syntax errors, the line. Paths
//! in the file are relative to the file's directory. docs/configuration.md has the full
//! reference; `guest/demo.toml` is a working example.

mod route;
mod store;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use self::route::{CookieSection, RouteSection, SameSiteSetting};
pub use self::store::{Backend, CircuitBreakerSection, StoreSection};
use crate::http::server::ServerSettings;
use crate::http::tls::{self, TlsFile};
use crate::session::keys::KeySpec;
use crate::session::signing::{self as cookie_signing, SigningKeys};
pub use crate::settings::{ConfigError, ConfigErrors};
use crate::settings::{duration, error, note};
use crate::store::{EncryptionKeys, SessionStore};
use crate::wasm::artifact_cache::ArtifactCache;
use crate::wasm::engine::EngineSettings;
use crate::wasm::runtime::{self, RouteSpec, Runtime};

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

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
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
        #[cfg(feature = "aerospike")]
        if let Some(aerospike) = &mut config.store.aerospike {
            aerospike.load_tls(&mut problems);
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &mut config.store.redis {
            redis.load_tls(&mut problems);
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        self.store.resolve_paths(base);
        if let Some(dir) = &mut self.engine.cache_dir {
            *dir = base.join(&*dir);
        }
        for route in &mut self.routes {
            route.resolve_paths(base);
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
        self.store.validate(&mut problems);
        if self.reload.watch_interval < Duration::from_millis(10) {
            problems.push(error("reload.watch_interval", "must be at least 10ms"));
        }
        if self.routes.is_empty() {
            problems.push(error("routes", "add at least one [[routes]] table"));
        }
        self.validate_routes(&mut problems);
        problems
    }

    /// Each route, then what concerns them together: unique prefixes, and
    /// idle instances, which hold pool slots, within half the pool.
    fn validate_routes(&self, problems: &mut Vec<ConfigError>) {
        let max_instances = self.engine.max_instances as usize;
        let mut prefixes = HashSet::new();
        let (mut idle_instances, idle_cap) = (0, max_instances / 2);
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(i, max_instances, problems);
            if !prefixes.insert(route.prefix.as_str()) {
                problems.push(error(
                    format!("routes[{i}].prefix"),
                    format!("{:?} is used by an earlier route", route.prefix),
                ));
            }
            if route.reuse_instances {
                let before = idle_instances;
                idle_instances += route.max_idle_instances;
                // Reported once, at the route that crosses the cap.
                if before <= idle_cap && idle_instances > idle_cap {
                    problems.push(error(
                        format!("routes[{i}].max_idle_instances"),
                        "idle instances of all routes together must stay within half of \
                         engine.max_instances, which the other requests need",
                    ));
                }
            }
        }
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
            .map(|route| route.spec(self.cookie_signing.clone()))
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
            field_of(&format!("{ROUTE}[store.embedded]\nmax_journal_mib = 63")),
            "store.embedded.max_journal_mib"
        );
        assert_eq!(
            field_of(&format!("{ROUTE}[store.embedded]\nwrite_buffer_mib = 0")),
            "store.embedded.write_buffer_mib"
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

    #[cfg(not(feature = "aerospike"))]
    #[test]
    fn a_build_without_aerospike_says_why_it_refuses_the_backend() {
        let config =
            format!("[store]\nbackend = \"aerospike\"\n[store.aerospike]\nhosts = []\n{ROUTE}");
        assert_eq!(field_of(&config), "store.backend");
    }

    #[cfg(feature = "aerospike")]
    #[test]
    fn aerospike_backend_settings_are_checked_by_field() {
        use crate::store::ExpiryMode;

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

    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_build_without_redis_says_why_it_refuses_the_backend() {
        let config = format!("[store]\nbackend = \"redis\"\n[store.redis]\nurl = \"\"\n{ROUTE}");
        assert_eq!(field_of(&config), "store.backend");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_backend_settings_are_checked_by_field() {
        let redis =
            |table: &str| format!("[store]\nbackend = \"redis\"\n[store.redis]\n{table}\n{ROUTE}");
        let config = parse(&redis("url = \"redis://cache.internal:6380/2\"")).unwrap();
        let store = config
            .store
            .redis
            .as_ref()
            .unwrap()
            .store_config(1024)
            .unwrap();
        assert_eq!(store.url, "redis://cache.internal:6380/2");
        assert_eq!(store.prefix, "edge-session");
        assert_eq!(store.timeout, Duration::from_millis(250));
        assert_eq!(
            (store.user, store.password, store.tls_ca),
            (None, None, None)
        );
        assert_eq!(store.max_session_bytes, 1024);

        // The password from the environment (a variable every test process
        // has), with an ACL user.
        let config = parse(&redis(
            "url = \"redis://h:1\"\nuser = \"edge\"\npassword_env = \"PATH\"",
        ))
        .unwrap();
        let store = config
            .store
            .redis
            .as_ref()
            .unwrap()
            .store_config(1024)
            .unwrap();
        assert_eq!(store.user.as_deref(), Some("edge"));
        assert_eq!(store.password, std::env::var("PATH").ok());

        assert_eq!(
            field_of(&format!("[store]\nbackend = \"redis\"\n{ROUTE}")),
            "store.redis"
        );
        let cases = [
            ("prefix = \"x\"", "store.redis.url"),
            ("url = \"http://h:1\"", "store.redis.url"),
            ("url = \"redis+cluster://h:1\"", "store.redis.url"),
            ("url = \"redis://h:1/notadb\"", "store.redis.url"),
            ("url = \"redis://:secret@h:1\"", "store.redis.url"),
            ("url = \"redis://edge:secret@h:1\"", "store.redis.url"),
            ("url = \"redis://h:1\"\nprefix = \"\"", "store.redis.prefix"),
            (
                "url = \"redis://h:1\"\nprefix = \"a b\"",
                "store.redis.prefix",
            ),
            (
                "url = \"redis://h:1\"\nprefix = \"{tag}\"",
                "store.redis.prefix",
            ),
            (
                "url = \"redis://h:1\"\ntimeout = \"0s\"",
                "store.redis.timeout",
            ),
            (
                "url = \"redis://h:1\"\nconnect_timeout = \"0s\"",
                "store.redis.connect_timeout",
            ),
            ("url = \"redis://h:1\"\nuser = \"edge\"", "store.redis.user"),
            (
                "url = \"redis://h:1\"\npassword = \"p\"\npassword_env = \"PATH\"",
                "store.redis.password",
            ),
            (
                "url = \"redis://h:1\"\npassword_env = \"EDGE_SESSION_NO_SUCH_VAR\"",
                "store.redis.password_env",
            ),
            (
                "url = \"redis://h:1\"\n[store.redis.tls]\nca = \"app.wasm\"",
                "store.redis.tls",
            ),
            (
                "url = \"rediss://h:1\"\n[store.redis.tls]\nca = \"missing.pem\"",
                "store.redis.tls.ca",
            ),
            (
                "url = \"rediss://h:1\"\n[store.redis.tls]\nca = \"app.wasm\"",
                "store.redis.tls.ca",
            ),
            (
                "url = \"redis://h:1\"\ncluster = true",
                "store.redis.cluster",
            ),
        ];
        for (table, field) in cases {
            let result = parse(&redis(table)).and_then(|config| {
                config.store.redis.as_ref().unwrap().store_config(1024)?;
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
