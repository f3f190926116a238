//! Helpers shared by the end-to-end tests: the real `edge-session` binary
//! started as a child process on an ephemeral port, the guest components
//! built for wasm32-wasip2, and a small HTTP client that keeps a cookie.
//!
//! `scripts/test.sh` builds the binary and the guests before running the
//! tests; each helper says what to build when something is missing.

pub mod aerospike;
pub mod conformance;
pub mod flows;
pub mod gate;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the workspace keeps build output.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A guest component built by `scripts/build-guests.sh`.
pub fn guest(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/guest")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the guests with scripts/build-guests.sh (or run scripts/test.sh)",
        path.display()
    );
    path
}

/// The `edge-session` binary of the profile these tests were built with.
pub fn host_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGE_SESSION_BIN") {
        return PathBuf::from(path);
    }
    // The binary is in target/<profile>/; test executables somewhere below
    // it (deps/, or build/<package>/<hash>/out/ since cargo 1.100).
    let exe = std::env::current_exe().expect("current test executable");
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join("edge-session"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no edge-session binary above {}: build it with `cargo build -p edge-session` \
                 (or run scripts/test.sh)",
                exe.display()
            )
        })
}

/// The start of every test config: the shared artifact cache and the
/// host's own data directory, filled in by [`Host::start`].
pub const BASE_CONFIG: &str =
    "[engine]\ncache_dir = \"{cache}\"\n\n[store.embedded]\npath = \"{data}\"\n";

/// `config` with an admin listener on a free port (see [`Host::admin`]).
pub fn with_admin(config: &str) -> String {
    format!("{config}\n[admin]\nlisten = \"127.0.0.1:0\"\n")
}

/// The value of the sample `name{labels…}` in a Prometheus scrape whose
/// labels include `labels`.
pub fn metric_sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let wanted = labels
            .iter()
            .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")));
        (metric == name && wanted).then(|| value.parse().ok())?
    })
}

/// A running `edge-session serve` with its own config and data directory.
pub struct Host {
    child: Option<Child>,
    pub address: String,
    /// The admin listener, when the config has an `[admin]` table.
    pub admin_address: Option<String>,
    pub dir: tempfile::TempDir,
    /// `RUST_LOG` for the process.
    log_filter: &'static str,
}

/// The host's log at `info`, without the embedded store's chatter.
const LOG_FILTER: &str = "info,fjall=warn,lsm_tree=warn";

impl Host {
    /// Starts the host with `config` (TOML). `{data}` in it is replaced by a
    /// fresh data directory and `{cache}` by the shared artifact cache, so
    /// components compile once per test run rather than once per test.
    pub fn start(config: &str) -> Host {
        Host::start_logging(config, LOG_FILTER)
    }

    /// [`start`](Self::start), with every line the host itself logs, at
    /// every level (for checks of what logs may never show).
    pub fn start_traced(config: &str) -> Host {
        Host::start_logging(config, "info,edge_session=trace,fjall=warn,lsm_tree=warn")
    }

    fn start_logging(config: &str, log_filter: &'static str) -> Host {
        let mut host = Host {
            child: None,
            address: String::new(),
            admin_address: None,
            dir: tempfile::tempdir().expect("temp dir"),
            log_filter,
        };
        host.reconfigure(config);
        host.launch();
        host
    }

    /// Replaces the config (placeholders as in [`start`](Self::start)) for
    /// the next [`restart`](Self::restart).
    pub fn reconfigure(&mut self, config: &str) {
        let config = config
            .replace(
                "{data}",
                &self.dir.path().join("sessions").display().to_string(),
            )
            .replace(
                "{cache}",
                &target_dir()
                    .join("test-artifact-cache")
                    .display()
                    .to_string(),
            );
        std::fs::write(self.dir.path().join("edge.toml"), config).expect("write config");
    }

    /// Starts the process again on the same config and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the host before restarting it");
        self.launch();
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("host log");
        let mut child = Command::new(host_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(self.dir.path().join("edge.toml"))
            .env("RUST_LOG", self.log_filter)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start edge-session");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let (lines, first_line) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        // Compiling components in a debug build can take a while.
        match first_line.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => {
                let address = line
                    .strip_prefix("listening on http://")
                    .or_else(|| line.strip_prefix("listening on https://"))
                    .expect("listening line");
                self.address = address.to_owned();
            }
            Err(_) => panic!("the host did not start; its log:\n{}", self.log()),
        }
        let config = std::fs::read_to_string(self.dir.path().join("edge.toml")).unwrap();
        if config.contains("\n[admin]") {
            let line = first_line
                .recv_timeout(Duration::from_secs(10))
                .expect("the admin listening line");
            let address = line
                .strip_prefix("admin listening on http://")
                .expect("admin listening line");
            self.admin_address = Some(address.to_owned());
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("host.log")
    }

