//! Where the Redis tests run: the server named by `REDIS_URL` when it is set
//! (`redis://host:port/db`, no credentials), otherwise a `redis-server`
//! (from apt; `scripts/test.sh` installs it) that the test starts on a free
//! loopback port in a temporary directory and kills when it is dropped.
//!
//! Every test uses a key prefix of its own, and every key it writes expires
//! within minutes, so tests never assume they own the database and leave
//! nothing behind. Tests that stop, pause or configure the server (faults,
//! passwords, TLS) always start their own.
//!
//! Those tests assert what happens and in what order, never how long it
//! took: [`HANG`](crate::aerospike::HANG) only turns a hang into a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edge_session::session::id as session_id;
use edge_session::store::RedisConfig;

/// A command deadline for tests that are not about deadlines: far above
/// what a loaded machine needs (tests share two cores with many others), so
/// that only a hang reaches it.
pub const PATIENT: Duration = Duration::from_secs(10);

/// A `redis-server` process of the test's own.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    args: Vec<String>,
    /// Whether clients reach it over TLS only.
    tls: bool,
    /// The TLS certificate and key, for as long as the server reads them.
    _certs: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port without persistence,
    /// with `args` (config directives, e.g. `["--requirepass", "x"]`) after
    /// the defaults, so they can override them.
    pub fn start(args: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            tls: args.contains(&"--tls-port"),
            _certs: None,
        };
        server.launch();
        server
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1
    /// issued by a CA whose PEM file is returned.
    pub fn start_tls() -> (Self, PathBuf) {
        let certs = tempfile::tempdir().expect("temp dir");
        let certified = self_signed(certs.path());
        let port = free_port().to_string();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert-file",
            certified.cert.to_str().unwrap(),
            "--tls-key-file",
            certified.key.to_str().unwrap(),
            "--tls-ca-cert-file",
            certified.cert.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ];
        let mut server = Self::start(&args);
        server.port = port.parse().unwrap();
        let ca = server.dir.path().join("ca.pem");
        std::fs::copy(&certified.cert, &ca).unwrap();
        server._certs = Some(certs);
        (server, ca)
    }

    fn launch(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install it (apt-get install redis-server) or run scripts/test.sh")
        });
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// Waits until the server accepts connections (a bound only a hang
    /// reaches turns one into a failure).
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server exited ({status}); its log:\n{}", self.log());
            }
            if self.answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server is up: it answers PING (over TLS, its log says it
    /// is ready, as a plain PING would not get through).
    fn answers(&self) -> bool {
        if self.tls {
            return self.log().contains("Ready to accept connections");
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reply = [0u8; 64];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|n| {
                reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH")
            })
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL: the server dies at once, its connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the same settings.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the server before restarting it");
        self.launch();
    }

    /// SIGSTOP or SIGCONT: the server stops answering, with its connections
    /// open, or goes on.
    pub fn pause(&self, paused: bool) {
        let child = self.child.as_ref().expect("the server runs");
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server would not die of SIGKILL before it continued
            // on some systems; continue it first.
            let pid = i32::try_from(child.id()).expect("pid fits i32");
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        self.kill();
    }
}

/// Where a test's sessions go: `REDIS_URL`'s server, else one of its own.
pub struct TestRedis {
    pub server: Option<RedisServer>,
    pub url: String,
}

impl TestRedis {
    /// The server named by `REDIS_URL`, else a fresh local one.
    pub fn shared() -> Self {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self { server: None, url },
            _ => Self::local(&[]),
        }
    }

    /// Always a local server, with `args` (see [`RedisServer::start`]).
    pub fn local(args: &[&str]) -> Self {
        let server = RedisServer::start(args);
        Self {
            url: server.url(),
            server: Some(server),
        }
    }

    /// The local server, for fault injection.
    pub fn server(&mut self) -> &mut RedisServer {
        self.server
            .as_mut()
            .expect("fault tests run on a server of their own")
    }

    /// A store config under a prefix no other test uses, with a command
    /// deadline no loaded machine reaches (tests about deadlines set their
    /// own).
    pub fn store_config(&self, max_session_bytes: usize) -> RedisConfig {
        RedisConfig {
            prefix: new_prefix(),
            timeout: PATIENT,
            max_session_bytes,
            ..RedisConfig::new(&self.url)
        }
    }

    /// The `[store]` tables of a host config using this server, under a
    /// prefix of its own unless `prefix` names one (hosts that share
    /// sessions).
    pub fn store_toml(&self, prefix: Option<&str>, timeout: Duration) -> String {
        format!(
            "[store]\nbackend = \"redis\"\n\n[store.redis]\nurl = {:?}\nprefix = {:?}\ntimeout = \"{}ms\"\n",
            self.url,
            prefix.map_or_else(new_prefix, str::to_owned),
            timeout.as_millis(),
        )
    }
}

/// A key prefix of its own for one test.
pub fn new_prefix() -> String {
    format!("es-test-{}", &session_id::generate()[..12])
}

/// A loopback port nobody listened on a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

/// A self-signed certificate for 127.0.0.1 (and localhost) in `dir`.
fn self_signed(dir: &Path) -> CertFiles {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("a certificate");
    let path = |name: &str| -> PathBuf { dir.join(name) };
    std::fs::write(path("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(path("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    CertFiles {
        cert: path("cert.pem"),
        key: path("key.pem"),
    }
}

impl TestRedis {
    /// A plain connection to the server, for what tests read and write
    /// behind the store's back.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection())
            .expect("a connection to the test server")
    }
}
