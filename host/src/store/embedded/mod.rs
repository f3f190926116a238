//! The default backend: an embedded, durable store in the host process.
//!
//! Built on fjall, a log-structured (LSM) key-value engine: every write is
//! one append to its journal (in OS buffers before we acknowledge it, see
//! [`syncer`]), reads of hot sessions come from its memtable or block cache
//! in a few microseconds, and memory stays bounded by its cache however
//! many sessions there are. A B-tree store such as redb would need one
//! fsync'd transaction per write, or lose unsynced commits on a crash.
//!
//! Operations that read and then write one session (field ops, save-if,
//! touch) hold a lock stripe for that key while they run, so they are
//! atomic; reads take no lock.
//!
//! Expiry: a read treats a record past its expiry as absent at once. A
//! background sweep deletes dead records through an expiry index (see
//! [`record`]). The index is lazy, so that `touch` stays a single write: an
//! entry may be earlier than its record's expiry, and when the sweep meets
//! an entry whose record is still live it moves the entry to the record's
//! current expiry. Writes that make the expiry earlier add an entry.
//!
//! Restarts: fjall replays at open the journal entries that are not yet in
//! its tables (its memtables), which after sustained writes took seconds.
//! Closing the store flushes the memtables into tables, so a start after a
//! graceful stop replays nothing; after a crash, what there is to replay is
//! bounded by the memtable size and the journal ceiling, and the log says
//! how much it was. The memory and disk this costs are in
//! `docs/embedded-store.md`.

mod config;
mod journal_file;
mod record;
mod syncer;
mod write_buffer;

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};

pub use self::config::{DurabilityMode, EmbeddedSection};
use self::record::{Record, expiry_after, index_key, now_ms, record_key, split_index_key};
use self::syncer::Syncer;
pub use self::syncer::{DEFAULT_SYNC_INTERVAL, Durability};
use self::write_buffer::WriteBufferLimit;
use super::{
    SessionKey, SessionStore, StoreError, StoreResult, StoreSize, StoredSession, increment_error,
};
use crate::session::json_object::JsonObject;

const LOCK_STRIPES: usize = 1024;
/// Largest memtable of each keyspace before it is flushed into a table
/// (fjall's default is 64 MiB). It bounds both the memory of unflushed
/// writes and what a crash restart replays. fjall records it when it
/// creates a keyspace, so a store keeps the size it was created with.
const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;
/// How long closing waits for the memtables' flush before leaving them to
/// the next open's replay (it takes well under a second when the disk works).
const FLUSH_ON_CLOSE_LIMIT: Duration = Duration::from_secs(30);
/// Index entries handled per sweep step, so writers are never held up long.
const SWEEP_BATCH: usize = 512;

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Directory of the database; created when missing.
    pub path: PathBuf,
    pub durability: Durability,
    /// How often expired sessions are deleted from disk.
    pub sweep_interval: Duration,
    /// Block cache size: the memory used for sessions read from disk.
    pub cache_bytes: u64,
    /// Largest session (JSON text bytes) a field operation may produce.
    pub max_session_bytes: usize,
    /// Memory for writes not yet flushed into tables (every memtable).
    pub write_buffer_bytes: u64,
    /// Journal size past which the oldest journal's writes are flushed so
    /// it can be deleted: the bound of what a crash restart reads.
    pub max_journal_bytes: u64,
}

/// The smallest journal ceiling fjall accepts.
pub const MIN_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

impl EmbeddedConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::default(),
            sweep_interval: Duration::from_secs(30),
            cache_bytes: 64 * 1024 * 1024,
            max_session_bytes: crate::store::DEFAULT_MAX_SESSION_BYTES,
            write_buffer_bytes: 32 * 1024 * 1024,
            max_journal_bytes: 2 * MIN_JOURNAL_BYTES,
        }
    }
}

/// What opening the store found on disk.
#[derive(Clone, Copy, Debug)]
pub struct Recovery {
    /// Disk space of the journal at open.
    pub journal_bytes: u64,
    /// Bytes of writes that were in the journal only, not yet in tables,
    /// and were replayed into memory: zero after a graceful stop.
    pub replayed_bytes: u64,
    /// How long opening took.
    pub took: Duration,
}

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired sessions deleted.
    pub expired: usize,
    /// Index entries moved to a later expiry or dropped as stale.
    pub reindexed: usize,
}

