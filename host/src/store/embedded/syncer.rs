//! When acknowledged writes reach the disk.
//!
//! Every write is in the operating system's buffers before it is
//! acknowledged (fjall flushes its journal on each write), so it survives a
//! crash or `kill -9` of the host. What differs between policies is power
//! loss: [`Durability::Buffered`] fsyncs in the background every
//! `sync_interval`, [`Durability::Fsync`] makes each writer wait for an
//! fsync. An fsync costs ~0.2 ms here, so Fsync mode shares one fsync among
//! all writers that arrived while the previous one ran (group commit):
//! throughput is not limited to one fsync per write. The fsync goes through
//! [`ActiveJournal`], so writers keep appending while it runs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::{Database, PersistMode};
use tokio::sync::watch;

use super::journal_file::ActiveJournal;
use crate::store::{StoreError, StoreResult};

/// How acknowledged writes are made durable against power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge once the write is in OS buffers; fsync every `sync_interval`.
    Buffered { sync_interval: Duration },
    /// Acknowledge only after an fsync (shared by concurrent writers).
    Fsync,
}

/// How often buffered writes are fsynced unless configured otherwise.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

impl Default for Durability {
    fn default() -> Self {
        Durability::Buffered {
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// Owns the fsync thread; dropping it performs a final fsync and joins it.
pub struct Syncer {
    durability: Durability,
    /// Count of writes so far; a write's sequence number is the count after it.
    written: Arc<AtomicU64>,
    wake: Option<mpsc::Sender<()>>,
    /// Highest write sequence number known to be on disk; `None` once an
    /// fsync failed (fjall then refuses further writes).
    synced: watch::Receiver<Option<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the fsync thread of the database `db` at `dir`.
    pub fn start(db: Database, dir: &Path, durability: Durability) -> std::io::Result<Self> {
        let (wake, wake_rx) = mpsc::channel();
        let (synced_tx, synced) = watch::channel(Some(0));
        let written = Arc::new(AtomicU64::new(0));
        let interval = match durability {
            Durability::Buffered { sync_interval } => sync_interval,
            // Writers wake the thread; the timeout only bounds an idle wait.
            Durability::Fsync => Duration::from_secs(60),
        };
        let thread_written = written.clone();
        let journal = ActiveJournal::new(dir);
        let thread = std::thread::Builder::new()
            .name("edge-session-fsync".into())
            .spawn(move || {
                sync_loop(
                    &db,
                    journal,
                    &wake_rx,
                    interval,
                    &thread_written,
                    &synced_tx,
                )
            })?;
        Ok(Self {
            durability,
            written,
            wake: Some(wake),
            synced,
            thread: Some(thread),
        })
    }

    /// Call after each write the database accepted. In Fsync mode this waits
    /// until the write is on disk.
    pub async fn written(&self) -> StoreResult<()> {
        let seq = self.written.fetch_add(1, Ordering::AcqRel) + 1;
        if self.durability != Durability::Fsync {
            return Ok(());
        }
        if let Some(wake) = &self.wake {
            let _ = wake.send(());
        }
        let mut synced = self.synced.clone();
        let state = synced
            .wait_for(|s| s.is_none_or(|done| done >= seq))
            .await
            .map_err(|_| StoreError::Unavailable("store is shutting down".into()))?;
        match *state {
            Some(_) => Ok(()),
            None => Err(StoreError::Internal(anyhow::anyhow!(
                "fsync failed; see the host log"
            ))),
        }
    }
}

impl Syncer {
    /// Writes counted so far, and the highest one known to be on disk (0
    /// once an fsync failed).
    pub fn progress(&self) -> (u64, u64) {
        let on_disk = self.synced.borrow().unwrap_or(0);
        (self.written.load(Ordering::Acquire), on_disk)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Disconnecting the channel asks the thread for a last fsync and exit.
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sync_loop(
    db: &Database,
    mut journal: ActiveJournal,
    wake: &mpsc::Receiver<()>,
    interval: Duration,
    written: &AtomicU64,
    synced: &watch::Sender<Option<u64>>,
) {
    let mut on_disk = 0;
    let mut warned = false;
    loop {
        let stopping = matches!(
            wake.recv_timeout(interval),
            Err(RecvTimeoutError::Disconnected)
        );
        // Everyone who woke us while we slept shares this fsync.
        while wake.try_recv().is_ok() {}
        // Writes counted so far are already in the journal's OS buffers.
        let target = written.load(Ordering::Acquire);
        if target != on_disk {
            if let Err(error) = sync(db, &mut journal, &mut warned) {
                tracing::error!(%error, "fsync of the session store failed; writes are refused from now on");
                synced.send_replace(None);
                return;
            }
            on_disk = target;
            synced.send_replace(Some(on_disk));
        }
        if stopping {
            return;
        }
    }
}

/// Fsyncs the journal without holding up writers, or through fjall (which
/// does) when the journal file cannot be found or synced: fjall then also
/// refuses further writes if its own fsync fails.
fn sync(db: &Database, journal: &mut ActiveJournal, warned: &mut bool) -> fjall::Result<()> {
    match journal.sync_data() {
        Ok(()) => Ok(()),
        Err(error) => {
            if !std::mem::replace(warned, true) {
                tracing::warn!(%error, "fsyncing the session store's journal through the database instead, which holds up writers while it runs");
            }
            db.persist(PersistMode::SyncData)
        }
    }
}
