//! The AS_MSG frame (proto type 3): a 22-byte header, fields (namespace, set,
//! digest, ...) and bin operations, parsed from a request and built for a
//! reply.

use crate::result_code::ResultCode;
use crate::value::Value;

const MSG_HEADER_SIZE: usize = 22;
pub(crate) const PROTO_VERSION: u8 = 2;
pub(crate) const PROTO_TYPE_MSG: u8 = 3;

// info1
pub(crate) const INFO1_READ: u8 = 1;
pub(crate) const INFO1_GET_ALL: u8 = 1 << 1;
pub(crate) const INFO1_SHORT_QUERY: u8 = 1 << 2;
pub(crate) const INFO1_BATCH: u8 = 1 << 3;
pub(crate) const INFO1_NO_BIN_DATA: u8 = 1 << 5;
pub(crate) const INFO1_COMPRESS_RESPONSE: u8 = 1 << 7;
// info2
pub(crate) const INFO2_WRITE: u8 = 1;
pub(crate) const INFO2_DELETE: u8 = 1 << 1;
pub(crate) const INFO2_GENERATION: u8 = 1 << 2;
pub(crate) const INFO2_GENERATION_GT: u8 = 1 << 3;
pub(crate) const INFO2_CREATE_ONLY: u8 = 1 << 5;
pub(crate) const INFO2_RESPOND_ALL_OPS: u8 = 1 << 7;
// info3
pub(crate) const INFO3_UPDATE_ONLY: u8 = 1 << 3;
pub(crate) const INFO3_CREATE_OR_REPLACE: u8 = 1 << 4;
pub(crate) const INFO3_REPLACE_ONLY: u8 = 1 << 5;

// Field types.
const FIELD_NAMESPACE: u8 = 0;
const FIELD_SET: u8 = 1;
const FIELD_KEY: u8 = 2;
const FIELD_DIGEST: u8 = 4;

/// A parsed request, borrowing names and values from the received frame.
pub(crate) struct Request<'a> {
    pub(crate) info1: u8,
    pub(crate) info2: u8,
    pub(crate) info3: u8,
    pub(crate) generation: u32,
    pub(crate) ttl: u32,
    pub(crate) namespace: Option<&'a [u8]>,
    /// Absent and empty set names mean the same to the server.
    pub(crate) set: Option<&'a [u8]>,
    pub(crate) digest: Option<[u8; 20]>,
    /// A field the fixture does not implement (filter expression,
    /// transaction, batch, query, ...): the command is refused.
    pub(crate) has_unsupported_field: bool,
    pub(crate) ops: Vec<Op<'a>>,
}

pub(crate) struct Op<'a> {
    pub(crate) code: u8,
    pub(crate) particle: u8,
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// Parses the frame after its 8-byte proto header. `None` means the frame is
/// malformed and the connection should be closed.
pub(crate) fn parse(body: &[u8]) -> Option<Request<'_>> {
    let mut cursor = Cursor {
        bytes: body,
        pos: 0,
    };
    let header = cursor.take(MSG_HEADER_SIZE)?;
    if usize::from(header[0]) != MSG_HEADER_SIZE {
        return None;
    }
    let u32_at = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let u16_at = |at: usize| u16::from_be_bytes(header[at..at + 2].try_into().expect("2 bytes"));
    let mut request = Request {
        info1: header[1],
        info2: header[2],
        info3: header[3],
        generation: u32_at(6),
        ttl: u32_at(10),
        namespace: None,
        set: None,
        digest: None,
        has_unsupported_field: false,
        ops: Vec::new(),
    };
    for _ in 0..u16_at(18) {
        let size = cursor.u32()? as usize;
        let kind = cursor.take(1)?[0];
        let data = cursor.take(size.checked_sub(1)?)?;
        match kind {
            FIELD_NAMESPACE => request.namespace = Some(data),
            FIELD_SET => request.set = Some(data).filter(|s| !s.is_empty()),
            FIELD_DIGEST => request.digest = Some(data.try_into().ok()?),
            // A sent user key changes nothing for single-record commands here.
            FIELD_KEY => {}
            _ => request.has_unsupported_field = true,
        }
    }
    for _ in 0..u16_at(20) {
        let size = cursor.u32()? as usize;
        let op = cursor.take(size)?;
        let (&[code, particle, _flags, name_size], rest) = op.split_first_chunk::<4>()?;
        let name = rest.get(..usize::from(name_size))?;
        let value = &rest[name.len()..];
        request.ops.push(Op {
            code,
            particle,
            name,
            value,
        });
    }
    cursor.is_empty().then_some(request)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

