//! Subcommands; each module owns its clap arguments and its `run`.

pub mod card;
pub mod keys;
