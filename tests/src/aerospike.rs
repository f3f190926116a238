//! Where the Aerospike tests run: a real cluster when `AEROSPIKE_HOSTS` is
//! set (`host:port[,host:port]`, namespace from `AEROSPIKE_NAMESPACE`,
//! default `test`), otherwise the in-repo test server (`aerospike-fixture`).
//!
//! Every test writes to a set of its own, so none assumes it owns the
//! namespace, and those sets are truncated afterwards (records written in
//! host expiry mode have no server TTL). Fault tests need to stop
//! and slow the server, so they always run on the test server.
//!
//! Those tests assert what happens and in what order, never how long it
//! took: [`HANG`] only turns a hang into a failure.

use std::sync::Mutex;
use std::time::Duration;

use aerospike::{AdminPolicy, Client, ClientPolicy};
use aerospike_fixture::{AerospikeFixture, FixtureConfig};
use edge_session::session::id as session_id;
use edge_session::store::{AerospikeConfig, ExpiryMode};

/// How long a test waits for something before calling it hung. Not a
/// performance bound: it only turns a hang into a failure, so it is far
/// above anything a loaded machine needs (store commands here have
/// deadlines of 250 ms, reconnecting takes a tend of about a second).
pub const HANG: Duration = Duration::from_secs(60);

/// `future`'s output; panics naming `what` if that takes [`HANG`].
pub async fn unless_hung<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung: no outcome after {HANG:?}"))
}

/// Calls `attempt` a little apart until it gives `Some`; panics naming
/// `what` if that takes [`HANG`].
pub async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    unless_hung(what, async {
        loop {
            if let Some(done) = attempt().await {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

pub struct TestCluster {
    fixture: Option<AerospikeFixture>,
    pub hosts: String,
    pub namespace: String,
    /// The sets handed out, to clean up on a real cluster.
    sets: Mutex<Vec<String>>,
}

impl TestCluster {
    /// The real cluster if one is named, else a fresh test server.
    pub fn shared() -> Self {
        match std::env::var("AEROSPIKE_HOSTS") {
            Ok(hosts) if !hosts.is_empty() => Self {
                fixture: None,
                hosts,
                namespace: std::env::var("AEROSPIKE_NAMESPACE").unwrap_or_else(|_| "test".into()),
                sets: Mutex::default(),
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
            sets: Mutex::default(),
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
            set: self.new_set(),
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
            set.map_or_else(|| self.new_set(), str::to_owned),
            timeout.as_millis(),
        )
    }

    /// A set of its own for one test, for hosts that share one.
    pub fn new_set(&self) -> String {
        let set = format!("es-test-{}", &session_id::generate()[..12]);
        self.sets.lock().unwrap().push(set.clone());
        set
    }
}

impl TestCluster {
    /// Truncates the sets handed out so far; dropping the cluster does it.
    pub fn truncate_sets(&self) {
        let sets = std::mem::take(&mut *self.sets.lock().unwrap());
        if sets.is_empty() {
            return;
        }
        let (hosts, namespace) = (self.hosts.clone(), self.namespace.clone());
        // Tests drop this inside their runtime, which cannot block on another.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let client = Client::new(&ClientPolicy::default(), &hosts).await?;
                for set in &sets {
                    client
                        .truncate(&AdminPolicy::default(), &namespace, set, 0)
                        .await?;
                }
                client.close().await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            // A server that is stopped on purpose is cleaned up by dropping it.
            if self.is_real() {
                eprintln!("could not truncate the test sets: {error}");
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.truncate_sets();
    }
}
