//! The native comparator: the session counter as a Rust user would write it
//! without a sandbox, with axum and tower-sessions (rows 3a and 3b).
//!
//! `GET /count` loads the visitor's session, increments its `count` and
//! answers `{"count":N}`, like the counter guest. tower-sessions saves the
//! modified session after the handler returns, which also slides its expiry
//! (30 minutes of inactivity, as the guest's route). The bench runs this as a
//! child process (`edge-session-bench native`), so that its memory is
//! measured alone and it gets the same start-up protocol as edge-session.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

/// Redis connections of the store's pool, as in tower-sessions' example.
const REDIS_POOL_SIZE: usize = 6;

/// Where the comparator keeps its sessions.
#[derive(Clone, Debug)]
pub enum NativeStore {
    /// tower-sessions' `MemoryStore`, in the process.
    Memory,
    /// tower-sessions-redis-store at this `redis://` URL.
    Redis(String),
}

/// Serves the counter on `listen` until the process is killed, after
/// printing `listening on http://ADDR` as edge-session does.
pub fn serve(listen: SocketAddr, store: NativeStore) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match store {
            NativeStore::Memory => serve_with(listen, MemoryStore::default()).await,
            NativeStore::Redis(url) => {
                let config = Config::from_url(&url).with_context(|| format!("redis URL {url}"))?;
                let pool = Pool::new(config, None, None, None, REDIS_POOL_SIZE)?;
                pool.init().await.context("connecting to redis")?;
                serve_with(listen, RedisStore::new(pool)).await
            }
        }
    })
}

async fn serve_with(listen: SocketAddr, store: impl SessionStore + Clone) -> Result<()> {
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::minutes(30)));
    let app = Router::new().route("/count", get(count)).layer(sessions);
    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn count(session: Session) -> impl IntoResponse {
    let counted = async {
        let count = session.get::<i64>("count").await?.unwrap_or(0) + 1;
        session.insert("count", count).await?;
        Ok::<_, tower_sessions::session::Error>(count)
    };
    match counted.await {
        Ok(count) => (
            StatusCode::OK,
            [(CONTENT_TYPE, "application/json")],
            format!("{{\"count\":{count}}}"),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(CONTENT_TYPE, "text/plain")],
            format!("{error}\n"),
        ),
    }
}
