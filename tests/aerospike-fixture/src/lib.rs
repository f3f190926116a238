//! **A test fixture, not a database.** An in-memory, single-node stand-in for
//! an Aerospike server that speaks enough of the real wire protocol for the
//! `aerospike` 3.0.0 client to connect, tend the cluster and run single-record
//! commands: get, put, touch, delete, exists and operate with bin ops and the
//! common CDT map ops. Result codes, generations, void-times and expiry follow
//! the server's source (8.1 CE). Nothing is persisted, there is no
//! replication, and batches, queries, UDFs, expressions, list ops and nested
//! CDT contexts are refused with PARAMETER_ERROR.
//!
//! Tests use it to run a backend against a "real" protocol peer and to inject
//! faults: [`AerospikeFixture::stop`] / [`AerospikeFixture::resume`] (same
//! port, data kept), [`AerospikeFixture::set_latency`],
//! [`AerospikeFixture::hold_replies`] / [`AerospikeFixture::release_replies`],
//! [`AerospikeFixture::drop_connections`] and
//! [`AerospikeFixture::cut_replies`]. [`AerospikeFixture::record_bytes`]
//! shows what a dump of the server's storage would hold.
//!
//! ```no_run
//! use aerospike_fixture::{AerospikeFixture, FixtureConfig};
//!
//! let fixture = AerospikeFixture::start(FixtureConfig::default()).unwrap();
//! // Client::new(&ClientPolicy::default(), &fixture.hosts()) ...
//! fixture.stop();
//! fixture.resume().unwrap();
//! ```

mod auth;
mod compression;
mod info;
mod map_ops;
mod message;
mod msgpack;
mod ops;
mod result_code;
mod server;
mod store;
mod value;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use crate::auth::Security;
use crate::info::Node;
use crate::server::{Server, Shared};
use crate::store::{Database, Namespace};

/// How the fixture behaves; `Default` is one namespace, `test`, on any free
/// port, without security.
#[derive(Clone, Debug)]
pub struct FixtureConfig {
    /// Namespace names (1 to 31 bytes each; at least one).
    pub namespaces: Vec<String>,
    /// Mimic a namespace with `nsup-period 0` (and `allow-ttl-without-nsup
    /// false`): writes that would give a record a TTL fail with
    /// FAIL_FORBIDDEN (22). Without it, TTLs work and records expire.
    pub forbid_ttl: bool,
    /// Writes that would make a record larger than this fail with
    /// RECORD_TOO_BIG (13). The size is an approximation of the server's
    /// stored record size.
    pub max_record_bytes: usize,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// `(user, password)` pairs. Empty: no security, like Community Edition.
    /// Otherwise clients must log in, and commands on an unauthenticated
    /// connection fail with NOT_AUTHENTICATED (80).
    pub users: Vec<(String, String)>,
}

impl Default for FixtureConfig {
    fn default() -> Self {
        Self {
            namespaces: vec!["test".into()],
            forbid_ttl: false,
            max_record_bytes: 1024 * 1024,
            port: 0,
            users: Vec::new(),
        }
    }
}

/// A running fixture. It serves from its own thread and runtime until it is
/// dropped.
pub struct AerospikeFixture {
    server: Server,
}

impl AerospikeFixture {
    /// Binds 127.0.0.1 on the configured port and starts serving.
    pub fn start(config: FixtureConfig) -> io::Result<Self> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        if config.namespaces.is_empty() {
            return Err(invalid("at least one namespace is needed"));
        }
        // The info protocol separates values with these characters.
        let bad_name = |name: &String| {
            !(1..32).contains(&name.len()) || name.contains([':', ';', ',', '\t', '\n', '/'])
        };
        if config.namespaces.iter().any(bad_name) {
            return Err(invalid("namespace names must be 1 to 31 plain bytes"));
        }
        let namespaces = config
            .namespaces
            .iter()
            .map(|name| Namespace {
                name: name.clone(),
                forbid_ttl: config.forbid_ttl,
            })
            .collect();
        let security = Security::new(&config.users)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))?;
        let port = listener.local_addr()?.port();
        let node = Node {
            // Real node names are 64-bit ids in hex; the port makes it unique.
            name: format!("BB9{port:012X}"),
            port,
            enterprise: security.enabled(),
        };
        let db = Database::new(namespaces, config.max_record_bytes);
        let server = Server::start(Shared::new(db, security, node), listener)?;
        Ok(Self { server })
    }

    /// The address the fixture listens on (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The seed host string for `aerospike::Client::new`: `127.0.0.1:port`.
    pub fn hosts(&self) -> String {
        self.addr().to_string()
    }

    /// The node name the fixture reports (stable across stop/resume).
    pub fn node_name(&self) -> &str {
        &self.server.shared().node.name
    }

    /// Closes the listener and every open connection, as if the server went
    /// down. The data is kept in memory; see [`resume`](Self::resume).
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Listens again on the same port, with the same data.
    pub fn resume(&self) -> io::Result<()> {
        self.server.resume()
    }

    /// Delays every reply (data, info and login alike) by `delay`;
    /// `Duration::ZERO` turns it off.
    pub fn set_latency(&self, delay: Duration) {
        self.server.set_latency(delay);
    }

    /// Holds every reply (data, info and login alike) from now until
    /// [`release_replies`](Self::release_replies), as a server that stopped
    /// answering would; commands still run and connections stay open.
    ///
    /// Unlike a latency, the stall ends when the test says so, so "the client
    /// gave up before the server answered" is an order of events the test
    /// sets up rather than a race between two timers.
    pub fn hold_replies(&self) {
        self.server.hold_replies(true);
    }

    /// Sends the replies held since [`hold_replies`](Self::hold_replies)
    /// (to clients still listening) and stops holding new ones.
    pub fn release_replies(&self) {
        self.server.hold_replies(false);
    }

    /// How many data commands (not info or login) have run and wait for
    /// [`release_replies`](Self::release_replies) to send their replies: a
    /// client that gave up while this was above zero gave up on a command
    /// the server had received.
    pub fn held_commands(&self) -> usize {
        self.server.held_commands()
    }

    /// Closes every open connection now and keeps listening, as a network
    /// blip or a server-side idle reaper would.
    pub fn drop_connections(&self) {
        self.server.drop_connections();
    }

    /// Runs each of the next `commands` data commands (not info or login)
    /// and then closes its connection instead of replying, as a reply lost
    /// in the network would: the client cannot tell whether a write applied.
    pub fn cut_replies(&self, commands: u64) {
        self.server.cut_replies(commands);
    }

    /// How many records are stored, expired ones not yet swept included.
    pub fn record_count(&self) -> usize {
        self.server.shared().db.record_count()
    }

    /// Every stored record (expired ones not yet swept included) as the
    /// bytes a dump of the server's storage would show: its set name, then
    /// each bin's name and value as it travels on the wire (strings and
    /// blobs as they are, maps and lists in MessagePack). For tests of what
    /// reaches the server, such as encrypted data never being stored in the
    /// clear.
    pub fn record_bytes(&self) -> Vec<Vec<u8>> {
        self.server.shared().db.record_bytes()
    }
}
