//! `ykt dayend run|show|list`: day-end (日终, R-B9) through the admin API.

use super::client::{Api, ApiArgs, cell, items, table};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Close an accounting day (YYYY-MM-DD): snapshot, frozen report, audit, meal totals.
    Run {
        day: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A closed day as frozen.
    Show {
        day: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The closed days, newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn summary(d: &serde_json::Value) {
    println!(
        "日终 {}: 关账 {} ({}), 账户 {} 个, 对账{}",
        cell(d, "day"),
        cell(d, "closed_at"),
        cell(d, "closed_by"),
        cell(d, "accounts"),
        if d["audit_clean"] == true {
            "平"
        } else {
            "不平"
        }
    );
    let rows: Vec<Vec<String>> = items(&d["meals"])
        .iter()
        .map(|m| {
            vec![
                cell(m, "meal"),
                cell(m, "merchant_no"),
                cell(m, "debits"),
                cell(m, "amount"),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["meal", "merchant", "debits", "amount (分)"], &rows)
    );
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Run { day, api } => {
            let api = Api::new(&api)?;
            let d = api.post(&format!("/dayend/{day}"), None)?;
            api.print(&d, summary)
        }
        Args::Show { day, api } => {
            let api = Api::new(&api)?;
            let d = api.get(&format!("/dayend/{day}"))?;
            api.print(&d, summary)
        }
        Args::List { api } => {
            let api = Api::new(&api)?;
            let l = api.get("/dayend")?;
            api.print(&l, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|d| {
                        vec![
                            cell(d, "day"),
                            cell(d, "closed_at"),
                            cell(d, "closed_by"),
                            cell(d, "audit_clean"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["day", "closed at", "by", "audit clean"], &rows)
                );
            })
        }
    }
}
