//! The terminal's persistent storage: one [`flash::Flash`] device with four regions.
//!
//! Every on-flash structure is either an append-only log of CRC-checked frames
//! ([`frame`]) or a pair of A/B slots ([`slots`]); both survive a power cut at any byte.

pub mod blacklist;
pub(crate) mod codec;
pub mod flash;
pub(crate) mod frame;
pub mod fuzzing;
pub mod journal;
pub mod mem_flash;
pub mod params;
pub(crate) mod slots;
pub mod state;
pub mod stats;
pub mod terminal;
