//! Graduation closure (毕业销户, R-B7): a list of student numbers imported as one batch
//! (CSV or XLSX through `import::Sheet`). Every line is checked first (the holder exists
//! and has one card that is not cancelled nor closed, the refund method and bank account);
//! a list with any error closes nothing and answers every error with its line. A batch
//! whose refunds sum to at least `closure_batch_approval` (a setting; 0 = never) waits for
//! a second operator (the two-person rule, `approvals`); otherwise its cards are closed at
//! once. Each card then follows its closure (`closures`): blocked now, paid when due.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::{Value as Json, json};
use ykt_proto::{CardNo, Fen};

use super::approvals::{self, Approval, Operation};
use super::closures::{self, Payout};
use super::journal::{Actor, Change};
use crate::error::{HostError, Result};
use crate::import::{Format, LineError, Sheet};
use crate::ledger::Tx;
use crate::model::CardStatus;
use crate::repo;
use crate::repo_holders as rh;

const COLUMNS: [(&str, &str); 3] = [
    ("学工号", "number"),
    ("退款方式", "method"),
    ("银行账号", "bank_account"),
];
const NUMBER: usize = 0;
const METHOD: usize = 1;
const BANK: usize = 2;

/// One line of the list: whose card, and how the refund is paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub line: u64,
    pub number: String,
    pub payout: Payout,
}

