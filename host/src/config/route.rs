//! A `[[routes]]` table: a path prefix, the component serving it, its
//! sandbox limits and grants, and its session policy and cookie.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::session::cookie::{self as session_cookie, CookiePolicy};
use crate::session::signing::SigningKeys;
use crate::settings::{ConfigError, MIB, duration, error, note};
use crate::wasm::outgoing_http::OutgoingHttp;
use crate::wasm::runtime::RouteSpec;
use crate::wasm::sandbox::{Capabilities, GuestLimits};
use crate::wit::SessionPolicy;

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

impl RouteSection {
    /// Checks this route, the `i`th, on an engine of `max_instances`.
    /// (What concerns routes together, such as unique prefixes, is the
    /// config's to check.)
    pub(super) fn validate(&self, i: usize, max_instances: usize, problems: &mut Vec<ConfigError>) {
        let field = |name: &str| format!("routes[{i}].{name}");
        note(problems, field("prefix"), validate_prefix(&self.prefix));
        if !self.component.is_file() {
            problems.push(error(
                field("component"),
                format!(
                    "{} is not a file (build the guests first?)",
                    self.component.display()
                ),
            ));
        }
        if let Some(namespace) = &self.namespace {
            note(problems, field("namespace"), validate_namespace(namespace));
        }
        if self.max_ttl < Duration::from_secs(1)
            || self.max_ttl > Duration::from_secs(3650 * 24 * 3600)
        {
            problems.push(error(
                field("max_ttl"),
                "must be at least 1s and at most 3650d",
            ));
        }
        if self.default_ttl < Duration::from_secs(1) || self.default_ttl > self.max_ttl {
            problems.push(error(
                field("default_ttl"),
                "must be at least 1s and at most max_ttl",
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(3600) {
            problems.push(error(
                field("timeout"),
                "must be more than zero and at most 1h",
            ));
        } else if self.max_queue_wait > self.timeout {
            // (Only against a valid timeout: one problem, one error.)
            problems.push(error(
                field("max_queue_wait"),
                "must be at most the route's timeout",
            ));
        }
        if !(1..=4096).contains(&self.max_memory_mib) {
            problems.push(error(field("max_memory_mib"), "must be between 1 and 4096"));
        }
        if self.max_request_bytes == 0 {
            problems.push(error(field("max_request_bytes"), "must be at least 1"));
        }
        if self.max_response_bytes == 0 {
            problems.push(error(field("max_response_bytes"), "must be at least 1"));
        }
        if self.max_lifetime < Duration::from_secs(1) {
            problems.push(error(field("max_lifetime"), "must be at least 1s"));
        }
        if !(0.0..=1.0).contains(&self.refresh_fraction) {
            problems.push(error(field("refresh_fraction"), "must be between 0 and 1"));
        }
        let cookie = &self.cookie;
        let name = session_cookie::validate_name(&cookie.name);
        note(problems, field("cookie.name"), name);
        if let Some(domain) = &cookie.domain {
            let domain = session_cookie::validate_domain(domain);
            note(problems, field("cookie.domain"), domain);
        }
        if cookie.same_site == SameSiteSetting::None && !cookie.secure {
            problems.push(error(
                field("cookie.same_site"),
                "\"none\" needs secure = true (browsers reject it otherwise)",
            ));
        }
        let outgoing = OutgoingHttp::allow(&self.outgoing_http);
        note(problems, field("outgoing_http"), outgoing);
        if let Some(name) = self
            .env
            .keys()
            .find(|name| name.is_empty() || name.contains(['=', '\0']))
        {
            problems.push(error(
                field("env"),
                format!("{name:?} is not a variable name (empty, or holds '=' or NUL)"),
            ));
        }
        if let Some(dir) = &self.read_only_dir
            && !dir.is_dir()
        {
            problems.push(error(
                field("read_only_dir"),
                format!("{} is not a directory", dir.display()),
            ));
        }
        if self.max_concurrency == 0 || self.max_concurrency > max_instances {
            problems.push(error(
                field("max_concurrency"),
                "must be at least 1 and at most engine.max_instances",
            ));
        }
        if self.reuse_instances
            && (self.max_idle_instances == 0 || self.max_idle_instances > self.max_concurrency)
        {
            problems.push(error(
                field("max_idle_instances"),
                "must be at least 1 and at most the route's max_concurrency",
            ));
        }
    }

    /// The route as the runtime takes it; `signing` signs its cookie.
    pub(super) fn spec(&self, signing: Option<Arc<SigningKeys>>) -> RouteSpec {
        RouteSpec {
            prefix: self.prefix.clone(),
            component: self.component.clone(),
            sessions: self.namespace.as_ref().map(|namespace| SessionPolicy {
                namespace: namespace.clone(),
                default_ttl: self.default_ttl,
                max_ttl: self.max_ttl,
                cookie: CookiePolicy {
                    name: self.cookie.name.clone(),
                    secure: self.cookie.secure,
                    same_site: match self.cookie.same_site {
                        SameSiteSetting::Strict => cookie::SameSite::Strict,
                        SameSiteSetting::Lax => cookie::SameSite::Lax,
                        SameSiteSetting::None => cookie::SameSite::None,
                    },
                    domain: self.cookie.domain.clone(),
                    signing,
                },
                refresh_fraction: self.refresh_fraction,
                max_lifetime: self.max_lifetime,
            }),
            capabilities: Capabilities {
                outgoing_http: OutgoingHttp::allow(&self.outgoing_http)
                    .expect("validated with the config"),
                env: self.env.clone().into_iter().collect(),
                read_only_dir: self.read_only_dir.clone(),
            },
            limits: GuestLimits {
                max_memory_bytes: self.max_memory_mib * MIB,
                timeout: self.timeout,
                max_request_bytes: self.max_request_bytes,
                max_response_bytes: self.max_response_bytes,
                max_concurrency: self.max_concurrency,
                max_queue_wait: self.max_queue_wait,
                max_idle_instances: if self.reuse_instances {
                    self.max_idle_instances
                } else {
                    0
                },
            },
        }
    }

    /// Resolves the route's relative paths against `base`.
    pub(super) fn resolve_paths(&mut self, base: &std::path::Path) {
        self.component = base.join(&self.component);
        if let Some(dir) = &mut self.read_only_dir {
            *dir = base.join(&*dir);
        }
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
