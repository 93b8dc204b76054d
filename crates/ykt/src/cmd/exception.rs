//! `ykt exception list|show|resolve`: the exception queue (R-B3): debits whose money left a
//! card but which the host refused for good, held until the card office resolves them.

use serde_json::{Value, json};

use super::client::{Api, ApiArgs, cell, table, yuan};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum State {
    Open,
    Resolved,
    All,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Action {
    /// Book card → the record's merchant (which must exist).
    Book,
    /// Book card → suspense (funding → suspense for a card the host does not know).
    Suspense,
    /// Book nothing.
    Reject,
}

#[derive(clap::Subcommand)]
pub enum Args {
    /// Held records (open by default), in (device, serial) order.
    List {
        #[arg(long, value_enum, default_value = "open")]
        state: State,
        /// Start after this DEVICE/SERIAL (the previous page's `next_after`).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One held record in full, with its resolution.
    Show {
        /// Physical ID of the device that made the record (8 hex digits).
        device: String,
        serial: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resolve a held record once: book, suspense or reject.
    Resolve {
        device: String,
        serial: u32,
        #[arg(long, value_enum)]
        action: Action,
        /// Why (kept with the resolution).
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Open => "open",
        State::Resolved => "resolved",
        State::All => "all",
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Book => "book",
        Action::Suspense => "suspense",
        Action::Reject => "reject",
    }
}

fn show(api: &Api, e: &Value) -> anyhow::Result<()> {
    api.print(e, |e| {
        let r = &e["record"];
        println!(
            "{}/{}: code {} {}, card {} counter {}, {} 元 + fee {} 元, merchant {}, at {}",
            cell(e, "device"),
            cell(e, "serial"),
            cell(e, "code"),
            cell(e, "reason"),
            cell(r, "card_no"),
            cell(r, "card_counter"),
            yuan(r, "amount"),
            yuan(r, "fee"),
            cell(r, "merchant_no"),
            cell(r, "time"),
        );
        let x = &e["resolution"];
        println!(
            "uploaded by {} at {}; {} {} {} {}",
            cell(e, "uploader"),
            cell(e, "received_at"),
            cell(x, "state"),
            cell(x, "resolved_by"),
            cell(x, "resolved_at"),
            cell(x, "note"),
        );
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::List {
            state,
            after,
            limit,
            api,
        } => {
            let api = Api::new(&api)?;
            let mut path = format!("/exceptions?state={}&limit={limit}", state_name(state));
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let list = api.get(&path)?;
            api.print(&list, |l| {
                let rows: Vec<Vec<String>> = l["exceptions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|e| {
                        vec![
                            format!("{}/{}", cell(e, "device"), cell(e, "serial")),
                            format!("{} {}", cell(e, "code"), cell(e, "reason")),
                            cell(&e["record"], "card_no"),
                            yuan(&e["record"], "amount"),
                            cell(&e["resolution"], "state"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["record", "code", "card", "amount", "state"], &rows)
                );
                println!("open: {}", cell(l, "open"));
                if !l["next_after"].is_null() {
                    println!("more: --after {}", cell(l, "next_after"));
                }
            })
        }
        Args::Show {
            device,
            serial,
            api,
        } => {
            let api = Api::new(&api)?;
            let e = api.get(&format!("/exceptions/{device}/{serial}"))?;
            show(&api, &e)
        }
        Args::Resolve {
            device,
            serial,
            action,
            note,
            api,
        } => {
            let api = Api::new(&api)?;
            let body = json!({"action": action_name(action), "note": note});
            let e = api.post(
                &format!("/exceptions/{device}/{serial}/resolve"),
                Some(&body),
            )?;
            show(&api, &e)
        }
    }
}
