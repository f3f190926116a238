//! A runtime: one engine, one session store, and the routes that map request
//! paths to guests. Usable on its own from Rust, without config files or
//! the network:
//!
//! ```no_run
//! use std::sync::Arc;
//! use edge_session::{Runtime, RouteSpec};
//! use edge_session::store::{EmbeddedConfig, EmbeddedStore};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new("data/sessions"))?);
//! let runtime = Runtime::builder(store)
//!     .route(RouteSpec::new("/counter", "counter.wasm").sessions("counter"))
//!     .build()?;
//! let request = http::Request::get("http://localhost/counter")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = runtime.handle(request).await;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http::StatusCode;
use tracing::Instrument;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::artifact_cache::ArtifactCache;
use crate::engine::{EngineSettings, GuestEngine};
use crate::guest::{self, Capabilities, Guest, GuestLimits, host_response};
use crate::sessions_host::SessionPolicy;
use crate::store::SessionStore;

/// A route to build: which paths it serves and with which component.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Path prefix, `/` or `/segment[/segment…]` without a trailing slash.
    pub prefix: String,
    pub component: PathBuf,
    /// `None`: the guest runs without session access (calls are denied).
    pub sessions: Option<SessionPolicy>,
    pub limits: GuestLimits,
    /// What the guest may reach beyond its sandbox (nothing by default).
    pub capabilities: Capabilities,
}

impl RouteSpec {
    pub fn new(prefix: impl Into<String>, component: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
            component: component.into(),
            sessions: None,
            limits: GuestLimits::default(),
            capabilities: Capabilities::default(),
        }
    }

    /// Gives the route sessions in `namespace`, with the default policy
    /// ([`SessionPolicy::new`]).
    pub fn sessions(mut self, namespace: impl Into<String>) -> Self {
        self.sessions = Some(SessionPolicy::new(namespace));
        self
    }
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    store: Arc<dyn SessionStore>,
    routes: Vec<RouteSpec>,
    engine: EngineSettings,
    cache: Option<ArtifactCache>,
}

impl RuntimeBuilder {
    pub fn route(mut self, route: RouteSpec) -> Self {
        self.routes.push(route);
        self
    }

    pub fn engine(mut self, settings: EngineSettings) -> Self {
        self.engine = settings;
        self
    }

    /// Where precompiled components are kept; `None` compiles at every start.
    pub fn artifact_cache(mut self, cache: Option<ArtifactCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Compiles (or loads from the cache) and links every route's component.
    pub fn build(self) -> anyhow::Result<Runtime> {
        let engine = route_engine(self.engine, &self.routes)?;
        let linker = guest::linker(engine.engine())?;
        let mut routes = Vec::with_capacity(self.routes.len());
        for spec in self.routes {
            let started = Instant::now();
            let (component, cached) = compile(&engine, self.cache.as_ref(), &spec)?;
            let guest = Guest::new(
                &spec.prefix,
                &linker,
                &component,
                spec.sessions,
                self.store.clone(),
                spec.limits,
                spec.capabilities,
            )
            .with_context(|| {
                format!(
                    "linking component {} for route {}",
                    spec.component.display(),
                    spec.prefix
                )
            })?;
            tracing::info!(
                route = %spec.prefix,
                component = %spec.component.display(),
                cached,
                elapsed = ?started.elapsed(),
                "route ready"
            );
            routes.push(Route {
                prefix: spec.prefix,
                guest,
            });
        }
        // Longest prefix first, so the most specific route wins.
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Ok(Runtime {
            routes,
            _engine: engine,
        })
    }
}

/// Compiles and links every route's component, as [`RuntimeBuilder::build`]
/// would, but with no store: what `edge-session check` runs. Returns each
/// failure with the index of its route.
pub fn check_routes(
    engine: EngineSettings,
    cache: Option<&ArtifactCache>,
    routes: &[RouteSpec],
) -> anyhow::Result<Vec<(usize, anyhow::Error)>> {
    let engine = route_engine(engine, routes)?;
    let linker = guest::linker(engine.engine())?;
    Ok(routes
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let linked = compile(&engine, cache, spec).and_then(|(component, _)| {
                guest::link(&linker, &component)
                    .with_context(|| format!("linking component {}", spec.component.display()))
            });
            linked.err().map(|error| (i, error))
        })
        .collect())
}

/// An engine whose instance slots fit the hungriest route.
fn route_engine(mut settings: EngineSettings, routes: &[RouteSpec]) -> anyhow::Result<GuestEngine> {
    for route in routes {
        settings.max_memory_bytes = settings.max_memory_bytes.max(route.limits.max_memory_bytes);
    }
    GuestEngine::new(&settings)
}

/// Reads and compiles a route's component, or loads it precompiled; returns
/// whether it came from the cache.
fn compile(
    engine: &GuestEngine,
    cache: Option<&ArtifactCache>,
    spec: &RouteSpec,
) -> anyhow::Result<(wasmtime::component::Component, bool)> {
    let wasm = std::fs::read(&spec.component)
        .with_context(|| format!("reading component {}", spec.component.display()))?;
    match cache {
        Some(cache) => cache.load(engine.engine(), &wasm),
        None => wasmtime::component::Component::new(engine.engine(), &wasm)
            .map(|c| (c, false))
            .map_err(anyhow::Error::from),
    }
    .with_context(|| {
        format!(
            "compiling component {} for route {}",
            spec.component.display(),
            spec.prefix
        )
    })
}

struct Route {
    prefix: String,
    guest: Guest,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        self.prefix == "/"
            || path
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Routes requests to guests. Share it behind an `Arc`.
pub struct Runtime {
    routes: Vec<Route>,
    /// Held for its `Drop`, after the routes: stops the epoch ticker once
    /// no guest can run any more.
    _engine: GuestEngine,
}

impl Runtime {
    pub fn builder(store: Arc<dyn SessionStore>) -> RuntimeBuilder {
        RuntimeBuilder {
            store,
            routes: Vec::new(),
            engine: EngineSettings::default(),
            cache: ArtifactCache::default_dir().map(ArtifactCache::new),
        }
    }

    /// Serves one request: the guest of the longest matching prefix runs it;
    /// 404 when no route matches. Every request has an id: the client's
    /// `x-request-id` when it is a plain token, else a fresh one. The guest
    /// sees it, the response carries it, and every log line of the request
    /// holds it.
    pub async fn handle<B>(
        &self,
        mut request: http::Request<B>,
    ) -> http::Response<HyperOutgoingBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let id = request_id(request.headers());
        request.headers_mut().insert(REQUEST_ID, id.clone());
        let path = request.uri().path();
        let route = self.routes.iter().find(|route| route.matches(path));
        let label = route.map_or("none", |route| route.prefix.as_str());
        let span = tracing::info_span!(
            "request",
            id = id.to_str().unwrap_or_default(),
            route = label
        );
        let mut response = match route {
            Some(route) => route.guest.handle(request).instrument(span).await,
            None => host_response(StatusCode::NOT_FOUND, "no route for this path\n"),
        };
        crate::metrics::request(label, response.status().as_u16(), started.elapsed());
        response.headers_mut().insert(REQUEST_ID, id);
        response
    }
}

const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The client's request id if it is a plain token of at most 64 bytes
/// (safe to log and to echo), else 16 random hex digits.
fn request_id(headers: &http::HeaderMap) -> http::HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|value| {
            let bytes = value.as_bytes();
            (1..=64).contains(&bytes.len())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        })
        .cloned()
        .unwrap_or_else(|| {
            let id = format!("{:016x}", rand::random::<u64>());
            http::HeaderValue::try_from(id).expect("hex digits")
        })
}
