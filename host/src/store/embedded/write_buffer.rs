//! A ceiling on the memory held by writes not yet flushed into tables.
//!
//! fjall flushes a keyspace's memtable once it passes the size the keyspace
//! was created with (a setting fixed at creation), and in 3.1 enforces no
//! limit across keyspaces (its `max_write_buffer_size` is not read). So a
//! thread of ours checks the total a few times a second and, past the
//! configured ceiling, flushes every memtable that is not already being
//! flushed. Between two checks the total can pass the ceiling by what is
//! written in one tick.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::{Database, Keyspace};

/// How often the total is checked.
const TICK: Duration = Duration::from_millis(250);

/// Owns the checking thread; dropping it stops the thread.
pub struct WriteBufferLimit {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBufferLimit {
    pub fn start(db: Database, keyspaces: Vec<Keyspace>, limit: u64) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("edge-session-write-buffer".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    if db.write_buffer_size() > limit {
                        flush(&keyspaces);
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Starts a flush of each keyspace's memtable, unless one is under way
/// (its memory is on its way out; fjall slows writers if flushes lag).
fn flush(keyspaces: &[Keyspace]) {
    for keyspace in keyspaces {
        if keyspace.sealed_memtable_count() > 0 {
            continue;
        }
        if let Err(error) = keyspace.rotate_memtable() {
            tracing::warn!(%error, "flushing the session store's memtable failed");
        }
    }
}

impl Drop for WriteBufferLimit {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
