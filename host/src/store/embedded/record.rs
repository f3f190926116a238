//! The on-disk layout of one session record and of its expiry-index entry.
//!
//! A record is `[format: u8][expires_at_ms: u64 LE][generation: u64 LE]
//! [created_at_ms: u64 LE][data]` where `data` is the session's compact JSON
//! text (format 2). Format 1 lacked `created_at_ms`; such records read as
//! created at the epoch, so an absolute lifetime limit ends them.
//!
//! Record keys are `namespace 0x00 id`; namespaces never contain 0x00, so
//! keys of different namespaces cannot collide. Expiry-index keys are
//! `expires_at_ms: u64 BE` followed by the record key, so a range scan from
//! zero to now yields every record that may have expired.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::store::SessionKey;

const FORMAT: u8 = 2;
const HEADER_LEN: usize = 1 + 8 + 8 + 8;
const FORMAT_1_HEADER_LEN: usize = 1 + 8 + 8;

/// A decoded record, borrowing its data from the stored bytes.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub expires_at_ms: u64,
    pub generation: u64,
    pub created_at_ms: u64,
    pub data: &'a str,
}

impl<'a> Record<'a> {
    pub fn decode(bytes: &'a [u8]) -> anyhow::Result<Self> {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let (created_at_ms, data_at) = match bytes.first() {
            Some(&FORMAT) if bytes.len() >= HEADER_LEN => (u64_at(17), HEADER_LEN),
            Some(1) if bytes.len() >= FORMAT_1_HEADER_LEN => (0, FORMAT_1_HEADER_LEN),
            _ => bail!("corrupt session record (format byte or length)"),
        };
        let data = std::str::from_utf8(&bytes[data_at..])
            .context("corrupt session record (data is not UTF-8)")?;
        Ok(Self {
            expires_at_ms: u64_at(1),
            generation: u64_at(9),
            created_at_ms,
            data,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.data.len());
        bytes.push(FORMAT);
        bytes.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        bytes.extend_from_slice(&self.generation.to_le_bytes());
        bytes.extend_from_slice(&self.created_at_ms.to_le_bytes());
        bytes.extend_from_slice(self.data.as_bytes());
        bytes
    }

    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms > now_ms
    }

    pub fn expires_in(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.expires_at_ms.saturating_sub(now_ms))
    }
}

pub fn record_key(key: SessionKey<'_>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(key.namespace.len() + 1 + key.id.len());
    bytes.extend_from_slice(key.namespace.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.id.as_bytes());
    bytes
}

pub fn index_key(expires_at_ms: u64, record_key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + record_key.len());
    bytes.extend_from_slice(&expires_at_ms.to_be_bytes());
    bytes.extend_from_slice(record_key);
    bytes
}

/// Splits an expiry-index key into its timestamp and record key.
pub fn split_index_key(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (timestamp, record_key) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*timestamp), record_key))
}

/// Wall-clock time: expiry must survive restarts, so it cannot be monotonic.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn expiry_after(now_ms: u64, ttl: Duration) -> u64 {
    now_ms.saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let record = Record {
            expires_at_ms: 1_700_000_000_123,
            generation: 7,
            created_at_ms: 1_600_000_000_000,
            data: r#"{"a":"é"}"#,
        };
        let bytes = record.encode();
        let back = Record::decode(&bytes).unwrap();
        assert_eq!(
            (
                back.expires_at_ms,
                back.generation,
                back.created_at_ms,
                back.data
            ),
            (record.expires_at_ms, 7, record.created_at_ms, record.data)
        );
    }

    #[test]
    fn rejects_corrupt_bytes() {
        assert!(Record::decode(&[]).is_err());
        assert!(Record::decode(&[9; 20]).is_err());
        let mut bytes = Record {
            expires_at_ms: 1,
            generation: 1,
            created_at_ms: 1,
            data: "{}",
        }
        .encode();
        bytes.push(0xff);
        assert!(Record::decode(&bytes).is_err());
    }

    #[test]
    fn format_1_records_read_as_created_at_the_epoch() {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(b"{}");
        let record = Record::decode(&bytes).unwrap();
        assert_eq!(
            (
                record.expires_at_ms,
                record.generation,
                record.created_at_ms,
                record.data
            ),
            (5, 3, 0, "{}")
        );
    }

    #[test]
    fn index_keys_sort_by_time_and_split_back() {
        let key = record_key(SessionKey::new("ns", "id"));
        let early = index_key(5, &key);
        let late = index_key(256, &key);
        assert!(early < late);
        assert_eq!(split_index_key(&late), Some((256, &key[..])));
        assert_eq!(split_index_key(&[1, 2]), None);
    }
}
