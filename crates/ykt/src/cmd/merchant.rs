//! `ykt merchant add|list|terms|payout|payouts|check`: merchants through the admin API
//! (R-H3, R-B8).

use serde_json::{Value, json};

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
        /// canteen (食堂), shop (商店), topup-agent (充值点) or general (综合, the default).
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Merchants with status, type, commission rate and account balance.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change a merchant's type and/or commission rate (管理费, basis points: 250 = 2.5 %).
    Terms {
        no: u32,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        commission_bp: Option<u16>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Set a merchant's status: normal, stopped (止付, 43), abnormal (44), deregistered (41).
    Status {
        no: u32,
        status: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pay the merchant's balance minus its commission to its bank (解款); above the
    /// threshold it waits for a second operator (`ykt approval`).
    Payout {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The merchant's payout periods, newest first.
    Payouts {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Check every merchant account; mark inconsistent ones abnormal (code 44).
    Check {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn print_payout(p: &Value) {
    println!(
        "解款 {} 期 {}: 应付 {} 元, 管理费 {} 元, 实付 {} 元 ({} → {})",
        cell(p, "merchant_no"),
        cell(p, "seq"),
        yuan(p, "gross"),
        yuan(p, "commission"),
        yuan(p, "net"),
        cell(p, "period_from"),
        cell(p, "period_to"),
    );
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Add {
            no,
            name,
            kind,
            api,
        } => {
            let api = Api::new(&api)?;
            let mut body = json!({"no": no, "name": name});
            if let Some(k) = kind {
                body["kind"] = json!(k);
            }
            let m = api.post("/merchants", Some(&body))?;
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
                            cell(m, "kind"),
                            cell(m, "commission_bp"),
                            yuan(m, "balance"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "no",
                            "name",
                            "status",
                            "kind",
                            "commission (bp)",
                            "balance (元)"
                        ],
                        &rows
                    )
                );
            })
        }
        Args::Terms {
            no,
            kind,
            commission_bp,
            api,
        } => {
            let api = Api::new(&api)?;
            let mut body = json!({});
            if let Some(k) = kind {
                body["kind"] = json!(k);
            }
            if let Some(bp) = commission_bp {
                body["commission_bp"] = json!(bp);
            }
            let m = api.put(&format!("/merchants/{no}/terms"), &body)?;
            api.print(&m, |m| {
                println!(
                    "merchant {}: kind {}, commission {} bp",
                    cell(m, "no"),
                    cell(m, "kind"),
                    cell(m, "commission_bp")
                )
            })
        }
        Args::Status { no, status, api } => {
            let api = Api::new(&api)?;
            let m = api.put(
                &format!("/merchants/{no}/status"),
                &json!({ "status": status }),
            )?;
            api.print(&m, |m| {
                println!("merchant {}: {}", cell(m, "no"), cell(m, "status"))
            })
        }
        Args::Payout { no, api } => {
            let api = Api::new(&api)?;
            let p = api.post(&format!("/merchants/{no}/payout"), None)?;
            api.print(&p, |p| {
                if p["status"] == "pending" {
                    println!(
                        "{} (approval {})",
                        cell(p, "message"),
                        cell(&p["approval"], "id")
                    );
                } else {
                    print_payout(p);
                }
            })
        }
        Args::Payouts { no, api } => {
            let api = Api::new(&api)?;
            let list = api.get(&format!("/merchants/{no}/payouts"))?;
            api.print(&list, |l| items(l).iter().for_each(print_payout))
        }
        Args::Check { api } => {
            let api = Api::new(&api)?;
            let r = api.post("/merchants/check", None)?;
            api.print(&r, |r| println!("abnormal: {}", r["abnormal"]))
        }
    }
}
