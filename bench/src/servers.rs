//! The processes a row needs: the server under test, started as a child on a
//! free loopback port, and the session backend it uses (redis-server, the
//! Aerospike test server or a real cluster).
//!
//! Every server under test prints `listening on http://ADDR` as its first
//! line on stdout, edge-session and the native comparator alike; its memory
//! is read from `/proc/PID/status` after the run.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aerospike_fixture::{AerospikeFixture, FixtureConfig};
use anyhow::{Context, Result, bail};

/// Compiling a large (JS, Python) component without the cache takes a while.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// A graceful stop drains requests in flight (30 s at most by default) and
/// closes the store.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the build put the binaries and the guests: the bench binary runs
/// from `target/release/`, next to `edge-session`.
pub struct Layout {
    release_dir: PathBuf,
    /// The host to measure when not the one beside the bench (an older
    /// build, to compare two side by side).
    host: Option<PathBuf>,
}

impl Layout {
    pub fn of_current_exe(host: Option<PathBuf>) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let release_dir = exe.parent().context("the bench binary's directory")?;
        Ok(Self {
            release_dir: release_dir.to_owned(),
            host,
        })
    }

    pub fn host_binary(&self) -> Result<PathBuf> {
        let path = match &self.host {
            Some(host) => host.clone(),
            None => self.release_dir.join("edge-session"),
        };
        if !path.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --release -p edge-session`",
                path.display()
            );
        }
        Ok(path)
    }

    /// A guest component (`counter`, `hello`, `counter-js`, …).
    pub fn guest(&self, name: &str) -> PathBuf {
        self.release_dir
            .join("../wasm32-wasip2/guest")
            .join(format!("{name}.wasm"))
    }

    /// The bench's working directory: configs, data and logs of each row,
    /// and the hosts' shared cache of precompiled components.
    pub fn work_dir(&self) -> PathBuf {
        self.release_dir.join("../bench")
    }

    /// A fresh directory in the work directory for one measurement's config,
    /// data and logs, removed when dropped.
    pub fn scratch_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let work_dir = self.work_dir();
        std::fs::create_dir_all(&work_dir)?;
        Ok(tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&work_dir)?)
    }
}

/// A server under test, running as a child process until dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Runs `command` with its stderr in `log` and waits for its
    /// `listening on` line.
    pub fn start(mut command: Command, log: &Path) -> Result<Self> {
        let stderr = std::fs::File::create(log)?;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read on, so that the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            log: log.to_owned(),
        };
        let line = line_rx.recv_timeout(START_TIMEOUT).map_err(|_| {
            anyhow::anyhow!("the server did not start; its log:\n{}", server.log_tail())
        })?;
        server.addr = line
            .strip_prefix("listening on http://")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .parse()?;
        Ok(server)
    }

    /// The server's resident memory, in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> Result<u64> {
        self.status_bytes("VmRSS")
    }

    /// The most resident memory the server has had, in bytes (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        self.status_bytes("VmHWM")
    }

    /// A size in kB from `/proc/PID/status`, in bytes.
    fn status_bytes(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .with_context(|| format!("no {field} in /proc/PID/status"))?
            .trim()
            .parse()?;
        Ok(kib * 1024)
    }

    /// Stops the server as a service manager would, with SIGTERM, and
    /// returns how long it took to exit.
    pub fn terminate(&mut self) -> Result<Duration> {
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        while self.child.try_wait()?.is_none() {
            if sent.elapsed() > STOP_TIMEOUT {
                bail!("the server did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(sent.elapsed())
    }

    /// Kills the server with SIGKILL (`kill -9`: a crash) and waits for it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines the server wrote to stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where an edge-session host keeps its sessions.
pub enum EdgeStore<'a> {
    /// The embedded store, in the row's data directory.
    Embedded,
    Aerospike(&'a AerospikeCluster),
}

/// An edge-session host serving `guest` at `/count`, with its config, data
/// and log in `dir`. `sessions`: whether the route gets a session namespace.
/// `route_keys`: more TOML keys for that route. `more_routes`: further
/// `[[routes]]` tables for the config.
pub fn edge_session(
    layout: &Layout,
    guest: &Path,
    sessions: bool,
    route_keys: &str,
    store: EdgeStore,
    dir: &Path,
    more_routes: &str,
) -> Result<Server> {
    let config = edge_session_config(layout, guest, sessions, route_keys, store, dir, more_routes)?;
    start_edge_session(layout, &config, &dir.join("server.log"), "warn")
}

/// Writes the config of [`edge_session`] into `dir` and returns its path.
pub fn edge_session_config(
    layout: &Layout,
    guest: &Path,
    sessions: bool,
    route_keys: &str,
    store: EdgeStore,
    dir: &Path,
    more_routes: &str,
) -> Result<PathBuf> {
    let store = match store {
        EdgeStore::Embedded => format!(
            "[store.embedded]\npath = {:?}\n",
            dir.join("sessions").display().to_string()
        ),
        EdgeStore::Aerospike(cluster) => cluster.store_toml(),
    };
    let route_sessions = if sessions {
        "namespace = \"bench\"\ndefault_ttl = \"30m\"\n\n[routes.cookie]\nsecure = false\n"
    } else {
        ""
    };
    let config = format!(
        "[engine]\ncache_dir = {cache:?}\n\n{store}\n[[routes]]\nprefix = \"/count\"\ncomponent = {guest:?}\n{route_keys}{route_sessions}\n{more_routes}",
        cache = layout
            .work_dir()
            .join("artifact-cache")
            .display()
            .to_string(),
        guest = guest.display().to_string(),
    );
    let config_path = dir.join("edge.toml");
    std::fs::write(&config_path, config)?;
    Ok(config_path)
}

/// Starts an edge-session host on `config`, with its stderr in `log` and
/// `RUST_LOG` set to `log_filter`.
pub fn start_edge_session(
    layout: &Layout,
    config: &Path,
    log: &Path,
    log_filter: &str,
) -> Result<Server> {
    let mut command = Command::new(layout.host_binary()?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", log_filter);
    Server::start(command, log)
}

/// The native comparator (`edge-session-bench native`) with `store_arg`
/// (`memory` or a `redis://` URL), its log in `dir`.
pub fn native(store_arg: &str, dir: &Path) -> Result<Server> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["native", "--listen", "127.0.0.1:0", "--store", store_arg]);
    Server::start(command, &dir.join("server.log"))
}

