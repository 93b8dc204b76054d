//! `ykt dayend run|show|list|settings|meals`: day-end (日终, R-B9) through the admin API.

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
    /// Show or change the close time (minutes after midnight) and the payout threshold.
    Settings {
        #[arg(long)]
        close_minute: Option<i64>,
        /// Fen: a payout above it waits for a second operator.
        #[arg(long)]
        payout_threshold: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show the meal periods (餐次), or replace them: NAME=HH:MM-HH:MM …
    Meals {
        #[arg(long = "set", num_args = 1..)]
        set: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `HH:MM` as minutes after midnight (24:00 ends the day).
fn minute(s: &str) -> anyhow::Result<u16> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("{s:?}: HH:MM"))?;
    let (h, m): (u16, u16) = (h.parse()?, m.parse()?);
    anyhow::ensure!(m < 60 && h * 60 + m <= 1440, "{s:?}: HH:MM up to 24:00");
    Ok(h * 60 + m)
}

/// `NAME=HH:MM-HH:MM` as a meal period.
fn period(s: &str) -> anyhow::Result<serde_json::Value> {
    let (name, range) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{s:?}: NAME=HH:MM-HH:MM"))?;
    let (from, to) = range
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("{s:?}: NAME=HH:MM-HH:MM"))?;
    Ok(serde_json::json!({
        "name": name, "start_minute": minute(from)?, "end_minute": minute(to)?,
    }))
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
        Args::Settings {
            close_minute,
            payout_threshold,
            api,
        } => {
            let api = Api::new(&api)?;
            let v = if close_minute.is_none() && payout_threshold.is_none() {
                api.get("/settings/dayend")?
            } else {
                let mut body = serde_json::Map::new();
                if let Some(m) = close_minute {
                    body.insert("dayend_close_minute".into(), m.into());
                }
                if let Some(t) = payout_threshold {
                    body.insert("payout_approval_threshold".into(), t.into());
                }
                api.put("/settings/dayend", &body.into())?
            };
            api.print(&v, |v| {
                println!(
                    "日终时间: 0:00 后 {} 分钟; 解款复核阈值: {} 分",
                    cell(v, "dayend_close_minute"),
                    cell(v, "payout_approval_threshold")
                );
            })
        }
        Args::Meals { set, api } => {
            let api = Api::new(&api)?;
            let v = if set.is_empty() {
                api.get("/settings/meal-periods")?
            } else {
                let periods = set
                    .iter()
                    .map(|p| period(p))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                api.put(
                    "/settings/meal-periods",
                    &serde_json::json!({ "periods": periods }),
                )?
            };
            api.print(&v, |v| {
                let rows: Vec<Vec<String>> = items(&v["periods"])
                    .iter()
                    .map(|p| {
                        vec![
                            cell(p, "name"),
                            cell(p, "start_minute"),
                            cell(p, "end_minute"),
                        ]
                    })
                    .collect();
                print!("{}", table(&["meal", "from (min)", "to (min)"], &rows));
            })
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
