//! Bin values: what a record stores, how a value travels as a top-level bin
//! "particle", and the server's canonical ordering that keeps map keys sorted.

use std::cmp::Ordering;

use crate::msgpack;
use crate::result_code::{PARAMETER_ERROR, ResultCode};

// Particle types (`as_particle_type` on the server).
pub(crate) const PARTICLE_NULL: u8 = 0;
const PARTICLE_INTEGER: u8 = 1;
const PARTICLE_FLOAT: u8 = 2;
pub(crate) const PARTICLE_STRING: u8 = 3;
pub(crate) const PARTICLE_BLOB: u8 = 4;
const PARTICLE_BOOL: u8 = 17;
const PARTICLE_HLL: u8 = 18;
const PARTICLE_MAP: u8 = 19;
const PARTICLE_LIST: u8 = 20;

/// Map flag bits kept on a stored map: key-ordered (1) and key-value-ordered
/// (3). The persisted-index bit (0x10) only tunes the real server's storage.
pub(crate) const MAP_ORDER_MASK: u8 = 0x03;
pub(crate) const MAP_FLAG_K_ORDERED: u8 = 0x01;
/// Marks a key-value result whose pair order matters; clients decode it as a
/// list of pairs.
pub(crate) const MAP_FLAG_PRESERVE_ORDER: u8 = 0x08;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// UTF-8 is the client's business; the server stores the bytes.
    Str(Vec<u8>),
    /// A byte payload with its particle type: blob (4) or HyperLogLog (18).
    Bytes(u8, Vec<u8>),
    List(Vec<Value>),
    Map(Map),
}

/// A map, always kept in the server's canonical key order: the real server
/// returns every map that way, whatever order it was written in.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Map {
    /// Wire flags (order bits; result maps may carry PRESERVE_ORDER).
    pub(crate) flags: u8,
    entries: Vec<(Value, Value)>,
}

impl Map {
    pub(crate) fn new(flags: u8) -> Self {
        Self {
            flags,
            entries: Vec::new(),
        }
    }

    /// A map from pairs in any order; duplicate keys are a parameter error.
    pub(crate) fn from_pairs(
        flags: u8,
        mut entries: Vec<(Value, Value)>,
    ) -> Result<Self, ResultCode> {
        entries.sort_by(|a, b| canonical_cmp(&a.0, &b.0));
        if entries
            .windows(2)
            .any(|w| canonical_cmp(&w[0].0, &w[1].0) == Ordering::Equal)
        {
            return Err(PARAMETER_ERROR);
        }
        Ok(Self { flags, entries })
    }

