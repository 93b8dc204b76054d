//! `ykt card`: issue, show and check card images — an MF1 card as the standard 1024-byte dump
//! NFC tools read and write, a CPU card as a `ykt-cpu-card-1` text file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use rand::RngCore;
use ykt_card::app::diagnose::{Diagnosis, WalletAction, WalletDiagnosis, diagnose};
use ykt_card::app::issue::{IssueParams, issue};
use ykt_card::app::operator::{OperatorData, issue_operator};
use ykt_card::app::{CardRecord, TxKind};
use ykt_card::cpu::CpuCard;
use ykt_card::cpu::app::{CpuApp, CpuRead, issue_cpu};
use ykt_card::keys::SystemKeys;
use ykt_card::mf1::Mf1Card;
use ykt_card::mf1::card::DUMP_LEN;
use ykt_card::{ReaderError, SimCard, SimulatedReader};
use ykt_proto::hexstr;
use ykt_proto::types::{CardNo, DisplayNo, Fen};

/// No card file of ours is larger.
const MAX_CARD_FILE: u64 = 64 * 1024;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CardType {
    Mf1,
    Cpu,
}

#[derive(clap::Subcommand)]
pub enum Args {
    /// Issue a new card image.
    New(NewArgs),
    /// Show everything on a card, decoded.
    Show {
        file: PathBuf,
        #[arg(long)]
        keys: PathBuf,
    },
    /// Verify every checksum and copy; exit 0 when the card is usable, 1 when it is not.
    Check {
        file: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        /// The date expiry is checked against (default: today, UTC).
        #[arg(long)]
        today: Option<NaiveDate>,
    },
    /// The card office through the admin API: issue, deposit, lose, found, freeze, unfreeze,
    /// cancel, info, list (`card_admin.rs`).
    #[command(flatten)]
    Admin(super::card_admin::Args),
    /// Replacement, repair, closure and refunds (`card_lifecycle.rs`, R-B6, R-B7).
    #[command(flatten)]
    Lifecycle(super::card_lifecycle::Args),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// MIFARE Classic 1K (written as a 1024-byte dump) or PBOC-style CPU card (text image).
    #[arg(long = "type", value_enum)]
    card_type: CardType,
    /// Application serial number (应用序列号), 1 to 16777215.
    #[arg(long)]
    card_no: u32,
    /// Display card number (显示卡号), at most 10 digits.
    #[arg(long)]
    display_no: u64,
    /// Permission class (卡类别), 0–255.
    #[arg(long)]
    class: u8,
    /// Expiry date, YYYY-MM-DD.
    #[arg(long)]
    expiry: NaiveDate,
    /// Opening balance of the main wallet in fen.
    #[arg(long)]
    balance: Fen,
    /// Card password, 4–12 digits (only verification data is stored).
    #[arg(long)]
    pin: String,
    /// The system master key file (`ykt keys new`).
    #[arg(long)]
    keys: PathBuf,
    /// Where to write the image; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// The card's 4-byte UID in hex (default: random, as a blank card would have).
    #[arg(long)]
    uid: Option<String>,
    /// An operator card (授权卡, R-B11, MF1 only) of this operator id: `--card-no` is the
    /// authorisation card's number (`ykt authcard issue`), `--pin` its PIN.
    #[arg(long, requires_all = ["valid_from", "valid_until", "functions"])]
    operator: Option<u32>,
    /// First day the operator card is valid, YYYY-MM-DD.
    #[arg(long, requires = "operator")]
    valid_from: Option<NaiveDate>,
    /// First day it is no longer valid, YYYY-MM-DD.
    #[arg(long, requires = "operator")]
    valid_until: Option<NaiveDate>,
    /// The functions it authorises: manual-sign-in, work-mode, reversal, statistics,
    /// clear-offline-time, comma-separated.
    #[arg(long, requires = "operator")]
    functions: Option<String>,
}

