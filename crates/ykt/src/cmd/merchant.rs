//! `ykt merchant add|list`: merchants through the admin API (R-H3).

use serde_json::json;

use super::client::{Api, ApiArgs, cell, items, table, yuan};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Create a merchant with its account.
    Add {
        /// Merchant number (商户号), not 0.
        #[arg(long)]
        no: u32,
        /// Merchant name as terminals show it after sign-in.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Merchants with status and account balance.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Add { no, name, api } => {
            let api = Api::new(&api)?;
            let m = api.post("/merchants", Some(&json!({"no": no, "name": name})))?;
            api.print(&m, |m| {
                println!("merchant {} {} created", cell(m, "no"), cell(m, "name"))
            })
        }
        Args::List { api } => {
            let api = Api::new(&api)?;
            let list = api.get("/merchants")?;
            api.print(&list, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|m| {
                        vec![
                            cell(m, "no"),
                            cell(m, "name"),
                            cell(m, "status"),
                            yuan(m, "balance"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["no", "name", "status", "balance (元)"], &rows)
                );
            })
        }
    }
}
