//! Records in memory, keyed by namespace and digest, with the server's
//! metadata: 16-bit generation and a void-time in seconds since 2010-01-01.
//! Expired records are invisible; they are dropped when met and by a sweep.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::value::Value;

/// Aerospike's epoch (2010-01-01T00:00:00Z) in Unix seconds.
const CITRUSLEAF_EPOCH_UNIX_SECS: u64 = 1_262_304_000;

/// Fixed part of a stored record (index entry and flat-record header),
/// counted against the record size limit.
const RECORD_OVERHEAD: usize = 48;

/// Seconds since the Aerospike epoch, the unit of void-times.
pub(crate) fn now_clepoch() -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(unix.saturating_sub(CITRUSLEAF_EPOCH_UNIX_SECS)).unwrap_or(u32::MAX)
}

pub(crate) struct Namespace {
    pub(crate) name: String,
    /// `nsup-period 0` with `allow-ttl-without-nsup false`: writes that would
    /// give a record a TTL are refused.
    pub(crate) forbid_ttl: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) set: Option<Vec<u8>>,
    /// Bins in creation order, which is the order the server returns them in.
    pub(crate) bins: Vec<(Vec<u8>, Value)>,
    pub(crate) generation: u16,
    /// 0 means "never expires".
    pub(crate) void_time: u32,
}

impl Record {
    pub(crate) fn new(set: Option<Vec<u8>>) -> Self {
        Self {
            set,
            bins: Vec::new(),
            generation: 0,
            void_time: 0,
        }
    }

    pub(crate) fn bin(&self, name: &[u8]) -> Option<&Value> {
        self.bins.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Replaces the bin in place, or appends a new one.
    pub(crate) fn set_bin(&mut self, name: &[u8], value: Value) {
        match self.bins.iter_mut().find(|(n, _)| n == name) {
            Some((_, slot)) => *slot = value,
            None => self.bins.push((name.to_vec(), value)),
        }
    }

    pub(crate) fn remove_bin(&mut self, name: &[u8]) {
        self.bins.retain(|(n, _)| n != name);
    }

    pub(crate) fn is_expired(&self, now: u32) -> bool {
        self.void_time != 0 && self.void_time < now
    }

    pub(crate) fn stored_size(&self) -> usize {
        let set = self.set.as_ref().map_or(0, Vec::len);
        let bins: usize = self
            .bins
            .iter()
            .map(|(name, value)| 2 + name.len() + value.stored_size())
            .sum();
        RECORD_OVERHEAD + set + bins
    }

    /// The set name, then each bin's name and value particle, back to back.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.set.clone().unwrap_or_default();
        for (name, value) in &self.bins {
            bytes.extend_from_slice(name);
            bytes.extend(value.to_particle().1);
        }
        bytes
    }
}

pub(crate) type Digest = [u8; 20];

/// The namespaces and everything stored in them.
pub(crate) struct Database {
    namespaces: Vec<Namespace>,
    pub(crate) max_record_bytes: usize,
    records: Mutex<HashMap<(usize, Digest), Record>>,
}

impl Database {
    pub(crate) fn new(namespaces: Vec<Namespace>, max_record_bytes: usize) -> Self {
        Self {
            namespaces,
            max_record_bytes,
            records: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// The namespace's index, which keys its records.
    pub(crate) fn namespace(&self, name: &[u8]) -> Option<(usize, &Namespace)> {
        self.namespaces
            .iter()
            .enumerate()
            .find(|(_, ns)| ns.name.as_bytes() == name)
    }

    /// Commands run under this lock from start to end, which makes each one
    /// atomic like a command under the server's record lock.
    pub(crate) fn lock(&self) -> Records<'_> {
        Records(self.records.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn sweep(&self, now: u32) {
        self.lock().0.retain(|_, r| !r.is_expired(now));
    }

    /// Deletes every record of a namespace, or of one set in it.
    pub(crate) fn truncate(&self, namespace: usize, set: Option<&[u8]>) {
        self.lock().0.retain(|(ns, _), record| {
            *ns != namespace || set.is_some_and(|set| record.set.as_deref() != Some(set))
        });
    }

    /// Records of one set of a namespace, expired ones not yet swept
    /// included (as the server counts them), and their stored bytes.
    pub(crate) fn set_size(&self, namespace: usize, set: &[u8]) -> (usize, usize) {
        self.lock()
            .0
            .iter()
            .filter(|((ns, _), record)| *ns == namespace && record.set.as_deref() == Some(set))
            .fold((0, 0), |(count, bytes), (_, record)| {
                (count + 1, bytes + record.stored_size())
            })
    }

    pub(crate) fn record_count(&self) -> usize {
        self.lock().0.len()
    }

    pub(crate) fn record_bytes(&self) -> Vec<Vec<u8>> {
        self.lock().0.values().map(Record::to_bytes).collect()
    }
}

pub(crate) struct Records<'a>(MutexGuard<'a, HashMap<(usize, Digest), Record>>);

impl Records<'_> {
    /// The live record under `key`; an expired one is removed on the way.
    pub(crate) fn live(&mut self, key: (usize, Digest), now: u32) -> Option<&Record> {
        if self.0.get(&key).is_some_and(|r| r.is_expired(now)) {
            self.0.remove(&key);
        }
        self.0.get(&key)
    }

    pub(crate) fn insert(&mut self, key: (usize, Digest), record: Record) {
        self.0.insert(key, record);
    }

    pub(crate) fn remove(&mut self, key: (usize, Digest)) {
        self.0.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Database {
        let ns = Namespace {
            name: "test".into(),
            forbid_ttl: false,
        };
        Database::new(vec![ns], 1 << 20)
    }

    #[test]
    fn expired_records_are_invisible_and_swept() {
        let db = database();
        let mut record = Record::new(None);
        record.void_time = 100;
        db.lock().insert((0, [1; 20]), record.clone());
        db.lock().insert((0, [2; 20]), record);
        assert!(db.lock().live((0, [1; 20]), 100).is_some());
        assert!(db.lock().live((0, [1; 20]), 101).is_none());
        assert_eq!(db.record_count(), 1);
        db.sweep(101);
        assert_eq!(db.record_count(), 0);
    }

    #[test]
    fn bins_keep_creation_order() {
        let mut record = Record::new(None);
        record.set_bin(b"b", Value::Int(1));
        record.set_bin(b"a", Value::Int(2));
        record.set_bin(b"b", Value::Int(3));
        let names: Vec<&[u8]> = record.bins.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, [b"b", b"a"]);
        record.remove_bin(b"b");
        assert_eq!(record.bin(b"a"), Some(&Value::Int(2)));
        assert_eq!(record.bin(b"b"), None);
    }
}