/// The embedded session store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    recovery: Recovery,
    write_buffer_limit: Option<WriteBufferLimit>,
    stop_sweeper: Option<mpsc::Sender<()>>,
    sweeper: Option<JoinHandle<()>>,
}

struct Inner {
    db: Database,
    records: Keyspace,
    expiry_index: Keyspace,
    stripes: Box<[Mutex<()>]>,
    stripe_hasher: RandomState,
    syncer: Syncer,
    max_session_bytes: usize,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `config.path` and starts its fsync
    /// and sweep threads.
    pub fn open(config: EmbeddedConfig) -> anyhow::Result<Self> {
        let started = Instant::now();
        let journal_bytes = journal_bytes(&config.path);
        if journal_bytes > 0 {
            tracing::info!(
                journal_bytes,
                "opening the session store: reading its journal for writes not yet in its tables"
            );
        }
        let db = Database::builder(&config.path)
            .cache_size(config.cache_bytes)
            .max_journaling_size(config.max_journal_bytes)
            .open()
            .with_context(|| format!("opening the session store at {}", config.path.display()))?;
        let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let records = db.keyspace("sessions", options)?;
        let expiry_index = db.keyspace("expiry", options)?;
        let recovery = Recovery {
            journal_bytes,
            // What recovery put back into memtables (fjall counts it in the
            // write buffer before any request writes).
            replayed_bytes: db.write_buffer_size(),
            took: started.elapsed(),
        };
        if journal_bytes > 0 {
            tracing::info!(
                replayed_bytes = recovery.replayed_bytes,
                took_ms = recovery.took.as_millis() as u64,
                "session store open"
            );
        }
        let syncer = Syncer::start(db.clone(), &config.path, config.durability)?;
        let write_buffer_limit = WriteBufferLimit::start(
            db.clone(),
            vec![records.clone(), expiry_index.clone()],
            config.write_buffer_bytes,
        )?;
        let inner = Arc::new(Inner {
            db,
            records,
            expiry_index,
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hasher: RandomState::new(),
            syncer,
            max_session_bytes: config.max_session_bytes,
        });
        let (stop_sweeper, stop) = mpsc::channel();
        let sweeper = std::thread::Builder::new()
            .name("edge-session-sweep".into())
            .spawn({
                let inner = inner.clone();
                move || sweep_loop(&inner, &stop, config.sweep_interval)
            })?;
        Ok(Self {
            inner,
            recovery,
            write_buffer_limit: Some(write_buffer_limit),
            stop_sweeper: Some(stop_sweeper),
            sweeper: Some(sweeper),
        })
    }

    /// Deletes every session that has expired by now. The background thread
    /// calls this every `sweep_interval`; it is public for tools and tests.
    pub fn sweep_expired(&self) -> anyhow::Result<SweepStats> {
        self.inner.sweep(now_ms())
    }

    /// Records on disk, including expired ones the sweep has not deleted yet.
    /// Walks the whole store: for tools and tests, not for request paths.
    pub fn stored_records(&self) -> anyhow::Result<usize> {
        Ok(self.inner.records.len()?)
    }

    /// Bytes of writes not yet flushed into tables, held in memory (what
    /// `write_buffer_bytes` caps).
    pub fn unflushed_bytes(&self) -> u64 {
        self.inner.db.write_buffer_size()
    }

    /// What opening the store found and replayed.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Writes accepted so far, and how many of them are known to be on disk
    /// (fsynced): with [`Durability::Fsync`] every acknowledged write is.
    pub fn writes_on_disk(&self) -> (u64, u64) {
        self.inner.syncer.progress()
    }
}

impl Drop for EmbeddedStore {
    /// Closes the store so that the next open has nothing to replay.
    fn drop(&mut self) {
        self.stop_sweeper = None;
        if let Some(sweeper) = self.sweeper.take() {
            let _ = sweeper.join();
        }
        self.write_buffer_limit = None;
        match self.inner.flush_memtables() {
            Ok(()) => tracing::debug!("session store closed: every write is in its tables"),
            // Nothing is lost: the next open replays the journal instead.
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "flushing the session store on close failed"
            ),
        }
    }
}

/// The disk space the journal files of the database at `dir` take (none
/// yet: 0). Their length would overstate it: fjall preallocates each
/// journal file as a sparse 64 MiB.
fn journal_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".jnl"))
        .filter_map(|entry| entry.metadata().ok())
        // st_blocks counts 512-byte units whatever the filesystem's block size.
        .map(|metadata| metadata.blocks() * 512)
        .sum()
}

