//! MessagePack as Aerospike uses it inside list and map particles and CDT
//! operations. Written here rather than taken from a general crate because of
//! the protocol's quirks: strings and blobs are msgpack raw strings whose first
//! byte is the particle type, and a map's order flags travel as an ext value
//! in its first key slot.

use crate::result_code::{PARAMETER_ERROR, ResultCode};
use crate::value::{Map, PARTICLE_STRING, Value};

/// Deeper nesting than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Decodes exactly one value filling `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, ResultCode> {
    let mut reader = Reader::new(bytes);
    let value = reader.value()?;
    if reader.is_empty() {
        Ok(value)
    } else {
        Err(PARAMETER_ERROR)
    }
}

pub(crate) fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(value, &mut out);
    out
}

/// Reads values one after another; every malformed input is a parameter
/// error, as on the server.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ResultCode> {
        let end = self.pos.checked_add(n).ok_or(PARAMETER_ERROR)?;
        let slice = self.bytes.get(self.pos..end).ok_or(PARAMETER_ERROR)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, ResultCode> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], ResultCode> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn len(&mut self, width: usize) -> Result<usize, ResultCode> {
        Ok(match width {
            1 => usize::from(self.byte()?),
            2 => usize::from(u16::from_be_bytes(self.be()?)),
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    /// The element count of an array header.
    pub(crate) fn array_len(&mut self) -> Result<usize, ResultCode> {
        match self.byte()? {
            m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            0xdc => self.len(2),
            0xdd => self.len(4),
            _ => Err(PARAMETER_ERROR),
        }
    }

    pub(crate) fn value(&mut self) -> Result<Value, ResultCode> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, ResultCode> {
        if depth > MAX_DEPTH {
            return Err(PARAMETER_ERROR);
        }
        let marker = self.byte()?;
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.list(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.raw(usize::from(marker & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 | 0xd9 => {
                let n = self.len(1)?;
                self.raw(n)?
            }
            0xc5 | 0xda => {
                let n = self.len(2)?;
                self.raw(n)?
            }
            0xc6 | 0xdb => {
                let n = self.len(4)?;
                self.raw(n)?
            }
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::Int(i64::from(self.byte()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.be()?))),
            // The server's integers are signed: a larger u64 has no value.
            0xcf => Value::Int(
                i64::try_from(u64::from_be_bytes(self.be()?)).map_err(|_| PARAMETER_ERROR)?,
            ),
            0xd0 => Value::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xdc => {
                let n = self.len(2)?;
                self.list(n, depth)?
            }
            0xdd => {
                let n = self.len(4)?;
                self.list(n, depth)?
            }
            0xde => {
                let n = self.len(2)?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len(4)?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            // Ext values (wildcard, infinity, container flags elsewhere than
            // a map's first slot) and the unused 0xc1.
            _ => return Err(PARAMETER_ERROR),
        })
    }

    /// A string or blob: the payload's first byte is its particle type.
    fn raw(&mut self, n: usize) -> Result<Value, ResultCode> {
        match self.take(n)? {
            [PARTICLE_STRING, rest @ ..] => Ok(Value::Str(rest.to_vec())),
            [particle, rest @ ..] => Ok(Value::Bytes(*particle, rest.to_vec())),
            [] => Err(PARAMETER_ERROR),
        }
    }

    fn list(&mut self, n: usize, depth: usize) -> Result<Value, ResultCode> {
        // Every element takes a byte: a count larger than the input is a lie.
        let mut items = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
        for _ in 0..n {
            items.push(self.value_at(depth + 1)?);
        }
        Ok(Value::List(items))
    }

    fn map(&mut self, mut n: usize, depth: usize) -> Result<Value, ResultCode> {
        let mut flags = 0;
        if n > 0 && self.peek_is_ext() {
            flags = self.ext_type()?;
            self.value_at(depth + 1)?; // the flag pair's placeholder value
            n -= 1;
        }
        let mut pairs = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
        for _ in 0..n {
            let key = self.value_at(depth + 1)?;
            if !key.is_map_key() {
                return Err(PARAMETER_ERROR);
            }
            pairs.push((key, self.value_at(depth + 1)?));
        }
        Map::from_pairs(flags, pairs).map(Value::Map)
    }

    fn peek_is_ext(&self) -> bool {
        matches!(self.peek(), Some(0xc7..=0xc9 | 0xd4..=0xd8))
    }

    /// Skips an ext value and returns its type byte (the map flags).
    fn ext_type(&mut self) -> Result<u8, ResultCode> {
        let size = match self.byte()? {
            0xc7 => self.len(1)?,
            0xc8 => self.len(2)?,
            0xc9 => self.len(4)?,
            fixed @ 0xd4..=0xd8 => 1 << (fixed - 0xd4),
            _ => return Err(PARAMETER_ERROR),
        };
        let ext_type = self.byte()?;
        self.take(size)?;
        Ok(ext_type)
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => write_int(*i, out),
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => write_raw(PARTICLE_STRING, s, out),
        Value::Bytes(particle, b) => write_raw(*particle, b, out),
        Value::List(items) => {
            write_header(items.len(), [0x90, 0xdc, 0xdd], out);
            items.iter().for_each(|v| write_value(v, out));
        }
        Value::Map(map) => {
            if map.flags == 0 {
                write_header(map.len(), [0x80, 0xde, 0xdf], out);
            } else {
                write_header(map.len() + 1, [0x80, 0xde, 0xdf], out);
                out.extend_from_slice(&[0xc7, 0x00, map.flags, 0xc0]);
            }
            for (k, v) in map.entries() {
                write_value(k, out);
                write_value(v, out);
            }
        }
    }
}

/// The smallest encoding, as the server packs integers.
fn write_int(i: i64, out: &mut Vec<u8>) {
    match i {
        0..=0x7f => out.push(i as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, i as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(i as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(i as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(i as u64).to_be_bytes());
        }
        -32..=-1 => out.push(i as u8),
        -0x80..=-33 => out.extend_from_slice(&[0xd0, i as u8]),
        -0x8000..=-0x81 => {
            out.push(0xd1);
            out.extend_from_slice(&(i as i16).to_be_bytes());
        }
        -0x8000_0000..=-0x8001 => {
            out.push(0xd2);
            out.extend_from_slice(&(i as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&i.to_be_bytes());
        }
    }
}

fn write_raw(particle: u8, payload: &[u8], out: &mut Vec<u8>) {
    let n = payload.len() + 1;
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[0xd9, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.push(particle);
    out.extend_from_slice(payload);
}

/// Writes a container header; `markers` are the fix, 16-bit and 32-bit forms.
fn write_header(n: usize, markers: [u8; 3], out: &mut Vec<u8>) {
    if n < 16 {
        out.push(markers[0] | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(markers[1]);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{MAP_FLAG_K_ORDERED, PARTICLE_BLOB};

    fn round_trip(value: Value) {
        assert_eq!(decode(&encode(&value)), Ok(value));
    }

    #[test]
    fn every_value_kind_round_trips() {
        for i in [
            0,
            127,
            128,
            65_535,
            65_536,
            i64::MAX,
            -1,
            -32,
            -33,
            -129,
            -40_000,
            i64::MIN,
        ] {
            round_trip(Value::Int(i));
        }
        round_trip(Value::Float(-1.5));
        round_trip(Value::Str("x".repeat(300).into_bytes()));
        round_trip(Value::Bytes(PARTICLE_BLOB, vec![0; 70_000]));
        round_trip(Value::List(vec![Value::Nil, Value::Bool(true)]));
        let map = Map::from_pairs(
            MAP_FLAG_K_ORDERED,
            vec![(Value::Str(b"k".to_vec()), Value::List(vec![]))],
        )
        .unwrap();
        round_trip(Value::Map(map));
    }

    #[test]
    fn strings_carry_their_particle_type_byte() {
        assert_eq!(encode(&Value::Str(b"ab".to_vec())), [0xa3, 3, b'a', b'b']);
    }

    #[test]
    fn ordered_map_flags_travel_as_ext_in_the_first_slot() {
        // {ext(flags 1): nil, 2: 3} as the client writes a sorted map.
        let bytes = [0x82, 0xc7, 0x00, 0x01, 0xc0, 0x02, 0x03];
        let Ok(Value::Map(map)) = decode(&bytes) else {
            panic!("not a map")
        };
        assert_eq!(map.flags, MAP_FLAG_K_ORDERED);
        assert_eq!(map.entries(), [(Value::Int(2), Value::Int(3))]);
        assert_eq!(encode(&Value::Map(map)), bytes);
    }

    #[test]
    fn malformed_input_is_a_parameter_error() {
        for bytes in [
            &[0x92, 0x01][..],               // list shorter than its count
            &[0xdd, 0xff, 0xff, 0xff, 0xff], // huge count, no elements
            &[0x81, 0xc0, 0x01],             // nil map key
            &[0xd4, 0xff, 0x01],             // bare ext
            &[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0],
            &[0x01, 0x02], // trailing bytes
        ] {
            assert_eq!(decode(bytes), Err(PARAMETER_ERROR), "{bytes:x?}");
        }
        let deep = [vec![0x91; MAX_DEPTH + 2], vec![0xc0]].concat();
        assert_eq!(decode(&deep), Err(PARAMETER_ERROR));
    }
}
