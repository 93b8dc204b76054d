//! Blacklist download: incremental since a version (0x05) and bulk initialisation in
//! bitmap segments (0x06, R-F4.21).

use super::{check_count, read_codes, read_count, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::types::CardNo;
use crate::wire::{Reader, Writer};

/// At most this many entries in one incremental page (4 bytes each).
pub const MAX_DELTA_ENTRIES: usize = 8192;
/// Bytes of one bulk bitmap segment.
pub const SEGMENT_BYTES: usize = 32 * 1024;
/// Card numbers covered by one segment: segment `s` holds cards `s·2¹⁸ ..= s·2¹⁸ + 2¹⁸ − 1`.
pub const CARDS_PER_SEGMENT: u32 = (SEGMENT_BYTES * 8) as u32;
/// Segments covering the whole 24-bit card-number space.
pub const MAX_SEGMENTS: u16 = ((CardNo::MAX + 1) / CARDS_PER_SEGMENT) as u16;

/// What an incremental entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlacklistOp {
    /// 1: the card is blacklisted (lost, frozen, …).
    Add = 1,
    /// 2: the card is no longer blacklisted.
    Remove = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlacklistEntry {
    pub op: BlacklistOp,
    pub card_no: CardNo,
}

/// 0x05 request: the changes after version `since`, at most `max_entries` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlacklistDeltaRequest {
    pub since: u32,
    pub max_entries: u16,
}

/// 0x05 response: applying `entries` in order moves a list from version `from` to `to`.
/// `more` = further pages follow: ask again with `since = to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlacklistDeltaResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub from: u32,
    pub to: u32,
    pub more: bool,
    pub entries: Vec<BlacklistEntry>,
}

/// 0x06 request: segment `segment` of the bulk list at `version` (0 on the first page =
/// "the current one").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlacklistBulkRequest {
    pub version: u32,
    pub segment: u16,
}

/// One bitmap segment: bit `n % 8` (least significant first) of byte `n / 8` is card
/// `segment · CARDS_PER_SEGMENT + n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment(pub Box<[u8; SEGMENT_BYTES]>);

impl Segment {
    pub fn empty() -> Segment {
        Segment(Box::new([0; SEGMENT_BYTES]))
    }
    pub fn contains(&self, offset: u32) -> bool {
        let (byte, bit) = ((offset / 8) as usize, offset % 8);
        self.0.get(byte).is_some_and(|b| b & (1 << bit) != 0)
    }
    pub fn insert(&mut self, offset: u32) {
        let (byte, bit) = ((offset / 8) as usize, offset % 8);
        if let Some(b) = self.0.get_mut(byte) {
            *b |= 1 << bit;
        }
    }
}

/// 0x06 response: the list at `version`; `segments` = how many segments the list spans
/// (up to the highest blacklisted card). `bitmap` is `None` for a segment with no card.
/// If `version` differs from the requested non-zero version, the list changed: restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlacklistBulkResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub version: u32,
    pub segment: u16,
    pub segments: u16,
    pub bitmap: Option<Segment>,
}

impl BlacklistDeltaRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.since);
        w.u16(self.max_entries);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlacklistDeltaRequest {
            since: r.u32()?,
            max_entries: r.u16()?,
        })
    }
}

impl BlacklistDeltaResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        check_count("entries", self.entries.len(), MAX_DELTA_ENTRIES)?;
        write_codes(w, self.code, self.info);
        w.u32(self.from);
        w.u32(self.to);
        w.bool(self.more);
        w.u16(self.entries.len() as u16);
        for e in &self.entries {
            // One byte of operation, then the 24-bit card number.
            w.u32((u32::from(e.op as u8) << 24) | e.card_no.get());
        }
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        let from = r.u32()?;
        let to = r.u32()?;
        let more = r.bool()?;
        let n = read_count("entries", usize::from(r.u16()?), MAX_DELTA_ENTRIES)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let v = r.u32()?;
            let op = match v >> 24 {
                1 => BlacklistOp::Add,
                2 => BlacklistOp::Remove,
                o => {
                    return Err(DecodeError::BadValue {
                        field: "blacklist_op",
                        value: i64::from(o),
                    });
                }
            };
            let card = v & CardNo::MAX;
            let card_no = CardNo::new(card).ok_or(DecodeError::BadValue {
                field: "card_no",
                value: i64::from(card),
            })?;
            entries.push(BlacklistEntry { op, card_no });
        }
        Ok(BlacklistDeltaResponse {
            code,
            info,
            from,
            to,
            more,
            entries,
        })
    }
}

impl BlacklistBulkRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.version);
        w.u16(self.segment);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlacklistBulkRequest {
            version: r.u32()?,
            segment: r.u16()?,
        })
    }
}

impl BlacklistBulkResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        if self.segments > MAX_SEGMENTS || self.segment >= self.segments.max(1) {
            return Err(EncodeError::BadValue {
                field: "segment",
                value: i64::from(self.segment),
            });
        }
        write_codes(w, self.code, self.info);
        w.u32(self.version);
        w.u16(self.segment);
        w.u16(self.segments);
        match &self.bitmap {
            None => w.u8(0),
            Some(seg) => {
                w.u8(1);
                w.bytes(&seg.0[..]);
            }
        }
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        let version = r.u32()?;
        let segment = r.u16()?;
        let segments = r.u16()?;
        read_count("segments", usize::from(segments), usize::from(MAX_SEGMENTS))?;
        if segment >= segments.max(1) {
            return Err(DecodeError::BadValue {
                field: "segment",
                value: i64::from(segment),
            });
        }
        let bitmap = if r.bool()? {
            let bits = r.take(SEGMENT_BYTES)?; // before allocating: a short body costs nothing
            let mut seg = Segment::empty();
            seg.0.copy_from_slice(bits);
            Some(seg)
        } else {
            None
        };
        Ok(BlacklistBulkResponse {
            code,
            info,
            version,
            segment,
            segments,
            bitmap,
        })
    }
}
