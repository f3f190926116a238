//! Instances kept between requests, on routes that opt into reuse.
//!
//! By default each request runs in a fresh instance, so nothing a request
//! leaves in a guest's memory reaches the next one. A route with
//! `reuse_instances = true` trades that isolation for speed: after a request
//! ends cleanly, its instance waits here, memory and all, for one of the
//! route's next requests. A large guest (JavaScript, Python) then skips
//! instantiation and its runtime's start-up on every request but the first.
//! What a guest keeps in its globals, later requests on that instance see;
//! the session a request works on is still its own, since the host hands
//! each request its cookie's session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

use crate::wasm::instance::InstanceState;

/// A store with its instantiated handler, between two requests.
pub struct IdleInstance {
    pub store: Store<InstanceState>,
    pub proxy: Proxy,
    /// Host resources the guest held after its first request (streams it
    /// keeps open, say).
    pub resources: usize,
}

/// A route's idle instances, the most recently used first out (its pages
/// are the likeliest to be in cache).
pub struct IdleInstances {
    max_idle: usize,
    idle: Mutex<Vec<IdleInstance>>,
    /// Set once the guest showed it cannot serve a second request.
    off: AtomicBool,
}

impl IdleInstances {
    pub fn new(max_idle: usize) -> Self {
        Self {
            max_idle,
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            off: AtomicBool::new(false),
        }
    }

    pub fn take(&self) -> Option<IdleInstance> {
        if self.off.load(Ordering::Relaxed) {
            return None;
        }
        self.lock().pop()
    }

    /// Stops reusing the route's instances: its guest answered its first
    /// request and then returned from a later one without a response, which
    /// is how a guest fails that keeps per-request state it never resets
    /// (componentize-js's runtime does: StarlingMonkey issue 247).
    pub fn turn_off(&self, route: &str) {
        if !self.off.swap(true, Ordering::Relaxed) {
            tracing::error!(
                route,
                "the guest sent no response from a reused instance: it cannot serve two \
                 requests per instance, so each request gets a fresh one from now on \
                 (set reuse_instances = false for this route)"
            );
            // Dropped once the lock is released: freeing slots resets memory.
            let idle = std::mem::take(&mut *self.lock());
            drop(idle);
        }
    }

    /// Keeps an instance whose request ended cleanly, unless enough are idle
    /// already or the guest held on to more host resources than after its
    /// first request: a guest that leaks what each request hands it (a body
    /// stream it never drops) would otherwise grow without bound.
    /// `first_request` tells the resources it held then, `None` when this
    /// was its first request.
    pub fn keep(
        &self,
        mut store: Store<InstanceState>,
        proxy: Proxy,
        first_request: Option<usize>,
    ) {
        let held = store.data_mut().resources_held();
        let resources = match first_request {
            Some(resources) if held > resources => {
                tracing::debug!(held, resources, "dropping an instance that keeps resources");
                return;
            }
            Some(resources) => resources,
            None => held,
        };
        let instance = IdleInstance {
            store,
            proxy,
            resources,
        };
        let mut idle = self.lock();
        if idle.len() < self.max_idle && !self.off.load(Ordering::Relaxed) {
            idle.push(instance);
        }
        // Otherwise the instance is dropped after the lock (declared later)
        // is released: freeing its slot resets its memory.
    }

    fn lock(&self) -> MutexGuard<'_, Vec<IdleInstance>> {
        // A Vec push or pop cannot leave it inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