fn sweep_loop(inner: &Inner, stop: &mpsc::Receiver<()>, interval: Duration) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        match inner.sweep(now_ms()) {
            Ok(stats) if stats.expired > 0 => {
                crate::metrics::sessions_expired(stats.expired as u64);
                tracing::debug!(expired = stats.expired, "swept expired sessions")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "sweeping expired sessions failed"
            ),
        }
    }
}

impl Inner {
    /// Writes every memtable into a table and waits until no memtable is
    /// left unflushed. fjall has no public flush: `rotate_memtable` is its
    /// hidden one (its tests use it), kept to `fjall = "3.1"` by the version
    /// requirement.
    fn flush_memtables(&self) -> anyhow::Result<()> {
        for keyspace in [&self.records, &self.expiry_index] {
            keyspace.rotate_memtable()?;
        }
        // Flushes started by anyone, this one included; a flush that cannot
        // finish (a full disk) must not hang the shutdown.
        let deadline = Instant::now() + FLUSH_ON_CLOSE_LIMIT;
        for keyspace in [&self.records, &self.expiry_index] {
            while keyspace.sealed_memtable_count() > 0 {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "memtables still unflushed after {FLUSH_ON_CLOSE_LIMIT:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    fn stripe_of(&self, key: &[u8]) -> usize {
        self.stripe_hasher.hash_one(key) as usize % LOCK_STRIPES
    }

    fn lock_stripe(&self, stripe: usize) -> MutexGuard<'_, ()> {
        // A poisoned stripe only means a panic elsewhere; the () it guards is fine.
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        self.lock_stripe(self.stripe_of(key))
    }

    /// Locks the stripes of two keys, in stripe order so that two callers
    /// locking the same pair cannot deadlock.
    fn lock_pair(&self, a: &[u8], b: &[u8]) -> (MutexGuard<'_, ()>, Option<MutexGuard<'_, ()>>) {
        let (a, b) = (self.stripe_of(a), self.stripe_of(b));
        let (low, high) = (a.min(b), a.max(b));
        let first = self.lock_stripe(low);
        (first, (high != low).then(|| self.lock_stripe(high)))
    }

    /// Passes the record under `key` to `f`, decoded in place: `None` when
    /// there is none, an expired record as it is.
    fn read<T>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<Record<'_>>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let bytes = self.records.get(key).map_err(anyhow::Error::from)?;
        f(bytes.as_deref().map(Record::decode).transpose()?)
    }

