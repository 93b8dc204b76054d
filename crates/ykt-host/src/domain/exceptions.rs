//! The exception queue (R-B3): nothing that left a card is dropped. A debit whose money left
//! the card but which the host refuses for good (merchant unknown 40, card unknown 50,
//! counter 61/62, TAC 99, …) is held here in the same transaction as the upload's answer,
//! so it is durable before the terminal stops resending it. The terminal gets the final code
//! it always got (`docs/spec-notes.md`); a re-upload of the same record gets it again.
//! The card office resolves each exception once: book it to its merchant, book it to the
//! suspense account, or reject it. A resolution is recorded, never an edit of the record.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use ykt_proto::{PhysicalId, Record, RecordKind, ReturnCode, TerminalSerial};

use super::records::{self, HeldBooking};
use crate::error::{HostError, Result, refuse};
use crate::exception_rows::{self, Filter};
use crate::ledger::Tx;
use crate::repo;

/// A record held in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The record exactly as uploaded.
    pub record: Record,
    /// The final code the terminal got.
    pub code: ReturnCode,
    /// Why, in the spec's words (the code's text).
    pub reason: String,
    pub received_at: NaiveDateTime,
    /// The device that uploaded it (its maker, or a collector, R-F4.17).
    pub uploader: PhysicalId,
    pub state: ExceptionState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExceptionState {
    Open,
    Resolved(Resolution),
}

/// How the card office resolved an exception: a recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub action: Action,
    /// Who resolved it (the admin API's identity).
    pub by: String,
    pub at: NaiveDateTime,
    pub note: String,
    /// The state before and after, as JSON objects (state, card balance, credited account).
    pub before: String,
    pub after: String,
}

/// What the card office does with an exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Book card → the record's merchant (which must exist now).
    Book,
    /// Book card → suspense; for a card the host does not know, funding → suspense.
    Suspense,
    /// Book nothing; the record stays held as rejected.
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Book => "book",
            Action::Suspense => "suspense",
            Action::Reject => "reject",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Action> {
        Ok(match s {
            "book" => Action::Book,
            "suspense" => Action::Suspense,
            "reject" => Action::Reject,
            other => return Err(HostError::Corrupt(format!("resolution {other:?}"))),
        })
    }
}

/// Whether the record took money off its card: only such records are held when refused.
/// Failed, pulled and black-card records moved none; a cancellation neither; a reversal
/// put money onto the card; a debit of nothing (amount and fee 0) took none.
pub(crate) fn moved_money(r: &Record) -> bool {
    (matches!(r.kind, RecordKind::Purchase | RecordKind::Collected) || r.kind.is_load())
        && r.status.card_debited()
        && r.amount.checked_add(r.fee).is_some_and(|total| total > 0)
}

/// A record uploaded again: `Some(code)` when this (device, serial) is held with the same
/// transaction (answered as the first time), 30 when held with different content.
pub(crate) fn held_before(tx: &mut Tx<'_>, r: &Record) -> Result<Option<ReturnCode>> {
    let Some(held) = exception_rows::get(tx.conn, r.device, r.serial)? else {
        return Ok(None);
    };
    if held.record == *r || records::same_transaction(&held.record, r) {
        Ok(Some(held.code))
    } else {
        refuse(ReturnCode::POS_SERIAL_DUPLICATE)
    }
}

/// A new transaction (an online debit, a load authorisation) under a (device, serial) the
/// queue holds: 30, the serial belongs to the held record (issue 18, found by `host_booking`).
pub(crate) fn refuse_if_held(tx: &mut Tx<'_>, device: PhysicalId, serial: u32) -> Result<()> {
    match exception_rows::get(tx.conn, device, serial)? {
        Some(_) => refuse(ReturnCode::POS_SERIAL_DUPLICATE),
        None => Ok(()),
    }
}

/// Holds a refused record in the caller's transaction; the terminal gets `code`.
pub(crate) fn hold(
    tx: &mut Tx<'_>,
    uploader: PhysicalId,
    r: &Record,
    code: ReturnCode,
    now: NaiveDateTime,
) -> Result<ReturnCode> {
    let held = Held {
        record: r.clone(),
        code,
        reason: code.text().into_owned(),
        received_at: now,
        uploader,
        state: ExceptionState::Open,
    };
    if !exception_rows::insert(tx.conn, &held)? {
        // Held by another process since we looked: the retry sees it.
        return Err(HostError::Db {
            message: format!("exception {}:{} inserted concurrently", r.device, r.serial),
            retryable: true,
        });
    }
    tracing::warn!(device = %r.device, serial = r.serial, code = code.0, "record held in the exception queue");
    Ok(code)
}

pub fn get(tx: &mut Tx<'_>, device: PhysicalId, serial: TerminalSerial) -> Result<Option<Held>> {
    exception_rows::get(tx.conn, device, serial)
}

pub fn list(
    tx: &mut Tx<'_>,
    filter: Filter,
    after: Option<(PhysicalId, TerminalSerial)>,
    limit: u32,
) -> Result<Vec<Held>> {
    exception_rows::list(tx.conn, filter, after, limit)
}

pub fn count_open(tx: &mut Tx<'_>) -> Result<i64> {
    exception_rows::count_open(tx.conn)
}

/// A resolution asked for.
#[derive(Clone, Debug)]
pub struct Resolve {
    pub action: Action,
    pub note: String,
    pub by: String,
}

/// Resolves an open exception once: `Book` and `Suspense` go through the upload's own
/// booking (`records::book_held`); `Reject` books nothing. Refused (nothing written) when
/// the exception is unknown or resolved, or the booking's conditions do not hold.
pub fn resolve(
    tx: &mut Tx<'_>,
    device: PhysicalId,
    serial: TerminalSerial,
    req: &Resolve,
    now: NaiveDateTime,
) -> Result<Held> {
    let held = if exception_rows::lock(tx.conn, device, serial)? {
        exception_rows::get(tx.conn, device, serial)?
    } else {
        None
    };
    let Some(held) = held else {
        return Err(HostError::Invalid(format!(
            "no exception {device}/{serial}"
        )));
    };
    if held.state != ExceptionState::Open {
        return Err(HostError::Invalid(format!(
            "exception {device}/{serial} is resolved already"
        )));
    }
    let r = &held.record;
    let before = json!({"state": "open", "card_balance": card_balance(tx, r)?});
    let credited = match req.action {
        Action::Book => Some(records::book_held(tx, r, HeldBooking::Merchant, now)?),
        Action::Suspense => Some(records::book_held(tx, r, HeldBooking::Suspense, now)?),
        Action::Reject => None,
    };
    let after = json!({
        "state": req.action.as_str(),
        "card_balance": card_balance(tx, r)?,
        "credited": credited,
    });
    let resolution = Resolution {
        action: req.action,
        by: req.by.clone(),
        at: now,
        note: req.note.clone(),
        before: before.to_string(),
        after: after.to_string(),
    };
    if !exception_rows::resolve(tx.conn, device, serial, &resolution)? {
        return Err(HostError::Invariant(format!(
            "exception {device}/{serial} resolved twice"
        )));
    }
    tracing::info!(%device, serial, action = req.action.as_str(), by = %req.by, "exception resolved");
    Ok(Held {
        state: ExceptionState::Resolved(resolution),
        ..held
    })
}

fn card_balance(tx: &mut Tx<'_>, r: &Record) -> Result<Option<i64>> {
    Ok(repo::card_get(tx.conn, r.card_no, false)?.map(|c| c.balance))
}
