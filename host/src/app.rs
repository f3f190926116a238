//! The wiring: what `edge-session serve` and `check` do with a loaded
//! [`Config`]. It opens the store with its layers in their one right order,
//! builds the runtime, starts the reloader, the admin listener and the
//! server. The binary only parses flags and calls [`serve`] or [`check`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Backend, Config, ConfigError};
use crate::http::admin::{self, Admin};
use crate::http::server;
#[cfg(feature = "aerospike")]
use crate::store::AerospikeStore;
#[cfg(feature = "redis")]
use crate::store::RedisStore;
use crate::store::{
    CircuitBreakerStore, EmbeddedStore, EncryptedStore, EncryptionKeys, InstrumentedStore,
    SessionStore,
};
use crate::wasm::reload::{self, Reloader};

/// Serves `config` until SIGINT or SIGTERM, on `listen` if given instead of
/// the config's address. Prints `listening on …` (and `admin listening on
/// …`) on stdout once requests are accepted: scripts read the port there.
pub fn serve(config: &Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        // Before anything records, so that nothing is lost.
        let metrics = match &config.admin {
            Some(_) => Some(crate::metrics::install()?),
            None => None,
        };
        let hangup = reload::hangup_signal()?;
        let store = open_store(config).await?;
        let runtime = Arc::new(config.build_runtime(store.clone())?);
        let reloader = Reloader::new(runtime.clone(), hangup, config.reload_watch());
        tokio::spawn(reloader.run());
        let listener = bind(listen.unwrap_or(config.listen)).await?;
        let settings = config.server_settings();
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("listening on {scheme}://{}", listener.local_addr()?);
        if let (Some(section), Some(metrics)) = (&config.admin, metrics) {
            let listener = bind(section.listen).await?;
            println!("admin listening on http://{}", listener.local_addr()?);
            tokio::spawn(admin::serve(Admin { store, metrics }, listener));
        }
        server::serve(runtime, listener, settings, server::shutdown_signal()).await
    })
}

/// Compiles and links every route's component against the host's WIT
/// world, without opening the store: one error per failing route.
pub fn check(config: &Config) -> anyhow::Result<Vec<ConfigError>> {
    config.check_routes()
}

/// Opens the configured session store (connecting to it, for a distributed
/// one) with its layers, inside out: encryption next to the backend, so that
/// everything above sees plaintext; the circuit breaker; metrics outside the
/// breaker, so that calls it fails fast count as unavailable.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn SessionStore>> {
    let keys = config.store.encryption_keys();
    let max_session_bytes = config.store.max_session_bytes;
    // Sealed data is larger than the plaintext the limit is about.
    let stored_bytes = keys.as_ref().map_or(max_session_bytes, |keys| {
        keys.stored_bytes(max_session_bytes)
    });
    let (label, mut store) = match config.store.backend {
        Backend::Embedded => {
            let store = EmbeddedStore::open(config.store.embedded_config(stored_bytes))?;
            ("embedded", encrypted(store, keys, max_session_bytes))
        }
        #[cfg(feature = "aerospike")]
        Backend::Aerospike => {
            let store = AerospikeStore::open(config.store.aerospike_config(stored_bytes)?).await?;
            ("aerospike", encrypted(store, keys, max_session_bytes))
        }
        #[cfg(not(feature = "aerospike"))]
        Backend::Aerospike => anyhow::bail!("this build has no Aerospike backend"),
        #[cfg(feature = "redis")]
        Backend::Redis => {
            let store = RedisStore::open(config.store.redis_config(stored_bytes)?).await?;
            ("redis", encrypted(store, keys, max_session_bytes))
        }
        #[cfg(not(feature = "redis"))]
        Backend::Redis => anyhow::bail!("this build has no Redis backend"),
    };
    if let Some(settings) = config.store.breaker_settings() {
        store = Arc::new(CircuitBreakerStore::new(store, settings));
    }
    Ok(Arc::new(InstrumentedStore::new(store, label)))
}

/// `store`, encrypted when there are keys.
fn encrypted<S: SessionStore>(
    store: S,
    keys: Option<Arc<EncryptionKeys>>,
    max_session_bytes: usize,
) -> Arc<dyn SessionStore> {
    match keys {
        Some(keys) => Arc::new(EncryptedStore::new(store, keys, max_session_bytes)),
        None => Arc::new(store),
    }
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))
}
