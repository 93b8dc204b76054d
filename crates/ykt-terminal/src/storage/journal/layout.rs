//! Journal geometry: configuration, segment header, space rules.

use super::entry::{MAX_ENTRY_LEN, RECLAIMED_LEN};
use crate::storage::frame::{CRC32, OVERHEAD};

/// Bytes at the start of every segment.
pub(crate) const HEADER_LEN: usize = 48;
const MAGIC: [u8; 4] = *b"YKJ1";
const FORMAT: u8 = 1;
const CRC_COVERED: usize = 29;

/// Bytes at the end of a segment that record entries leave free, so that carrying a
/// segment's pending records forward always leaves room for the reclaim marker.
pub(crate) const RESERVE: usize = RECLAIMED_LEN + OVERHEAD;
/// Bytes a record entry takes in a segment.
pub(crate) const RECORD_FRAME_LEN: usize = MAX_ENTRY_LEN + OVERHEAD;

/// Geometry of the journal: a ring of `segments` segments of `segment_size` bytes.
/// It is written into every segment header; opening with another geometry fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    pub segment_size: u32,
    pub segments: u32,
    /// Records not yet uploaded beyond which `append` refuses new ones.
    pub max_pending: u32,
}

impl JournalConfig {
    /// 64 KiB segments, enough of them that `max_pending` pending records never take more
    /// than half the ring: reclaiming then always makes progress.
    pub const fn for_pending(max_pending: u32) -> Self {
        Self::with_segment_size(65_536, max_pending)
    }

    pub const fn with_segment_size(segment_size: u32, max_pending: u32) -> Self {
        let per_segment = Self::records_per_segment(segment_size);
        let segments = if per_segment == 0 {
            0
        } else {
            (2 * max_pending).div_ceil(per_segment) + 3
        };
        JournalConfig {
            segment_size,
            segments,
            max_pending,
        }
    }

    const fn records_per_segment(segment_size: u32) -> u32 {
        let usable = (segment_size as usize).saturating_sub(HEADER_LEN + RESERVE);
        (usable / RECORD_FRAME_LEN) as u32
    }

    /// The size of the journal region.
    pub const fn total_size(&self) -> u64 {
        self.segment_size as u64 * self.segments as u64
    }

    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.segment_size < 1024 || self.segment_size > 1 << 20 {
            return Err("segment size must be 1 KiB to 1 MiB");
        }
        if self.max_pending == 0 || self.max_pending > 1_000_000 {
            return Err("max_pending must be 1 to 1,000,000");
        }
        let per_segment = Self::records_per_segment(self.segment_size);
        if self.segments < 3 || self.segments < (2 * self.max_pending).div_ceil(per_segment) + 3 {
            return Err("too few segments for max_pending");
        }
        if self.total_size() > crate::storage::flash::MAX_REGION_SIZE {
            return Err("journal larger than the flash region limit");
        }
        Ok(())
    }
}

impl Default for JournalConfig {
    /// 10,000 pending records (the offline buffer of real canteen POS terminals).
    fn default() -> Self {
        Self::for_pending(10_000)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub index: u32,
    pub seq: u64,
    /// The next serial number at the time the segment was opened: a high-water mark that
    /// survives the reuse of every older segment.
    pub next_serial: u32,
    pub segment_size: u32,
    pub segments: u32,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT;
        b[5..9].copy_from_slice(&self.index.to_le_bytes());
        b[9..17].copy_from_slice(&self.seq.to_le_bytes());
        b[17..21].copy_from_slice(&self.next_serial.to_le_bytes());
        b[21..25].copy_from_slice(&self.segment_size.to_le_bytes());
        b[25..29].copy_from_slice(&self.segments.to_le_bytes());
        let crc = CRC32.checksum(&b[..CRC_COVERED]);
        b[29..33].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` for a blank, torn or foreign header.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Option<Self> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if b[0..4] != MAGIC || b[4] != FORMAT || u32_at(29) != CRC32.checksum(&b[..CRC_COVERED]) {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[9..17]);
        Some(SegmentHeader {
            index: u32_at(5),
            seq: u64::from_le_bytes(seq),
            next_serial: u32_at(17),
            segment_size: u32_at(21),
            segments: u32_at(25),
        })
    }
}
