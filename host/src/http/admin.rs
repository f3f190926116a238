//! The admin listener: health, readiness and metrics for the fleet's
//! probes and scrapers, on an address of its own so that none of it is
//! reachable from the public listener.
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 when the session store answers (routes are loaded
//!   before anything listens); 503 with the reason otherwise.
//! - `GET /metrics`: Prometheus text format (see [`crate::metrics`]).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::store::SessionStore;

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct Admin {
    pub store: Arc<dyn SessionStore>,
    pub metrics: PrometheusHandle,
}

/// Serves the admin endpoints on `listener` until the process ends.
pub async fn serve(admin: Admin, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<_>| {
                let admin = admin.clone();
                async move {
                    Ok::<_, Infallible>(admin.respond(request.method(), request.uri().path()).await)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Admin {
    async fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => match self.store.ping().await {
                Ok(()) => text(StatusCode::OK, "ready\n".into()),
                Err(error) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("session store: {error}\n"),
                ),
            },
            "/metrics" => {
                let size = self.store.size().await;
                let size = size.map(|size| (size.sessions, size.bytes));
                let mut response =
                    text(StatusCode::OK, crate::metrics::render(&self.metrics, size));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "try /healthz, /readyz or /metrics\n".into(),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
