//! The network side: a thread with its own tokio runtime (so the fixture works
//! from plain `#[test]`s and from inside other runtimes), a listener that
//! `stop`/`resume` close and reopen on the same port, connections that faults
//! can cut, and the framing that hands each proto message to the info,
//! security or data handler.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use crate::auth::{PROTO_TYPE_SECURITY, Security};
use crate::compression::{self, PROTO_TYPE_MSG_COMPRESSED};
use crate::info::{self, Node, PROTO_TYPE_INFO};
use crate::message::{self, INFO1_COMPRESS_RESPONSE, PROTO_TYPE_MSG, PROTO_VERSION, Response};
use crate::ops;
use crate::result_code::NOT_AUTHENTICATED;
use crate::store::{self, Database};

/// The server's limit on one message (`PROTO_SIZE_MAX`).
const PROTO_SIZE_MAX: usize = 128 * 1024 * 1024;
/// How often expired records are swept out.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// State shared by the control side and the runtime thread.
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) security: Security,
    pub(crate) node: Node,
    latency_nanos: AtomicU64,
    /// True while replies wait for `release_replies`.
    holding: watch::Sender<bool>,
    /// Data commands run whose replies are waiting for `release_replies`.
    held_commands: AtomicUsize,
    /// Data commands still to be run without their reply (see `cut_replies`).
    replies_to_cut: AtomicU64,
    /// A clone of every open connection's socket, so that faults can shut
    /// them down synchronously from the control side.
    connections: Mutex<HashMap<u64, std::net::TcpStream>>,
    next_connection: AtomicU64,
}

