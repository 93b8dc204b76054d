//! `ykt card replace|bad|repair|close|closure|refund|moves|closures`: replacement (补卡),
//! bad-card repair (坏卡修复), closure and refunds (销户 / 退款), graduation closure batches
//! (R-B6, R-B7), through the admin API (`docs/operators.md`). `repair` writes the rewritten
//! card's image as `ykt card new` does.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use rand::RngCore;
use serde_json::{Value, json};
use ykt_card::app::issue::{IssueParams, issue_at_counter};
use ykt_proto::types::{CardNo, DisplayNo, Fen};

use super::card::CardType;
use super::client::{Api, ApiArgs, cell, items, read_sheet, table, yuan};

#[derive(clap::Subcommand)]
pub enum Args {
    /// 补卡: replace a lost or bad card by a new card number for the same cardholder; the
    /// balance moves to the new card after the waiting period.
    Replace {
        /// The old card's number.
        card_no: u32,
        /// The new card's printed number (unique).
        #[arg(long)]
        display_no: u64,
        /// 工本费 in fen.
        #[arg(long, default_value_t = 0)]
        fee: Fen,
        /// How the fee is paid: cash (in your shift) or balance (from the old card).
        #[arg(long)]
        fee_method: Option<String>,
        #[command(flatten)]
        image: NewImage,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 登记坏卡: register a card that no longer reads as bad (code 53 at terminals).
    Bad(Target),
    /// 坏卡修复: rewrite a bad card from the system's view (MF1): the account's balance and
    /// the counter the host expects; the difference to its last record is explained.
    Repair {
        card_no: u32,
        /// The card's PIN, as the cardholder gives it (4–12 digits).
        #[arg(long)]
        pin: String,
        /// The system master key file [default: DATA/keys].
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Where to write the image; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// 销户: close a card (blocked at once); its refund is due after the waiting period.
    Close {
        card_no: u32,
        /// cash or bank.
        #[arg(long, default_value = "cash")]
        method: String,
        /// The holder's bank account for a bank refund.
        #[arg(long)]
        bank_account: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A card's closure and what it would refund now.
    Closure(Target),
    /// 退款: pay a due refund out (finance; cash is a payout in your shift).
    Refund {
        card_no: u32,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Replacement moves: `run` the due ones now, or `list` them.
    Moves {
        #[command(subcommand)]
        what: Moves,
    },
    /// Closure batches (毕业销户) and refunds.
    Closures {
        #[command(subcommand)]
        what: Closures,
    },
}

#[derive(clap::Subcommand)]
pub enum Moves {
    /// Move every due replacement's balance now (the server does it every 5 minutes).
    Run(RunArgs),
    /// The replacements, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum Closures {
    /// Import a graduation list (.csv or .xlsx: 学工号, 退款方式, 银行账号) as one batch.
    Import {
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Closures, newest first, or those of one batch.
    Show {
        #[arg(long)]
        batch: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a batch waiting for a second operator (its approval request's id).
    Approve {
        approval_id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pay every due bank refund now (the server does it every 5 minutes).
    Run(RunArgs),
}

/// The new card's image, written as `ykt card issue` does (new UID and keys, balance 0:
/// the old card's balance reaches it as a pick-up once the replacement is due).
#[derive(clap::Args)]
pub struct NewImage {
    #[arg(long = "type", value_enum, default_value = "mf1")]
    card_type: CardType,
    /// The card's PIN (the cardholder's), 4–12 digits.
    #[arg(long)]
    pin: String,
    /// The system master key file [default: DATA/keys].
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Where to write the new card's image; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct Target {
    card_no: u32,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Run as of this time (YYYY-MM-DD HH:MM:SS); not later than now.
    #[arg(long)]
    at: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Replace {
            card_no,
            display_no,
            fee,
            fee_method,
            image,
            api,
        } => {
            let keys =
                super::keys::load(&image.keys.clone().unwrap_or_else(|| api.data.join("keys")))?;
            if image.out.exists() {
                bail!("{} exists; not overwritten", image.out.display());
            }
            check_pin(&image.pin)?;
            let client = Api::new(&api)?;
            let body = json!({"display_no": display_no, "fee": fee, "fee_method": fee_method});
            let r = client.post(&format!("/cards/{card_no}/replace"), Some(&body))?;
            if let Err(e) = write_new_card(&keys, &image, &r["new_card"]) {
                bail!(
                    "card {card_no} is replaced in the system by card {}, but its image could not \
                     be written: {e:#}. Write it with `ykt card new` (balance 0)",
                    cell(&r["new_card"], "card_no")
                );
            }
            let api = client;
            api.print(&r, |r| {
                let rep = &r["replacement"];
                println!(
                    "卡 {} 已补卡：新卡 {}（显示卡号 {:010}），工本费 {} 元（{}）",
                    cell(rep, "old_card"),
                    cell(rep, "new_card"),
                    r["new_card"]["display_no"].as_u64().unwrap_or(0),
                    yuan(rep, "fee"),
                    cell(rep, "fee_method")
                );
                println!(
                    "余额于 {} 转入新卡（待领取，新卡下次刷卡时写入）",
                    cell(rep, "due_at")
                );
                println!("card image: {}", image.out.display());
            })
        }
        Args::Bad(t) => {
            let api = Api::new(&t.api)?;
            let c = api.post(&format!("/cards/{}/bad", t.card_no), None)?;
            api.print(&c, |c| {
                println!(
                    "卡 {} 已登记为坏卡（{}）",
                    cell(c, "card_no"),
                    cell(c, "status")
                )
            })
        }
        Args::Repair {
            card_no,
            pin,
            keys,
            out,
            api,
        } => repair(card_no, &pin, keys, &out, &api),
        Args::Close {
            card_no,
            method,
            bank_account,
            api,
        } => {
            let api = Api::new(&api)?;
            let body = json!({"method": method, "bank_account": bank_account});
            let c = api.post(&format!("/cards/{card_no}/close"), Some(&body))?;
            api.print(&c, |c| {
                println!(
                    "卡 {} 已销户（已加入黑名单），退款方式 {}，{} 起可退款",
                    cell(c, "card_no"),
                    cell(c, "method"),
                    cell(c, "due_at")
                )
            })
        }
        Args::Closure(t) => {
            let api = Api::new(&t.api)?;
            let c = api.get(&format!("/cards/{}/closure", t.card_no))?;
            api.print(&c, |c| {
                let cl = &c["closure"];
                println!(
                    "卡 {}：{}，退款方式 {}，到期 {}，可退 {} 元",
                    cell(cl, "card_no"),
                    cell(cl, "state"),
                    cell(cl, "method"),
                    cell(cl, "due_at"),
                    yuan(c, "refundable")
                );
                if cl["state"] == "paid" {
                    println!("已退 {} 元于 {}", yuan(cl, "amount"), cell(cl, "at"));
                }
            })
        }
        Args::Refund { card_no, run } => {
            let api = Api::new(&run.api)?;
            let body = json!({"at": run.at});
            let c = api.post(&format!("/closures/{card_no}/pay"), Some(&body))?;
            api.print(&c, |c| {
                println!(
                    "卡 {} 退款 {} 元（{}）",
                    cell(c, "card_no"),
                    yuan(c, "amount"),
                    cell(c, "method")
                )
            })
        }
        Args::Moves { what } => match what {
            Moves::Run(a) => {
                let api = Api::new(&a.api)?;
                let r = api.post("/replacements/run", Some(&json!({"at": a.at})))?;
                api.print(&r, |r| {
                    for m in items(&r["moved"]) {
                        println!(
                            "卡 {} → 新卡 {}：{} 元待领取",
                            cell(m, "old_card"),
                            cell(m, "new_card"),
                            yuan(m, "amount")
                        );
                    }
                    println!("{} 笔补卡余额已转移", items(&r["moved"]).len());
                })
            }
            Moves::List { limit, api } => {
                let api = Api::new(&api)?;
                let r = api.get(&format!("/replacements?limit={limit}"))?;
                api.print(&r, |r| print!("{}", replacements_table(r)))
            }
        },
        Args::Closures { what } => closures(what),
    }
}

fn replacements_table(r: &Value) -> String {
    let rows: Vec<Vec<String>> = items(r)
        .iter()
        .map(|m| {
            vec![
                cell(m, "old_card"),
                cell(m, "new_card"),
                cell(m, "reason"),
                yuan(m, "fee"),
                cell(m, "state"),
                cell(m, "due_at"),
                yuan(m, "amount"),
                yuan(m, "corrected"),
            ]
        })
        .collect();
    let h = [
        "old",
        "new",
        "reason",
        "fee (元)",
        "state",
        "due",
        "moved (元)",
        "corrected (元)",
    ];
    table(&h, &rows)
}

fn closures(what: Closures) -> anyhow::Result<()> {
    match what {
        Closures::Import { file, api } => {
            let (media, bytes) = read_sheet(&file)?;
            let api = Api::new(&api)?;
            let r = api.post_raw("/closures/import", media, &bytes)?;
            api.print(&r, |r| match r["status"].as_str() {
                Some("pending") => println!(
                    "批次 {}：退款合计 {} 元，{}（ykt card closures approve {}）",
                    cell(r, "batch"),
                    yuan(r, "total"),
                    cell(r, "message"),
                    cell(&r["approval"], "id")
                ),
                _ => println!(
                    "批次 {}：{} 张卡已销户",
                    cell(r, "batch"),
                    items(&r["lines"]).len()
                ),
            })
        }
        Closures::Show { batch, limit, api } => {
            let api = Api::new(&api)?;
            let q = match batch {
                Some(b) => format!("/closures?batch={b}&limit={limit}"),
                None => format!("/closures?limit={limit}"),
            };
            let r = api.get(&q)?;
            api.print(&r, |r| {
                let rows: Vec<Vec<String>> = items(r)
                    .iter()
                    .map(|c| {
                        vec![
                            cell(c, "card_no"),
                            cell(c, "batch"),
                            cell(c, "method"),
                            cell(c, "state"),
                            cell(c, "due_at"),
                            yuan(c, "amount"),
                        ]
                    })
                    .collect();
                let h = ["card", "batch", "method", "state", "due", "refund (元)"];
                print!("{}", table(&h, &rows));
            })
        }
        Closures::Approve { approval_id, api } => {
            let api = Api::new(&api)?;
            let r = api.post(&format!("/approvals/{approval_id}/approve"), None)?;
            api.print(&r, |r| {
                println!(
                    "审批 {}：{}（{}）",
                    cell(r, "id"),
                    cell(r, "status"),
                    cell(r, "target")
                )
            })
        }
        Closures::Run(a) => {
            let api = Api::new(&a.api)?;
            let r = api.post("/closures/run", Some(&json!({"at": a.at})))?;
            api.print(&r, |r| {
                println!("{} 笔银行退款已支付", items(&r["paid"]).len())
            })
        }
    }
}

fn check_pin(pin: &str) -> anyhow::Result<()> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        bail!("the PIN is 4 to 12 digits");
    }
    Ok(())
}

/// The replacement card's image, from the card the API issued (balance 0).
fn write_new_card(
    keys: &ykt_card::keys::SystemKeys,
    image: &NewImage,
    c: &Value,
) -> anyhow::Result<()> {
    let no = c["card_no"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .and_then(CardNo::new)
        .context("the API answered without a card number")?;
    let display = c["display_no"]
        .as_u64()
        .and_then(DisplayNo::new)
        .context("display number")?;
    let class = c["class"]
        .as_u64()
        .and_then(|n| u8::try_from(n).ok())
        .context("class")?;
    let expiry = NaiveDate::parse_from_str(&cell(c, "expiry"), "%Y-%m-%d").context("expiry")?;
    let mut uid = [0u8; 4];
    rand::rng().fill_bytes(&mut uid);
    let bytes = match image.card_type {
        CardType::Mf1 => {
            let p = IssueParams {
                card_no: no,
                display_no: display,
                class,
                expiry,
                balances: vec![0],
                pin: image.pin.clone(),
            };
            issue_at_counter(keys, uid, &p, 0)?.to_dump()
        }
        CardType::Cpu => ykt_card::cpu::app::issue_cpu(
            keys,
            uid,
            no,
            display,
            class,
            expiry,
            0,
            &image.pin,
            rand::rng().next_u64(),
        )
        .context("CPU card issue")?
        .to_image()
        .into_bytes(),
    };
    super::keys::write_secret(&image.out, &bytes)
}

/// Asks the host what to write, then writes the MF1 image: the account's balance and the
/// next counter. The card is normal in the system from the answer on: a failed write is
/// reported with what to write by hand.
fn repair(
    card_no: u32,
    pin: &str,
    keys: Option<PathBuf>,
    out: &std::path::Path,
    api: &ApiArgs,
) -> anyhow::Result<()> {
    let keys_path = keys.unwrap_or_else(|| api.data.join("keys"));
    let keys = super::keys::load(&keys_path)?;
    if out.exists() {
        bail!("{} exists; not overwritten", out.display());
    }
    check_pin(pin)?;
    let client = Api::new(api)?;
    let r = client.post(&format!("/cards/{card_no}/repair"), None)?;
    let field = |k: &str| {
        r[k].as_u64()
            .with_context(|| format!("the answer has no {k}"))
    };
    let no = u32::try_from(field("card_no")?)
        .ok()
        .and_then(CardNo::new)
        .context("card number")?;
    let display = DisplayNo::new(field("display_no")?).context("display number")?;
    let class = u8::try_from(field("class")?).context("class")?;
    let counter = u32::try_from(field("counter")?).context("counter")?;
    let balance = r["balance"].as_i64().context("the answer has no balance")?;
    let expiry = NaiveDate::parse_from_str(&cell(&r, "expiry"), "%Y-%m-%d").context("expiry")?;
    let mut uid = [0u8; 4];
    rand::rng().fill_bytes(&mut uid);
    let p = IssueParams {
        card_no: no,
        display_no: display,
        class,
        expiry,
        balances: vec![balance],
        pin: pin.to_owned(),
    };
    let written = issue_at_counter(&keys, uid, &p, counter)
        .map(|c| c.to_dump())
        .map_err(anyhow::Error::from)
        .and_then(|bytes| super::keys::write_secret(out, &bytes));
    if let Err(e) = written {
        bail!(
            "card {card_no} is repaired in the system, but its image could not be written: \
             {e:#}. Write balance {balance} fen and counter {counter} onto the card"
        );
    }
    client.print(&r, |r| {
        println!(
            "卡 {} 已修复：写入余额 {} 元，交易次数 {}",
            cell(r, "card_no"),
            yuan(r, "balance"),
            cell(r, "counter")
        );
        println!(
            "差额 {} 元：{}",
            yuan(r, "difference"),
            cell(r, "explanation")
        );
        println!("card image: {}", out.display());
    })
}
