//! One route's guest component, and how a request runs in it.
//!
//! Every request gets a fresh instance in a fresh wasmtime store: nothing a
//! guest does can leak into the next request. The component is linked once
//! ([`ProxyPre`]) so that instantiating is cheap. (A route may trade that
//! isolation for speed and reuse instances: [`crate::idle_instances`].) The
//! guest sees no filesystem, environment, sockets or outgoing HTTP; its
//! memory is capped and its run time bounded. A trap, a timeout or a missing response ends
//! only this request, as a 500 or 504.
//!
//! A guest that computes rather than waits still shares the host: at every
//! epoch tick it yields to the tokio scheduler, behind every other task
//! ready to run, so a handful of spinning requests cannot hold the workers
//! that serve everyone else. The same tick checks its deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Engine, PoolConcurrencyLimitError, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::body_limit::{LimitedBody, declared_length};
use crate::current_host::RequestSession;
use crate::guest_output::GuestOutput;
use crate::idle_instances::IdleInstances;
use crate::metrics::RouteMetrics;
use crate::outgoing_http::OutgoingHttp;
use crate::session_cookie::SessionCookie;
use crate::sessions_host::{SessionImports, SessionPolicy, SessionsContext};
use crate::store::SessionStore;

/// Marks a request that arrived over TLS: its guest sees the `https` scheme.
#[derive(Clone, Copy, Debug)]
pub struct Https;

/// What a route's guests may reach beyond their sandbox: nothing unless
/// configured.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// Where the guest may send HTTP requests.
    pub outgoing_http: OutgoingHttp,
    /// Environment variables the guest sees (settings, not secrets of the host).
    pub env: Vec<(String, String)>,
    /// A host directory the guest may read, never write, mounted at `/`.
    pub read_only_dir: Option<PathBuf>,
}

/// Per-route sandbox limits.
#[derive(Clone, Copy, Debug)]
pub struct GuestLimits {
    /// Cap on the guest's linear memories, in bytes.
    pub max_memory_bytes: usize,
    /// Wall-clock deadline for the whole request, counted from when it
    /// reaches the route (waiting for an instance included).
    pub timeout: Duration,
    /// Largest request body; larger requests get a 413.
    pub max_request_bytes: u64,
    /// Largest response body a guest may send.
    pub max_response_bytes: u64,
    /// Instances of this route running at once.
    pub max_concurrency: usize,
    /// How long a request waits for one of those instances when all are
    /// busy; then it gets a 503 with `Retry-After` (never an unbounded queue).
    pub max_queue_wait: Duration,
    /// Instances kept after a request to serve later ones; 0 (the default)
    /// runs every request in a fresh instance.
    pub max_idle_instances: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            max_concurrency: 100,
            max_queue_wait: Duration::from_millis(100),
            max_idle_instances: 0,
        }
    }
}

/// The data of an instance's wasmtime store: one request's, or on a route
/// that reuses instances, each request's in turn (only the session context
/// changes between them).
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutgoingHttp,
    table: ResourceTable,
    limits: StoreLimits,
    sessions: SessionsContext,
    output: GuestOutput,
    /// When the current request's time is up.
    deadline: Instant,
}

impl InstanceState {
    /// Host resources (streams, requests, …) the guest holds handles to.
    pub(crate) fn resources_held(&mut self) -> usize {
        self.table.iter_mut().count()
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Builds the linker every guest is linked against: WASI (with all
/// capabilities withheld by each request's context), wasi:http and sessions.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<InstanceState>> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    SessionImports::add_to_linker::<_, HasSelf<SessionsContext>>(&mut linker, |state| {
        &mut state.sessions
    })?;
    Ok(linker)
}

/// Links a component against the handler world; fails when it does not fit
/// (for example it imports something the host does not provide).
pub fn link(
    linker: &Linker<InstanceState>,
    component: &Component,
) -> anyhow::Result<ProxyPre<InstanceState>> {
    Ok(ProxyPre::new(linker.instantiate_pre(component)?)?)
}

