//! `ykt fep list|add|activate|deregister`: front-end processors (R-H7). Activating the FEP
//! a running `ykt serve` serves as signs it in at once: terminals stop getting 11/12.

use serde_json::json;

use super::client::{Api, ApiArgs, cell, items, table};

#[derive(clap::Subcommand)]
pub enum Args {
    /// FEPs with status and last sign-in.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Register a FEP (status registered: terminals get 11 until it is activated).
    Add {
        #[arg(long)]
        id: u32,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Activate a FEP.
    Activate {
        id: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Deregister a FEP for good (its terminals get 13).
    Deregister {
        id: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn show(api: &Api, f: &serde_json::Value) -> anyhow::Result<()> {
    api.print(f, |f| {
        println!(
            "FEP {} {}: {} (signed in {})",
            cell(f, "id"),
            cell(f, "name"),
            cell(f, "status"),
            cell(f, "signed_in_at")
        )
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::List { api } => {
            let api = Api::new(&api)?;
            let list = api.get("/feps")?;
            api.print(&list, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|f| {
                        let this = if f["this_process"].as_bool() == Some(true) {
                            "*"
                        } else {
                            ""
                        };
                        vec![
                            format!("{}{this}", cell(f, "id")),
                            cell(f, "name"),
                            cell(f, "status"),
                            cell(f, "signed_in_at"),
                        ]
                    })
                    .collect();
                print!("{}", table(&["id", "name", "status", "signed in"], &rows));
            })
        }
        Args::Add { id, name, api } => {
            let api = Api::new(&api)?;
            let f = api.post("/feps", Some(&json!({"id": id, "name": name})))?;
            show(&api, &f)
        }
        Args::Activate { id, api } => {
            let api = Api::new(&api)?;
            let f = api.post(&format!("/feps/{id}/activate"), None)?;
            show(&api, &f)
        }
        Args::Deregister { id, api } => {
            let api = Api::new(&api)?;
            let f = api.post(&format!("/feps/{id}/deregister"), None)?;
            show(&api, &f)
        }
    }
}
