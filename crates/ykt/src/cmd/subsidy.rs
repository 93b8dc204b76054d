//! `ykt subsidy import|list|show|check|approve|issue|revoke|expire|caps`: subsidy batches
//! (补助, R-B5) through the admin API. Import sends the list as it is; the server checks
//! every line. `docs/operators.md` says who does which step.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::client::{Api, ApiArgs, cell, encode, items, read_sheet, table, yuan};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Import a subsidy list (.csv or .xlsx) as a new batch: all lines or none.
    Import {
        file: PathBuf,
        /// The batch number, unique.
        #[arg(long)]
        batch: u32,
        /// The batch's name (e.g. 2026 年 12 月伙食补助).
        #[arg(long)]
        name: String,
        /// What still waits after this day may be expired back to the funding account.
        #[arg(long)]
        expires: NaiveDate,
        #[arg(long, default_value = "")]
        note: String,
        /// The account paying: funding (default) or fund:<name>.
        #[arg(long)]
        funding: Option<String>,
        /// This batch's cap in all, fen (at most the system's).
        #[arg(long)]
        batch_cap: Option<i64>,
        /// This batch's cap per card, fen (at most the system's).
        #[arg(long)]
        card_cap: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Batches, newest first.
    List {
        /// Only batches in this state: imported, checked, approved, issued, closed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One batch, its report and its lines.
    Show {
        batch: u32,
        /// Most lines listed.
        #[arg(long, default_value_t = 100)]
        lines: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 审核: check an imported batch; it then waits for a second operator's approval.
    Check {
        batch: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a checked batch (neither its checker nor its importer may).
    Approve {
        batch: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Issue an approved batch: every line waits for its card's next tap.
    Issue {
        batch: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a batch: what is not picked up goes back to the funding account.
    Revoke {
        batch: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Expire a batch after its date: what still waits goes back to the funding account.
    Expire {
        batch: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The system's caps (fen); with both values, sets them (administrators).
    Caps {
        #[arg(long, requires = "card_cap")]
        batch_cap: Option<i64>,
        #[arg(long, requires = "batch_cap")]
        card_cap: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

const HEADERS: [&str; 7] = [
    "batch",
    "name",
    "state",
    "lines",
    "total (元)",
    "expires",
    "funding",
];

fn row(b: &Value) -> Vec<String> {
    vec![
        cell(b, "no"),
        cell(b, "name"),
        cell(b, "state_title"),
        cell(b, "lines"),
        yuan(b, "total"),
        cell(b, "expires_on"),
        cell(b, "funding"),
    ]
}

fn print_batch(b: &Value) {
    print!("{}", table(&HEADERS, &[row(b)]));
}

/// The report columns of one batch (or the total): count / 元 per state.
pub fn report_row(label: String, r: &Value) -> Vec<String> {
    let sum = |k: &str| format!("{} / {}", cell(&r[k], "count"), yuan(&r[k], "amount"));
    vec![
        label,
        sum("issued"),
        sum("picked_up"),
        sum("waiting"),
        sum("revoked"),
        sum("expired"),
    ]
}

pub const REPORT_HEADERS: [&str; 6] = [
    "batch",
    "issued (n / 元)",
    "picked up",
    "waiting",
    "revoked",
    "expired",
];

fn step(api: &ApiArgs, batch: u32, what: &str) -> anyhow::Result<()> {
    let api = Api::new(api)?;
    let b = api.post(&format!("/subsidies/{batch}/{what}"), None)?;
    api.print(&b, print_batch)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Import {
            file,
            batch,
            name,
            expires,
            note,
            funding,
            batch_cap,
            card_cap,
            api,
        } => {
            let api = Api::new(&api)?;
            let (media, bytes) = read_sheet(&file)?;
            let mut path = format!(
                "/subsidies/import?batch={batch}&name={}&expires_on={expires}&note={}",
                encode(&name),
                encode(&note)
            );
            for (k, v) in [
                ("funding", funding),
                ("batch_cap", batch_cap.map(|c| c.to_string())),
                ("card_cap", card_cap.map(|c| c.to_string())),
            ] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", encode(&v)));
                }
            }
            let b = api.post_raw(&path, media, &bytes)?;
            api.print(&b, |b| {
                println!(
                    "batch {} imported: {} lines, {} 元",
                    cell(b, "no"),
                    cell(b, "lines"),
                    yuan(b, "total")
                )
            })
        }
        Args::List { state, limit, api } => {
            let api = Api::new(&api)?;
            let mut path = format!("/subsidies?limit={limit}");
            if let Some(s) = state {
                path.push_str(&format!("&state={}", encode(&s)));
            }
            let l = api.get(&path)?;
            api.print(&l, |l| {
                let rows: Vec<Vec<String>> = items(&l["batches"]).iter().map(row).collect();
                print!("{}", table(&HEADERS, &rows));
            })
        }
        Args::Show { batch, lines, api } => {
            let api = Api::new(&api)?;
            let mut b = api.get(&format!("/subsidies/{batch}"))?;
            let l = api.get(&format!("/subsidies/{batch}/lines?limit={lines}"))?;
            b["lines_page"] = json!(l["lines"]);
            api.print(&b, |b| {
                print_batch(b);
                println!(
                    "{}",
                    table(&REPORT_HEADERS, &[report_row(cell(b, "no"), &b["report"])])
                );
                let rows: Vec<Vec<String>> = items(&b["lines_page"])
                    .iter()
                    .map(|l| {
                        vec![
                            cell(l, "line"),
                            cell(l, "holder"),
                            cell(l, "card_no"),
                            yuan(l, "amount"),
                            cell(l, "state_title"),
                            cell(l, "note"),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["line", "学工号", "card", "元", "state", "note"], &rows)
                );
            })
        }
        Args::Check { batch, api } => step(&api, batch, "check"),
        Args::Approve { batch, api } => step(&api, batch, "approve"),
        Args::Issue { batch, api } => step(&api, batch, "issue"),
        Args::Revoke { batch, api } => step(&api, batch, "revoke"),
        Args::Expire { batch, api } => step(&api, batch, "expire"),
        Args::Caps {
            batch_cap,
            card_cap,
            api,
        } => {
            let api = Api::new(&api)?;
            let c = match (batch_cap, card_cap) {
                (Some(b), Some(c)) => {
                    api.put("/subsidies/caps", &json!({"batch_cap": b, "card_cap": c}))?
                }
                _ => api.get("/subsidies/caps")?,
            };
            api.print(&c, |c| {
                println!(
                    "per batch {} 元, per card {} 元",
                    yuan(c, "batch_cap"),
                    yuan(c, "card_cap")
                )
            })
        }
    }
}
