//! `ykt card pin reset|change CARD`: the card's PIN at the card office (R-B10, code 60).
//! The PINs are read from standard input, one per line (never from the command line, where
//! other users could see them); the host keeps only their hash.

use std::io::BufRead;

use anyhow::{Context, bail};
use serde_json::json;

use super::client::{Api, ApiArgs};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Set a new PIN (the cardholder proved who they are): reads the PIN from stdin.
    Reset {
        card_no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change the PIN: reads the old PIN, then the new one, from stdin. A wrong old PIN is a
    /// wrong try (60); the last one allowed locks the card (54).
    Change {
        card_no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn read_pins(n: usize) -> anyhow::Result<Vec<String>> {
    let stdin = std::io::stdin();
    let mut pins = Vec::with_capacity(n);
    for line in stdin.lock().lines().take(n) {
        pins.push(line.context("reading a PIN from stdin")?.trim().to_owned());
    }
    if pins.len() < n {
        bail!("expected {n} PIN line(s) on stdin");
    }
    Ok(pins)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Reset { card_no, api } => {
            let pins = read_pins(1)?;
            let api = Api::new(&api)?;
            let r = api.post(
                &format!("/cards/{card_no}/pin/reset"),
                Some(&json!({"pin": pins[0]})),
            )?;
            api.print(&r, |_| println!("卡 {card_no} 密码已重置"))
        }
        Args::Change { card_no, api } => {
            let pins = read_pins(2)?;
            let api = Api::new(&api)?;
            let r = api.post(
                &format!("/cards/{card_no}/pin/change"),
                Some(&json!({"old": pins[0], "new": pins[1]})),
            )?;
            api.print(&r, |_| println!("卡 {card_no} 密码已修改"))
        }
    }
}
