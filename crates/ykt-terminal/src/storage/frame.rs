//! CRC32-checked frames, the unit of every append-only log on flash.
//!
//! Layout: `len: u16 LE | payload (len bytes) | crc32: u32 LE` where the CRC covers a
//! 64-bit `seed` (the log's generation), `len` and the payload. Seeding with the
//! generation makes frames left over from an earlier use of the same space invalid.
//! A `len` of 0 (blank flash) ends the log.

use crc::{CRC_32_ISO_HDLC, Crc, Table};

pub(crate) const CRC32: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISO_HDLC);

/// Bytes a frame adds around its payload.
pub(crate) const OVERHEAD: usize = 2 + 4;

/// The largest payload a frame may carry.
pub(crate) const MAX_PAYLOAD: usize = u16::MAX as usize;

fn checksum(seed: u64, len: u16, payload: &[u8]) -> u32 {
    let mut digest = CRC32.digest();
    digest.update(&seed.to_le_bytes());
    digest.update(&len.to_le_bytes());
    digest.update(payload);
    digest.finalize()
}

/// Appends one frame to `out`. The caller keeps payloads within [`MAX_PAYLOAD`].
pub(crate) fn encode(seed: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= MAX_PAYLOAD,
        "frame payload of {} bytes",
        payload.len()
    );
    let len = payload.len() as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&checksum(seed, len, payload).to_le_bytes());
}

/// The frame at `pos` in `buf`: `Some((payload, next_pos))`, or `None` at the end of the
/// log (blank, torn or corrupt bytes: the log stops there).
pub(crate) fn decode(seed: u64, buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let len_bytes = buf.get(pos..pos.checked_add(2)?)?;
    let len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]);
    if len == 0 {
        return None;
    }
    let start = pos + 2;
    let end = start + len as usize;
    let payload = buf.get(start..end)?;
    let crc = buf.get(end..end + 4)?;
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    (stored == checksum(seed, len, payload)).then_some((payload, end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
    }

    proptest! {
        #[test]
        fn frames_round_trip(seed: u64, payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8)) {
            let mut buf = Vec::new();
            for p in &payloads {
                encode(seed, p, &mut buf);
            }
            let mut pos = 0;
            for p in &payloads {
                let (got, next) = decode(seed, &buf, pos).expect("frame");
                prop_assert_eq!(got, &p[..]);
                pos = next;
            }
            prop_assert!(decode(seed, &buf, pos).is_none());
            if !payloads.is_empty() {
                prop_assert!(decode(seed.wrapping_add(1), &buf, 0).is_none(), "another generation's frame must not decode");
            }
        }

        #[test]
        fn a_flipped_bit_ends_the_log(seed: u64, payload in prop::collection::vec(any::<u8>(), 1..100), bit in 0usize..800) {
            let mut buf = Vec::new();
            encode(seed, &payload, &mut buf);
            let bit = bit % (buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(seed, &buf, 0).is_none());
        }
    }
}
