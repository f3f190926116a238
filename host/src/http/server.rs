//! The edge HTTP server: accepts connections and hands requests to the
//! runtime.
//!
//! HTTP/1.1 with keep-alive (hyper 1), in the clear or over TLS
//! ([`crate::http::tls`]). On shutdown the listener closes at once, idle
//! connections close, and requests in flight finish (bounded by
//! `drain_timeout`) before [`serve`] returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::wasm::guest::Https;
use crate::wasm::runtime::Runtime;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// How long a client may take to send request headers, or to finish
    /// the TLS handshake (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// Serve HTTPS with this TLS config.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Serves `runtime` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    runtime: Arc<Runtime>,
    listener: TcpListener,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let tls = settings.tls.clone().map(TlsAcceptor::from);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (runtime, http, watcher) = (runtime.clone(), http.clone(), graceful.watcher());
        match &tls {
            None => tokio::spawn(serve_connection(
                stream, false, runtime, http, watcher, peer,
            )),
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let timeout = settings.header_read_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, true, runtime, http, watcher, peer).await
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                })
            }
        };
    }

    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(settings.drain_timeout) => {
            tracing::warn!(timeout = ?settings.drain_timeout, "gave up waiting for requests in flight");
        }
    }
    Ok(())
}

/// Serves the requests of one connection until it closes.
async fn serve_connection(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    https: bool,
    runtime: Arc<Runtime>,
    http: http1::Builder,
    watcher: Watcher,
    peer: SocketAddr,
) {
    let service = service_fn(move |mut request: hyper::Request<_>| {
        let runtime = runtime.clone();
        if https {
            request.extensions_mut().insert(Https);
        }
        async move { Ok::<_, Infallible>(runtime.handle(request).await) }
    });
    if let Err(error) = watcher
        .watch(http.serve_connection(TokioIo::new(io), service))
        .await
    {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
        _ => {
            tracing::error!("cannot listen for shutdown signals; stop the host with SIGKILL");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}