/// The operator block of `--operator …`, if asked for.
fn operator_data(a: &NewArgs, card_no: CardNo) -> anyhow::Result<Option<OperatorData>> {
    let (Some(operator), Some(from), Some(until), Some(names)) = (
        a.operator,
        a.valid_from,
        a.valid_until,
        a.functions.as_deref(),
    ) else {
        return Ok(None);
    };
    let mut set = ykt_proto::AuthFunctions::NONE;
    for n in names.split(',').map(str::trim) {
        let f = ykt_proto::AuthFunction::parse(n).with_context(|| {
            format!(
                "{n:?} is not manual-sign-in, work-mode, reversal, statistics or clear-offline-time"
            )
        })?;
        set = set.with(f);
    }
    Ok(Some(OperatorData {
        auth_card_no: card_no.get(),
        operator,
        valid_from: from,
        valid_until: until,
        functions: set.bits(),
    }))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::New(a) => new(a),
        Args::Admin(a) => super::client::exit_on_error(super::card_admin::run(a)),
        Args::Lifecycle(a) => super::client::exit_on_error(super::card_lifecycle::run(a)),
        Args::Show { file, keys } => {
            let keys = super::keys::load(&keys)?;
            match load(&file)? {
                SimCard::Mf1(card) => show_mf1(card, &keys),
                SimCard::Cpu(card) => show_cpu(card),
            }
        }
        Args::Check { file, keys, today } => {
            let keys = super::keys::load(&keys)?;
            let today = today.unwrap_or_else(today_utc);
            let problems = match load(&file)? {
                SimCard::Mf1(card) => check_mf1(card, &keys, today)?,
                SimCard::Cpu(card) => check_cpu(card, &keys, today)?,
            };
            if problems.is_empty() {
                println!("card usable");
                Ok(())
            } else {
                // A plain message and status 1, whatever RUST_BACKTRACE says: this is an answer.
                eprintln!("card not usable: {}", problems.join("; "));
                std::process::exit(1)
            }
        }
    }
}

fn today_utc() -> NaiveDate {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(0), 0)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

fn new(a: NewArgs) -> anyhow::Result<()> {
    let keys = super::keys::load(&a.keys)?;
    let card_no = CardNo::new(a.card_no).context("card number must be 1 to 16777215 (R-T2.1)")?;
    let display_no =
        DisplayNo::new(a.display_no).context("display number has at most 10 digits (R-T2.2)")?;
    let uid = match &a.uid {
        Some(h) => hexstr::parse::<4>(h).context("--uid must be 8 hex digits")?,
        None => {
            let mut u = [0u8; 4];
            rand::rng().fill_bytes(&mut u);
            u
        }
    };
    let (bytes, what) = match a.card_type {
        CardType::Mf1 => {
            let p = IssueParams {
                card_no,
                display_no,
                class: a.class,
                expiry: a.expiry,
                balances: vec![a.balance],
                pin: a.pin.clone(),
            };
            match operator_data(&a, card_no)? {
                Some(op) => (
                    issue_operator(&keys, uid, &p, &op)?.to_dump(),
                    "MF1 1K dump (operator card)",
                ),
                None => (issue(&keys, uid, &p)?.to_dump(), "MF1 1K dump"),
            }
        }
        CardType::Cpu if a.operator.is_some() => {
            bail!("an operator card is MF1 for now (--type mf1)")
        }
        CardType::Cpu => {
            let seed = rand::rng().next_u64();
            let card = issue_cpu(
                &keys, uid, card_no, display_no, a.class, a.expiry, a.balance, &a.pin, seed,
            )
            .context("balance must be 0–2147483647 fen, PIN 4–12 digits")?;
            (card.to_image().into_bytes(), "CPU card image")
        }
    };
    // Card images carry key material (MF1 trailers, CPU card keys): owner-only, like keys.
    super::keys::write_secret(&a.out, &bytes)?;
    println!(
        "issued card {} (UID {}) as {what}: {}",
        card_no.get(),
        hexstr::encode(&uid),
        a.out.display()
    );
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<SimCard> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_CARD_FILE {
        bail!("{} is too large to be a card image", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() == DUMP_LEN {
        return Ok(SimCard::Mf1(Mf1Card::from_dump(&bytes)?));
    }
    let text = std::str::from_utf8(&bytes).ok().with_context(|| {
        format!(
            "{}: neither a {DUMP_LEN}-byte MF1 dump nor a CPU card image",
            path.display()
        )
    })?;
    Ok(SimCard::Cpu(
        CpuCard::from_image(text).with_context(|| format!("{}", path.display()))?,
    ))
}

fn yuan(fen: Fen) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02} 元", fen.abs() / 100, fen.abs() % 100)
}

fn part<T>(r: &Result<Option<T>, ReaderError>) -> Result<&T, String> {
    match r {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err("损坏 (damaged: checksum or format)".into()),
        Err(e) => Err(format!("不可读 (unreadable: {e})")),
    }
}

fn kind_text(k: TxKind) -> &'static str {
    match k {
        TxKind::Purchase => "消费",
        TxKind::TopUp => "充值",
        TxKind::Reversal => "冲正",
    }
}

fn record_line(r: &CardRecord) -> String {
    format!(
        "  #{:<6} {}  {}  金额 {}  手续费 {}  余额 {} → {}  终端 {} 流水号 {}",
        r.counter_before + 1,
        r.time.format("%Y-%m-%d %H:%M:%S"),
        kind_text(r.kind),
        yuan(r.amount),
        yuan(r.fee),
        yuan(r.balance_before),
        yuan(r.balance_after),
        r.device,
        r.serial
    )
}

