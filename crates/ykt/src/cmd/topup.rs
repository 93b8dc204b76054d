//! `ykt topup limits`: the top-up limits (code 90 充值已达到限额, R-B4) through the admin API;
//! with no flag it shows them, with flags it changes the ones given and keeps the others.

use serde_json::Value;

use super::client::{Api, ApiArgs, yuan};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Show or change the limits (fen; 0 = no limit).
    Limits {
        /// The most one top-up may bring, fen.
        #[arg(long)]
        per_top_up: Option<i64>,
        /// The most a card may be topped up in a day (terminal clock), fen.
        #[arg(long)]
        daily: Option<i64>,
        /// The most a card may hold after a top-up, fen.
        #[arg(long)]
        card_balance: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn show(l: &Value) {
    let limit = |k: &str| match l[k].as_i64() {
        Some(0) => "no limit".to_owned(),
        _ => format!("{} 元", yuan(l, k)),
    };
    println!("per top-up: {}", limit("per_top_up"));
    println!("per card per day: {}", limit("per_card_per_day"));
    println!("card balance after: {}", limit("balance_after"));
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args::Limits {
        per_top_up,
        daily,
        card_balance,
        api,
    } = args;
    let api = Api::new(&api)?;
    let mut limits = api.get("/topup/limits")?;
    let changes = [
        ("per_top_up", per_top_up),
        ("per_card_per_day", daily),
        ("balance_after", card_balance),
    ];
    if changes.iter().all(|(_, v)| v.is_none()) {
        return api.print(&limits, show);
    }
    for (k, v) in changes {
        if let Some(v) = v {
            limits[k] = Value::from(v);
        }
    }
    let after = api.put("/topup/limits", &limits)?;
    api.print(&after, show)
}