    pub(crate) fn entries(&self) -> &[(Value, Value)] {
        &self.entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// `Ok(index)` of the key, or `Err(index)` where it would be inserted.
    pub(crate) fn find(&self, key: &Value) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(k, _)| canonical_cmp(k, key))
    }

    pub(crate) fn insert(&mut self, key: Value, value: Value) {
        match self.find(&key) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    pub(crate) fn remove(&mut self, index: usize) -> (Value, Value) {
        self.entries.remove(index)
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

impl Value {
    /// Only integers, strings and blobs may key a map (`map_is_key`).
    pub(crate) fn is_map_key(&self) -> bool {
        matches!(
            self,
            Value::Int(_) | Value::Str(_) | Value::Bytes(PARTICLE_BLOB, _)
        )
    }

    /// Decodes a bin value sent by a client as `(particle type, bytes)`.
    /// The null particle (a bin delete) is handled by the caller.
    pub(crate) fn from_particle(particle: u8, bytes: &[u8]) -> Result<Value, ResultCode> {
        match particle {
            // Like `integer_from_wire`: 1, 2, 4 or 8 big-endian bytes.
            PARTICLE_INTEGER => match bytes.len() {
                1 | 2 | 4 | 8 => {
                    let mut be = [0u8; 8];
                    be[8 - bytes.len()..].copy_from_slice(bytes);
                    Ok(Value::Int(i64::from_be_bytes(be)))
                }
                _ => Err(PARAMETER_ERROR),
            },
            PARTICLE_FLOAT => <[u8; 8]>::try_from(bytes)
                .map(|be| Value::Float(f64::from_be_bytes(be)))
                .map_err(|_| PARAMETER_ERROR),
            PARTICLE_BOOL => match bytes {
                [b] => Ok(Value::Bool(*b != 0)),
                _ => Err(PARAMETER_ERROR),
            },
            PARTICLE_STRING => Ok(Value::Str(bytes.to_vec())),
            PARTICLE_BLOB | PARTICLE_HLL => Ok(Value::Bytes(particle, bytes.to_vec())),
            PARTICLE_MAP => match msgpack::decode(bytes)? {
                map @ Value::Map(_) => Ok(map),
                _ => Err(PARAMETER_ERROR),
            },
            PARTICLE_LIST => match msgpack::decode(bytes)? {
                list @ Value::List(_) => Ok(list),
                _ => Err(PARAMETER_ERROR),
            },
            // GeoJSON, the retired language blobs and unknown types.
            _ => Err(PARAMETER_ERROR),
        }
    }

    /// The particle type and bytes a reply carries for this value.
    pub(crate) fn to_particle(&self) -> (u8, Vec<u8>) {
        match self {
            Value::Nil => (PARTICLE_NULL, Vec::new()),
            Value::Bool(b) => (PARTICLE_BOOL, vec![u8::from(*b)]),
            Value::Int(i) => (PARTICLE_INTEGER, i.to_be_bytes().to_vec()),
            Value::Float(f) => (PARTICLE_FLOAT, f.to_be_bytes().to_vec()),
            Value::Str(s) => (PARTICLE_STRING, s.clone()),
            Value::Bytes(particle, b) => (*particle, b.clone()),
            Value::List(_) => (PARTICLE_LIST, msgpack::encode(self)),
            Value::Map(_) => (PARTICLE_MAP, msgpack::encode(self)),
        }
    }

    /// Bytes this value takes in a stored record, close to the server's flat
    /// format; only used to enforce the record size limit.
    pub(crate) fn stored_size(&self) -> usize {
        match self {
            Value::Nil => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 8,
            Value::Str(b) | Value::Bytes(_, b) => 4 + b.len(),
            Value::List(_) | Value::Map(_) => 4 + msgpack::encode(self).len(),
        }
    }
}

/// The server's canonical order (`msgpack_cmp`): first by type —
/// nil < false < true < integers < strings < lists < maps < bytes < floats —
/// then by content. Maps compare by size first, then entry by entry.
pub(crate) fn canonical_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Nil => 0,
            Value::Bool(false) => 1,
            Value::Bool(true) => 2,
            Value::Int(_) => 3,
            Value::Str(_) => 4,
            Value::List(_) => 5,
            Value::Map(_) => 6,
            Value::Bytes(..) => 7,
            Value::Float(_) => 8,
        }
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Bytes(tx, x), Value::Bytes(ty, y)) => (tx, x).cmp(&(ty, y)),
        (Value::List(x), Value::List(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| canonical_cmp(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Map(x), Value::Map(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.entries
                .iter()
                .zip(&y.entries)
                .map(|((kx, vx), (ky, vy))| {
                    canonical_cmp(kx, ky).then_with(|| canonical_cmp(vx, vy))
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_order_puts_types_in_server_order() {
        let mut values = vec![
            Value::Float(0.5),
            Value::Bytes(PARTICLE_BLOB, vec![1]),
            Value::Map(Map::new(0)),
            Value::List(vec![]),
            Value::Str(b"a".to_vec()),
            Value::Int(-3),
            Value::Bool(true),
            Value::Bool(false),
            Value::Nil,
        ];
        values.sort_by(canonical_cmp);
        assert_eq!(values[0], Value::Nil);
        assert_eq!(values[3], Value::Int(-3));
        assert_eq!(values[8], Value::Float(0.5));
    }

    #[test]
    fn shorter_list_prefix_sorts_first() {
        let short = Value::List(vec![Value::Int(1)]);
        let long = Value::List(vec![Value::Int(1), Value::Int(0)]);
        let other = Value::List(vec![Value::Int(0), Value::Int(9)]);
        assert_eq!(canonical_cmp(&short, &long), Ordering::Less);
        assert_eq!(canonical_cmp(&other, &short), Ordering::Less);
    }

    #[test]
    fn integer_particles_of_every_width_decode() {
        assert_eq!(Value::from_particle(1, &[7]), Ok(Value::Int(7)));
        assert_eq!(Value::from_particle(1, &[1, 0]), Ok(Value::Int(256)));
        assert_eq!(
            Value::from_particle(1, &(-2i64).to_be_bytes()),
            Ok(Value::Int(-2))
        );
        assert_eq!(Value::from_particle(1, &[0, 0, 0]), Err(PARAMETER_ERROR));
        assert_eq!(Value::from_particle(23, b"{}"), Err(PARAMETER_ERROR));
    }

    #[test]
    fn duplicate_map_keys_are_refused() {
        let pairs = vec![(Value::Int(1), Value::Nil), (Value::Int(1), Value::Int(2))];
        assert_eq!(Map::from_pairs(0, pairs), Err(PARAMETER_ERROR));
    }
}