fn reader_with(card: SimCard) -> SimulatedReader {
    let mut r = SimulatedReader::new(0);
    r.place(card);
    r
}

fn mf1_diagnosis(card: Mf1Card, keys: &SystemKeys) -> anyhow::Result<Diagnosis> {
    let mut r = reader_with(SimCard::Mf1(card));
    Ok(diagnose(&mut r, keys)?)
}

fn action_text(a: &WalletAction) -> String {
    match a {
        WalletAction::Use => "正常消费 (use as is)".into(),
        WalletAction::RepairBackup => {
            "以主钱包块修复备份钱包块 (rewrite the backup from the main copy)".into()
        }
        WalletAction::RepairMain => {
            "以备份钱包块修复主钱包块 (copy the backup over the main copy, R-F4.2)".into()
        }
        WalletAction::FinishInterrupted => {
            "完成中断的交易 (the interrupted transaction landed: finish it)".into()
        }
        WalletAction::AbandonInterrupted => {
            "放弃中断的交易 (the interrupted transaction did not land: drop it)".into()
        }
        WalletAction::Refuse(why) => format!("拒绝 (refuse the card: {why})"),
    }
}

fn show_wallet(w: &WalletDiagnosis) {
    println!("钱包 {} (wallet, sector {}):", w.wallet_no, w.dir.sector);
    for (label, copy) in [
        ("主钱包块 (main)", &w.main),
        ("备份钱包块 (backup)", &w.backup),
    ] {
        match part(copy) {
            Ok(v) => {
                let day = v.day.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "  {label}: 卡余额 {}  交易次数 {}  日期 {day}  当日使用次数 {}  当日累计消费金额 {}",
                    yuan(v.balance),
                    v.counter,
                    v.daily_count,
                    yuan(v.daily_amount)
                );
            }
            Err(e) => println!("  {label}: {e}"),
        }
    }
    match part(&w.tx_state) {
        Ok(t) if t.pending => println!(
            "  交易状态 (transaction state): 进行中 (pending) {} #{}: {} → {}",
            kind_text(t.kind),
            t.counter_before + 1,
            yuan(t.balance_before),
            yuan(t.balance_after)
        ),
        Ok(_) => println!("  交易状态 (transaction state): 空闲 (idle)"),
        Err(e) => println!("  交易状态 (transaction state): {e}"),
    }
    println!("  终端处理 (terminal would): {}", action_text(&w.action));
    println!(
        "  卡内流水 (recent transactions, {} of {} slots used):",
        w.records.len(),
        w.dir.ring_capacity()
    );
    for r in &w.records {
        println!("{}", record_line(r));
    }
}

fn show_mf1(card: Mf1Card, keys: &SystemKeys) -> anyhow::Result<()> {
    let d = mf1_diagnosis(card, keys)?;
    println!(
        "卡类型 (card type): MF1 S50 1K  UID {}",
        hexstr::encode(&d.uid)
    );
    match part(&d.header) {
        Ok(h) => println!(
            "卡结构版本 (layout) {}  密钥版本 (key version) {}",
            h.layout, h.key_version
        ),
        Err(e) => println!("卡头 (header): {e}"),
    }
    match part(&d.info) {
        Ok(i) => {
            println!("应用序列号 (card no): {}", i.card_no.get());
            println!("显示卡号 (display no): {:010}", i.display_no.get());
            println!("卡类别 (class): {}", i.class);
            println!("有效期 (expiry): {}", i.expiry);
        }
        Err(e) => println!("卡信息 (card info): {e}"),
    }
    match part(&d.pin) {
        Ok(_) => println!("卡片密码 (PIN): 校验数据正常 (verification data present)"),
        Err(e) => println!("卡片密码 (PIN): {e}"),
    }
    match part(&d.lock) {
        Ok(l) if l.locked => println!(
            "黑卡标志 (lock flag): 已锁定 (locked) {} by {} (blacklist version {})",
            l.changed_at, l.device, l.blacklist_version
        ),
        Ok(_) => println!("黑卡标志 (lock flag): 正常 (not locked)"),
        Err(e) => println!("黑卡标志 (lock flag): {e} — terminals treat the card as locked"),
    }
    if let Err(e) = part(&d.directory) {
        println!("钱包目录 (wallet directory): {e}");
    }
    for w in &d.wallets {
        show_wallet(w);
    }
    Ok(())
}

