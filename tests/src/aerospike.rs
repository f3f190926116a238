//! Where the Aerospike tests run: a real cluster when `AEROSPIKE_HOSTS` is
//! set (`host:port[,host:port]`, namespace from `AEROSPIKE_NAMESPACE`,
//! default `test`), otherwise the in-repo test server (`aerospike-fixture`).
//!
//! Every test writes to a set of its own, so none assumes it owns the
//! namespace. Fault tests need to stop and slow the server, so they always
//! run on the test server.

use std::time::Duration;

use aerospike_fixture::{AerospikeFixture, FixtureConfig};
use edge_session::session_id;
use edge_session::store::{AerospikeConfig, ExpiryMode};

pub struct TestCluster {
    fixture: Option<AerospikeFixture>,
    pub hosts: String,
    pub namespace: String,
}

impl TestCluster {
    /// The real cluster if one is named, else a fresh test server.
    pub fn shared() -> Self {
        match std::env::var("AEROSPIKE_HOSTS") {
            Ok(hosts) if !hosts.is_empty() => Self {
                fixture: None,
                hosts,
                namespace: std::env::var("AEROSPIKE_NAMESPACE").unwrap_or_else(|_| "test".into()),
            },
            _ => Self::fixture(FixtureConfig::default()),
        }
    }

    /// Always a test server, configured as given.
    pub fn fixture(config: FixtureConfig) -> Self {
        let fixture = AerospikeFixture::start(config).expect("start the Aerospike test server");
        Self {
            hosts: fixture.hosts(),
            namespace: "test".into(),
            fixture: Some(fixture),
        }
    }

    pub fn is_real(&self) -> bool {
        self.fixture.is_none()
    }

    /// The test server, for fault injection.
    pub fn server(&self) -> &AerospikeFixture {
        self.fixture
            .as_ref()
            .expect("fault tests run on the test server")
    }

    /// A store config for a set no other test uses.
    pub fn store_config(&self, expiry: ExpiryMode, max_session_bytes: usize) -> AerospikeConfig {
        AerospikeConfig {
            namespace: self.namespace.clone(),
            set: unique_set(),
            expiry,
            max_session_bytes,
            ..AerospikeConfig::new(&self.hosts)
        }
    }

    /// The `[store]` tables of a host config using this cluster, in a set
    /// of its own unless `set` names one (hosts that share sessions).
    pub fn store_toml(&self, set: Option<&str>, timeout: Duration) -> String {
        let hosts: Vec<String> = self.hosts.split(',').map(|h| format!("{h:?}")).collect();
        format!(
            "[store]\nbackend = \"aerospike\"\n\n[store.aerospike]\nhosts = [{}]\nnamespace = {:?}\nset = {:?}\ntimeout = \"{}ms\"\n",
            hosts.join(", "),
            self.namespace,
            set.map_or_else(unique_set, str::to_owned),
            timeout.as_millis(),
        )
    }
}

/// A set name of its own for one test.
pub fn unique_set() -> String {
    format!("es-test-{}", &session_id::generate()[..12])
}
