//! The storage interface: named regions of bytes with an fsync contract.

use std::fmt;

/// One named area of the terminal's flash (a file in the file implementation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// The transaction journal (流水).
    Journal,
    /// The blacklist bitmap and its delta log.
    Blacklist,
    /// The parameters downloaded from the host.
    Params,
    /// Small terminal state: offline-time counter, clock offset.
    State,
}

impl Region {
    pub const ALL: [Region; 4] = [
        Region::Journal,
        Region::Blacklist,
        Region::Params,
        Region::State,
    ];

    /// A stable lower-case name (used as the file name by the file implementation).
    pub const fn name(self) -> &'static str {
        match self {
            Region::Journal => "journal",
            Region::Blacklist => "blacklist",
            Region::Params => "params",
            Region::State => "state",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// No region may grow beyond this (the largest, the blacklist, needs about 4.3 MiB).
pub const MAX_REGION_SIZE: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlashError {
    /// The device lost power; nothing more can be written until it restarts.
    #[error("power lost")]
    PowerLost,
    #[error(
        "{region}: access of {len} bytes at offset {offset} is outside the region (size {size})"
    )]
    OutOfBounds {
        region: Region,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{region}: storage I/O error: {message}")]
    Io { region: Region, message: String },
    /// A stored value carries the last generation number: forged or corrupt.
    #[error("{region}: stored generation counter at its end")]
    GenerationsExhausted { region: Region },
}

/// A byte store with named regions. A write is durable only after a successful `sync` of
/// its region; a power cut may keep, drop or tear any write made since the last sync.
pub trait Flash {
    /// The current size of a region in bytes (0 when it was never written).
    fn size(&mut self, region: Region) -> Result<u64, FlashError>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read(&mut self, region: Region, offset: u64, buf: &mut [u8]) -> Result<(), FlashError>;
    /// Writes `data` at `offset` (at most the current size: no holes), growing the region.
    fn write(&mut self, region: Region, offset: u64, data: &[u8]) -> Result<(), FlashError>;
    /// Cuts the region to `len` bytes (no-op when it is already shorter).
    fn truncate(&mut self, region: Region, len: u64) -> Result<(), FlashError>;
    /// Makes every earlier write and truncate of the region durable.
    fn sync(&mut self, region: Region) -> Result<(), FlashError>;
}

/// Reads `buf.len()` bytes at `offset`, treating bytes past the end of the region as zero
/// (never written = blank).
pub(crate) fn read_padded<F: Flash + ?Sized>(
    flash: &mut F,
    region: Region,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), FlashError> {
    let size = flash.size(region)?;
    let available = size.saturating_sub(offset).min(buf.len() as u64) as usize;
    let (head, tail) = buf.split_at_mut(available);
    if !head.is_empty() {
        flash.read(region, offset, head)?;
    }
    tail.fill(0);
    Ok(())
}

/// Writes `data` at `offset`, zero-filling any gap between the end of the region and `offset`.
pub(crate) fn write_padded<F: Flash + ?Sized>(
    flash: &mut F,
    region: Region,
    offset: u64,
    data: &[u8],
) -> Result<(), FlashError> {
    let size = flash.size(region)?;
    if offset > size {
        let gap = offset - size;
        if gap > MAX_REGION_SIZE {
            return Err(FlashError::OutOfBounds {
                region,
                offset,
                len: data.len() as u64,
                size,
            });
        }
        flash.write(region, size, &vec![0; gap as usize])?;
    }
    flash.write(region, offset, data)
}