/// The lines of a file, or every error with its line (a file-level error is line 0 or the
/// header's).
pub fn parse(format: Format, bytes: &[u8]) -> std::result::Result<Vec<Line>, Vec<LineError>> {
    let sheet = Sheet::read(format, bytes, &COLUMNS, &[NUMBER])?;
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for (line, cells) in &sheet.lines {
        match parse_line(&sheet, cells) {
            Ok((number, payout)) => lines.push(Line {
                line: *line,
                number,
                payout,
            }),
            Err(error) => errors.push(LineError { line: *line, error }),
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

fn message(e: HostError) -> String {
    match e {
        HostError::Invalid(m) => m,
        other => other.to_string(),
    }
}

fn parse_line(sheet: &Sheet, cells: &[String]) -> std::result::Result<(String, Payout), String> {
    let number = sheet.cell(cells, NUMBER);
    super::cardholders::check_number(&number).map_err(message)?;
    let bank = sheet.cell(cells, BANK);
    let payout = match sheet.cell(cells, METHOD).as_str() {
        "" | "现金" | "cash" if bank.is_empty() => Payout::Cash,
        "" | "银行" | "bank" => Payout::bank(&bank).map_err(message)?,
        "现金" | "cash" => return Err("现金退款不填银行账号".into()),
        other => return Err(format!("退款方式 {other:?} 须为 现金/cash 或 银行/bank")),
    };
    Ok((number, payout))
}

/// A line resolved to its card and what it would refund now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub line: u64,
    pub number: String,
    pub card_no: u32,
    pub refund: Fen,
    #[serde(flatten)]
    pub payout: Payout,
}

/// What an import came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Imported {
    /// Lines that cannot be closed: nothing was done.
    Refused(Vec<LineError>),
    /// Closed at once (below the threshold).
    Closed { batch: i64, lines: Vec<Planned> },
    /// Waiting for a second operator.
    Waiting {
        batch: i64,
        approval: Approval,
        total: Fen,
    },
}

/// Resolves every line on the locked cards; the errors of all lines, or the plan.
fn plan(
    tx: &mut Tx<'_>,
    lines: &[Line],
) -> Result<std::result::Result<Vec<Planned>, Vec<LineError>>> {
    let mut planned = Vec::with_capacity(lines.len());
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for l in lines {
        let error = |e: &str| LineError {
            line: l.line,
            error: e.to_owned(),
        };
        if !seen.insert(l.number.clone()) {
            errors.push(error("学工号重复"));
            continue;
        }
        let Some(holder) = rh::by_number(tx.conn, &l.number, false)? else {
            errors.push(error("无此持卡人"));
            continue;
        };
        let active: Vec<_> = rh::cards_of(tx.conn, holder.id, super::cardholders::MAX_CARDS)?
            .into_iter()
            .filter(|c| c.status != CardStatus::Cancelled)
            .collect();
        let [held] = active.as_slice() else {
            errors.push(error("持卡人没有未注销的卡"));
            continue;
        };
        let card = repo::card_get(tx.conn, held.no, true)?
            .ok_or_else(|| HostError::Invariant(format!("card {} vanished", held.no.get())))?;
        if closures::of_card(tx, card.no, false)?.is_some() {
            errors.push(error("该卡已销户"));
            continue;
        }
        planned.push(Planned {
            line: l.line,
            number: l.number.clone(),
            card_no: card.no.get(),
            refund: closures::refundable(tx, &card)?,
            payout: l.payout.clone(),
        });
    }
    Ok(if errors.is_empty() {
        Ok(planned)
    } else {
        Err(errors)
    })
}

/// Imports a graduation list as batch N (the next of its sequence): closes its cards now,
/// or files it for approval when its refunds reach the threshold. Journalled here.
pub fn import(
    tx: &mut Tx<'_>,
    actor: &Actor,
    lines: &[Line],
    now: NaiveDateTime,
) -> Result<Imported> {
    if lines.is_empty() {
        return Err(HostError::Invalid("名单为空".into()));
    }
    let planned = match plan(tx, lines)? {
        Ok(p) => p,
        Err(errors) => return Ok(Imported::Refused(errors)),
    };
    let total = planned.iter().try_fold(0 as Fen, |acc, p| {
        acc.checked_add(p.refund)
            .ok_or_else(|| HostError::Invalid("退款合计溢出".into()))
    })?;
    let batch = repo::bump_meta(tx.conn, "closure_batch_seq")?;
    let threshold = repo::meta(tx.conn, closures::BATCH_APPROVAL)?;
    if threshold > 0 && total >= threshold {
        let payload = json!({"batch": batch, "total": total, "lines": planned});
        let approval = approvals::request(
            tx,
            actor,
            Operation::ClosureBatch,
            &format!("closure-batch:{batch}"),
            payload,
            now,
        )?;
        return Ok(Imported::Waiting {
            batch,
            approval,
            total,
        });
    }
    close_all(tx, actor, batch, &planned, now)?;
    Ok(Imported::Closed {
        batch,
        lines: planned,
    })
}

fn close_all(
    tx: &mut Tx<'_>,
    actor: &Actor,
    batch: i64,
    planned: &[Planned],
    now: NaiveDateTime,
) -> Result<()> {
    for p in planned {
        let no = CardNo::new(p.card_no)
            .ok_or_else(|| HostError::Corrupt(format!("card {}", p.card_no)))?;
        closures::request(tx, actor, no, p.payout.clone(), Some(batch), now)?;
    }
    let change = Change::new("card.close_batch", format!("closure-batch:{batch}")).after(
        json!({"batch": batch, "cards": planned.iter().map(|p| p.card_no).collect::<Vec<_>>()}),
    );
    super::journal::append(tx, actor, now, &change).map(drop)
}

/// An approved batch is closed as its requester asked: each card checked again (a card
/// closed or cancelled since refuses the whole batch).
pub fn approved(
    tx: &mut Tx<'_>,
    a: &Approval,
    requester: &Actor,
    now: NaiveDateTime,
) -> Result<Change> {
    let bad = || HostError::Corrupt(format!("approval {} payload", a.id));
    let batch = a.payload["batch"].as_i64().ok_or_else(bad)?;
    let lines = a.payload["lines"].as_array().ok_or_else(bad)?;
    let mut planned = Vec::with_capacity(lines.len());
    for l in lines {
        planned.push(planned_of(l).ok_or_else(bad)?);
    }
    close_all(tx, requester, batch, &planned, now)?;
    Ok(Change::new("approval.approve", a.target.clone())
        .after(json!({"batch": batch, "closed": planned.len()})))
}

fn planned_of(l: &Json) -> Option<Planned> {
    let payout = match l["method"].as_str()? {
        "cash" => Payout::Cash,
        "bank" => Payout::Bank {
            account: l["account"].as_str()?.to_owned(),
        },
        _ => return None,
    };
    Some(Planned {
        line: l["line"].as_u64()?,
        number: l["number"].as_str()?.to_owned(),
        card_no: u32::try_from(l["card_no"].as_u64()?).ok()?,
        refund: l["refund"].as_i64()?,
        payout,
    })
}