    /// What the host wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.address)
    }

    /// Sends `request` as written, on a connection of its own, and returns
    /// all the host answers before it closes (ask it to with a
    /// `Connection: close` header). For requests a client library would not
    /// send.
    pub fn raw(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// [`raw`](Self::raw), parsed: for a request that is answered with
    /// one whole response before the host closes the connection.
    pub fn raw_reply(&self, request: &[u8]) -> Reply {
        let raw = self.raw(request);
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {raw:?}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {raw:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    /// Waits until the host's log holds `text`; a bound only a hang
    /// reaches turns one into a failure.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the log never said {text:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every store operation counted so far, by series (operation and
    /// result), from the admin listener's metrics ([`with_admin`]).
    pub fn store_operations(&self) -> Vec<(String, f64)> {
        let metrics = self.admin().get("/metrics").body;
        let mut operations: Vec<(String, f64)> = metrics
            .lines()
            .filter(|line| line.starts_with("edge_session_store_operations_total{"))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse().unwrap())
            })
            .collect();
        operations.sort_by(|a, b| a.0.cmp(&b.0));
        operations
    }

    /// A client of the admin listener (the config needs [`with_admin`]).
    pub fn admin(&self) -> Client {
        Client::new(self.admin_address.as_deref().expect("an [admin] listener"))
    }

    /// Sends a signal to the host process.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("host is running");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// SIGKILL: the process dies with no chance to flush anything.
    pub fn kill_hard(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10));
    }

    /// SIGTERM, then the clean exit it leads to (it drains first); the
    /// whole log.
    pub fn stop(&mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.wait(Duration::from_secs(120));
        assert!(status.success(), "{status:?}; its log:\n{}", self.log());
        self.log()
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("host is running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait for host") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the host did not exit within {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- host log ---\n{}", self.log());
        }
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A browser-like client: keeps the cookies the server sets.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Client {
    pub fn new(address: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            agent,
            base: format!("http://{address}"),
            cookies: Vec::new(),
        }
    }

    /// The same visitor (same cookies) at another host.
    pub fn at(&self, address: &str) -> Self {
        Self {
            base: format!("http://{address}"),
            ..self.clone()
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or with `None` drops) a cookie, as a forger or a returning visitor would.
    pub fn set_cookie(&mut self, name: &str, value: Option<&str>) {
        self.cookies.retain(|(n, _)| n != name);
        if let Some(value) = value {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }

    pub fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, None)
    }

    /// GET `path`, again while the host answers 503, for up to `within`;
    /// the last reply: a host whose store is down answers 503 until it is
    /// back.
    pub fn get_while_busy(&mut self, path: &str, within: Duration) -> Reply {
        let deadline = Instant::now() + within;
        loop {
            let reply = self.get(path);
            if reply.status != 503 || Instant::now() > deadline {
                return reply;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn post(&mut self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(body.as_bytes()))
    }

    /// Makes one raw `sessions` call, described by `call`, through the
    /// faulty guest's `/ops` probe on `route`: `{"ok": …}` or
    /// `{"error": "…"}`.
    pub fn ops(&mut self, route: &str, call: serde_json::Value) -> serde_json::Value {
        let reply = self.post(&format!("{route}/ops"), &call.to_string());
        assert_eq!(reply.status, 200, "{call} -> {reply:?}");
        reply.json()
    }

    pub fn delete(&mut self, path: &str) -> Reply {
        self.send("DELETE", path, None)
    }

    /// Sends a request with the cookies kept so far and keeps the new ones.
    pub fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        self.send_with_headers(method, path, body, &[])
    }

    /// Sends a bodiless request with one extra header.
    pub fn send_with_header(&mut self, method: &str, path: &str, header: (&str, &str)) -> Reply {
        self.send_with_headers(method, path, None, &[header])
    }

    fn send_with_headers(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            request = request.header("cookie", header.join("; "));
        }
        let request = request
            .body(body.unwrap_or_default().to_vec())
            .expect("request");
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for (_, set_cookie) in headers.iter().filter(|(n, _)| n == "set-cookie") {
            let pair = set_cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                // An emptied cookie is how servers delete one.
                self.set_cookie(name.trim(), (!value.is_empty()).then_some(value));
            }
        }
        Reply {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }
}
