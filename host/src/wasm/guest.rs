//! One route's guest component, and how a request runs in it.
//!
//! Every request gets a fresh instance in a fresh wasmtime store: nothing a
//! guest does can leak into the next request. The component is linked once
//! ([`ProxyPre`]) so that instantiating is cheap. (A route may trade that
//! isolation for speed and reuse instances: [`crate::wasm::idle_instances`].) The
//! guest sees no filesystem, environment, sockets or outgoing HTTP; its
//! memory is capped and its run time bounded. A trap, a timeout or a missing response ends
//! only this request, as a 500 or 504.
//!
//! A guest that computes rather than waits still shares the host: at every
//! epoch tick it yields to the tokio scheduler, behind every other task
//! ready to run, so a handful of spinning requests cannot hold the workers
//! that serve everyone else. The same tick checks its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

use crate::metrics::RouteMetrics;
use crate::session::cookie::SessionCookie;
use crate::store::SessionStore;
use crate::wasm::body_limit::{LimitedBody, declared_length};
use crate::wasm::guest_output::GuestOutput;
use crate::wasm::idle_instances::IdleInstances;
use crate::wasm::instance::{InstanceState, link, new_store};
use crate::wasm::response::{host_response, overloaded};
use crate::wasm::sandbox::{Capabilities, GuestLimits};
use crate::wit::{RequestSession, SessionPolicy, SessionsContext};

/// Marks a request that arrived over TLS: its guest sees the `https` scheme.
#[derive(Clone, Copy, Debug)]
pub struct Https;

/// A compiled and linked guest, ready to serve requests.
pub struct Guest {
    name: Arc<str>,
    /// Shared by the route's guests across reloads.
    metrics: Arc<RouteMetrics>,
    pre: ProxyPre<InstanceState>,
    /// `None`: the route has no session access.
    policy: Option<Arc<SessionPolicy>>,
    session_store: Arc<dyn SessionStore>,
    limits: GuestLimits,
    capabilities: Capabilities,
    /// One permit per instance allowed to run at once.
    concurrency: Arc<Semaphore>,
    /// `None` unless the route reuses instances.
    idle: Option<Arc<IdleInstances>>,
}

/// A wasmtime store ready to serve one request, and the instance in it when
/// it is an idle one being reused (with the resources its guest held after
/// its first request).
struct Instance {
    store: Store<InstanceState>,
    reused: Option<(Proxy, usize)>,
}

