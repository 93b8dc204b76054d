//! Subcommands; each module owns its clap arguments and its `run`.

pub mod audit;
pub mod card;
pub mod keys;
pub mod loadgen;
pub mod serve;
