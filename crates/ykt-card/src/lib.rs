//! Cards as a terminal's reader sees them: MIFARE Classic 1K and PBOC-style CPU cards.
//!
//! - [`Reader`]: the contactless reader a terminal drives (select, MF1 block and value
//!   commands, APDU transceive); [`SimulatedReader`] implements it over a software card with a
//!   plan of faults (fail, tear old/new/garbage, card removed, answer lost).
//! - [`mf1`]: the MIFARE Classic 1K memory model, access bits and value blocks.
//! - [`app`]: our card application on MF1 — [`app::Mf1App`] reads and validates (with backup
//!   repair), debits and credits, locks, lists on-card records and resolves torn writes;
//!   [`app::issue`] personalises a card; [`app::diagnose`] inspects one without writing.
//! - [`cpu`]: the PBOC-style purse card, its [`cpu::app::CpuApp`] terminal flows, the PSAM
//!   and the host's TAC/MAC2 computations.
//! - [`keys`]: system master keys, their file format and per-card diversification.
//!
//! Byte layouts and sequences: `docs/card-layout.md`. No I/O, no clock: times are arguments.

pub mod app;
pub mod cpu;
pub mod crypto;
pub mod error;
pub mod fuzzing;
pub mod fuzzing_cpu;
pub mod keys;
pub mod mf1;
pub mod reader;
pub mod rng;

pub use error::ReaderError;
pub use reader::{CardKind, Fault, Reader, Selected, SimCard, SimulatedReader, TearOutcome};
