//! An instance's wasmtime store and what it holds: the WASI and wasi:http
//! contexts with every capability the route does not grant withheld, the
//! session context of the request it serves, the guest's captured output,
//! and the deadline that its epoch ticks check.

use std::time::Instant;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::wasm::guest_output::GuestOutput;
use crate::wasm::outgoing_http::OutgoingHttp;
use crate::wasm::sandbox::{Capabilities, GuestLimits};
use crate::wit::{SessionImports, SessionsContext};

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

    /// Readies the store for a request: its sessions and its deadline.
    pub(crate) fn begin_request(&mut self, sessions: SessionsContext, deadline: Instant) {
        self.sessions = sessions;
        self.deadline = deadline;
    }

    /// What the guest wrote during the current request.
    pub(crate) fn output(&self) -> &GuestOutput {
        &self.output
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

/// A store for a new instance of a route's guest, with the WASI context its
/// capabilities allow and its memory capped.
pub(crate) fn new_store(
    engine: &Engine,
    limits: &GuestLimits,
    capabilities: &Capabilities,
    sessions: SessionsContext,
    deadline: Instant,
) -> std::io::Result<Store<InstanceState>> {
    let output = GuestOutput::default();
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .envs(&capabilities.env);
    if let Some(dir) = &capabilities.read_only_dir {
        wasi.preopened_dir(dir, "/", FsPerms::ReadOnly)
            .map_err(std::io::Error::other)?;
    }
    let state = InstanceState {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        hooks: capabilities.outgoing_http.clone(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.max_memory_bytes)
            .build(),
        sessions,
        output,
        deadline,
    };
    let mut store = Store::new(engine, state);
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
