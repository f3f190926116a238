//! The journal file fjall appends to, fsynced through a descriptor of our own.
//!
//! fjall's `Database::persist` holds the journal's lock for the whole fsync
//! (~2 ms on the development machine's disk), and every writer, on a tokio
//! worker thread, waits behind it: once a second all workers stalled, which
//! set the p99.9 latency of a write-per-request workload. An fsync through
//! another descriptor of the same file makes the same data durable without
//! that lock, so writers keep appending while it runs.
//!
//! This relies on fjall's layout, checked by the tests below: the active
//! journal is the highest-numbered `N.jnl` in the database directory, and a
//! journal is fsynced by fjall itself when it stops being the active one
//! (rotation persists it with `SyncAll` before switching). So a write made
//! before [`ActiveJournal::sync_data`] lists the directory is either in the
//! file it finds or already on disk.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub struct ActiveJournal {
    dir: PathBuf,
    /// The journal opened last, by its number, reused while it stays active.
    open: Option<(u64, File)>,
}

impl ActiveJournal {
    /// The journals of the database at `dir`, made absolute as fjall does
    /// at open, so that both name the same files.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            open: None,
        }
    }

    /// Fsyncs the data of the active journal.
    pub fn sync_data(&mut self) -> io::Result<()> {
        let newest = newest_journal(&self.dir)?;
        let file = match self.open.take() {
            Some((number, file)) if number == newest => file,
            _ => File::open(journal_path(&self.dir, newest))?,
        };
        let synced = file.sync_data();
        self.open = Some((newest, file));
        synced
    }
}

fn journal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number}.jnl"))
}

fn newest_journal(dir: &Path) -> io::Result<u64> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.strip_suffix(".jnl"))
            .and_then(|number| number.parse::<u64>().ok());
        newest = newest.max(number);
    }
    newest.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no journal file (N.jnl) in {}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use fjall::{Database, KeyspaceCreateOptions};

    use super::*;

    fn active_journal_holds(dir: &Path, marker: &[u8]) -> bool {
        let path = journal_path(dir, newest_journal(dir).unwrap());
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(marker.len()).any(|w| w == marker)
    }

    #[test]
    fn the_active_journal_is_the_file_fjall_appends_to_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        let keyspace = db
            .keyspace("sessions", KeyspaceCreateOptions::default)
            .unwrap();
        let mut journal = ActiveJournal::new(dir.path());

        keyspace.insert("k", "first-marker-value").unwrap();
        journal.sync_data().unwrap();
        assert!(active_journal_holds(dir.path(), b"first-marker-value"));
        let first = newest_journal(dir.path()).unwrap();

        // fjall starts a new journal when it flushes a memtable after more
        // than 64 MB went into the active journal; writes go there.
        // Random, so that journal compression cannot shrink it.
        let mut filler = vec![0; 1 << 20];
        rand::fill(&mut filler[..]);
        for i in 0..65 {
            keyspace.insert(format!("filler-{i}"), &filler).unwrap();
        }
        keyspace.rotate_memtable_and_wait().unwrap();
        keyspace.insert("k", "second-marker-value").unwrap();
        journal.sync_data().unwrap();
        assert!(newest_journal(dir.path()).unwrap() > first);
        assert!(active_journal_holds(dir.path(), b"second-marker-value"));
        assert!(!active_journal_holds(dir.path(), b"first-marker-value"));
    }

    #[test]
    fn a_directory_without_a_journal_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.jnl.bak"), "").unwrap();
        let error = ActiveJournal::new(dir.path()).sync_data().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(error.to_string().contains("no journal file"), "{error}");
    }
}
