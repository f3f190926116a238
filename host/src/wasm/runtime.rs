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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::StatusCode;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use tracing::Instrument;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::metrics::RouteMetrics;
use crate::store::SessionStore;
use crate::wasm::artifact_cache::ArtifactCache;
use crate::wasm::engine::{EngineSettings, GuestEngine};
use crate::wasm::guest::Guest;
use crate::wasm::instance::{self, InstanceState};
use crate::wasm::response::host_response;
use crate::wasm::sandbox::{Capabilities, GuestLimits};
use crate::wit::SessionPolicy;

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
    /// Components compile in parallel.
    pub fn build(self) -> anyhow::Result<Runtime> {
        let started = Instant::now();
        let engine = route_engine(self.engine, &self.routes)?;
        let linker = instance::linker(engine.engine())?;
        let compiled: Vec<_> = self
            .routes
            .par_iter()
            .map(|spec| compile(&engine, self.cache.as_ref(), spec))
            .collect();
        let mut routes = Vec::with_capacity(self.routes.len());
        let mut from_cache = 0;
        for (spec, compiled) in self.routes.into_iter().zip(compiled) {
            let compiled = compiled?;
            let guest = Guest::new(
                &spec.prefix,
                &linker,
                &compiled.component,
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
            compiled.log(&spec.prefix, &spec.component, "route ready");
            from_cache += usize::from(compiled.cached);
            routes.push(Route {
                prefix: spec.prefix,
                component: spec.component,
                guest: ArcSwap::from_pointee(guest),
                tried: Mutex::new(compiled.digest),
            });
        }
        // Longest prefix first, so the most specific route wins.
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        tracing::info!(
            routes = routes.len(),
            from_cache,
            elapsed = ?started.elapsed(),
            "all routes ready"
        );
        Ok(Runtime {
            routes,
            linker,
            cache: self.cache,
            reloading: Mutex::new(()),
            unrouted: RouteMetrics::new(UNROUTED),
            engine,
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
    let linker = instance::linker(engine.engine())?;
    let failures: Vec<_> = routes
        .par_iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let linked = compile(&engine, cache, spec).and_then(|compiled| {
                instance::link(&linker, &compiled.component)
                    .with_context(|| format!("linking component {}", spec.component.display()))
            });
            linked.err().map(|error| (i, error))
        })
        .collect();
    Ok(failures)
}

/// An engine whose instance slots fit the hungriest route.
fn route_engine(mut settings: EngineSettings, routes: &[RouteSpec]) -> anyhow::Result<GuestEngine> {
    for route in routes {
        settings.max_memory_bytes = settings.max_memory_bytes.max(route.limits.max_memory_bytes);
    }
    GuestEngine::new(&settings)
}

/// A component file, compiled (or loaded precompiled).
struct Compiled {
    component: Component,
    /// SHA-256 of the file, so that a reload compiles only what changed.
    digest: Digest,
    /// Whether it came from the artifact cache.
    cached: bool,
    elapsed: Duration,
}

impl Compiled {
    fn log(&self, route: &str, component: &Path, what: &str) {
        tracing::info!(
            route,
            component = %component.display(),
            cached = self.cached,
            elapsed = ?self.elapsed,
            "{what}"
        );
    }
}

type Digest = [u8; 32];

/// Reads and compiles a route's component, or loads it precompiled.
fn compile(
    engine: &GuestEngine,
    cache: Option<&ArtifactCache>,
    spec: &RouteSpec,
) -> anyhow::Result<Compiled> {
    let wasm = std::fs::read(&spec.component)
        .with_context(|| format!("reading component {}", spec.component.display()))?;
    let digest = Sha256::digest(&wasm).into();
    compile_bytes(engine, cache, &wasm, digest).with_context(|| {
        format!(
            "compiling component {} for route {}",
            spec.component.display(),
            spec.prefix
        )
    })
}

/// Compiles `wasm`, whose SHA-256 is `digest`, or loads it precompiled.
fn compile_bytes(
    engine: &GuestEngine,
    cache: Option<&ArtifactCache>,
    wasm: &[u8],
    digest: Digest,
) -> anyhow::Result<Compiled> {
    let started = Instant::now();
    let (component, cached) = match cache {
        Some(cache) => cache.load(engine.engine(), wasm, &digest)?,
        None => (Component::new(engine.engine(), wasm)?, false),
    };
    Ok(Compiled {
        component,
        digest,
        cached,
        elapsed: started.elapsed(),
    })
}

struct Route {
    prefix: String,
    component: PathBuf,
    /// Swapped whole by a reload; each request holds the guest it started on.
    guest: ArcSwap<Guest>,
    /// The digest of the component file last loaded or rejected, so that
    /// a reload skips unchanged files and reports a bad one only once.
    tried: Mutex<Digest>,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        self.prefix == "/"
            || path
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// What a reload did to a route.
#[derive(Debug)]
pub enum Reload {
    /// The new component serves from now on.
    Swapped,
    /// The file holds what was last loaded (or rejected).
    Unchanged,
    /// The new component does not read, compile or link: the previous one
    /// keeps serving.
    Rejected(anyhow::Error),
}

/// Routes requests to guests. Share it behind an `Arc`.
pub struct Runtime {
    routes: Vec<Route>,
    linker: Linker<InstanceState>,
    cache: Option<ArtifactCache>,
    /// One reload at a time: a signal and the file watcher may ask at once.
    reloading: Mutex<()>,
    /// Requests that match no route.
    unrouted: RouteMetrics,
    /// Dropped after the routes: stops the epoch ticker once no guest can
    /// run any more.
    engine: GuestEngine,
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
        let label = route.map_or(UNROUTED, |route| route.prefix.as_str());
        let span = tracing::info_span!(
            "request",
            id = id.to_str().unwrap_or_default(),
            route = label
        );
        let guest = route.map(|route| route.guest.load_full());
        let mut response = match &guest {
            Some(guest) => guest.handle(request).instrument(span).await,
            None => host_response(StatusCode::NOT_FOUND, "no route for this path\n"),
        };
        let metrics = guest.as_deref().map_or(&self.unrouted, Guest::metrics);
        metrics.request(response.status().as_u16(), started.elapsed());
        response.headers_mut().insert(REQUEST_ID, id);
        response
    }

    /// The component files of the routes, for a watcher to poll.
    pub fn component_files(&self) -> impl Iterator<Item = &Path> {
        self.routes.iter().map(|route| route.component.as_path())
    }

    /// Recompiles each route whose component file changed since it was last
    /// loaded, and swaps the new guest in atomically: requests already
    /// running finish on the old one, later requests get the new one. A
    /// component that fails to read, compile or link is logged and rejected,
    /// and the route keeps serving its previous one. Compiling blocks: call
    /// this off the async threads.
    pub fn reload(&self) -> Vec<(&str, Reload)> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        self.routes
            .iter()
            .map(|route| {
                let outcome = self.reload_route(route);
                let prefix = route.prefix.as_str();
                let component = route.component.display();
                match &outcome {
                    Reload::Swapped => crate::metrics::route_reload(prefix, "swapped"),
                    Reload::Rejected(error) => {
                        tracing::error!(
                            route = prefix,
                            %component,
                            error = format!("{error:#}"),
                            "reload rejected: the route keeps serving its previous component"
                        );
                        crate::metrics::route_reload(prefix, "rejected");
                    }
                    Reload::Unchanged => {}
                }
                (prefix, outcome)
            })
            .collect()
    }

    fn reload_route(&self, route: &Route) -> Reload {
        let wasm = match std::fs::read(&route.component) {
            Ok(wasm) => wasm,
            // Not recorded as tried: the file may be back at the next look.
            Err(error) => return Reload::Rejected(error.into()),
        };
        let mut tried = route.tried.lock().unwrap_or_else(|e| e.into_inner());
        let digest: Digest = Sha256::digest(&wasm).into();
        if *tried == digest {
            return Reload::Unchanged;
        }
        *tried = digest;
        let compiled = match compile_bytes(&self.engine, self.cache.as_ref(), &wasm, digest) {
            Ok(compiled) => compiled,
            Err(error) => return Reload::Rejected(error.context("compiling the component")),
        };
        match route
            .guest
            .load()
            .with_component(&self.linker, &compiled.component)
        {
            Ok(guest) => {
                route.guest.store(Arc::new(guest));
                compiled.log(&route.prefix, &route.component, "route reloaded");
                Reload::Swapped
            }
            Err(error) => Reload::Rejected(error.context("linking the component")),
        }
    }
}

/// The route label of requests that no route matched, in logs and metrics.
const UNROUTED: &str = "none";

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