/// What the guest sets its response outparam to.
type GuestResponse = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

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
            policy: sessions.map(Arc::new),
            session_store: store,
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
            policy: self.policy.clone(),
            session_store: self.session_store.clone(),
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
        let deadline = Instant::now() + self.limits.timeout;
        let Some(permit) = self.instance_permit().await else {
            tracing::debug!(route = %self.name, limit = self.limits.max_concurrency, "route busy");
            return overloaded();
        };
        let max_request_bytes = self.limits.max_request_bytes;
        if declared_length(request.headers()).is_some_and(|length| length > max_request_bytes) {
            return host_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        let (parts, body) = request.into_parts();
        let (body, request_too_large) = LimitedBody::request(body, max_request_bytes);
        let request = http::Request::from_parts(parts, body);

        let (sessions, request_session) = self.sessions_for(request.headers());
        let mut instance = match self.instance(sessions, deadline) {
            Ok(instance) => instance,
            Err(error) => {
                return self.internal_error("opening the route's read-only directory", &error);
            }
        };
        let scheme = match request.extensions().get::<Https>() {
            Some(Https) => Scheme::Https,
            None => Scheme::Http,
        };
        let incoming = match instance
            .store
            .data_mut()
            .http()
            .new_incoming_request(scheme, request)
        {
            Ok(incoming) => incoming,
            Err(error) => {
                // The guest never saw the request: its instance is as good as before.
                self.keep_unused(instance);
                return host_response(StatusCode::BAD_REQUEST, &format!("{error:#}\n"));
            }
        };
        let (sender, receiver) = oneshot::channel();
        let responded = Arc::new(AtomicBool::new(false));
        let outparam = match self.response_outparam(
            &mut instance.store,
            request_session,
            responded.clone(),
            sender,
        ) {
            Ok(outparam) => outparam,
            Err(error) => return self.internal_error("creating the response outparam", &error),
        };
        let run = self.spawn_run(instance, incoming, outparam, permit, deadline, responded);
        self.respond(receiver.await, run, &request_too_large).await
    }

    /// The session context of a request: its cookie read under the route's
    /// policy, and the request's own session, which the response's
    /// `Set-Cookie` comes from.
    fn sessions_for(&self, headers: &http::HeaderMap) -> (SessionsContext, Arc<RequestSession>) {
        let cookie = match &self.policy {
            Some(policy) => policy.cookie.read(headers),
            None => SessionCookie::Absent,
        };
        let request_session = Arc::new(RequestSession::new(cookie));
        let sessions = SessionsContext::new(
            self.policy.clone(),
            self.session_store.clone(),
            request_session.clone(),
        );
        (sessions, request_session)
    }

    /// An instance for the request: an idle one on a route that reuses
    /// them, else a new store to instantiate the component in.
    fn instance(&self, sessions: SessionsContext, deadline: Instant) -> std::io::Result<Instance> {
        let mut instance = match self.idle.as_ref().and_then(|idle| idle.take()) {
            Some(idle) => {
                let mut store = idle.store;
                store.data_mut().begin_request(sessions, deadline);
                Instance {
                    store,
                    reused: Some((idle.proxy, idle.resources)),
                }
            }
            None => Instance {
                store: new_store(
                    self.pre.engine(),
                    &self.limits,
                    &self.capabilities,
                    sessions,
                    deadline,
                )?,
                reused: None,
            },
        };
        instance.store.set_epoch_deadline(1);
        Ok(instance)
    }

    /// Hands back an idle instance that never saw its request.
    fn keep_unused(&self, instance: Instance) {
        if let (Some(idle), Some((proxy, first_request))) = (&self.idle, instance.reused) {
            idle.keep(instance.store, proxy, Some(first_request));
        }
    }

    /// The guest's response outparam. Setting it runs inside the guest's
    /// `response-outparam.set`, so the session cookie is settled at exactly
    /// the moment the head leaves the guest.
    fn response_outparam(
        &self,
        store: &mut Store<InstanceState>,
        request_session: Arc<RequestSession>,
        responded: Arc<AtomicBool>,
        sender: oneshot::Sender<GuestResponse>,
    ) -> wasmtime::Result<Resource<HostResponseOutparam>> {
        let policy = self.policy.clone();
        store
            .data_mut()
            .http()
            .new_response_outparam_from_callback(move |result| {
                responded.store(true, Ordering::Release);
                let result = result.map(|mut response| {
                    let set_cookie = policy
                        .as_ref()
                        .and_then(|policy| request_session.settle(&policy.cookie));
                    if let Some(set_cookie) = set_cookie {
                        response
                            .headers_mut()
                            .append(http::header::SET_COOKIE, set_cookie);
                    }
                    response
                });
                // The receiver is gone only if the client left; nothing to tell.
                let _ = sender.send(result);
            })
    }

    /// Runs the guest in a task of its own: after sending the response head
    /// it may go on streaming the body, and fail while doing so, so the task
    /// reports its own failures. It holds the route's permit until it ends,
    /// and on a route that reuses instances it keeps a sound one.
    fn spawn_run(
        &self,
        instance: Instance,
        incoming: Resource<HostIncomingRequest>,
        outparam: Resource<HostResponseOutparam>,
        permit: OwnedSemaphorePermit,
        deadline: Instant,
        responded: Arc<AtomicBool>,
    ) -> JoinHandle<Outcome> {
        let (pre, idle, metrics) = (self.pre.clone(), self.idle.clone(), self.metrics.clone());
        let (route, timeout) = (self.name.clone(), self.limits.timeout);
        let Instance { mut store, reused } = instance;
        tokio::spawn(
            async move {
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
                let outcome = Outcome::report(&route, timeout, &result, store.data().output());
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
        )
    }

    /// The response to send: the guest's, within the route's limits, or the
    /// host's when the guest failed (asking the run why when it sent none).
    async fn respond(
        &self,
        guest: Result<GuestResponse, oneshot::error::RecvError>,
        run: JoinHandle<Outcome>,
        request_too_large: &AtomicBool,
    ) -> http::Response<HyperOutgoingBody> {
        let max_response_bytes = self.limits.max_response_bytes;
        match guest {
            Ok(Ok(response)) => {
                // The guest saw only a failed read: say what really happened.
                if request_too_large.load(Ordering::Acquire) {
                    return host_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    );
                }
                if declared_length(response.headers())
                    .is_some_and(|length| length > max_response_bytes)
                {
                    tracing::warn!(route = %self.name, limit = max_response_bytes, "guest response too large");
                    return host_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the handler's response is too large\n",
                    );
                }
                response.map(|body| LimitedBody::response(body, max_response_bytes).boxed_unsync())
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