/// A compiled and linked guest, ready to serve requests.
pub struct Guest {
    name: Arc<str>,
    /// Shared by the route's guests across reloads.
    metrics: Arc<RouteMetrics>,
    pre: ProxyPre<InstanceState>,
    sessions: Option<Arc<SessionPolicy>>,
    store: Arc<dyn SessionStore>,
    limits: GuestLimits,
    capabilities: Capabilities,
    /// One permit per instance allowed to run at once.
    concurrency: Arc<Semaphore>,
    /// `None` unless the route reuses instances.
    idle: Option<Arc<IdleInstances>>,
}

/// How a request's guest run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Finished,
    Trapped,
    TimedOut,
    /// No instance could be allocated: the engine's pool is full.
    Overloaded,
}

impl Outcome {
    /// Classifies a finished run and logs a failure, then what the guest
    /// wrote (a Rust panic message, say), attributed to the route.
    fn report<T>(
        route: &str,
        timeout: Duration,
        result: &Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
        output: &GuestOutput,
    ) -> Outcome {
        let outcome = match result {
            Ok(Ok(_)) => Outcome::Finished,
            Ok(Err(error)) if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                tracing::warn!(route, error = %error, "instance pool exhausted");
                Outcome::Overloaded
            }
            Ok(Err(error)) if matches!(error.downcast_ref(), Some(Trap::Interrupt)) => {
                Outcome::TimedOut
            }
            Ok(Err(error)) => {
                tracing::warn!(route, error = format!("{error:#}"), "guest trapped");
                Outcome::Trapped
            }
            Err(_) => Outcome::TimedOut,
        };
        if outcome == Outcome::TimedOut {
            tracing::warn!(route, ?timeout, "guest timed out");
        }
        let fault = match outcome {
            Outcome::Finished => None,
            Outcome::Trapped => Some("trap"),
            Outcome::TimedOut => Some("timeout"),
            Outcome::Overloaded => Some("overloaded"),
        };
        if let Some(reason) = fault {
            crate::metrics::guest_fault(route, reason);
        }
        output.log(route, fault.is_some());
        outcome
    }
}

impl Guest {
    /// Links `component` (see [`link`]).
    pub fn new(
        name: &str,
        linker: &Linker<InstanceState>,
        component: &Component,
        sessions: Option<SessionPolicy>,
        store: Arc<dyn SessionStore>,
        limits: GuestLimits,
        capabilities: Capabilities,
    ) -> anyhow::Result<Self> {
        let pre = link(linker, component)?;
        Ok(Self {
            name: name.into(),
            metrics: Arc::new(RouteMetrics::new(name)),
            pre,
            sessions: sessions.map(Arc::new),
            store,
            concurrency: Arc::new(Semaphore::new(limits.max_concurrency)),
            idle: idle_instances(&limits),
            limits,
            capabilities,
        })
    }

    /// The route's request metrics.
    pub fn metrics(&self) -> &RouteMetrics {
        &self.metrics
    }

