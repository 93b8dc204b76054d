//! `ykt report daily [--date YYYY-MM-DD]`: per merchant, per device, per accounting subject
//! (科目, R-F4.14) and per item code, the day's debits, fees and reversals (cancellations
//! R-P5.5 and 冲正), from the host's records, and the day's subsidy money; `ykt report
//! subsidies`: per subsidy batch (R-B5); `ykt report reconcile` (`reconcile.rs`, R-B10).

use chrono::NaiveDate;
use serde_json::Value;

use super::client::{Api, ApiArgs, cell, items, table, yuan};
use super::subsidy;

#[derive(clap::Subcommand)]
pub enum Args {
    /// One day's report [default: today on the server's campus clock].
    Daily {
        /// The day, YYYY-MM-DD (the terminals' local calendar).
        #[arg(long)]
        date: Option<NaiveDate>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Subsidy batches (R-B5): per batch, issued, picked up, waiting, revoked, expired.
    Subsidies {
        /// Only batches in this state: imported, checked, approved, issued, closed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Card-vs-account reconciliation (卡库不平, R-B10): cards whose records and account
    /// disagree; --run reconciles first.
    Reconcile(super::reconcile::Args),
    /// One operator's cash report of a day, shift by shift (R-B1) [default: your own, today].
    Cash {
        /// The operator's login; without it, your own shifts.
        #[arg(long)]
        operator: Option<String>,
        #[arg(long)]
        date: Option<NaiveDate>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn print_cash(r: &Value) {
    let sum = |v: &Value| format!("{} / {}", cell(v, "count"), yuan(v, "amount"));
    let rows: Vec<Vec<String>> = items(&r["shifts"])
        .iter()
        .map(|s| {
            vec![
                cell(s, "id"),
                cell(s, "opened_at"),
                cell(s, "closed_at"),
                sum(&s["cash"]),
                sum(&s["bank_card"]),
                sum(&s["transfer"]),
            ]
        })
        .collect();
    println!("{} {}", cell(r, "operator"), cell(r, "date"));
    print!(
        "{}",
        table(
            &[
                "shift",
                "opened",
                "closed",
                "cash (n / 元)",
                "bank card",
                "transfer"
            ],
            &rows
        )
    );
    println!(
        "cash to hand over: {} 元 ({} deposits)",
        yuan(&r["cash"], "amount"),
        cell(&r["cash"], "count")
    );
}

const HEAD: [&str; 8] = [
    "",
    "debits",
    "amount (元)",
    "fee (元)",
    "reversals",
    "reversed (元)",
    "reversed fee (元)",
    "net (元)",
];

fn row(label: String, t: &Value) -> Vec<String> {
    let net = t["debit_amount"].as_i64().unwrap_or(0) - t["reversal_amount"].as_i64().unwrap_or(0);
    vec![
        label,
        cell(t, "debits"),
        yuan(t, "debit_amount"),
        yuan(t, "debit_fee"),
        cell(t, "reversals"),
        yuan(t, "reversal_amount"),
        yuan(t, "reversal_fee"),
        yuan(&serde_json::json!({"n": net}), "n"),
    ]
}

fn print_report(r: &Value) {
    println!("daily report {}", cell(r, "date"));
    let mut head = HEAD;
    head[0] = "merchant";
    let mut rows: Vec<Vec<String>> = items(&r["merchants"])
        .iter()
        .map(|m| row(cell(m, "merchant_no"), m))
        .collect();
    rows.push(row("total".into(), &r["total"]));
    println!("\n{}", table(&head, &rows));
    head[0] = "device";
    let rows: Vec<Vec<String>> = items(&r["devices"])
        .iter()
        .map(|d| row(cell(d, "device"), d))
        .collect();
    println!("{}", table(&head, &rows));
    head[0] = "subject";
    let rows: Vec<Vec<String>> = items(&r["subjects"])
        .iter()
        .map(|l| {
            let label = match l["subject"].as_u64() {
                Some(n) => n.to_string(),
                None => "none".into(),
            };
            row(label, l)
        })
        .collect();
    println!("{}", table(&head, &rows));
    head[0] = "item code";
    let rows: Vec<Vec<String>> = items(&r["items"])
        .iter()
        .map(|l| match l["item_code"].as_u64() {
            Some(0) | None => row("none".into(), l),
            Some(_) => row(cell(l, "item_code"), l),
        })
        .collect();
    println!("{}", table(&head, &rows));
    let sub = &r["subsidies"];
    let sum = |k: &str| format!("{} / {}", cell(&sub[k], "count"), yuan(&sub[k], "amount"));
    print!(
        "{}",
        table(
            &[
                "subsidies",
                "issued (n / 元)",
                "picked up",
                "revoked",
                "expired"
            ],
            &[vec![
                "total".into(),
                sum("issued"),
                sum("picked_up"),
                sum("revoked"),
                sum("expired"),
            ]]
        )
    );
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Daily { date, api } => {
            let api = Api::new(&api)?;
            let path = match date {
                Some(d) => format!("/reports/daily?date={d}"),
                None => "/reports/daily".into(),
            };
            let r = api.get(&path)?;
            api.print(&r, print_report)
        }
        Args::Subsidies { state, limit, api } => {
            let api = Api::new(&api)?;
            let mut path = format!("/reports/subsidies?limit={limit}");
            if let Some(s) = state {
                path.push_str(&format!("&state={}", super::client::encode(&s)));
            }
            let r = api.get(&path)?;
            api.print(&r, |r| {
                let mut rows: Vec<Vec<String>> = items(&r["batches"])
                    .iter()
                    .map(|b| subsidy::report_row(cell(b, "no"), b))
                    .collect();
                rows.push(subsidy::report_row("total".into(), &r["total"]));
                print!("{}", table(&subsidy::REPORT_HEADERS, &rows));
            })
        }
        Args::Reconcile(a) => super::reconcile::run(a),
        Args::Cash {
            operator,
            date,
            api,
        } => {
            let api = Api::new(&api)?;
            let date = date.map(|d| format!("date={d}"));
            let path = match operator {
                Some(o) => format!(
                    "/reports/cash?operator={o}{}",
                    date.map(|d| format!("&{d}")).unwrap_or_default()
                ),
                None => format!(
                    "/me/shift{}",
                    date.map(|d| format!("?{d}")).unwrap_or_default()
                ),
            };
            let r = api.get(&path)?;
            api.print(&r, print_cash)
        }
    }
}
