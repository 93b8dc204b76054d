//! MIFARE Classic 1K: access bits, value blocks and the card's memory and commands.

pub mod access;
pub mod card;
pub mod value;

pub use access::{AccessBits, Condition, KeyType};
pub use card::{Block, DumpError, Key, Mf1Card};