    /// This guest with another component (a hot reload): same route, policy,
    /// limits and capabilities. It shares the concurrency limit, so that the
    /// old component's requests still in flight and the new one's together
    /// stay within it. The old component's idle instances go with it.
    pub fn with_component(
        &self,
        linker: &Linker<InstanceState>,
        component: &Component,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            name: self.name.clone(),
            metrics: self.metrics.clone(),
            pre: link(linker, component)?,
            sessions: self.sessions.clone(),
            store: self.store.clone(),
            limits: self.limits,
            capabilities: self.capabilities.clone(),
            concurrency: self.concurrency.clone(),
            idle: idle_instances(&self.limits),
        })
    }

    /// Runs the request in a fresh instance (or an idle one, on a route that
    /// reuses them) and returns its response, or the host's error response
    /// when the guest fails.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<HyperOutgoingBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let limits = self.limits;
        let deadline = Instant::now() + limits.timeout;
        let Some(permit) = self.instance_permit().await else {
            tracing::debug!(route = %self.name, limit = limits.max_concurrency, "route busy");
            return overloaded();
        };
        if declared_length(request.headers())
            .is_some_and(|length| length > limits.max_request_bytes)
        {
            return host_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        let (parts, body) = request.into_parts();
        let (body, request_too_large) = LimitedBody::request(body, limits.max_request_bytes);
        let request = http::Request::from_parts(parts, body);

        let cookie = match &self.sessions {
            Some(policy) => policy.cookie.read(request.headers()),
            None => SessionCookie::Absent,
        };
        let request_session = Arc::new(RequestSession::new(cookie));
        let sessions = SessionsContext::new(
            self.sessions.clone(),
            self.store.clone(),
            request_session.clone(),
        );
        let (mut store, reused) = match self.idle.as_ref().and_then(|idle| idle.take()) {
            Some(idle) => {
                let mut store = idle.store;
                store.data_mut().sessions = sessions;
                (store, Some((idle.proxy, idle.resources)))
            }
            None => match self.new_store(sessions) {
                Ok(store) => (store, None),
                Err(error) => {
                    return self.internal_error("opening the route's read-only directory", &error);
                }
            },
        };
        store.data_mut().deadline = deadline;
        store.set_epoch_deadline(1);

        let (sender, receiver) = oneshot::channel();
        let http = &mut store.data_mut().http();
        let scheme = match request.extensions().get::<Https>() {
            Some(Https) => Scheme::Https,
            None => Scheme::Http,
        };
        let incoming = match http.new_incoming_request(scheme, request) {
            Ok(incoming) => incoming,
            Err(error) => {
                // The guest never saw the request: its instance is as good as before.
                if let (Some(idle), Some((proxy, first_request))) = (&self.idle, reused) {
                    idle.keep(store, proxy, Some(first_request));
                }
                return host_response(StatusCode::BAD_REQUEST, &format!("{error:#}\n"));
            }
        };
        // Runs inside the guest's `response-outparam.set`: the session cookie
        // is settled at exactly the moment the head leaves the guest.
        let cookie = self
            .sessions
            .as_ref()
            .map(|policy| (policy.clone(), request_session.clone()));
        let responded = Arc::new(AtomicBool::new(false));
        let responding = responded.clone();
        let outparam = match http.new_response_outparam_from_callback(move |result| {
            responding.store(true, Ordering::Release);
            let result = result.map(|mut response| {
                if let Some(set_cookie) =
                    cookie.and_then(|(policy, request)| request.settle(&policy.cookie))
                {
                    response
                        .headers_mut()
                        .append(http::header::SET_COOKIE, set_cookie);
                }
                response
            });
            // The receiver is gone only if the client left; nothing to tell.
            let _ = sender.send(result);
        }) {
            Ok(outparam) => outparam,
            Err(error) => return self.internal_error("creating the response outparam", &error),
        };

        // The guest runs in its own task: after sending the response head it
        // may go on streaming the body, and fail while doing so. So the task
        // reports its own failures.
        let (pre, idle, metrics) = (self.pre.clone(), self.idle.clone(), self.metrics.clone());
        let (route, timeout) = (self.name.clone(), limits.timeout);
        let run = tokio::spawn(
            async move {
                // The permit lives as long as the run, body streaming included.
                let _permit = permit;
                let (reused_proxy, first_request) = reused.unzip();
                let call = async {
                    let proxy = match reused_proxy {
                        Some(proxy) => proxy,
                        None => {
                            let started = Instant::now();
                            let proxy = pre.instantiate_async(&mut store).await?;
                            metrics.instantiation(started.elapsed());
                            proxy
                        }
                    };
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, incoming, outparam)
                        .await?;
                    Ok(proxy)
                };
                let result = tokio::time::timeout_at(deadline.into(), call).await;
                let outcome = Outcome::report(&route, timeout, &result, &store.data().output);
                if let (Some(idle), Ok(Ok(proxy))) = (idle, result) {
                    if responded.load(Ordering::Acquire) {
                        idle.keep(store, proxy, first_request);
                    } else if first_request.is_some() {
                        // A guest that answered in a fresh instance and not
                        // in a reused one cannot serve two requests per instance.
                        idle.turn_off(&route);
                    }
                }
                outcome
            }
            .instrument(tracing::Span::current()),
        );

        match receiver.await {
            Ok(Ok(response)) => {
                // The guest saw only a failed read: say what really happened.
                if request_too_large.load(Ordering::Acquire) {
                    return host_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    );
                }
                if declared_length(response.headers())
                    .is_some_and(|length| length > limits.max_response_bytes)
                {
                    tracing::warn!(route = %self.name, limit = limits.max_response_bytes, "guest response too large");
                    return host_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the handler's response is too large\n",
                    );
                }
                response.map(|body| {
                    LimitedBody::response(body, limits.max_response_bytes).boxed_unsync()
                })
            }
            Ok(Err(code)) => {
                tracing::warn!(route = %self.name, error = ?code, "guest responded with an error");
                host_response(StatusCode::INTERNAL_SERVER_ERROR, "the handler failed\n")
            }
            // The guest dropped the outparam without a response: find out why.
            Err(_) => match run.await {
                Ok(Outcome::Finished) => {
                    tracing::warn!(route = %self.name, "guest returned without sending a response");
                    host_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the handler sent no response\n",
                    )
                }
                Ok(Outcome::TimedOut) => {
                    host_response(StatusCode::GATEWAY_TIMEOUT, "the handler timed out\n")
                }
                Ok(Outcome::Trapped) => {
                    host_response(StatusCode::INTERNAL_SERVER_ERROR, "the handler failed\n")
                }
                Ok(Outcome::Overloaded) => overloaded(),
                Err(join_error) => self.internal_error("running the guest task", &join_error),
            },
        }
    }

    /// A permit to run an instance of this route: at once when one is free,
    /// else the first to come free within `max_queue_wait`. A client's next
    /// request often arrives while its previous run is still ending.
    async fn instance_permit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.concurrency.clone().try_acquire_owned() {
            return Some(permit);
        }
        let freed = self.concurrency.clone().acquire_owned();
        tokio::time::timeout(self.limits.max_queue_wait, freed)
            .await
            .ok()?
            .ok()
    }

    /// A store for a new instance of this route's guest, with the WASI
    /// context its capabilities allow.
    fn new_store(&self, sessions: SessionsContext) -> std::io::Result<Store<InstanceState>> {
        let output = GuestOutput::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.stdout.clone())
            .stderr(output.stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .envs(&self.capabilities.env);
        if let Some(dir) = &self.capabilities.read_only_dir {
            wasi.preopened_dir(dir, "/", FsPerms::ReadOnly)
                .map_err(std::io::Error::other)?;
        }
        let state = InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: self.capabilities.outgoing_http.clone(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory_bytes)
                .build(),
            sessions,
            output,
            deadline: Instant::now(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        // Called at each tick while the guest runs (the deadline is one tick
        // ahead): a guest blocked in a host call is stopped by the timer
        // around the call instead. tokio's `yield_now` puts the task behind
        // the tasks waiting for I/O too, where a plain wake would not.
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Ok(store)
    }

    fn internal_error(
        &self,
        what: &str,
        error: &dyn std::fmt::Display,
    ) -> http::Response<HyperOutgoingBody> {
        tracing::error!(route = %self.name, %error, "{what}");
        host_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
    }
}

/// The pool of a route's idle instances, when it reuses them.
fn idle_instances(limits: &GuestLimits) -> Option<Arc<IdleInstances>> {
    (limits.max_idle_instances > 0).then(|| Arc::new(IdleInstances::new(limits.max_idle_instances)))
}

/// 503 with `Retry-After`: the route or the engine has no instance free.
fn overloaded() -> http::Response<HyperOutgoingBody> {
    let mut response = host_response(StatusCode::SERVICE_UNAVAILABLE, "busy, retry shortly\n");
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// A short plain-text response made by the host itself.
pub fn host_response(status: StatusCode, message: &str) -> http::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(Bytes::copy_from_slice(message.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
