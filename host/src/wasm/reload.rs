//! Hot reload: a route's component is replaced while the host serves.
//!
//! On SIGHUP, and when the config asks for it on a change of a component
//! file, the changed components are compiled in the background and swapped
//! in atomically ([`Runtime::reload`]): requests in flight finish on the old
//! component and nothing is dropped. A component that fails to compile or
//! link is rejected with an error log line, and the old one keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::wasm::runtime::{Reload, Runtime};

/// Reloads a runtime's changed components on SIGHUP and, optionally, when
/// their files change.
pub struct Reloader {
    runtime: Arc<Runtime>,
    hangup: Signal,
    watch: Option<Duration>,
}

/// What the watcher compares between looks: a file's length and mtime.
type Stamp = Option<(u64, SystemTime)>;

/// Takes over SIGHUP, whose default action would end the process. Call it
/// before the routes compile, so that a reload asked for during start-up
/// waits for the [`Reloader`] rather than killing the host.
pub fn hangup_signal() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

impl Reloader {
    /// `hangup` from [`hangup_signal`]; `watch`: how often to look at the
    /// component files, if at all.
    pub fn new(runtime: Arc<Runtime>, hangup: Signal, watch: Option<Duration>) -> Self {
        Self {
            runtime,
            hangup,
            watch,
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let mut poll = self.watch.map(tokio::time::interval);
        let mut seen = self.stamps();
        let mut changed = false;
        loop {
            let tick = async {
                match &mut poll {
                    Some(poll) => poll.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP received: reloading changed components");
                    self.reload().await;
                }
                _ = tick => {
                    // A file still changing may be half written: reload
                    // once it has held still for one interval.
                    let now = self.stamps();
                    if now != seen {
                        seen = now;
                        changed = true;
                    } else if changed {
                        changed = false;
                        self.reload().await;
                    }
                }
            }
        }
    }

    async fn reload(&self) {
        let runtime = self.runtime.clone();
        let counted = tokio::task::spawn_blocking(move || {
            let outcomes = runtime.reload();
            let count =
                |wanted: fn(&Reload) -> bool| outcomes.iter().filter(|(_, o)| wanted(o)).count();
            (
                count(|o| matches!(o, Reload::Swapped)),
                count(|o| matches!(o, Reload::Rejected(_))),
            )
        })
        .await;
        match counted {
            Ok((swapped, rejected)) => tracing::info!(swapped, rejected, "reload done"),
            Err(error) => tracing::error!(%error, "reload failed"),
        }
    }

    fn stamps(&self) -> Vec<Stamp> {
        self.runtime.component_files().map(stamp).collect()
    }
}

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}