fn check_mf1(card: Mf1Card, keys: &SystemKeys, today: NaiveDate) -> anyhow::Result<Vec<String>> {
    let d = mf1_diagnosis(card, keys)?;
    let mut problems = Vec::new();
    if let Err(e) = part(&d.header) {
        problems.push(format!("header {e}: not a ykt card or wrong key file"));
    }
    match part(&d.info) {
        Ok(i) if i.expiry < today => problems.push(format!("card expired on {}", i.expiry)),
        Ok(_) => {}
        Err(e) => problems.push(format!("card info {e}")),
    }
    match part(&d.lock) {
        Ok(l) if l.locked => {
            problems.push(format!("card locked (blacklisted) since {}", l.changed_at))
        }
        Ok(_) => {}
        Err(e) => problems.push(format!(
            "lock block {e}: terminals treat the card as locked"
        )),
    }
    if let Err(e) = part(&d.pin) {
        println!("warning: PIN data {e}: PIN-protected payments will be refused");
    }
    if let Err(e) = part(&d.directory) {
        problems.push(format!("wallet directory {e}"));
    }
    for w in &d.wallets {
        let good = match (part(&w.main), part(&w.backup)) {
            (Ok(_), Ok(_)) => "main and backup copies good",
            (Ok(_), Err(_)) => "main copy good, backup bad",
            (Err(_), Ok(_)) => "main copy bad, backup good",
            (Err(_), Err(_)) => "both copies bad",
        };
        println!(
            "wallet {}: {good}; terminal would: {}",
            w.wallet_no,
            action_text(&w.action)
        );
        if let WalletAction::Refuse(why) = w.action {
            problems.push(format!("wallet {}: {why}", w.wallet_no));
        }
    }
    Ok(problems)
}

fn cpu_read(card: CpuCard) -> anyhow::Result<(CpuRead, Vec<[u8; 23]>)> {
    let mut r = reader_with(SimCard::Cpu(card));
    let read = CpuApp::read(&mut r)?;
    let log = CpuApp::records(&mut r, ykt_card::cpu::card::LOG_RECORDS)?;
    Ok((read, log))
}

fn show_cpu(card: CpuCard) -> anyhow::Result<()> {
    let (seq, online, tries) = (card.offline_seq, card.online_seq, card.pin_tries);
    let (c, log) = cpu_read(card)?;
    println!(
        "卡类型 (card type): CPU (PBOC electronic purse)  UID {}",
        hexstr::encode(&c.uid)
    );
    println!(
        "应用序列号 (card no): {}  (application serial {})",
        c.card_no.get(),
        hexstr::encode(&c.serial)
    );
    println!("显示卡号 (display no): {:010}", c.display_no.get());
    println!("卡类别 (class): {}", c.class);
    println!("有效期 (expiry): {}", c.expiry);
    println!("密钥版本 (key version): {}", c.key_version);
    println!(
        "黑卡标志 (lock flag): {}",
        if c.locked {
            "已锁定 (locked)"
        } else {
            "正常 (not locked)"
        }
    );
    println!("卡片密码 (PIN): {tries} tries left");
    println!("卡余额 (balance): {}", yuan(c.balance));
    println!("脱机交易序号 (offline seq) {seq}  联机交易序号 (online seq) {online}");
    let day = c
        .daily
        .0
        .map(|d| d.to_string())
        .unwrap_or_else(|| "-".into());
    println!(
        "日期 {day}  当日使用次数 {}  当日累计消费金额 {}",
        c.daily.1,
        yuan(c.daily.2)
    );
    println!("卡内流水 (transaction log, newest first):");
    for rec in log {
        let amount = u32::from_be_bytes([rec[5], rec[6], rec[7], rec[8]]);
        let kind = match rec[9] {
            0x01 | 0x02 => "圈存",
            0x05 | 0x06 => "消费",
            _ => "其他",
        };
        println!(
            "  seq {:<5} {kind} ({:02X}) 金额 {}  终端 {}  {} {}",
            u16::from_be_bytes([rec[0], rec[1]]),
            rec[9],
            yuan(Fen::from(amount)),
            hexstr::encode(&rec[10..16]),
            hexstr::encode(&rec[16..20]),
            hexstr::encode(&rec[20..23])
        );
    }
    Ok(())
}

fn check_cpu(card: CpuCard, keys: &SystemKeys, today: NaiveDate) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    if keys.cpu_card(&card.serial) != card.keys {
        problems.push("the card's keys do not derive from this key file".to_string());
    }
    if card.pin_tries == 0 {
        println!("warning: PIN blocked: PIN-protected payments will be refused");
    }
    let (c, _) = cpu_read(card)?;
    if c.locked {
        problems.push("card locked (blacklisted)".into());
    }
    if c.expiry < today {
        problems.push(format!("card expired on {}", c.expiry));
    }
    Ok(problems)
}
