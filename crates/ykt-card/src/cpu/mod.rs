//! The PBOC-style CPU card: APDU encoding, purse cryptography, the card, the PSAM, the
//! terminal-side application and the card's image file.

pub mod apdu;
pub mod app;
pub mod card;
pub mod crypto;
pub mod image;
pub mod psam;

pub use card::CpuCard;