    /// Like [`Inner::read`], with an expired record passed as `None`.
    fn read_live<T>(
        &self,
        key: &[u8],
        now: u64,
        f: impl FnOnce(Option<Record<'_>>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.read(key, |record| f(record.filter(|r| r.is_live(now))))
    }

    fn write_record(&self, key: &[u8], record: &Record) -> anyhow::Result<()> {
        self.records.insert(key, record.encode())?;
        Ok(())
    }

    /// Writes a record plus an index entry at its expiry, atomically.
    fn write_indexed(&self, key: &[u8], record: &Record) -> anyhow::Result<()> {
        let mut batch = self.db.batch();
        batch.insert(&self.records, key, record.encode());
        batch.insert(&self.expiry_index, index_key(record.expires_at_ms, key), []);
        batch.commit()?;
        Ok(())
    }

    /// Writes a record whose expiry moved from `old_expiry`; adds an index
    /// entry only when the expiry moved earlier (see the module docs).
    fn write_with_expiry(
        &self,
        key: &[u8],
        record: &Record,
        old_expiry: Option<u64>,
    ) -> anyhow::Result<()> {
        match old_expiry {
            Some(old) if record.expires_at_ms >= old => self.write_record(key, record),
            _ => self.write_indexed(key, record),
        }
    }

    fn check_size(&self, data: &str) -> StoreResult<()> {
        if data.len() > self.max_session_bytes {
            return Err(StoreError::TooLarge {
                limit: self.max_session_bytes,
            });
        }
        Ok(())
    }

    /// Runs `edit` on the data of a live session under its lock. When `edit`
    /// reports a change, stores the result with generation + 1 and the same
    /// expiry, and returns that generation beside `edit`'s result.
    fn edit<T>(
        &self,
        key: SessionKey<'_>,
        edit: impl FnOnce(&mut JsonObject<'_>) -> StoreResult<(T, bool)>,
    ) -> StoreResult<(T, Option<u64>)> {
        let key = record_key(key);
        let _guard = self.lock(&key);
        self.read_live(&key, now_ms(), |record| {
            let record = record.ok_or(StoreError::NotFound)?;
            let mut object = parse_data(&record)?;
            let (result, changed) = edit(&mut object)?;
            if !changed {
                return Ok((result, None));
            }
            let data = object.to_json();
            self.check_size(&data)?;
            let updated = Record {
                generation: record.generation + 1,
                data: &data,
                ..record
            };
            self.write_record(&key, &updated)?;
            Ok((result, Some(updated.generation)))
        })
    }

    fn sweep(&self, now: u64) -> anyhow::Result<SweepStats> {
        let mut stats = SweepStats::default();
        loop {
            // Collect a batch first: the iterator must not outlive the locks.
            let due: Vec<fjall::Slice> = self
                .expiry_index
                .range(..index_key(now, &[]))
                .take(SWEEP_BATCH)
                .map(|entry| entry.key())
                .collect::<Result<_, _>>()?;
            for entry in &due {
                self.sweep_entry(entry, now, &mut stats)?;
            }
            if due.len() < SWEEP_BATCH {
                return Ok(stats);
            }
        }
    }

    fn sweep_entry(&self, entry: &[u8], now: u64, stats: &mut SweepStats) -> anyhow::Result<()> {
        let Some((_, key)) = split_index_key(entry) else {
            self.expiry_index.remove(entry)?;
            return Ok(());
        };
        let _guard = self.lock(key);
        let mut batch = self.db.batch();
        batch.remove(&self.expiry_index, entry);
        self.read(key, |record| {
            match record {
                Some(record) if record.is_live(now) => {
                    batch.insert(&self.expiry_index, index_key(record.expires_at_ms, key), []);
                    stats.reindexed += 1;
                }
                Some(_) => {
                    batch.remove(&self.records, key);
                    stats.expired += 1;
                }
                None => stats.reindexed += 1,
            }
            Ok(())
        })?;
        batch.commit()?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    fn max_session_bytes(&self) -> usize {
        self.inner.max_session_bytes
    }

    /// In-process: answers whenever the host does.
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn size(&self) -> Option<StoreSize> {
        Some(StoreSize {
            sessions: self.inner.records.approximate_len() as u64,
            bytes: self.inner.db.disk_space().ok()?,
        })
    }

    async fn insert(&self, key: SessionKey<'_>, data: &str, ttl: Duration) -> StoreResult<bool> {
        let inner = &*self.inner;
        inner.check_size(data)?;
        let created = {
            let key = record_key(key);
            let _guard = inner.lock(&key);
            let now = now_ms();
            let taken = inner.read_live(&key, now, |live| Ok(live.is_some()))?;
            if !taken {
                let record = Record {
                    expires_at_ms: expiry_after(now, ttl),
                    generation: 1,
                    created_at_ms: now,
                    data,
                };
                inner.write_indexed(&key, &record)?;
            }
            !taken
        };
        if created {
            inner.syncer.written().await?;
        }
        Ok(created)
    }

    async fn load(&self, key: SessionKey<'_>) -> StoreResult<Option<StoredSession>> {
        let now = now_ms();
        self.inner.read_live(&record_key(key), now, |live| {
            Ok(live.map(|record| StoredSession {
                data: record.data.to_owned(),
                generation: record.generation,
                expires_in: record.expires_in(now),
                created_at: UNIX_EPOCH + Duration::from_millis(record.created_at_ms),
            }))
        })
    }

    async fn save(
        &self,
        key: SessionKey<'_>,
        data: &str,
        ttl: Duration,
        expected_generation: Option<u64>,
    ) -> StoreResult<u64> {
        let inner = &*self.inner;
        inner.check_size(data)?;
        let generation = {
            let key = record_key(key);
            let _guard = inner.lock(&key);
            let now = now_ms();
            inner.read(&key, |old| {
                if let Some(expected) = expected_generation {
                    let live = old.filter(|r| r.is_live(now)).ok_or(StoreError::NotFound)?;
                    if live.generation != expected {
                        return Err(StoreError::Conflict);
                    }
                }
                let record = Record {
                    expires_at_ms: expiry_after(now, ttl),
                    // Counting on from an expired record keeps generations
                    // unique per id until the sweep has removed it.
                    generation: old.map_or(1, |r| r.generation + 1),
                    // A save over a live session continues it; otherwise it is new.
                    created_at_ms: old
                        .filter(|r| r.is_live(now))
                        .map_or(now, |r| r.created_at_ms),
                    data,
                };
                inner.write_with_expiry(&key, &record, old.map(|r| r.expires_at_ms))?;
                Ok(record.generation)
            })?
        };
        inner.syncer.written().await?;
        Ok(generation)
    }

    async fn touch(&self, key: SessionKey<'_>, ttl: Duration) -> StoreResult<bool> {
        let inner = &*self.inner;
        let touched = {
            let key = record_key(key);
            let _guard = inner.lock(&key);
            let now = now_ms();
            inner.read_live(&key, now, |live| {
                let Some(record) = live else {
                    return Ok(false);
                };
                let touched = Record {
                    expires_at_ms: expiry_after(now, ttl),
                    ..record
                };
                inner.write_with_expiry(&key, &touched, Some(record.expires_at_ms))?;
                Ok(true)
            })?
        };
        if touched {
            inner.syncer.written().await?;
        }
        Ok(touched)
    }

    async fn delete(&self, key: SessionKey<'_>) -> StoreResult<bool> {
        let inner = &*self.inner;
        let (existed, was_live) = {
            let key = record_key(key);
            let _guard = inner.lock(&key);
            let (existed, was_live) = inner.read(&key, |record| {
                Ok((
                    record.is_some(),
                    record.is_some_and(|r| r.is_live(now_ms())),
                ))
            })?;
            if existed {
                // Its index entry goes stale and the sweep drops it.
                inner.records.remove(key).map_err(anyhow::Error::from)?;
            }
            (existed, was_live)
        };
        if existed {
            inner.syncer.written().await?;
        }
        Ok(was_live)
    }

    async fn rename(&self, from: SessionKey<'_>, to: SessionKey<'_>) -> StoreResult<bool> {
        let inner = &*self.inner;
        let renamed = {
            let (from, to) = (record_key(from), record_key(to));
            let _guards = inner.lock_pair(&from, &to);
            let now = now_ms();
            inner.read_live(&from, now, |live| {
                let Some(record) = live else {
                    return Ok(false);
                };
                if inner.read_live(&to, now, |taken| Ok(taken.is_some()))? {
                    return Err(StoreError::Conflict);
                }
                let mut batch = inner.db.batch();
                batch.remove(&inner.records, from.as_slice());
                batch.insert(&inner.records, to.as_slice(), record.encode());
                batch.insert(
                    &inner.expiry_index,
                    index_key(record.expires_at_ms, &to),
                    [],
                );
                batch.commit().map_err(anyhow::Error::from)?;
                Ok(true)
            })?
        };
        if renamed {
            inner.syncer.written().await?;
        }
        Ok(renamed)
    }

    async fn get_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<Option<String>> {
        self.inner.read_live(&record_key(key), now_ms(), |live| {
            let record = live.ok_or(StoreError::NotFound)?;
            let field = JsonObject::field(record.data, name)
                .context("stored session is not a JSON object")?;
            Ok(field.map(str::to_owned))
        })
    }

    async fn set_field(&self, key: SessionKey<'_>, name: &str, value: &str) -> StoreResult<u64> {
        let ((), generation) = self.inner.edit(key, |object| {
            object.set(name, Cow::Owned(value.to_owned()));
            Ok(((), true))
        })?;
        self.inner.syncer.written().await?;
        Ok(generation.expect("a set always writes"))
    }

    async fn remove_field(&self, key: SessionKey<'_>, name: &str) -> StoreResult<bool> {
        let (removed, generation) = self.inner.edit(key, |object| {
            let removed = object.remove(name);
            Ok((removed, removed))
        })?;
        if generation.is_some() {
            self.inner.syncer.written().await?;
        }
        Ok(removed)
    }

    async fn incr_field(&self, key: SessionKey<'_>, name: &str, delta: i64) -> StoreResult<i64> {
        let (value, _) = self.inner.edit(key, |object| {
            let value = object
                .increment(name, delta)
                .map_err(|e| increment_error(name, e))?;
            Ok((value, true))
        })?;
        self.inner.syncer.written().await?;
        Ok(value)
    }
}

/// The stored session data as an editable object.
fn parse_data<'a>(record: &Record<'a>) -> StoreResult<JsonObject<'a>> {
    Ok(JsonObject::parse(record.data).context("stored session is not a JSON object")?)
}
