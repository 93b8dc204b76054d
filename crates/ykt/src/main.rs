//! `ykt`: the one user-facing binary.

mod cmd;
mod pos;

use clap::Parser;
use cmd::{card, keys};

#[derive(Parser)]
#[command(name = "ykt", version, about = "Campus one-card payment system")]
enum Command {
    /// Card images: issue, show and check MF1 dumps and CPU card files.
    #[command(subcommand)]
    Card(card::Args),
    /// System master keys.
    #[command(subcommand)]
    Keys(keys::Args),
}

fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::Card(args) => card::run(args),
        Command::Keys(args) => keys::run(args),
    }
}
