//! `ykt report reconcile`: card-vs-account reconciliation (卡库不平, R-B10): the cards whose
//! records and account disagree, with the state, difference and first-seen time; `--run`
//! runs a reconciliation first (collection orders go to the terminals that last saw the
//! cards); `--alarm-days` / `--alarm-fen` set the alarm's thresholds.

use serde_json::{Value, json};

use super::client::{Api, ApiArgs, cell, items, table, yuan};

#[derive(clap::Args)]
pub struct Args {
    /// Run a reconciliation first (scan every card, re-check, send collection orders).
    #[arg(long)]
    run: bool,
    /// Which cards: open (default), alarms, all (resolved ones too).
    #[arg(long, default_value = "open")]
    show: String,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Set the alarm: open states older than this many days (with --alarm-fen).
    #[arg(long, requires = "alarm_fen")]
    alarm_days: Option<i64>,
    /// Set the alarm: open states with a difference of at least this many fen.
    #[arg(long, requires = "alarm_days")]
    alarm_fen: Option<i64>,
    #[command(flatten)]
    api: ApiArgs,
}

/// The card office's words for the states.
fn state_text(s: &str) -> &str {
    match s {
        "agree" => "已平",
        "missing" => "缺流水",
        "held" => "异常流水待处理",
        "pending_load" => "充值待确认",
        "card_higher" => "卡余额大于库",
        "card_lower" => "卡余额小于库",
        other => other,
    }
}

fn print_cards(r: &Value) {
    let rows: Vec<Vec<String>> = items(&r["cards"])
        .iter()
        .map(|c| {
            let state = c["state"].as_str().unwrap_or("-");
            vec![
                cell(c, "card_no"),
                format!("{} ({state})", state_text(state)),
                yuan(c, "card_balance"),
                yuan(c, "book_balance"),
                yuan(c, "difference"),
                cell(c, "missing"),
                cell(c, "last_device"),
                cell(c, "since"),
                cell(c, "resolved_at"),
                match c["collect_sent_at"].as_str() {
                    Some(t) => format!("{} @ {t}", cell(c, "collect_count")),
                    None => cell(c, "collect_count"),
                },
                if c["alarm"].as_bool() == Some(true) {
                    "告警".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "card",
                "state",
                "card (元)",
                "books (元)",
                "difference (元)",
                "missing",
                "last device",
                "since",
                "resolved",
                "collect",
                "alarm",
            ],
            &rows
        )
    );
    let a = &r["alarm"];
    println!(
        "unexplained (alarm: {} days or {} 元): {}",
        cell(a, "days"),
        yuan(a, "fen"),
        cell(r, "unexplained")
    );
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let api = Api::new(&a.api)?;
    if let (Some(days), Some(fen)) = (a.alarm_days, a.alarm_fen) {
        api.put("/reconcile/settings", &json!({"days": days, "fen": fen}))?;
    }
    let mut ran = None;
    if a.run {
        let r = api.post("/reconcile/run", Some(&json!({})))?;
        if !a.api.json {
            println!(
                "reconciled {} cards: {} out of agreement, {} agree again, {} collection orders",
                cell(&r, "cards"),
                cell(&r, "found"),
                cell(&r, "resolved"),
                items(&r["orders"]).len()
            );
        }
        ran = Some(r);
    }
    let mut r = api.get(&format!(
        "/reconcile?show={}&limit={}",
        super::client::encode(&a.show),
        a.limit
    ))?;
    if let (Some(run), Some(obj)) = (ran, r.as_object_mut()) {
        obj.insert("run".into(), run);
    }
    api.print(&r, print_cards)
}
