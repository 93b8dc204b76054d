//! `ykt approval …` and `ykt shift close`: the two-person rule and the end of a cash shift
//! (R-B1, `docs/operators.md`).

use serde_json::json;

use super::client::{Api, ApiArgs, cell, items, table};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Requests waiting for a second operator (or all with --all).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a request: it runs as its requester's. Not your own.
    Approve {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Reject a request; nothing is booked.
    Reject {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::List { all, api } => {
            let api = Api::new(&api)?;
            let l = api.get(if all {
                "/approvals?status=all"
            } else {
                "/approvals"
            })?;
            api.print(&l, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|a| {
                        vec![
                            cell(a, "id"),
                            cell(a, "operation"),
                            cell(a, "target"),
                            a["payload"].to_string(),
                            cell(a, "requested_by"),
                            cell(a, "requested_at"),
                            cell(a, "status"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["id", "operation", "target", "what", "by", "at", "status"],
                        &rows
                    )
                );
            })
        }
        Args::Approve { id, api } => {
            let api = Api::new(&api)?;
            let a = api.post(&format!("/approvals/{id}/approve"), None)?;
            api.print(&a, |a| {
                println!("request {} {}", cell(a, "id"), cell(a, "status"))
            })
        }
        Args::Reject { id, note, api } => {
            let api = Api::new(&api)?;
            let a = api.post(
                &format!("/approvals/{id}/reject"),
                Some(&json!({"note": note})),
            )?;
            api.print(&a, |a| {
                println!("request {} {}", cell(a, "id"), cell(a, "status"))
            })
        }
    }
}

#[derive(clap::Subcommand)]
pub enum ShiftArgs {
    /// Close your open shift (扎帐) and print what to hand over.
    Close {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn shift(args: ShiftArgs) -> anyhow::Result<()> {
    match args {
        ShiftArgs::Close { api } => {
            let api = Api::new(&api)?;
            let s = api.post("/me/shift/close", None)?;
            api.print(&s, |s| {
                println!(
                    "shift {} closed at {}: cash {} deposits, {} 元",
                    cell(s, "id"),
                    cell(s, "closed_at"),
                    cell(&s["cash"], "count"),
                    super::client::yuan(&s["cash"], "amount")
                )
            })
        }
    }
}
