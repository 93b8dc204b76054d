//! The host's copy of a card's PIN (R-B10, code 60; `docs/operators.md`). The PIN lives on
//! the card as verification data (`ykt-card`: `pin_verifier`); the host keeps only an
//! Argon2id hash (`secrets.rs`), set by the card office (reset, change), and the wrong tries
//! since the last right one: `pin_max_failures` wrong tries in a row lock the card (54).
//! Hashes are computed and verified by callers off the writer threads (Argon2 is slow on
//! purpose); a writer job only stores the hash or counts the outcome. A PIN is never logged
//! or journalled.

use chrono::NaiveDateTime;
use ykt_proto::CardNo;

use super::admin;
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::model::CardStatus;
use crate::repo::{self, time_key};

/// System parameter (meta): wrong tries in a row that lock the card.
pub const MAX_FAILURES: &str = "pin_max_failures";
/// Its range.
pub const MAX_FAILURES_RANGE: std::ops::RangeInclusive<i64> = 1..=10;

/// A card PIN: 6 digits, as the card keeps it (`ykt_card::valid_pin`).
pub fn pin_problem(pin: &str) -> Option<&'static str> {
    if pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else {
        Some("a PIN is 6 digits")
    }
}

/// The stored hash of a card's PIN (`None`: the host holds none).
pub fn hash_of(tx: &mut Tx<'_>, no: CardNo) -> Result<Option<String>> {
    match tx.conn.query_opt(
        "SELECT hash FROM card_pins WHERE card_no = $1",
        &[no.get().into()],
    )? {
        Some(r) => Ok(Some(r.text(0)?.to_owned())),
        None => Ok(None),
    }
}

/// Stores a new hash (reset or change) and clears the wrong tries. The card must exist and
/// not be cancelled; a card locked by wrong tries stays locked until the card office
/// unlocks it (its status is a decision of its own).
pub fn set(tx: &mut Tx<'_>, no: CardNo, hash: &str, now: NaiveDateTime) -> Result<()> {
    let card = repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))?;
    if card.status == CardStatus::Cancelled {
        return Err(HostError::Invalid("the card is cancelled".into()));
    }
    if !hash.starts_with("$argon2id$") {
        return Err(HostError::Invariant(
            "a PIN hash that is not Argon2id".into(),
        ));
    }
    let key = [no.get().into(), hash.into(), time_key(now).into()];
    let updated = tx.conn.exec(
        "UPDATE card_pins SET hash = $2, failures = 0, changed_at = $3 WHERE card_no = $1",
        &key,
    )?;
    if updated == 0 {
        tx.conn.exec(
            "INSERT INTO card_pins (card_no, hash, failures, changed_at) VALUES ($1, $2, 0, $3)",
            &key,
        )?;
    }
    Ok(())
}

/// What a PIN try came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tried {
    Right,
    /// Code 60, with the tries left before the card locks.
    Wrong {
        left: u32,
    },
    /// Code 54: this wrong try was the last one allowed; the card is locked now.
    Locked,
}

impl Tried {
    /// The spec's code for the answer (0 for a right PIN).
    pub fn code(self) -> ykt_proto::ReturnCode {
        match self {
            Tried::Right => ykt_proto::ReturnCode::SUCCESS,
            Tried::Wrong { .. } => ykt_proto::ReturnCode::CARD_PASSWORD_WRONG,
            Tried::Locked => ykt_proto::ReturnCode::CARD_LOCKED,
        }
    }
}

/// Counts one try whose hash comparison (`right`) the caller made off the writer. Returns
/// `Ok` whatever the outcome: the count must commit (a refusal would roll it back).
pub fn count_try(tx: &mut Tx<'_>, no: CardNo, right: bool) -> Result<Tried> {
    // The card's row lock serialises the tries of one card (two hosts too).
    let card = repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))?;
    let Some(r) = tx.conn.query_opt(
        "SELECT failures FROM card_pins WHERE card_no = $1",
        &[no.get().into()],
    )?
    else {
        return Err(HostError::Invalid(format!(
            "card {} has no PIN on the host: reset it first",
            no.get()
        )));
    };
    if right {
        tx.conn.exec(
            "UPDATE card_pins SET failures = 0 WHERE card_no = $1",
            &[no.get().into()],
        )?;
        return Ok(Tried::Right);
    }
    let failures = r.int(0)?.saturating_add(1);
    tx.conn.exec(
        "UPDATE card_pins SET failures = $2 WHERE card_no = $1",
        &[no.get().into(), failures.into()],
    )?;
    let max = repo::meta(tx.conn, MAX_FAILURES)?;
    if failures >= max {
        if card.status == CardStatus::Normal {
            admin::set_card_status(tx, no, CardStatus::Locked)?;
        }
        return Ok(Tried::Locked);
    }
    Ok(Tried::Wrong {
        left: u32::try_from(max - failures).unwrap_or(0),
    })
}

/// Sets `pin_max_failures` (1–10).
pub fn set_max_failures(tx: &mut Tx<'_>, n: i64) -> Result<()> {
    if !MAX_FAILURES_RANGE.contains(&n) {
        return Err(HostError::Invalid("pin_max_failures is 1 to 10".into()));
    }
    repo::set_meta(tx.conn, MAX_FAILURES, n)
}
