//! The `[store.redis]` section of the config file: the server, the key
//! prefix, timeouts, credentials and TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use super::RedisConfig;
use crate::settings::{ConfigError, duration, error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://host:port/db`, or `rediss://host:port/db` for TLS: a
    /// standalone server or a primary endpoint (not yet a cluster).
    pub url: String,
    /// The start of every key: `{prefix}:{namespace}:{id}`.
    #[serde(default = "redis_prefix")]
    pub prefix: String,
    /// Deadline of one command, reconnecting included.
    #[serde(default = "redis_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Deadline of opening a connection (TCP, TLS and AUTH).
    #[serde(default = "redis_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// An ACL user (Redis 6+); without one, the password is the default
    /// user's (`requirepass`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Only with a `rediss://` url: the CA that issued the server's
    /// certificate, when the system's roots do not hold it.
    pub tls: Option<RedisTlsSection>,
    /// `tls.ca` read, once validated.
    #[serde(skip)]
    tls_ca: Option<Vec<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTlsSection {
    /// PEM file of the CA certificates that issued the server's.
    pub ca: PathBuf,
}

impl RedisSection {
    pub(crate) fn validate(&self, problems: &mut Vec<ConfigError>) {
        let field = |name: &str| format!("store.redis.{name}");
        match url_problem(&self.url) {
            Some(why) => problems.push(error(field("url"), why)),
            None => {
                if self.tls.is_some() && !self.url.starts_with("rediss://") {
                    problems.push(error(
                        field("tls"),
                        "TLS settings need a rediss:// url (redis:// is in the clear)",
                    ));
                }
            }
        }
        let prefix_ok = self
            .prefix
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '{' && c != '}');
        if self.prefix.is_empty() || self.prefix.len() > 64 || !prefix_ok {
            problems.push(error(
                field("prefix"),
                "must be 1 to 64 printable ASCII characters, without spaces, { or }",
            ));
        }
        if self.timeout.is_zero() {
            problems.push(error(field("timeout"), "must be more than zero"));
        }
        if self.connect_timeout.is_zero() {
            problems.push(error(field("connect_timeout"), "must be more than zero"));
        }
        if self.password.is_some() && self.password_env.is_some() {
            problems.push(error(
                field("password"),
                "give at most one of password and password_env",
            ));
        } else if self.user.is_some() && self.password.is_none() && self.password_env.is_none() {
            problems.push(error(
                field("user"),
                "an ACL user needs a password or password_env",
            ));
        }
        if self.user.as_deref().is_some_and(str::is_empty) {
            problems.push(error(field("user"), "must not be empty"));
        }
    }

    fn password(&self) -> Result<Option<String>, ConfigError> {
        match (&self.password, &self.password_env) {
            (Some(password), _) => Ok(Some(password.clone())),
            (None, Some(var)) => std::env::var(var).map(Some).map_err(|_| {
                error(
                    "store.redis.password_env",
                    format!("environment variable {var} is not set"),
                )
            }),
            (None, None) => Ok(None),
        }
    }

    /// Reads the CA file of `tls`, if any, and checks that it holds
    /// certificates.
    pub(crate) fn load_tls(&mut self, problems: &mut Vec<ConfigError>) {
        if let Some(tls) = &self.tls {
            match read_ca(&tls.ca) {
                Ok(pem) => self.tls_ca = Some(pem),
                Err(why) => problems.push(error("store.redis.tls.ca", why)),
            }
        }
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            tls.ca = base.join(&tls.ca);
        }
    }

    /// The client's settings (with the password read from the environment,
    /// where so configured), for sessions of up to `max_session_bytes` as
    /// stored.
    pub(crate) fn store_config(
        &self,
        max_session_bytes: usize,
    ) -> Result<RedisConfig, ConfigError> {
        Ok(RedisConfig {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            user: self.user.clone(),
            password: self.password()?,
            tls_ca: self.tls_ca.clone(),
            max_session_bytes,
        })
    }
}

/// What is wrong with `url`, if anything.
fn url_problem(url: &str) -> Option<String> {
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        return Some(format!(
            "{url:?} is not a redis:// or rediss:// url (Redis Cluster and Sentinel are \
             not supported yet)"
        ));
    }
    let info = match url.into_connection_info() {
        Ok(info) => info,
        Err(e) => return Some(format!("{url:?} is not a Redis url: {e}")),
    };
    let settings = info.redis_settings();
    if settings.username().is_some() || settings.password().is_some() {
        return Some(
            "holds credentials: give the user as `user` and the password as `password_env`, \
             so that the url can be logged and the config file kept in version control"
                .into(),
        );
    }
    match info.addr() {
        ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. } => None,
        _ => Some(format!("{url:?} names no host and port")),
    }
}

/// The PEM text of a CA file, once checked to hold certificates.
fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(pem)
}

fn redis_defaults() -> RedisConfig {
    RedisConfig::new("")
}
fn redis_prefix() -> String {
    redis_defaults().prefix
}
fn redis_timeout() -> Duration {
    redis_defaults().timeout
}
fn redis_connect_timeout() -> Duration {
    redis_defaults().connect_timeout
}
