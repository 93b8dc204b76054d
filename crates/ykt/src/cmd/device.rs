//! `ykt device add|enable|disable|list|show|set-params|topup`: terminals through the admin API
//! (R-H1; parameters R-F4.4–R-F4.18, every field the host downloads, allowed classes
//! R-F4.5 included, are pushed to a connected terminal at once).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::client::{Api, ApiArgs, cell, items, table, yuan};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Suite {
    Aes128,
    Sm4,
}

#[derive(clap::Subcommand)]
pub enum Args {
    /// Register a device with a fresh master key; writes its provisioning file (once only).
    Add {
        /// Physical ID, 8 hex digits.
        #[arg(long)]
        id: String,
        #[arg(long)]
        terminal_no: u32,
        #[arg(long)]
        merchant: u32,
        #[arg(long, value_enum, default_value = "aes128")]
        mac_suite: Suite,
        /// Per-transaction limit in fen (code 71); 0 = none.
        #[arg(long, default_value_t = 0)]
        max_amount: i64,
        /// Register without enabling (the terminal gets 22 until `device enable`).
        #[arg(long)]
        disabled: bool,
        /// Provisioning file to write (mode 0600) [default: DATA/devices/<id>.json].
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Enable a device (R-H1).
    Enable {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Disable a device: its next request gets 23.
    Disable {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Devices with status, connection and last status report.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One device with its parameters.
    Show {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change parameters (a new version; pushed at once to a connected terminal).
    SetParams(Box<ParamsArgs>),
    /// Let the device take top-ups (R-B4, function bit 8) with the operator whose cash it
    /// takes (`--operator`; none: bank top-ups only), or stop them (`--off`).
    Topup {
        id: String,
        /// The operator logged in at the device; posted cash top-ups count in their shift.
        #[arg(long, conflicts_with = "off")]
        operator: Option<String>,
        /// The device takes no top-ups any more (a POS again: code 28).
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Args)]
pub struct ParamsArgs {
    id: String,
    /// full-online, auto or offline (R-F4.18).
    #[arg(long)]
    work_mode: Option<String>,
    /// unit-price, fixed-amount or coded (R-F4.10).
    #[arg(long)]
    consumption_mode: Option<String>,
    #[arg(long)]
    fixed_amount: Option<i64>,
    #[arg(long)]
    max_balance: Option<i64>,
    #[arg(long)]
    min_balance: Option<i64>,
    #[arg(long)]
    max_daily_uses: Option<u16>,
    #[arg(long)]
    single_password_threshold: Option<i64>,
    #[arg(long)]
    daily_password_threshold: Option<i64>,
    #[arg(long)]
    wallet_no: Option<u8>,
    #[arg(long)]
    max_offline_hours: Option<u16>,
    /// Fee rate of a class in percent, `CLASS=PERCENT` (R-F4.13); repeatable.
    #[arg(long = "fee-rate", value_parser = parse_rate)]
    fee_rates: Vec<(u8, u8)>,
    /// An item of the price list of coded mode, `CODE=FEN[:SUBJECT]` (R-F4.10, R-F4.14);
    /// repeatable; the items given replace the whole list.
    #[arg(long = "price", value_parser = parse_price)]
    prices: Vec<(u16, i64, u16)>,
    /// Empty the price list.
    #[arg(long, conflicts_with = "prices")]
    clear_prices: bool,
    /// The card classes allowed on the terminal (R-F4.5), replacing the old set: `all`,
    /// `none`, or classes and ranges such as `1,3,10-20`.
    #[arg(long, value_parser = parse_classes)]
    classes: Option<ClassList>,
    /// A working-hours window `HH:MM-HH:MM` (R-H1, code 27; a window may span midnight);
    /// repeatable; the windows given replace the old ones.
    #[arg(long = "hours", value_parser = parse_hours)]
    hours: Vec<(String, String)>,
    /// Remove every working-hours window (always working).
    #[arg(long, conflicts_with = "hours")]
    clear_hours: bool,
    /// The functions that need an operator card (授权卡, R-B11), replacing the old set:
    /// `none` or names such as `reversal,statistics` (manual-sign-in, work-mode, reversal,
    /// statistics, clear-offline-time).
    #[arg(long)]
    operator_card: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

fn parse_rate(s: &str) -> Result<(u8, u8), String> {
    let (c, r) = s.split_once('=').ok_or("CLASS=PERCENT, e.g. 3=5")?;
    let class = c.parse().map_err(|_| "class is 0-255")?;
    let rate: u8 = r.parse().map_err(|_| "rate is 0-100")?;
    if rate > 100 {
        return Err("rate is 0-100".into());
    }
    Ok((class, rate))
}

/// The classes of `--classes` (a newtype: clap would read `Option<Vec<_>>` as many values).
#[derive(Clone, Debug)]
pub struct ClassList(Vec<u8>);

/// `all`, `none` or `1,3,10-20`.
fn parse_classes(s: &str) -> Result<ClassList, String> {
    const FORM: &str = "all, none, or classes 0-255 and ranges, e.g. 1,3,10-20";
    match s {
        "all" => return Ok(ClassList((0..=u8::MAX).collect())),
        "none" => return Ok(ClassList(Vec::new())),
        _ => {}
    }
    let mut out = std::collections::BTreeSet::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u8 = a.trim().parse().map_err(|_| FORM)?;
        let b: u8 = b.trim().parse().map_err(|_| FORM)?;
        if a > b {
            return Err(FORM.into());
        }
        out.extend(a..=b);
    }
    Ok(ClassList(out.into_iter().collect()))
}

/// `HH:MM-HH:MM` (seconds allowed: `HH:MM:SS`), checked by the host.
fn parse_hours(s: &str) -> Result<(String, String), String> {
    let (a, b) = s.split_once('-').ok_or("HH:MM-HH:MM, e.g. 06:30-09:00")?;
    Ok((a.trim().to_owned(), b.trim().to_owned()))
}

/// A class list as compact ranges: `0-255`, `1,3,10-20`, `none`.
fn class_ranges(v: &Value) -> String {
    let list: Vec<u64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i;
        while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            list[i].to_string()
        } else {
            format!("{}-{}", list[i], list[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

fn parse_price(s: &str) -> Result<(u16, i64, u16), String> {
    const FORM: &str = "CODE=FEN[:SUBJECT], e.g. 12=1200 or 12=1200:3";
    let (code, rest) = s.split_once('=').ok_or(FORM)?;
    let (price, subject) = rest.split_once(':').unwrap_or((rest, "0"));
    let code = code
        .parse()
        .map_err(|_| format!("item code is 1-65535 ({FORM})"))?;
    let price = price
        .parse()
        .map_err(|_| format!("price is whole fen ({FORM})"))?;
    let subject = subject
        .parse()
        .map_err(|_| format!("subject is 0-65535 ({FORM})"))?;
    Ok((code, price, subject))
}

fn show_device(d: &Value) {
    println!(
        "device {}  terminal {}  merchant {}  {}  connected {}",
        cell(d, "id"),
        cell(d, "terminal_no"),
        cell(d, "merchant_no"),
        cell(d, "status"),
        cell(d, "connected")
    );
    if let Some(p) = d.get("params").and_then(Value::as_object) {
        for (k, v) in p {
            if k == "allowed_classes" {
                println!("  {k}: {}", class_ranges(v));
            } else {
                println!("  {k}: {v}");
            }
        }
    }
    if let Some(r) = d.get("last_report").filter(|r| !r.is_null()) {
        println!(
            "  last status report {}: {} record(s) not uploaded, clock {}, blacklist version {}",
            cell(r, "at"),
            cell(r, "pending_records"),
            cell(r, "terminal_clock"),
            cell(r, "blacklist_version")
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Add {
            id,
            terminal_no,
            merchant,
            mac_suite,
            max_amount,
            disabled,
            out,
            api: a,
        } => {
            let out = out.unwrap_or_else(|| a.data.join("devices").join(format!("{id}.json")));
            if out.exists() {
                anyhow::bail!("{} exists; not overwritten", out.display());
            }
            let api = Api::new(&a)?;
            let body = json!({
                "id": id,
                "terminal_no": terminal_no,
                "merchant_no": merchant,
                "mac_suite": match mac_suite { Suite::Aes128 => 1, Suite::Sm4 => 2 },
                "max_amount": max_amount,
                "enable": !disabled,
            });
            let r = api.post("/devices", Some(&body))?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let prov = serde_json::to_string_pretty(&r["provisioning"])?;
            super::keys::write_secret(&out, prov.as_bytes()).with_context(|| {
                format!("device registered, but its provisioning file could not be written; the key is: {prov}")
            })?;
            api.print(&r, |r| {
                show_device(&r["device"]);
                println!(
                    "provisioning file (holds the master key): {}",
                    out.display()
                );
            })
        }
        Args::Enable { id, api } => status(&id, "enable", &api),
        Args::Disable { id, api } => status(&id, "disable", &api),
        Args::List { api } => {
            let api = Api::new(&api)?;
            let list = api.get("/devices")?;
            api.print(&list, |l| {
                let rows: Vec<Vec<String>> = items(l)
                    .iter()
                    .map(|d| {
                        let p = &d["params"];
                        vec![
                            cell(d, "id"),
                            cell(d, "terminal_no"),
                            cell(d, "merchant_no"),
                            cell(d, "status"),
                            cell(d, "connected"),
                            cell(p, "version"),
                            cell(p, "work_mode"),
                            yuan(d, "max_amount"),
                        ]
                    })
                    .collect();
                let h = [
                    "id",
                    "terminal",
                    "merchant",
                    "status",
                    "connected",
                    "params",
                    "mode",
                    "limit (元)",
                ];
                print!("{}", table(&h, &rows));
            })
        }
        Args::Show { id, api } => {
            let api = Api::new(&api)?;
            let d = api.get(&format!("/devices/{id}"))?;
            api.print(&d, show_device)
        }
        Args::SetParams(p) => set_params(*p),
        Args::Topup {
            id,
            operator,
            off,
            api,
        } => {
            let api = Api::new(&api)?;
            let body = json!({"enabled": !off, "operator": operator});
            let r = api.put(&format!("/devices/{id}/topup"), &body)?;
            api.print(&r, |r| {
                match (r["top_up"].as_bool(), r["operator"].as_str()) {
                    (Some(true), Some(op)) => println!("device {id}: 充值机, cash taken by {op}"),
                    (Some(true), None) => println!("device {id}: 充值机, bank top-ups only"),
                    _ => println!("device {id}: takes no top-ups"),
                }
            })
        }
    }
}

fn status(id: &str, action: &str, a: &ApiArgs) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    let d = api.post(&format!("/devices/{id}/{action}"), None)?;
    api.print(&d, show_device)
}

fn set_params(p: ParamsArgs) -> anyhow::Result<()> {
    let mut patch = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            patch.insert(k.into(), v);
        }
    };
    put("work_mode", p.work_mode.map(Value::from));
    put("consumption_mode", p.consumption_mode.map(Value::from));
    put("fixed_amount", p.fixed_amount.map(Value::from));
    put("max_balance", p.max_balance.map(Value::from));
    put("min_balance", p.min_balance.map(Value::from));
    put("max_daily_uses", p.max_daily_uses.map(Value::from));
    put(
        "single_password_threshold",
        p.single_password_threshold.map(Value::from),
    );
    put(
        "daily_password_threshold",
        p.daily_password_threshold.map(Value::from),
    );
    put("wallet_no", p.wallet_no.map(Value::from));
    put("max_offline_hours", p.max_offline_hours.map(Value::from));
    if !p.fee_rates.is_empty() {
        let rates: Map<String, Value> = p
            .fee_rates
            .iter()
            .map(|(c, r)| (c.to_string(), Value::from(*r)))
            .collect();
        put("fee_rates", Some(Value::Object(rates)));
    }
    if p.clear_prices {
        put("price_list", Some(json!([])));
    } else if !p.prices.is_empty() {
        let items: Vec<Value> = p
            .prices
            .iter()
            .map(|(code, price, subject)| json!({"code": code, "price": price, "subject": subject}))
            .collect();
        put("price_list", Some(Value::Array(items)));
    }
    put("allowed_classes", p.classes.map(|c| Value::from(c.0)));
    if p.clear_hours {
        put("working_hours", Some(json!([])));
    } else if !p.hours.is_empty() {
        let windows: Vec<Value> = p
            .hours
            .iter()
            .map(|(start, end)| json!({"start": start, "end": end}))
            .collect();
        put("working_hours", Some(Value::Array(windows)));
    }
    if let Some(names) = &p.operator_card {
        let names: Vec<&str> = match names.as_str() {
            "none" => Vec::new(),
            s => s.split(',').map(str::trim).collect(),
        };
        put("operator_card", Some(json!(names)));
    }
    if patch.is_empty() {
        anyhow::bail!("nothing to change: give at least one parameter (see --help)");
    }
    let api = Api::new(&p.api)?;
    let r = api.put(&format!("/devices/{}/params", p.id), &Value::Object(patch))?;
    api.print(&r, |r| {
        show_device(&r["device"]);
        if r["pushed"].as_bool() == Some(true) {
            println!("pushed to the connected terminal");
        } else {
            println!("not connected here: the terminal sees the new version in its next heartbeat");
        }
    })
}