#[derive(Debug, PartialEq)]
pub(crate) struct Response {
    pub(crate) result: ResultCode,
    pub(crate) generation: u16,
    pub(crate) void_time: u32,
    pub(crate) ops: Vec<ResponseOp>,
}

/// One answer slot: the request op's code and bin name, and its value
/// (`None` answers as the null particle).
#[derive(Debug, PartialEq)]
pub(crate) struct ResponseOp {
    pub(crate) code: u8,
    pub(crate) name: Vec<u8>,
    pub(crate) value: Option<Value>,
}

impl Response {
    /// An answer without bins, carrying the record's metadata.
    pub(crate) fn meta(result: ResultCode, generation: u16, void_time: u32) -> Self {
        Self {
            result,
            generation,
            void_time,
            ops: Vec::new(),
        }
    }

    pub(crate) fn error(result: ResultCode) -> Self {
        Self::meta(result, 0, 0)
    }

    /// The whole reply frame, proto header included.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![0; 8];
        out.push(MSG_HEADER_SIZE as u8);
        out.extend_from_slice(&[0, 0, 0, 0]); // info1..info4
        out.push(self.result);
        out.extend_from_slice(&u32::from(self.generation).to_be_bytes());
        out.extend_from_slice(&self.void_time.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // transaction ttl
        out.extend_from_slice(&0u16.to_be_bytes()); // fields
        let n_ops = u16::try_from(self.ops.len()).expect("at most one answer per request op");
        out.extend_from_slice(&n_ops.to_be_bytes());
        for op in &self.ops {
            let (particle, bytes) = op.value.as_ref().unwrap_or(&Value::Nil).to_particle();
            // Bin names are at most 15 bytes: the request was checked.
            let size = 4 + op.name.len() + bytes.len();
            out.extend_from_slice(&(size as u32).to_be_bytes());
            out.extend_from_slice(&[op.code, particle, 0, op.name.len() as u8]);
            out.extend_from_slice(&op.name);
            out.extend_from_slice(&bytes);
        }
        let size = (out.len() - 8) as u64;
        let proto = size | (u64::from(PROTO_VERSION) << 56) | (u64::from(PROTO_TYPE_MSG) << 48);
        out[..8].copy_from_slice(&proto.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fields: &[(u8, &[u8])], ops: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![22, INFO1_READ, 0, 0, 0, 0];
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        out.extend_from_slice(&(ops.len() as u16).to_be_bytes());
        for (kind, data) in fields {
            out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
            out.push(*kind);
            out.extend_from_slice(data);
        }
        for (code, name, value) in ops {
            out.extend_from_slice(&((4 + name.len() + value.len()) as u32).to_be_bytes());
            out.extend_from_slice(&[*code, 1, 0, name.len() as u8]);
            out.extend_from_slice(name);
            out.extend_from_slice(value);
        }
        out
    }

    #[test]
    fn fields_and_ops_are_parsed() {
        let body = frame(
            &[(0, b"test"), (1, b""), (4, &[7; 20]), (43, b"exp")],
            &[(1, b"bin", b"")],
        );
        let request = parse(&body).unwrap();
        assert_eq!(request.namespace, Some(&b"test"[..]));
        assert_eq!(request.set, None);
        assert_eq!(request.digest, Some([7; 20]));
        assert!(request.has_unsupported_field);
        assert_eq!(request.ops[0].name, b"bin");
    }

    #[test]
    fn truncated_or_oversized_parts_are_malformed() {
        let body = frame(&[(4, &[7; 19])], &[]);
        assert!(parse(&body).is_none(), "short digest");
        let mut body = frame(&[], &[(1, b"bin", b"")]);
        body.pop();
        assert!(parse(&body).is_none(), "short op");
        let mut body = frame(&[], &[]);
        body.push(0);
        assert!(parse(&body).is_none(), "trailing byte");
        assert!(parse(&[22, 0, 0]).is_none(), "short header");
    }

    #[test]
    fn a_reply_frame_carries_metadata_and_bins() {
        let response = Response {
            result: 0,
            generation: 7,
            void_time: 9,
            ops: vec![ResponseOp {
                code: 1,
                name: b"a".to_vec(),
                value: Some(Value::Int(5)),
            }],
        };
        let bytes = response.encode();
        assert_eq!(&bytes[..2], [2, 3]);
        assert_eq!(
            u64::from_be_bytes(bytes[..8].try_into().unwrap()) & 0xffff_ffff_ffff,
            22 + 8 + 1 + 8
        );
        assert_eq!(bytes[13], 0);
        assert_eq!(&bytes[14..18], 7u32.to_be_bytes());
        assert_eq!(&bytes[30..38], [0, 0, 0, 13, 1, 1, 0, 1]);
    }
}
