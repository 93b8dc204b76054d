//! The blacklist store: a bitmap of 2^24 bits (one per card number, 2 MiB), versioned,
//! with O(1) lookup. Persisted as A/B base images plus a checksummed delta log:
//! - an incremental update (R-F4.21's sibling: 增量名单) is one frame appended to the delta
//!   log and synced; when the log is full the whole list is written as a new base image;
//! - a bulk initialisation (R-F4.21) is built in memory page by page and becomes visible,
//!   on flash and in memory, only at `finish_bulk`: a power cut before that leaves the old
//!   list in use.
//!
//! Bitmap layout (also the layout of bitmap pages): card `n` is bit `n % 8` (LSB first) of
//! byte `n / 8`. Bit 0 (card 0, which does not exist) is always clear.

use ykt_proto::CardNo;

use super::codec::{DecodeError, Reader, Writer};
use super::flash::{Flash, FlashError, Region, read_padded, write_padded};
use super::frame::{self, CRC32};
use super::slots::{HEADER_LEN as SLOT_HEADER_LEN, SlotStore};

/// Bytes in the bitmap: one bit for every 24-bit card number.
pub const BITMAP_LEN: usize = 1 << 21;
/// Most changes in one incremental update.
pub const MAX_CHANGES: usize = 4096;

const SLOT_SIZE: u64 = (SLOT_HEADER_LEN + 4 + BITMAP_LEN) as u64;
pub(super) const SLOTS: SlotStore = SlotStore {
    region: Region::Blacklist,
    magic: *b"YKB1",
    base: LOG_SIZE as u64,
    slot_size: SLOT_SIZE,
};
// The delta log comes first, so that a list kept by incremental updates alone never
// writes the 4 MiB of slots.
const LOG_BASE: u64 = 0;
pub(super) const LOG_SIZE: usize = 256 * 1024;
const LOG_MAGIC: [u8; 4] = *b"YKBD";
const LOG_HEADER_LEN: usize = 16;

/// One change of an incremental update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlacklistChange {
    pub card: CardNo,
    /// `true`: the card is now blacklisted (lost, frozen…); `false`: it is off the list.
    pub listed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlacklistError {
    #[error("blacklist update from version {from} does not follow the terminal's version {have}")]
    VersionGap { have: u32, from: u32 },
    #[error("blacklist update to version {to} is not newer than {from}")]
    VersionNotNewer { from: u32, to: u32 },
    #[error("too many changes in one update: {0} (limit 4096)")]
    TooManyChanges(usize),
    #[error("no bulk blacklist load in progress")]
    NoBulkLoad,
    #[error("bitmap page at byte {offset} with {len} bytes is outside the bitmap")]
    PageOutOfRange { offset: u32, len: usize },
    #[error("stored blacklist is unreadable: {0}")]
    Corrupt(#[from] DecodeError),
    #[error(transparent)]
    Flash(#[from] FlashError),
}

struct BulkLoad {
    version: u32,
    bitmap: Vec<u8>,
}

pub struct BlacklistStore {
    version: u32,
    bitmap: Vec<u8>,
    generation: u64,
    log_pos: usize,
    bulk: Option<BulkLoad>,
}

impl std::fmt::Debug for BlacklistStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlacklistStore")
            .field("version", &self.version)
            .field("generation", &self.generation)
            .finish()
    }
}

fn set_bit(bitmap: &mut [u8], card: CardNo, listed: bool) {
    let n = card.get() as usize;
    let mask = 1u8 << (n % 8);
    if listed {
        bitmap[n / 8] |= mask;
    } else {
        bitmap[n / 8] &= !mask;
    }
}

pub(super) struct Delta {
    pub from: u32,
    pub to: u32,
    pub changes: Vec<BlacklistChange>,
}

pub(super) fn encode_delta(from: u32, to: u32, changes: &[BlacklistChange]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(from);
    w.u32(to);
    w.u16(changes.len() as u16);
    for c in changes {
        w.u32(c.card.get() | (u32::from(c.listed) << 31));
    }
    w.0
}

