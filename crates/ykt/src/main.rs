//! `ykt`: the one user-facing binary.

use clap::Parser;

#[derive(Parser)]
#[command(name = "ykt", version, about = "Campus one-card payment system")]
enum Command {}

fn main() -> anyhow::Result<()> {
    match Command::parse() {}
}
