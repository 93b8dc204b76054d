//! `ykt authcard`: operator authorisation cards (授权卡, R-B11) through the admin API: issue,
//! list, show, report lost, freeze, unfreeze, disable, cancel, reset the PIN.

use serde_json::{Value, json};

use super::client::{Api, ApiArgs};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Issue a card to an operator.
    Issue {
        /// The operator's id (`ykt operator list`).
        #[arg(long)]
        operator: i64,
        /// Valid from, YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS" (terminal local time).
        #[arg(long)]
        from: String,
        /// Valid until (exclusive), the same formats.
        #[arg(long)]
        until: String,
        /// Functions it authorises: manual-sign-in, work-mode, reversal, statistics,
        /// clear-offline-time (repeat or separate with commas).
        #[arg(long = "function", value_delimiter = ',', required = true)]
        functions: Vec<String>,
        /// The initial PIN, 4–12 digits.
        #[arg(long)]
        pin: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List cards (of one operator with --operator).
    List {
        #[arg(long)]
        operator: Option<i64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a card and its latest checks.
    Show {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 挂失: report a card lost.
    Lost {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 冻结.
    Freeze {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 解冻.
    Unfreeze {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 禁用.
    Disable {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 注销 (final).
    Cancel {
        no: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Reset the PIN (unlocks a card locked by wrong PINs).
    ResetPin {
        no: u32,
        #[arg(long)]
        pin: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn state_text(s: &str) -> &str {
    match s {
        "normal" => "正常",
        "lost" => "挂失",
        "frozen" => "冻结",
        "locked" => "锁定",
        "disabled" => "禁用",
        "cancelled" => "注销",
        other => other,
    }
}

fn line(c: &Value) {
    let functions: Vec<&str> = c["functions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "授权卡 {}  操作员 {}  {}  {} – {}  功能 {}  密码剩余次数 {}",
        c["no"],
        c["operator_id"],
        state_text(c["state"].as_str().unwrap_or("")),
        c["valid_from"].as_str().unwrap_or(""),
        c["valid_until"].as_str().unwrap_or(""),
        functions.join(","),
        c["tries_left"],
    );
}

fn show(c: &Value) {
    line(c);
    for u in c["uses"].as_array().into_iter().flatten() {
        println!(
            "  {}  设备 {}  {}  返回码 {}",
            u["terminal_time"].as_str().unwrap_or(""),
            u["device"].as_str().unwrap_or(""),
            u["function"].as_str().unwrap_or(""),
            u["code"],
        );
    }
}

fn list(v: &Value) {
    for c in v["cards"].as_array().into_iter().flatten() {
        line(c);
    }
}

fn act(api: &ApiArgs, no: u32, action: &str) -> anyhow::Result<()> {
    let api = Api::new(api)?;
    let v = api.post(
        &format!("/authcards/{no}/state"),
        Some(&json!({ "action": action })),
    )?;
    api.print(&v, line)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Issue {
            operator,
            from,
            until,
            functions,
            pin,
            api,
        } => {
            let api = Api::new(&api)?;
            let body = json!({
                "operator_id": operator,
                "valid_from": from,
                "valid_until": until,
                "functions": functions,
                "pin": pin,
            });
            let v = api.post("/authcards", Some(&body))?;
            api.print(&v, line)
        }
        Args::List { operator, api } => {
            let api = Api::new(&api)?;
            let path = match operator {
                Some(op) => format!("/authcards?operator={op}"),
                None => "/authcards".to_owned(),
            };
            let v = api.get(&path)?;
            api.print(&v, list)
        }
        Args::Show { no, api } => {
            let api = Api::new(&api)?;
            let v = api.get(&format!("/authcards/{no}"))?;
            api.print(&v, show)
        }
        Args::Lost { no, api } => act(&api, no, "lost"),
        Args::Freeze { no, api } => act(&api, no, "freeze"),
        Args::Unfreeze { no, api } => act(&api, no, "unfreeze"),
        Args::Disable { no, api } => act(&api, no, "disable"),
        Args::Cancel { no, api } => act(&api, no, "cancel"),
        Args::ResetPin { no, pin, api } => {
            let api = Api::new(&api)?;
            let v = api.post(
                &format!("/authcards/{no}/pin"),
                Some(&json!({ "pin": pin })),
            )?;
            api.print(&v, line)
        }
    }
}