pub(super) fn decode_delta(bytes: &[u8]) -> Result<Delta, DecodeError> {
    let mut r = Reader::new(bytes);
    let (from, to, n) = (r.u32()?, r.u32()?, r.u16()? as usize);
    if n > MAX_CHANGES {
        return Err(DecodeError::Invalid("blacklist change count"));
    }
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        let v = r.u32()?;
        let card = CardNo::new(v & !(1 << 31)).ok_or(DecodeError::Invalid("card number"))?;
        changes.push(BlacklistChange {
            card,
            listed: v >> 31 == 1,
        });
    }
    r.finish()?;
    Ok(Delta { from, to, changes })
}

pub(super) fn log_header(generation: u64) -> [u8; LOG_HEADER_LEN] {
    let mut h = [0u8; LOG_HEADER_LEN];
    h[..4].copy_from_slice(&LOG_MAGIC);
    h[4..12].copy_from_slice(&generation.to_le_bytes());
    let crc = CRC32.checksum(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Zeroes, durably, the non-zero bytes of the log after `pos`: no stale frame survives.
fn zero_after<F: Flash + ?Sized>(flash: &mut F, log: &[u8], pos: usize) -> Result<(), FlashError> {
    if let Some(last) = log[pos..].iter().rposition(|&b| b != 0) {
        flash.write(
            Region::Blacklist,
            LOG_BASE + pos as u64,
            &vec![0u8; last + 1],
        )?;
        flash.sync(Region::Blacklist)?;
    }
    Ok(())
}

impl BlacklistStore {
    /// Loads the newest intact base image and replays its delta log.
    pub fn open<F: Flash + ?Sized>(flash: &mut F) -> Result<BlacklistStore, BlacklistError> {
        let mut store = match SLOTS.load(flash)? {
            Some(loaded) => {
                let mut r = Reader::new(&loaded.payload);
                let version = r.u32()?;
                let bitmap = r.take(BITMAP_LEN)?.to_vec();
                r.finish()?;
                BlacklistStore {
                    version,
                    bitmap,
                    generation: loaded.generation,
                    log_pos: LOG_HEADER_LEN,
                    bulk: None,
                }
            }
            None => BlacklistStore {
                version: 0,
                bitmap: vec![0; BITMAP_LEN],
                generation: 0,
                log_pos: LOG_HEADER_LEN,
                bulk: None,
            },
        };
        let mut log = vec![0u8; LOG_SIZE];
        read_padded(flash, Region::Blacklist, LOG_BASE, &mut log)?;
        if log[..LOG_HEADER_LEN] != log_header(store.generation) {
            // The log belongs to another base (a compaction was cut short, or the newest base
            // is damaged) or was never written. Its frames go first: under the new header,
            // frames seeded with this generation would be replayed at the next start-up.
            zero_after(flash, &log, LOG_HEADER_LEN)?;
            store.reset_log(flash)?;
            return Ok(store);
        }
        let mut pos = LOG_HEADER_LEN;
        while let Some((payload, next)) = frame::decode(store.generation, &log, pos) {
            let delta = decode_delta(payload)?;
            if delta.from != store.version || delta.to <= delta.from {
                break;
            }
            store.apply(&delta.changes, delta.to);
            pos = next;
        }
        store.log_pos = pos;
        zero_after(flash, &log, pos)?;
        Ok(store)
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The generation of the base image in use (the seed of its delta log).
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the card is blacklisted: one bit test.
    pub fn contains(&self, card: CardNo) -> bool {
        let n = card.get() as usize;
        self.bitmap[n / 8] >> (n % 8) & 1 == 1
    }

    /// Number of blacklisted cards (a scan of the bitmap; for reports, not for the hot path).
    pub fn len(&self) -> usize {
        self.bitmap.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&mut self, changes: &[BlacklistChange], to: u32) {
        for c in changes {
            set_bit(&mut self.bitmap, c.card, c.listed);
        }
        self.version = to;
    }

    /// Applies an incremental update from `from` (must be the current version) to `to`,
    /// durably.
    pub fn apply_incremental<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        from: u32,
        to: u32,
        changes: &[BlacklistChange],
    ) -> Result<(), BlacklistError> {
        if from != self.version {
            return Err(BlacklistError::VersionGap {
                have: self.version,
                from,
            });
        }
        if to <= from {
            return Err(BlacklistError::VersionNotNewer { from, to });
        }
        if changes.len() > MAX_CHANGES {
            return Err(BlacklistError::TooManyChanges(changes.len()));
        }
        let mut bytes = Vec::new();
        frame::encode(
            self.generation,
            &encode_delta(from, to, changes),
            &mut bytes,
        );
        if self.log_pos + bytes.len() <= LOG_SIZE {
            write_padded(
                flash,
                Region::Blacklist,
                LOG_BASE + self.log_pos as u64,
                &bytes,
            )?;
            flash.sync(Region::Blacklist)?;
            self.log_pos += bytes.len();
            self.apply(changes, to);
        } else {
            let mut bitmap = self.bitmap.clone();
            for c in changes {
                set_bit(&mut bitmap, c.card, c.listed);
            }
            self.write_base(flash, to, bitmap)?;
        }
        Ok(())
    }

    /// Starts a bulk initialisation to `version` (R-F4.21); the current list stays in use.
    pub fn begin_bulk(&mut self, version: u32) {
        self.bulk = Some(BulkLoad {
            version,
            bitmap: vec![0; BITMAP_LEN],
        });
    }

    /// Adds a page of card numbers to the bulk load.
    pub fn bulk_page_numbers(&mut self, cards: &[CardNo]) -> Result<(), BlacklistError> {
        let bulk = self.bulk.as_mut().ok_or(BlacklistError::NoBulkLoad)?;
        for &card in cards {
            set_bit(&mut bulk.bitmap, card, true);
        }
        Ok(())
    }

    /// Copies a page of the bitmap itself (layout above) at byte `offset`.
    pub fn bulk_page_bitmap(&mut self, offset: u32, bytes: &[u8]) -> Result<(), BlacklistError> {
        let bulk = self.bulk.as_mut().ok_or(BlacklistError::NoBulkLoad)?;
        let start = offset as usize;
        let range = start..start.saturating_add(bytes.len());
        let Some(target) = bulk.bitmap.get_mut(range) else {
            return Err(BlacklistError::PageOutOfRange {
                offset,
                len: bytes.len(),
            });
        };
        target.copy_from_slice(bytes);
        bulk.bitmap[0] &= !1;
        Ok(())
    }

    /// Makes the bulk-loaded list durable and current, atomically.
    pub fn finish_bulk<F: Flash + ?Sized>(&mut self, flash: &mut F) -> Result<(), BlacklistError> {
        let bulk = self.bulk.take().ok_or(BlacklistError::NoBulkLoad)?;
        self.write_base(flash, bulk.version, bulk.bitmap)
    }

    /// Drops a bulk load in progress.
    pub fn abort_bulk(&mut self) {
        self.bulk = None;
    }

    /// Writes a new base image (next generation), then starts its empty delta log.
    fn write_base<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        version: u32,
        bitmap: Vec<u8>,
    ) -> Result<(), BlacklistError> {
        debug_assert_eq!(bitmap.len(), BITMAP_LEN);
        let mut payload = Vec::with_capacity(4 + BITMAP_LEN);
        payload.extend_from_slice(&version.to_le_bytes());
        payload.extend_from_slice(&bitmap);
        SLOTS.replace(flash, &mut self.generation, &payload)?;
        self.version = version;
        self.bitmap = bitmap;
        self.reset_log(flash)
    }

    fn reset_log<F: Flash + ?Sized>(&mut self, flash: &mut F) -> Result<(), BlacklistError> {
        write_padded(
            flash,
            Region::Blacklist,
            LOG_BASE,
            &log_header(self.generation),
        )?;
        flash.sync(Region::Blacklist)?;
        self.log_pos = LOG_HEADER_LEN;
        Ok(())
    }
}
