//! A/B slots: a value replaced atomically. Each write goes to the slot the current value
//! is not in, with a higher generation; a torn write leaves the other slot intact.
//!
//! Slot layout: `magic: [u8; 4] | generation: u64 | len: u32 | crc32: u32 | payload`, the
//! CRC covering magic, generation, len and payload. Generation `g` lives in slot `g % 2`.

use super::flash::{Flash, FlashError, Region, read_padded};
use super::frame::CRC32;

pub(crate) const HEADER_LEN: usize = 20;

pub(crate) struct SlotStore {
    pub region: Region,
    pub magic: [u8; 4],
    /// Offset of slot 0 in the region.
    pub base: u64,
    /// Bytes per slot, header included.
    pub slot_size: u64,
}

/// The value found at start-up.
pub(crate) struct Loaded {
    pub generation: u64,
    pub payload: Vec<u8>,
}

fn checksum(magic: [u8; 4], generation: u64, payload: &[u8]) -> u32 {
    let mut d = CRC32.digest();
    d.update(&magic);
    d.update(&generation.to_le_bytes());
    d.update(&(payload.len() as u32).to_le_bytes());
    d.update(payload);
    d.finalize()
}

impl SlotStore {
    pub fn max_payload(&self) -> usize {
        self.slot_size as usize - HEADER_LEN
    }

    fn read_slot<F: Flash + ?Sized>(
        &self,
        flash: &mut F,
        slot: u64,
    ) -> Result<Option<Loaded>, FlashError> {
        let base = self.base + slot * self.slot_size;
        let mut header = [0u8; HEADER_LEN];
        read_padded(flash, self.region, base, &mut header)?;
        if header[..4] != self.magic {
            return Ok(None);
        }
        let generation = u64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[16..20].try_into().unwrap_or_default());
        if len > self.max_payload() || generation % 2 != slot {
            return Ok(None);
        }
        let mut payload = vec![0u8; len];
        read_padded(flash, self.region, base + HEADER_LEN as u64, &mut payload)?;
        Ok(
            (checksum(self.magic, generation, &payload) == crc).then_some(Loaded {
                generation,
                payload,
            }),
        )
    }

    /// The newest intact value, if any.
    pub fn load<F: Flash + ?Sized>(&self, flash: &mut F) -> Result<Option<Loaded>, FlashError> {
        let a = self.read_slot(flash, 0)?;
        let b = self.read_slot(flash, 1)?;
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(if a.generation > b.generation { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    /// Replaces the value of generation `*current` by `payload` as the next generation,
    /// durably, and moves `*current` on. A stored generation at the counter's end (only a
    /// forged or corrupt slot has one) is refused, never wrapped back to an older one.
    pub fn replace<F: Flash + ?Sized>(
        &self,
        flash: &mut F,
        current: &mut u64,
        payload: &[u8],
    ) -> Result<(), FlashError> {
        let next = current
            .checked_add(1)
            .ok_or(FlashError::GenerationsExhausted {
                region: self.region,
            })?;
        self.store(flash, next, payload)?;
        *current = next;
        Ok(())
    }

    /// Writes `payload` as generation `generation` and syncs, keeping the payload within
    /// [`Self::max_payload`] ([`Self::replace`] picks the generation).
    pub fn store<F: Flash + ?Sized>(
        &self,
        flash: &mut F,
        generation: u64,
        payload: &[u8],
    ) -> Result<(), FlashError> {
        assert!(
            payload.len() <= self.max_payload(),
            "slot payload too large"
        );
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&self.magic);
        bytes.extend_from_slice(&generation.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&checksum(self.magic, generation, payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        super::flash::write_padded(
            flash,
            self.region,
            self.base + (generation % 2) * self.slot_size,
            &bytes,
        )?;
        flash.sync(self.region)
    }
}
