//! The one wasmtime engine of a runtime, tuned for one instance per request.
//!
//! Instances come from the pooling allocator (slots reserved up front,
//! linear memories reset copy-on-write) so that instantiating per request
//! costs microseconds. Where the kernel can say which pages a guest dirtied
//! (`PAGEMAP_SCAN`, Linux 6.7+), a freed slot is reset by rewriting just those
//! pages and stays mapped: no `madvise`, no TLB shootdown across threads and
//! no page faults for the next request (measured: 1.45× the requests per
//! second of the hello and counter guests). Guests are interrupted through epochs: a ticker
//! thread bumps the epoch every [`EPOCH_TICK`], and a running guest stops at
//! each tick to yield to other requests and to check its deadline
//! ([`crate::wasm::guest`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes of each freed linear memory (and table) reset in place rather than
/// returned to the kernel, when `PAGEMAP_SCAN` finds the dirty pages. A small
/// guest dirties well under this per request; a larger one (JavaScript,
/// Python) has the rest of its pages unmapped as before.
const KEEP_RESIDENT_BYTES: usize = 8 * 1024 * 1024;

/// How long a guest runs before it yields to other requests, and the
/// granularity of its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings (see `[engine]` in the config reference).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Instances that can run at once, over all routes.
    pub max_instances: u32,
    /// The largest memory any route allows a guest: sizes the pool's slots.
    pub max_memory_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 128 * 1024 * 1024,
        }
    }
}

/// A configured engine plus the thread that drives its epochs.
pub struct GuestEngine {
    engine: Engine,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl GuestEngine {
    pub fn new(settings: &EngineSettings) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances.saturating_mul(4))
            .total_memories(settings.max_instances.saturating_mul(2))
            .total_tables(settings.max_instances.saturating_mul(4))
            .max_memory_size(settings.max_memory_bytes);
        // Without the scan, keeping pages resident means clearing all of them
        // on every free, whether dirtied or not: slower than unmapping.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
                .table_keep_resident(KEEP_RESIDENT_BYTES);
        }

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = std::thread::Builder::new()
            .name("edge-session-epoch".into())
            .spawn({
                let (engine, stop) = (engine.clone(), stop.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Self {
            engine,
            ticker: Some((stop, ticker)),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for GuestEngine {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CVE-2026-140416: a guest's `call_indirect` through a non-final
    /// function type needs a subtype check that wasmtime 48.0.8, 49.0.5 and
    /// 50.0.1 only built with their `gc` feature, which this host leaves
    /// out: the host process aborted. It must run (or trap) like any other
    /// call.
    #[tokio::test]
    async fn call_indirect_through_a_non_final_type_does_not_abort_the_host() {
        let engine = GuestEngine::new(&EngineSettings::default()).unwrap();
        let wasm = wat::parse_str(
            r#"(module
                 (type $a (sub (func)))
                 (type $b (sub $a (func)))
                 (table 1 funcref)
                 (func $callee (type $b))
                 (elem (i32.const 0) func $callee)
                 (func (export "run") (call_indirect (type $a) (i32.const 0))))"#,
        )
        .unwrap();
        let module = wasmtime::Module::new(engine.engine(), &wasm).unwrap();
        let mut store = wasmtime::Store::new(engine.engine(), ());
        store.set_epoch_deadline(1000);
        let instance = wasmtime::Instance::new_async(&mut store, &module, &[])
            .await
            .unwrap();
        let run = instance
            .get_typed_func::<(), ()>(&mut store, "run")
            .unwrap();
        run.call_async(&mut store, ()).await.unwrap();
    }
}
