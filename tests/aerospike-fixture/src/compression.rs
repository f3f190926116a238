//! Compressed AS_MSG frames (proto type 4), which a client sends and asks for
//! when its policy enables compression: the original size, then the whole
//! original frame (proto header included) deflated with zlib.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use crate::message::{PROTO_TYPE_MSG, PROTO_VERSION};

pub(crate) const PROTO_TYPE_MSG_COMPRESSED: u8 = 4;

/// Replies at most this long go out uncompressed, which clients accept too.
const COMPRESS_THRESHOLD: usize = 128;

/// The inner AS_MSG body of a compressed frame's body, or `None` if it is not
/// a valid compressed message no larger than `max_size`.
pub(crate) fn decompress(body: &[u8], max_size: usize) -> Option<Vec<u8>> {
    let (size, deflated) = body.split_first_chunk::<8>()?;
    let size = usize::try_from(u64::from_be_bytes(*size)).ok()?;
    if size > max_size {
        return None;
    }
    let mut frame = Vec::with_capacity(size);
    ZlibDecoder::new(deflated)
        .take(size as u64 + 1)
        .read_to_end(&mut frame)
        .ok()?;
    let (header, inner) = frame.split_first_chunk::<8>()?;
    let inner_size = u64::from_be_bytes(*header) & 0xffff_ffff_ffff;
    let valid = frame.len() == size
        && header[0] == PROTO_VERSION
        && header[1] == PROTO_TYPE_MSG
        && inner_size == inner.len() as u64;
    valid.then(|| inner.to_vec())
}

/// Wraps a reply frame in a compressed frame, if that is worth it.
pub(crate) fn compress(frame: Vec<u8>) -> Vec<u8> {
    if frame.len() <= COMPRESS_THRESHOLD {
        return frame;
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
    let deflated = encoder
        .write_all(&frame)
        .and_then(|()| encoder.finish())
        .expect("writing to a Vec cannot fail");
    let size = (8 + deflated.len()) as u64;
    let proto =
        size | (u64::from(PROTO_VERSION) << 56) | (u64::from(PROTO_TYPE_MSG_COMPRESSED) << 48);
    [
        &proto.to_be_bytes()[..],
        &(frame.len() as u64).to_be_bytes(),
        &deflated,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg_frame(body: &[u8]) -> Vec<u8> {
        let proto = body.len() as u64 | (2 << 56) | (3 << 48);
        [&proto.to_be_bytes()[..], body].concat()
    }

    #[test]
    fn a_compressed_frame_round_trips() {
        let body = vec![7; 1000];
        let compressed = compress(msg_frame(&body));
        assert_eq!(compressed[1], PROTO_TYPE_MSG_COMPRESSED);
        assert!(compressed.len() < 200);
        assert_eq!(decompress(&compressed[8..], 1 << 20), Some(body));
    }

    #[test]
    fn small_replies_stay_plain_and_lies_are_refused() {
        let small = msg_frame(&[1; 10]);
        assert_eq!(compress(small.clone()), small);
        let compressed = compress(msg_frame(&[7; 1000]));
        assert_eq!(decompress(&compressed[8..], 100), None, "over the limit");
        let mut wrong_size = compressed[8..].to_vec();
        wrong_size[7] ^= 1;
        assert_eq!(decompress(&wrong_size, 1 << 20), None);
        assert_eq!(decompress(&[0; 12], 1 << 20), None);
    }
}
