//! The load generator: one closed-loop HTTP/1.1 client used for every row,
//! so that rows differ only in the server under test.
//!
//! Like `wrk`, each of N keep-alive connections sends a request, waits for
//! the whole response, records its latency and sends the next, until the
//! run's duration is up. Each request carries a session cookie picked at
//! random from the sessions created beforehand, so the server loads and
//! updates a different session each time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{COOKIE, HOST, HeaderValue, SET_COOKIE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use tokio::net::TcpStream;

/// A request that takes longer than this counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Latencies are recorded in microseconds, up to a minute, to 3 significant digits.
const LATENCY_MAX_MICROS: u64 = 60_000_000;

/// What every request of a run asks for.
#[derive(Clone)]
pub struct Workload {
    pub addr: SocketAddr,
    pub path: String,
    /// `Cookie` header values (`name=value`); empty for servers that keep
    /// no session, whose requests then go without a cookie.
    pub cookies: Arc<[HeaderValue]>,
}

/// What the requests of a run, or of one of its connections, came to.
pub struct Tally {
    /// Requests answered with a 2xx status.
    pub succeeded: u64,
    /// Other statuses, broken connections and timeouts.
    pub failed: u64,
    /// Latency of the successful requests, in microseconds.
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            succeeded: 0,
            failed: 0,
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3)
                .expect("valid histogram bounds"),
        }
    }

    fn merge(&mut self, other: &Tally) -> Result<()> {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.latency.add(&other.latency)?;
        Ok(())
    }

    /// The latency at `quantile` (0.5, 0.99, …) in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// The outcome of one timed run.
pub struct Outcome {
    pub tally: Tally,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn requests_per_second(&self) -> f64 {
        self.tally.succeeded as f64 / self.elapsed.as_secs_f64()
    }
}

/// One keep-alive connection to the server under test.
struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    host: HeaderValue,
}

/// A response read whole.
struct Reply {
    status: StatusCode,
    set_cookie: Option<HeaderValue>,
    body: Bytes,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        // Ends by itself when the sender is dropped or the server hangs up.
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    async fn get(&mut self, path: &str, cookie: Option<&HeaderValue>) -> Result<Reply> {
        let mut request = Request::get(path).header(HOST, self.host.clone());
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie.clone());
        }
        let exchange = async {
            self.sender.ready().await?;
            let response = self
                .sender
                .send_request(request.body(Empty::new())?)
                .await?;
            let status = response.status();
            let set_cookie = response.headers().get(SET_COOKIE).cloned();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Reply {
                status,
                set_cookie,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .context("request timed out")?
    }
}

/// Sends `count` cookie-less requests for `path` over `connections`
/// connections and returns the session cookie each response set, as
/// `name=value`. Returns no cookies if the server sets none.
pub async fn create_sessions(
    addr: SocketAddr,
    path: &str,
    count: usize,
    connections: usize,
) -> Result<Vec<HeaderValue>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (next, path) = (next.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut cookies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let reply = connection.get(&path, None).await?;
                if !reply.status.is_success() {
                    bail!("GET {path} answered {}", reply.status);
                }
                if let Some(set_cookie) = reply.set_cookie {
                    let pair = set_cookie.to_str()?.split(';').next().unwrap_or_default();
                    cookies.push(HeaderValue::from_str(pair.trim())?);
                }
            }
            anyhow::Ok(cookies)
        }));
    }
    let mut cookies = Vec::new();
    for task in tasks {
        cookies.extend(task.await??);
    }
    if !cookies.is_empty() && cookies.len() != count {
        bail!(
            "only {} of {count} responses set a session cookie",
            cookies.len()
        );
    }
    Ok(cookies)
}

/// The `count` field of the JSON answer to one request with `cookie`, to
/// check that a server keeps its sessions before it is measured.
pub async fn session_count(addr: SocketAddr, path: &str, cookie: &HeaderValue) -> Result<i64> {
    let reply = Connection::open(addr)
        .await?
        .get(path, Some(cookie))
        .await?;
    let body: serde_json::Value = serde_json::from_slice(&reply.body)
        .with_context(|| format!("GET {path} answered {}, not JSON", reply.status))?;
    body["count"]
        .as_i64()
        .with_context(|| format!("GET {path} answered {body}, without a count"))
}

/// Sends `count` requests for `path` one after another over one connection
/// and returns how long each took.
pub async fn sequential_times(addr: SocketAddr, path: &str, count: usize) -> Result<Vec<Duration>> {
    let mut connection = Connection::open(addr).await?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        let reply = connection.get(path, None).await?;
        if !reply.status.is_success() {
            bail!(
                "GET {path} answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        times.push(sent.elapsed());
    }
    Ok(times)
}

/// When the connections of a run stop sending.
#[derive(Clone)]
enum Until {
    Deadline(Instant),
    /// After this many requests in all, counted in the first field.
    Sent(Arc<AtomicU64>, u64),
}

impl Until {
    /// Whether to send one more request (and count it).
    fn more(&self) -> bool {
        match self {
            Until::Deadline(deadline) => Instant::now() < *deadline,
            Until::Sent(sent, total) => sent.fetch_add(1, Ordering::Relaxed) < *total,
        }
    }
}

/// Runs `workload` over `connections` connections for `duration`.
pub async fn run(workload: &Workload, connections: usize, duration: Duration) -> Result<Outcome> {
    let started = Instant::now();
    drive(
        workload,
        connections,
        started,
        Until::Deadline(started + duration),
    )
    .await
}

/// Sends `total` requests of `workload` over `connections` connections,
/// each as soon as the connection's previous one is answered.
pub async fn run_count(workload: &Workload, connections: usize, total: u64) -> Result<Outcome> {
    let until = Until::Sent(Arc::new(AtomicU64::new(0)), total);
    drive(workload, connections, Instant::now(), until).await
}

async fn drive(
    workload: &Workload,
    connections: usize,
    started: Instant,
    until: Until,
) -> Result<Outcome> {
    let mut tasks = Vec::new();
    for seed in 0..connections as u64 {
        let (workload, until) = (workload.clone(), until.clone());
        tasks.push(tokio::spawn(async move {
            drive_connection(&workload, &until, seed).await
        }));
    }
    let mut tally = Tally::new();
    for task in tasks {
        tally.merge(&task.await??)?;
    }
    Ok(Outcome {
        tally,
        elapsed: started.elapsed(),
    })
}

/// One connection's share of a run; reconnects after a failed request.
async fn drive_connection(workload: &Workload, until: &Until, seed: u64) -> Result<Tally> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::new();
    let mut connection = None;
    while until.more() {
        let open = match connection.as_mut() {
            Some(open) => open,
            None => connection.insert(Connection::open(workload.addr).await?),
        };
        let cookie = workload.cookies.choose(&mut rng);
        let sent = Instant::now();
        match open.get(&workload.path, cookie).await {
            Ok(reply) if reply.status.is_success() => {
                tally.succeeded += 1;
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(micros);
            }
            Ok(_) => tally.failed += 1,
            Err(_) => {
                tally.failed += 1;
                connection = None;
            }
        }
    }
    Ok(tally)
}
