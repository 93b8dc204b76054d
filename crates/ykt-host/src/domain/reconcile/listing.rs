//! What the reconciliation stored, as the card office reads it: the listing, the alarm's
//! thresholds and count, and the abnormal states that online debits are refused on.

use chrono::{NaiveDateTime, TimeDelta};
use serde::Serialize;
use ykt_proto::{CardNo, Fen};

use super::{ALARM_DAYS, ALARM_FEN, OPEN_STATES};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo::{self, device_from, time_from, time_key};

/// The alarm's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Alarm {
    pub days: i64,
    pub fen: Fen,
}

/// The largest thresholds accepted.
pub const MAX_ALARM_DAYS: i64 = 3_650;

pub fn alarm_settings(tx: &mut Tx<'_>) -> Result<Alarm> {
    Ok(Alarm {
        days: repo::meta(tx.conn, ALARM_DAYS)?,
        fen: repo::meta(tx.conn, ALARM_FEN)?,
    })
}

/// Sets the thresholds (1–3650 days, 1 fen – 24 bits).
pub fn set_alarm(tx: &mut Tx<'_>, a: Alarm) -> Result<()> {
    if !(1..=MAX_ALARM_DAYS).contains(&a.days) {
        return Err(HostError::Invalid(format!("days is 1 to {MAX_ALARM_DAYS}")));
    }
    if !(1..=crate::domain::checks::MAX_CARD_BALANCE).contains(&a.fen) {
        return Err(HostError::Invalid("fen is 1 to 16777215".into()));
    }
    repo::set_meta(tx.conn, ALARM_DAYS, a.days)?;
    repo::set_meta(tx.conn, ALARM_FEN, a.fen)
}

/// The SQL of "open and alarmed": `$1` the time before which an open state is too old,
/// `$2` the amount.
const ALARMED: &str = "(since <= $1 OR difference >= $2 OR difference <= -$2)";

fn alarm_params(tx: &mut Tx<'_>, now: NaiveDateTime) -> Result<(i64, Fen)> {
    let a = alarm_settings(tx)?;
    let before = now - TimeDelta::days(a.days);
    Ok((time_key(before), a.fen))
}

/// Open states that are alarms now (the metric `ykt_reconcile_unexplained`).
pub fn unexplained(tx: &mut Tx<'_>, now: NaiveDateTime) -> Result<i64> {
    let (before, fen) = alarm_params(tx, now)?;
    tx.conn
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM card_reconcile WHERE state IN {OPEN_STATES} AND {ALARMED}"
            ),
            &[before.into(), fen.into()],
        )?
        .int(0)
}

/// One card's stored state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardState {
    pub card_no: u32,
    pub state: String,
    pub card_balance: Fen,
    pub book_balance: Fen,
    pub difference: Fen,
    pub missing: i64,
    pub last_counter: i64,
    pub last_device: String,
    pub last_time: String,
    pub since: String,
    pub checked_at: String,
    pub resolved_at: Option<String>,
    pub collect_count: i64,
    pub collect_sent_at: Option<String>,
    /// Open and older than the days, or at least the amount.
    pub alarm: bool,
}

/// Campus time as the API shows it.
fn shown(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Which states a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// Every card with a state, resolved ones too.
    All,
    /// Out of agreement now.
    Open,
    /// Open and alarmed.
    Alarms,
}

/// The largest page of a listing.
pub const MAX_LIST: u32 = 1_000;

/// Cards with a state, in card order after `after`.
pub fn list(
    tx: &mut Tx<'_>,
    show: Show,
    after: u32,
    limit: u32,
    now: NaiveDateTime,
) -> Result<Vec<CardState>> {
    let (before, fen) = alarm_params(tx, now)?;
    let filter = match show {
        Show::All => String::new(),
        Show::Open => "AND state <> 'agree'".to_owned(),
        Show::Alarms => format!("AND state IN {OPEN_STATES} AND {ALARMED}"),
    };
    let rows = tx.conn.query(
        &format!(
            "SELECT card_no, state, card_balance, book_balance, difference, missing, \
             last_counter, last_device, last_time, since, checked_at, resolved_at, \
             collect_count, collect_sent_at, \
             CASE WHEN state IN {OPEN_STATES} AND {ALARMED} THEN 1 ELSE 0 END \
             FROM card_reconcile WHERE card_no > $3 {filter} ORDER BY card_no LIMIT $4"
        ),
        &[
            before.into(),
            fen.into(),
            i64::from(after).into(),
            limit.min(MAX_LIST).into(),
        ],
    )?;
    rows.iter()
        .map(|r| {
            Ok(CardState {
                card_no: r.int_as(0)?,
                state: r.text(1)?.to_owned(),
                card_balance: r.int(2)?,
                book_balance: r.int(3)?,
                difference: r.int(4)?,
                missing: r.int(5)?,
                last_counter: r.int(6)?,
                last_device: device_from(r.int(7)?)?.to_string(),
                last_time: shown(time_from(r.int(8)?)?),
                since: shown(time_from(r.int(9)?)?),
                checked_at: shown(time_from(r.int(10)?)?),
                resolved_at: r.opt_int(11)?.map(time_from).transpose()?.map(shown),
                collect_count: r.int(12)?,
                collect_sent_at: r.opt_int(13)?.map(time_from).transpose()?.map(shown),
                alarm: r.int(14)? == 1,
            })
        })
        .collect()
}

/// A state found by the last run that the card's next online debit is refused on
/// (`checks::card_reconciled`, codes 58 and 70).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abnormal {
    CardHigher,
    CardLower,
}

/// The abnormal state the last run stored for the card, if the card's rows still show it.
pub fn abnormal(tx: &mut Tx<'_>, no: CardNo) -> Result<Option<Abnormal>> {
    let Some(r) = tx.conn.query_opt(
        "SELECT state FROM card_reconcile WHERE card_no = $1",
        &[no.get().into()],
    )?
    else {
        return Ok(None);
    };
    let stored = match r.text(0)? {
        "card_higher" => Abnormal::CardHigher,
        "card_lower" => Abnormal::CardLower,
        _ => return Ok(None),
    };
    // Rare (only cards a run found abnormal): classified again from the rows as they are.
    Ok(super::still(tx, no, stored)?.then_some(stored))
}

/// The audit's part (R-B10): every state and PIN row names a card; a state's difference is
/// its card balance − book balance; `agree` has no difference and a resolution time, an
/// open state none; wrong PIN tries are not negative. Each finding as text.
pub fn audit(c: &mut dyn crate::sql::Conn, limit: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in c.query(
        "SELECT r.card_no, r.state FROM card_reconcile r LEFT JOIN cards c ON c.no = r.card_no \
         WHERE c.no IS NULL \
            OR r.difference <> r.card_balance - r.book_balance \
            OR r.missing < 0 \
            OR (r.state = 'agree' AND (r.difference <> 0 OR r.resolved_at IS NULL)) \
            OR (r.state <> 'agree' AND r.resolved_at IS NOT NULL) \
            OR r.state NOT IN ('agree', 'missing', 'held', 'pending_load', 'card_higher', \
                'card_lower') \
         ORDER BY r.card_no LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!(
            "reconcile state of card {}: {}",
            r.int(0)?,
            r.text(1)?
        ));
    }
    for r in c.query(
        "SELECT p.card_no FROM card_pins p LEFT JOIN cards c ON c.no = p.card_no \
         WHERE c.no IS NULL OR p.failures < 0 ORDER BY p.card_no LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!("PIN row of card {}", r.int(0)?));
    }
    Ok(out)
}
