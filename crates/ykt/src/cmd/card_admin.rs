//! `ykt card issue|lose|found|freeze|unfreeze|cancel|info|waiting|pin|list`: the card office, through the
//! admin API. `issue` opens the account with its opening balance, then writes the card image
//! (MF1 dump or CPU card file) for the number the system gave (R-T2.1).

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use rand::RngCore;
use serde_json::{Value, json};
use ykt_card::app::issue::{IssueParams, issue};
use ykt_card::cpu::app::issue_cpu;
use ykt_proto::types::{CardNo, DisplayNo, Fen};

use super::card::CardType;
use super::client::{Api, ApiArgs, cell, items, table, yuan};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Issue a card: open its account (opening balance paid in) and write its image.
    Issue(IssueArgs),
    /// Report a card lost (挂失): it joins the blacklist (R-H4).
    Lose(Target),
    /// Report a lost card found: it leaves the blacklist.
    Found(Target),
    /// Freeze a card (code 52 at terminals; blacklisted).
    Freeze(Target),
    /// Unfreeze a frozen card.
    Unfreeze(Target),
    /// Cancel a card for good (code 57; blacklisted).
    Cancel(Target),
    /// The system's view of a card: status, balance mirror, counter, blacklist state.
    Info(Target),
    /// What waits for the card (deposits, subsidies) and its loads (top-ups, pick-ups).
    Waiting(Target),
    /// A card-office deposit, tallied in your shift (R-B1): it waits for the card until a POS
    /// picks it up (docs/loads.md); at or above the approval threshold it waits for a second
    /// operator first.
    Deposit {
        card_no: u32,
        /// Fen.
        #[arg(long)]
        amount: Fen,
        /// The receipt number: a repeated one is refused, never booked twice.
        #[arg(long)]
        id: String,
        /// cash, bank-card or transfer.
        #[arg(long, default_value = "cash")]
        method: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The card's PIN at the card office: reset or change (`card_pin.rs`).
    #[command(subcommand)]
    Pin(super::card_pin::Args),
    /// Cards in number order, a page at a time.
    List {
        /// Start after this card number.
        #[arg(long, default_value_t = 0)]
        after: u32,
        /// Cards per page (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Args)]
pub struct Target {
    /// Card number (应用序列号).
    card_no: u32,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
pub struct IssueArgs {
    #[arg(long = "type", value_enum, default_value = "mf1")]
    card_type: CardType,
    /// Display card number (显示卡号), at most 10 digits, unique.
    #[arg(long)]
    display_no: u64,
    /// Permission class (卡类别), 0–255.
    #[arg(long, default_value_t = 1)]
    class: u8,
    /// Expiry date, YYYY-MM-DD.
    #[arg(long)]
    expiry: NaiveDate,
    /// Opening balance in fen, paid in from the funding account.
    #[arg(long, default_value_t = 0)]
    balance: Fen,
    /// Card password, 4–12 digits.
    #[arg(long)]
    pin: String,
    /// The cardholder's student or staff number (学工号): the card becomes theirs (R-B2).
    #[arg(long)]
    cardholder: Option<String>,
    /// The system master key file [default: DATA/keys].
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Where to write the image; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Issue(a) => issue_card(a),
        Args::Deposit {
            card_no,
            amount,
            id,
            method,
            api,
        } => {
            let api = Api::new(&api)?;
            let body = json!({"amount": amount, "id": id, "method": method});
            let r = api.post(&format!("/cards/{card_no}/deposit"), Some(&body))?;
            api.print(&r, |r| match r.get("approval") {
                Some(a) => println!(
                    "{}: request {} waits for a second operator (ykt approval approve {})",
                    cell(r, "message"),
                    cell(a, "id"),
                    cell(a, "id")
                ),
                None => println!(
                    "card {} balance {} 元, waiting for pick-up {} 元",
                    cell(r, "card_no"),
                    yuan(r, "balance"),
                    yuan(r, "waiting")
                ),
            })
        }
        Args::Pin(a) => super::card_pin::run(a),
        Args::Lose(t) => action(t, "lose"),
        Args::Found(t) => action(t, "found"),
        Args::Freeze(t) => action(t, "freeze"),
        Args::Unfreeze(t) => action(t, "unfreeze"),
        Args::Cancel(t) => action(t, "cancel"),
        Args::Info(t) => {
            let api = Api::new(&t.api)?;
            let c = api.get(&format!("/cards/{}", t.card_no))?;
            api.print(&c, show)
        }
        Args::Waiting(t) => {
            let api = Api::new(&t.api)?;
            let w = api.get(&format!("/cards/{}/waiting", t.card_no))?;
            api.print(&w, show_waiting)
        }
        Args::List { after, limit, api } => {
            let api = Api::new(&api)?;
            let page = api.get(&format!("/cards?after={after}&limit={limit}"))?;
            api.print(&page, |p| {
                let rows: Vec<Vec<String>> = items(&p["cards"])
                    .iter()
                    .map(|c| {
                        vec![
                            cell(c, "card_no"),
                            format!("{:010}", c["display_no"].as_u64().unwrap_or(0)),
                            cell(c, "status"),
                            cell(c, "class"),
                            cell(c, "expiry"),
                            yuan(c, "balance"),
                            cell(c, "counter_next"),
                            cell(c, "blacklisted"),
                        ]
                    })
                    .collect();
                let h = [
                    "card",
                    "display",
                    "status",
                    "class",
                    "expiry",
                    "balance (元)",
                    "next counter",
                    "blacklisted",
                ];
                print!("{}", table(&h, &rows));
                if let Some(n) = p["next_after"].as_u64() {
                    println!("more: --after {n}");
                }
            })
        }
    }
}

fn show(c: &Value) {
    println!("应用序列号 (card no): {}", cell(c, "card_no"));
    println!(
        "显示卡号 (display no): {:010}",
        c["display_no"].as_u64().unwrap_or(0)
    );
    println!("状态 (status): {}", cell(c, "status"));
    println!(
        "卡类别 (class): {}  有效期 (expiry): {}",
        cell(c, "class"),
        cell(c, "expiry")
    );
    println!(
        "账户余额 (balance, system mirror): {} 元",
        yuan(c, "balance")
    );
    println!(
        "下一交易次数 (next lifetime counter): {}",
        cell(c, "counter_next")
    );
    if !c["blacklisted"].is_null() {
        println!("黑名单 (blacklisted): {}", cell(c, "blacklisted"));
    }
    if !c["blacklist_version"].is_null() {
        println!(
            "黑名单版本 (blacklist version): {}",
            cell(c, "blacklist_version")
        );
    }
}

fn show_waiting(w: &Value) {
    println!(
        "待领 (waiting): {} 元  补助序号 (subsidy sequence): {}  未确认 (pending loads): {}",
        yuan(w, "waiting"),
        cell(w, "subsidy_seq"),
        cell(w, "loads_pending")
    );
    let rows: Vec<Vec<String>> = items(&w["waiting_loads"])
        .iter()
        .map(|l| {
            let claim = &l["load"];
            let by = if claim.is_null() {
                String::new()
            } else {
                format!("{}/{}", cell(claim, "device"), cell(claim, "serial"))
            };
            vec![
                cell(l, "id"),
                yuan(l, "amount"),
                cell(l, "source"),
                cell(l, "batch"),
                cell(l, "state"),
                by,
            ]
        })
        .collect();
    let h = ["id", "amount (元)", "source", "batch", "state", "load"];
    print!("{}", table(&h, &rows));
    let rows: Vec<Vec<String>> = items(&w["loads"])
        .iter()
        .map(|l| {
            vec![
                format!("{}/{}", cell(l, "device"), cell(l, "serial")),
                cell(l, "purpose"),
                yuan(l, "amount"),
                cell(l, "counter_before"),
                cell(l, "state"),
                cell(l, "time"),
            ]
        })
        .collect();
    let h = ["load", "purpose", "amount (元)", "counter", "state", "time"];
    print!("{}", table(&h, &rows));
}

fn action(t: Target, what: &str) -> anyhow::Result<()> {
    let api = Api::new(&t.api)?;
    let c = api.post(&format!("/cards/{}/{what}", t.card_no), None)?;
    api.print(&c, show)
}

fn issue_card(a: IssueArgs) -> anyhow::Result<()> {
    // Everything that can fail locally is checked before the account is opened.
    let keys_path = a.keys.clone().unwrap_or_else(|| a.api.data.join("keys"));
    let keys = super::keys::load(&keys_path)?;
    if a.out.exists() {
        bail!("{} exists; not overwritten", a.out.display());
    }
    let display =
        DisplayNo::new(a.display_no).context("display number has at most 10 digits (R-T2.2)")?;
    if !(4..=12).contains(&a.pin.len()) || !a.pin.bytes().all(|b| b.is_ascii_digit()) {
        bail!("the PIN is 4 to 12 digits");
    }
    let api = Api::new(&a.api)?;
    let body = json!({
        "display_no": a.display_no,
        "class": a.class,
        "expiry": a.expiry.to_string(),
        "balance": a.balance,
        "cardholder": a.cardholder,
    });
    let c = api.post("/cards", Some(&body))?;
    let no = c["card_no"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .and_then(CardNo::new)
        .context("the API answered without a card number")?;
    let mut uid = [0u8; 4];
    rand::rng().fill_bytes(&mut uid);
    let image = match a.card_type {
        CardType::Mf1 => {
            let p = IssueParams {
                card_no: no,
                display_no: display,
                class: a.class,
                expiry: a.expiry,
                balances: vec![a.balance],
                pin: a.pin.clone(),
            };
            issue(&keys, uid, &p)
                .map(|c| c.to_dump())
                .map_err(anyhow::Error::from)
        }
        CardType::Cpu => issue_cpu(
            &keys,
            uid,
            no,
            display,
            a.class,
            a.expiry,
            a.balance,
            &a.pin,
            rand::rng().next_u64(),
        )
        .map(|c| c.to_image().into_bytes())
        .context("a CPU card holds 0 to 2147483647 fen"),
    };
    let written = image.and_then(|bytes: Vec<u8>| super::keys::write_secret(&a.out, &bytes));
    if let Err(e) = written {
        bail!(
            "card {} was issued with its account, but its image could not be written: {e:#}. \
             Write it with `ykt card new --card-no {} --display-no {} --class {} --expiry {} \
             --balance {} …`",
            no.get(),
            no.get(),
            a.display_no,
            a.class,
            a.expiry,
            a.balance
        );
    }
    api.print(&c, |c| {
        show(c);
        println!("card image: {}", a.out.display());
    })
}
