//! An in-memory [`Flash`] for tests and simulation that can cut power after any number
//! of written bytes and then show what a real device would have kept.
//!
//! The fsync contract it models: a synced write survives; a write made since the last sync
//! of its region may survive whole, vanish, or survive as a prefix (torn), chosen per write
//! by a seeded generator at [`MemFlash::power_cycle`]. The write under way when power is
//! cut is applied only up to the cut.

use super::flash::{Flash, FlashError, MAX_REGION_SIZE, Region};

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

#[derive(Clone, Debug, Default)]
struct Image {
    durable: Vec<u8>,
    current: Vec<u8>,
    unsynced: Vec<Op>,
}

fn apply(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset as usize..end].copy_from_slice(data);
        }
        Op::Truncate(len) => image.truncate(*len as usize),
    }
}

/// SplitMix64: a tiny deterministic generator, enough to pick survivors.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Clone, Debug, Default)]
pub struct MemFlash {
    images: [Image; 4],
    written: u64,
    /// Power fails once `written` reaches this.
    budget: Option<u64>,
    powered_off: bool,
}

impl MemFlash {
    pub fn new() -> Self {
        Self::default()
    }

    /// A device whose region holds `bytes`, durably (e.g. a fuzzed journal image).
    /// Images above [`MAX_REGION_SIZE`] are cut to it.
    pub fn with_image(region: Region, bytes: &[u8]) -> Self {
        let mut flash = Self::new();
        let bytes = &bytes[..bytes.len().min(MAX_REGION_SIZE as usize)];
        let image = &mut flash.images[region.index()];
        image.durable = bytes.to_vec();
        image.current = bytes.to_vec();
        flash
    }

    /// Cuts power once `bytes` more bytes have been written (counting all regions).
    pub fn cut_power_after(&mut self, bytes: u64) {
        self.budget = Some(self.written.saturating_add(bytes));
    }

    /// Total bytes written since creation (or the last power cycle).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    pub fn is_powered(&self) -> bool {
        !self.powered_off
    }

    /// What the region currently reads as (synced or not).
    pub fn image(&self, region: Region) -> &[u8] {
        &self.images[region.index()].current
    }

    /// The device after power returns: every synced byte, plus a seeded choice of the
    /// unsynced writes kept, dropped or torn.
    pub fn power_cycle(&self, seed: u64) -> MemFlash {
        let mut rng = SplitMix(seed);
        let mut next = MemFlash::new();
        for (old, new) in self.images.iter().zip(next.images.iter_mut()) {
            let mut image = old.durable.clone();
            for op in &old.unsynced {
                match (rng.next() % 3, op) {
                    (0, _) => {}
                    (1, Op::Write { offset, data }) if !data.is_empty() => {
                        let keep = (rng.next() % data.len() as u64) as usize;
                        apply(
                            &mut image,
                            &Op::Write {
                                offset: *offset,
                                data: data[..keep].to_vec(),
                            },
                        );
                    }
                    _ => apply(&mut image, op),
                }
            }
            new.durable = image.clone();
            new.current = image;
        }
        next
    }

    fn check_power(&self) -> Result<(), FlashError> {
        let exhausted = self.budget.is_some_and(|b| self.written >= b);
        if self.powered_off || exhausted {
            Err(FlashError::PowerLost)
        } else {
            Ok(())
        }
    }
}

impl Flash for MemFlash {
    fn size(&mut self, region: Region) -> Result<u64, FlashError> {
        if self.powered_off {
            return Err(FlashError::PowerLost);
        }
        Ok(self.images[region.index()].current.len() as u64)
    }

    fn read(&mut self, region: Region, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        if self.powered_off {
            return Err(FlashError::PowerLost);
        }
        let current = &self.images[region.index()].current;
        let size = current.len() as u64;
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= size);
        let Some(end) = end else {
            return Err(FlashError::OutOfBounds {
                region,
                offset,
                len: buf.len() as u64,
                size,
            });
        };
        buf.copy_from_slice(&current[offset as usize..end as usize]);
        Ok(())
    }

    fn write(&mut self, region: Region, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_power()?;
        let image = &mut self.images[region.index()];
        let size = image.current.len() as u64;
        let len = data.len() as u64;
        if offset > size || offset.saturating_add(len) > MAX_REGION_SIZE {
            return Err(FlashError::OutOfBounds {
                region,
                offset,
                len,
                size,
            });
        }
        let allowed = self.budget.map_or(len, |b| (b - self.written).min(len));
        let op = Op::Write {
            offset,
            data: data[..allowed as usize].to_vec(),
        };
        apply(&mut image.current, &op);
        image.unsynced.push(op);
        self.written += allowed;
        if allowed < len {
            self.powered_off = true;
            return Err(FlashError::PowerLost);
        }
        Ok(())
    }

    fn truncate(&mut self, region: Region, len: u64) -> Result<(), FlashError> {
        self.check_power()?;
        let image = &mut self.images[region.index()];
        if len < image.current.len() as u64 {
            let op = Op::Truncate(len);
            apply(&mut image.current, &op);
            image.unsynced.push(op);
        }
        Ok(())
    }

    fn sync(&mut self, region: Region) -> Result<(), FlashError> {
        self.check_power()?;
        let image = &mut self.images[region.index()];
        // Replaying the ops (rather than copying the image) keeps syncs cheap on big regions.
        for op in image.unsynced.drain(..) {
            apply(&mut image.durable, &op);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_writes_survive_and_the_cut_write_is_torn() {
        let mut flash = MemFlash::new();
        flash.write(Region::State, 0, b"hello").unwrap();
        flash.sync(Region::State).unwrap();
        flash.cut_power_after(3);
        assert_eq!(
            flash.write(Region::State, 5, b"world"),
            Err(FlashError::PowerLost)
        );
        assert!(!flash.is_powered());
        assert_eq!(flash.image(Region::State), b"hellowor");
        for seed in 0..20 {
            let mut after = flash.power_cycle(seed);
            let image = after.image(Region::State).to_vec();
            assert!(image.starts_with(b"hello"));
            assert!(b"hellowor".starts_with(&image[..]));
            assert!(after.write(Region::State, image.len() as u64, b"!").is_ok());
        }
    }

    #[test]
    fn power_is_lost_right_after_the_budget() {
        let mut flash = MemFlash::new();
        flash.cut_power_after(4);
        flash.write(Region::Params, 0, b"abcd").unwrap();
        assert_eq!(flash.sync(Region::Params), Err(FlashError::PowerLost));
    }

    #[test]
    fn writes_may_not_leave_holes() {
        let mut flash = MemFlash::new();
        assert!(matches!(
            flash.write(Region::Journal, 1, b"x"),
            Err(FlashError::OutOfBounds { .. })
        ));
    }
}
