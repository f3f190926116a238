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
use tracing::Instrument;
use wasmtime::component::{Component, Linker};
use wasmtime::{PoolConcurrencyLimitError, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

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
                store.data_mut().begin_request(sessions, deadline);
                (store, Some((idle.proxy, idle.resources)))
            }
            None => match new_store(
                self.pre.engine(),
                &self.limits,
                &self.capabilities,
                sessions,
                deadline,
            ) {
                Ok(store) => (store, None),
                Err(error) => {
                    return self.internal_error("opening the route's read-only directory", &error);
                }
            },
        };
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