/// A local redis-server on a free port, with append-only persistence
/// fsynced every second (the durability of edge-session's embedded store),
/// its files in `dir`. Stopped when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    pub fn start(dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (scripts/bench.sh installs it)")?;
        let redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Aerospike cluster of row 4: the real one named by `AEROSPIKE_HOSTS`
/// (`host:port[,host:port]`, namespace `AEROSPIKE_NAMESPACE` or `test`), or
/// else the in-repo test server, in this process, for as long as this lives.
pub struct AerospikeCluster {
    /// Serves until dropped.
    _fixture: Option<AerospikeFixture>,
    hosts: String,
    namespace: String,
}

impl AerospikeCluster {
    pub fn from_env() -> Result<Self> {
        match real_hosts() {
            Some(hosts) => Ok(Self {
                _fixture: None,
                hosts,
                namespace: std::env::var("AEROSPIKE_NAMESPACE").unwrap_or_else(|_| "test".into()),
            }),
            None => {
                let fixture = AerospikeFixture::start(FixtureConfig::default())
                    .context("starting the Aerospike test server")?;
                Ok(Self {
                    hosts: fixture.hosts(),
                    namespace: "test".into(),
                    _fixture: Some(fixture),
                })
            }
        }
    }

    /// Which cluster [`from_env`](Self::from_env) picks, for the table.
    pub fn describe_target() -> String {
        match real_hosts() {
            Some(hosts) => format!("cluster at {hosts}"),
            None => "in-repo test server".to_owned(),
        }
    }

    fn store_toml(&self) -> String {
        let hosts: Vec<String> = self.hosts.split(',').map(|h| format!("{h:?}")).collect();
        format!(
            "[store]\nbackend = \"aerospike\"\n\n[store.aerospike]\nhosts = [{}]\nnamespace = {:?}\nset = \"edge-session-bench\"\n",
            hosts.join(", "),
            self.namespace,
        )
    }
}

/// The real cluster's seed hosts, when `AEROSPIKE_HOSTS` names one.
fn real_hosts() -> Option<String> {
    std::env::var("AEROSPIKE_HOSTS")
        .ok()
        .filter(|hosts| !hosts.is_empty())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
