//! Cards as a terminal's reader sees them: MIFARE Classic 1K and PBOC-style CPU cards.

pub mod app;
pub mod cpu;
pub mod crypto;
pub mod error;
pub mod keys;
pub mod mf1;
pub mod reader;
pub mod rng;

pub use error::ReaderError;
pub use reader::{CardKind, Fault, Reader, Selected, SimCard, SimulatedReader, TearOutcome};
