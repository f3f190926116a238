//! The `[store.aerospike]` section of the config file: the cluster, its
//! namespace and set, timeouts, credentials, TLS and who expires sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{AerospikeConfig, ExpiryMode};
use crate::settings::{ConfigError, duration, error};

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
    pub(crate) fn validate(&self, problems: &mut Vec<ConfigError>) {
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

    /// Loads the CA file of `tls`, if any.
    pub(crate) fn load_tls(&mut self, problems: &mut Vec<ConfigError>) {
        if let Some(tls) = &self.tls {
            match crate::store::tls::client_config(&tls.ca) {
                Ok(loaded) => self.tls_config = Some(loaded),
                Err(why) => problems.push(error("store.aerospike.tls.ca", why)),
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
    ) -> Result<AerospikeConfig, ConfigError> {
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