impl Shared {
    pub(crate) fn new(db: Database, security: Security, node: Node) -> Self {
        Self {
            db,
            security,
            node,
            latency_nanos: AtomicU64::new(0),
            holding: watch::Sender::new(false),
            held_commands: AtomicUsize::new(0),
            replies_to_cut: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
        }
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<u64, std::net::TcpStream>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    /// Returns once replies are no longer held; at once when they are not.
    async fn wait_while_held(&self, data_command: bool) {
        let mut holding = self.holding.subscribe();
        if !*holding.borrow_and_update() {
            return;
        }
        if data_command {
            self.held_commands.fetch_add(1, Ordering::Relaxed);
        }
        // An error means the fixture is going away: nobody reads the reply.
        let _ = holding.wait_for(|held| !held).await;
        if data_command {
            self.held_commands.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether this data command's reply is to be cut (counting it if so).
    fn cut_this_reply(&self) -> bool {
        self.replies_to_cut
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// A listening accept loop and the way to end it.
struct Listening {
    stop: oneshot::Sender<()>,
    /// Signalled once the listening socket is closed (or, should the accept
    /// task be dropped, disconnected), so waiting on it cannot hang.
    closed: mpsc::Receiver<()>,
}

pub(crate) struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: Handle,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    listening: Mutex<Option<Listening>>,
}

impl Server {
    /// Starts the runtime thread and listens on `listener`.
    pub(crate) fn start(shared: Shared, listener: std::net::TcpListener) -> io::Result<Self> {
        let shared = Arc::new(shared);
        let addr = listener.local_addr()?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let sweeper = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("aerospike-fixture".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(sweep_until(sweeper, shutdown_rx));
                // Dropping the runtime cancels every connection task.
            })?;
        let runtime = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the fixture's runtime thread died"))??;
        let server = Self {
            shared,
            addr,
            runtime,
            shutdown: Some(shutdown),
            thread: Some(thread),
            listening: Mutex::new(None),
        };
        server.listen(listener)?;
        Ok(server)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    fn listening(&self) -> MutexGuard<'_, Option<Listening>> {
        self.listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn listen(&self, listener: std::net::TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let (stop, stop_rx) = oneshot::channel();
        let (closed_tx, closed) = mpsc::channel();
        let shared = Arc::clone(&self.shared);
        self.runtime.spawn(async move {
            if let Ok(listener) = TcpListener::from_std(listener) {
                accept_until(shared, listener, stop_rx).await;
            }
            let _ = closed_tx.send(());
        });
        *self.listening() = Some(Listening { stop, closed });
        Ok(())
    }

    /// Closes the listener, then every connection. Returns once the port is
    /// free; the data stays.
    pub(crate) fn stop(&self) {
        if let Some(listening) = self.listening().take() {
            let _ = listening.stop.send(());
            // No timeout: on a loaded machine it would return with the port
            // still open, breaking the promise callers rely on.
            let _ = listening.closed.recv();
        }
        self.drop_connections();
    }

    /// Listens again on the same address; a no-op while listening.
    pub(crate) fn resume(&self) -> io::Result<()> {
        if self.listening().is_some() {
            return Ok(());
        }
        self.listen(std::net::TcpListener::bind(self.addr)?)
    }

    /// Shuts every open connection down now: peers see the connection closed.
    pub(crate) fn drop_connections(&self) {
        for (_, socket) in self.shared.connections().drain() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn cut_replies(&self, commands: u64) {
        self.shared
            .replies_to_cut
            .store(commands, Ordering::Relaxed);
    }

    pub(crate) fn hold_replies(&self, hold: bool) {
        self.shared.holding.send_replace(hold);
    }

    pub(crate) fn held_commands(&self) -> usize {
        self.shared.held_commands.load(Ordering::Relaxed)
    }

    pub(crate) fn set_latency(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn sweep_until(shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(SWEEP_PERIOD);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => shared.db.sweep(store::now_clepoch()),
        }
    }
}

async fn accept_until(shared: Arc<Shared>, listener: TcpListener, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Ok(connection) = Connection::register(&shared, stream) {
                        tokio::spawn(connection.serve());
                    }
                }
                // Out of file descriptors and the like: let it pass.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    stream: TcpStream,
    authenticated: bool,
}

impl Connection {
    /// Keeps a clone of the socket in the registry; registering happens in
    /// the accept loop, so `stop` never misses an accepted connection.
    fn register(shared: &Arc<Shared>, stream: TcpStream) -> io::Result<Self> {
        let socket = stream.into_std()?;
        let clone = socket.try_clone()?;
        let stream = TcpStream::from_std(socket)?;
        stream.set_nodelay(true)?;
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        shared.connections().insert(id, clone);
        Ok(Self {
            shared: Arc::clone(shared),
            id,
            stream,
            authenticated: !shared.security.enabled(),
        })
    }

    /// Answers one message at a time until the peer leaves, a fault closes
    /// the connection or a message is malformed.
    async fn serve(mut self) {
        while let Ok(Some((reply, data_command))) = self.next_reply().await {
            self.shared.wait_while_held(data_command).await;
            let delay = self.shared.latency();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if self.stream.write_all(&reply).await.is_err() {
                break;
            }
        }
    }

    /// The reply to the next message, and whether it answers a data command.
    async fn next_reply(&mut self) -> io::Result<Option<(Vec<u8>, bool)>> {
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header).await?;
        let size = (u64::from_be_bytes(header) & 0xffff_ffff_ffff) as usize;
        if header[0] != PROTO_VERSION || size > PROTO_SIZE_MAX {
            return Ok(None);
        }
        let mut body = vec![0; size];
        self.stream.read_exact(&mut body).await?;
        let shared = &self.shared;
        let reply = match header[1] {
            PROTO_TYPE_INFO => Some(info::respond(
                &body,
                &shared.node,
                &shared.db,
                self.authenticated,
            )),
            PROTO_TYPE_SECURITY => shared.security.respond(&body, &mut self.authenticated),
            PROTO_TYPE_MSG => self.data_reply(&body),
            PROTO_TYPE_MSG_COMPRESSED => compression::decompress(&body, PROTO_SIZE_MAX)
                .and_then(|inner| self.data_reply(&inner)),
            _ => None,
        };
        let data_command = matches!(header[1], PROTO_TYPE_MSG | PROTO_TYPE_MSG_COMPRESSED);
        Ok(reply.map(|reply| (reply, data_command)))
    }

    fn data_reply(&self, body: &[u8]) -> Option<Vec<u8>> {
        let request = message::parse(body)?;
        let response = if self.authenticated {
            ops::execute(&self.shared.db, &request, store::now_clepoch())
        } else {
            Response::error(NOT_AUTHENTICATED)
        };
        if self.shared.cut_this_reply() {
            // Run, then lost on the way back: the connection closes instead.
            return None;
        }
        let reply = response.encode();
        Some(if request.info1 & INFO1_COMPRESS_RESPONSE != 0 {
            compression::compress(reply)
        } else {
            reply
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.connections().remove(&self.id);
    }
}
