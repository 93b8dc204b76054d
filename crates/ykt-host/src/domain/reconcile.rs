//! Card-vs-account reconciliation (卡库不平, R-B10, `docs/operators.md`).
//!
//! A card keeps its balance on the card; the books keep the card's account. For every card
//! the latest record seen from it (booked, or held in the exception queue) says what the card
//! held then; the account says what the books have booked of it. With every record of the
//! card in, the two agree: money reaches the card account only by a record that the card
//! also counts (a debit, a posted load, a reversal), and money waiting for the card (deposits,
//! subsidies) is outside the card account until its pick-up record. So
//!
//! `difference = card − account = Σ (after − before) of the card's transactions the books
//! have not booked`:
//!
//! - counters between the card's first and latest record that no record used: records are
//!   **missing** (offline records not uploaded yet, lost): a collection order (R-F4.17) goes to
//!   the device that last saw the card;
//! - the records held in the exception queue explain it exactly: **held** (the card office's
//!   decision is pending, `docs/operators.md`);
//! - a load authorised and not yet settled explains a card higher by at most its amount:
//!   **pending load**;
//! - otherwise the **card is higher** (money on the card that no authorisation put there) or
//!   **lower** (money gone from the card that no record shows).
//!
//! A run scans every card on a reader (`scan`, paged, no writer time), then re-checks each
//! card it found out of agreement, and each card found before and not yet agreeing again,
//! under the card's row lock on a writer (`apply`). Each card's state keeps when it was first
//! seen; an open state (missing, card higher or lower) is an alarm once older than
//! `reconcile_alarm_days` or with a difference of at least `reconcile_alarm_fen`.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;
use serde::Serialize;
use ykt_proto::{CardNo, Fen, PhysicalId};

use super::counter;
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo::{self, device_from, device_key, time_from, time_key};
use crate::sql::{Conn, Row};

/// System parameters (meta) of the alarm.
pub const ALARM_DAYS: &str = "reconcile_alarm_days";
pub const ALARM_FEN: &str = "reconcile_alarm_fen";

/// Cards read per page of a scan.
const PAGE: u32 = 10_000;
/// At most this many cards are re-checked per run (the rest wait for the next run).
pub const MAX_CANDIDATES: usize = 100_000;
/// Cards re-checked per writer job, so a long run never holds a writer for long.
pub const APPLY_CHUNK: usize = 1_000;

/// What a card's records say against its account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Finding {
    /// The card's latest record and the account agree.
    Agree,
    /// `missing` counters were used by no record the host has; `difference` = card − account.
    Missing { missing: u64, difference: Fen },
    /// The records held in the exception queue are exactly the difference.
    Held { difference: Fen },
    /// A load not yet settled explains the card being higher.
    PendingLoad { difference: Fen },
    /// The card holds more than the books explain.
    CardHigher { difference: Fen },
    /// The card holds less than the books explain.
    CardLower { difference: Fen },
}

impl Finding {
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Agree => "agree",
            Finding::Missing { .. } => "missing",
            Finding::Held { .. } => "held",
            Finding::PendingLoad { .. } => "pending_load",
            Finding::CardHigher { .. } => "card_higher",
            Finding::CardLower { .. } => "card_lower",
        }
    }

    pub fn difference(self) -> Fen {
        match self {
            Finding::Agree => 0,
            Finding::Missing { difference, .. }
            | Finding::Held { difference }
            | Finding::PendingLoad { difference }
            | Finding::CardHigher { difference }
            | Finding::CardLower { difference } => difference,
        }
    }

    pub fn missing(self) -> u64 {
        match self {
            Finding::Missing { missing, .. } => missing,
            _ => 0,
        }
    }

    /// Nobody else's process explains it yet: the card office must (the alarm counts these).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Finding::Missing { .. } | Finding::CardHigher { .. } | Finding::CardLower { .. }
        )
    }
}

/// The states stored that [`Finding::is_open`] holds for, as SQL.
const OPEN_STATES: &str = "('missing', 'card_higher', 'card_lower')";

/// What is known of one card, from its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The card account (the system's mirror of it).
    pub book: Fen,
    /// The balance after the card's latest record (highest counter), booked or held.
    pub seen: Fen,
    /// Counters from the card's counter at issue up to and including the latest record's.
    pub span: u64,
    /// Counters used by booked records, plus the records held in the exception queue.
    pub used: u64,
    /// Σ (after − before) of the held records.
    pub held_delta: i128,
    /// Whether any record of the card is held.
    pub held: bool,
    /// Σ amounts of the card's loads authorised and not settled.
    pub pending: Fen,
}

/// The one rule of the classification.
pub fn classify(f: &Facts) -> Result<Finding> {
    let diff = i128::from(f.seen) - i128::from(f.book);
    let difference = Fen::try_from(diff)
        .map_err(|_| HostError::Invariant(format!("reconciliation difference {diff}")))?;
    let missing = f.span.saturating_sub(f.used);
    if missing > 0 {
        return Ok(Finding::Missing {
            missing,
            difference,
        });
    }
    if diff == 0 {
        return Ok(Finding::Agree);
    }
    if f.held && diff == f.held_delta {
        return Ok(Finding::Held { difference });
    }
    let beyond_held = diff - f.held_delta;
    if f.pending > 0 && beyond_held > 0 && beyond_held <= i128::from(f.pending) {
        return Ok(Finding::PendingLoad { difference });
    }
    Ok(if diff > 0 {
        Finding::CardHigher { difference }
    } else {
        Finding::CardLower { difference }
    })
}

/// A card's latest record: its counter, balance after, maker and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Latest {
    counter: u32,
    balance_after: Fen,
    device: PhysicalId,
    time: NaiveDateTime,
}

#[derive(Clone, Copy, Debug, Default)]
struct HeldSum {
    count: u64,
    delta: i128,
    latest: Option<Latest>,
}

/// One card's row of the facts query.
struct CardRow {
    no: CardNo,
    book: Fen,
    floor: u32,
    counters_used: u32,
    booked_latest: Option<Latest>,
}

const FACTS_SQL: &str = "SELECT c.no, c.balance, c.counter_floor, c.counter_next, \
     c.counters_used, r.card_counter, r.balance_after, r.device, r.time \
     FROM cards c \
     LEFT JOIN card_counters k ON k.card_no = c.no AND k.counter = c.counter_next - 1 \
     LEFT JOIN records r ON r.device = k.device AND r.serial = k.serial";

fn card_row(r: &Row) -> Result<CardRow> {
    let no = CardNo::new(r.int_as(0)?).ok_or_else(|| HostError::Corrupt("card number".into()))?;
    let booked_latest = match r.opt_int(5)? {
        Some(counter) => Some(Latest {
            counter: u32::try_from(counter)
                .map_err(|_| HostError::Corrupt(format!("counter {counter}")))?,
            balance_after: r.int(6)?,
            device: device_from(r.int(7)?)?,
            time: time_from(r.int(8)?)?,
        }),
        None => None,
    };
    Ok(CardRow {
        no,
        book: r.int(1)?,
        floor: r.int_as(2)?,
        counters_used: r.int_as(4)?,
        booked_latest,
    })
}

/// The facts of a card, with its latest record; `None` for a card no record was seen from.
fn facts_of(row: &CardRow, held: Option<&HeldSum>, pending: Fen) -> Option<(Facts, Latest)> {
    let held = held.copied().unwrap_or_default();
    let latest = match (row.booked_latest, held.latest) {
        (Some(b), Some(h)) => Some(if h.counter > b.counter { h } else { b }),
        (b, h) => b.or(h),
    }?;
    let span = (u64::from(latest.counter) + 1).saturating_sub(u64::from(row.floor));
    Some((
        Facts {
            book: row.book,
            seen: latest.balance_after,
            span,
            used: u64::from(row.counters_used) + held.count,
            held_delta: held.delta,
            held: held.count > 0,
            pending,
        },
        latest,
    ))
}

/// The open exceptions' sums per card (`only`: one card). The queue is small.
fn held_sums(c: &mut dyn Conn, only: Option<CardNo>) -> Result<HashMap<CardNo, HeldSum>> {
    let mut sql = "SELECT e.card_no, e.card_counter, e.balance_before, e.balance_after, \
         e.device, e.time FROM exceptions e WHERE NOT EXISTS (SELECT 1 FROM \
         exception_resolutions x WHERE x.device = e.device AND x.serial = e.serial)"
        .to_owned();
    let mut params = Vec::new();
    if let Some(no) = only {
        sql.push_str(" AND e.card_no = $1");
        params.push(no.get().into());
    }
    let mut sums: HashMap<CardNo, HeldSum> = HashMap::new();
    for r in c.query(&sql, &params)? {
        let Some(no) = u32::try_from(r.int(0)?).ok().and_then(CardNo::new) else {
            continue; // a card number the host never issued: no account to compare
        };
        let counter: u32 = r.int_as(1)?;
        let latest = Latest {
            counter,
            balance_after: r.int(3)?,
            device: device_from(r.int(4)?)?,
            time: time_from(r.int(5)?)?,
        };
        let s = sums.entry(no).or_default();
        s.count += 1;
        s.delta += i128::from(r.int(3)?) - i128::from(r.int(2)?);
        if s.latest.is_none_or(|l| l.counter < counter) {
            s.latest = Some(latest);
        }
    }
    Ok(sums)
}

/// The pending loads' amounts per card (`only`: one card).
fn pending_sums(c: &mut dyn Conn, only: Option<CardNo>) -> Result<HashMap<CardNo, Fen>> {
    let mut sql = "SELECT card_no, amount FROM loads WHERE state = 'pending'".to_owned();
    let mut params = Vec::new();
    if let Some(no) = only {
        sql.push_str(" AND card_no = $1");
        params.push(no.get().into());
    }
    let mut sums: HashMap<CardNo, Fen> = HashMap::new();
    for r in c.query(&sql, &params)? {
        let Some(no) = u32::try_from(r.int(0)?).ok().and_then(CardNo::new) else {
            continue;
        };
        let s = sums.entry(no).or_default();
        *s = s.saturating_add(r.int(1)?);
    }
    Ok(sums)
}

/// What a scan found: the cards to re-check on a writer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub cards: u64,
    /// Out of agreement now, or out of agreement at the last run.
    pub candidates: Vec<CardNo>,
    /// More candidates than [`MAX_CANDIDATES`]: the rest wait for the next run.
    pub truncated: bool,
}

/// Reads every card in pages (on a reader: one snapshot, no writer time).
pub fn scan(tx: &mut Tx<'_>) -> Result<Scan> {
    let held = held_sums(tx.conn, None)?;
    let pending = pending_sums(tx.conn, None)?;
    let mut candidates = BTreeSet::new();
    for r in tx.conn.query(
        &format!(
            "SELECT card_no FROM card_reconcile WHERE state <> 'agree' LIMIT {MAX_CANDIDATES}"
        ),
        &[],
    )? {
        if let Some(no) = u32::try_from(r.int(0)?).ok().and_then(CardNo::new) {
            candidates.insert(no);
        }
    }
    let mut out = Scan::default();
    let mut after = 0i64;
    loop {
        let rows = tx.conn.query(
            &format!("{FACTS_SQL} WHERE c.no > $1 ORDER BY c.no LIMIT $2"),
            &[after.into(), PAGE.into()],
        )?;
        for r in &rows {
            let row = card_row(r)?;
            after = i64::from(row.no.get());
            out.cards += 1;
            let pending = pending.get(&row.no).copied().unwrap_or(0);
            if let Some((facts, _)) = facts_of(&row, held.get(&row.no), pending)
                && classify(&facts)? != Finding::Agree
            {
                if candidates.len() >= MAX_CANDIDATES {
                    out.truncated = true;
                } else {
                    candidates.insert(row.no);
                }
            }
        }
        if rows.len() < PAGE as usize {
            break;
        }
    }
    out.candidates = candidates.into_iter().collect();
    Ok(out)
}

/// A collection order for a terminal (R-F4.17): collect the card's latest `count` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Order {
    #[serde(serialize_with = "ser_device")]
    pub device: PhysicalId,
    #[serde(serialize_with = "ser_card")]
    pub card: CardNo,
    pub count: u8,
}

fn ser_device<S: serde::Serializer>(d: &PhysicalId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_string())
}

fn ser_card<S: serde::Serializer>(c: &CardNo, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u32(c.get())
}

/// What [`apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub checked: u64,
    /// Cards now out of agreement (any state but agree).
    pub found: u64,
    /// Cards that agree again since the last run.
    pub resolved: u64,
    pub orders: Vec<Order>,
}

/// One card's facts from its rows now (the caller holds the card's row lock); `None` for a
/// card no record was seen from.
fn card_facts(tx: &mut Tx<'_>, no: CardNo) -> Result<Option<(Facts, Latest)>> {
    let row = tx
        .conn
        .query_opt(&format!("{FACTS_SQL} WHERE c.no = $1"), &[no.get().into()])?
        .map(|r| card_row(&r))
        .transpose()?;
    let Some(row) = row else { return Ok(None) };
    let held = held_sums(tx.conn, Some(no))?;
    let pending = pending_sums(tx.conn, Some(no))?
        .get(&no)
        .copied()
        .unwrap_or(0);
    Ok(facts_of(&row, held.get(&no), pending))
}

/// Whether the card is still as abnormal as a run stored it: the stored state may be older
/// than the card's latest records, so it is classified again before a debit is refused.
pub(crate) fn still(tx: &mut Tx<'_>, no: CardNo, stored: Abnormal) -> Result<bool> {
    let Some((facts, _)) = card_facts(tx, no)? else {
        return Ok(false);
    };
    Ok(matches!(
        (stored, classify(&facts)?),
        (Abnormal::CardHigher, Finding::CardHigher { .. })
            | (Abnormal::CardLower, Finding::CardLower { .. })
    ))
}

/// Re-checks `cards` under their row locks and stores each one's state (on a writer).
/// A card that agrees and had no row gets none.
pub fn apply(tx: &mut Tx<'_>, cards: &[CardNo], now: NaiveDateTime) -> Result<Applied> {
    let mut out = Applied::default();
    for &no in cards {
        let Some(card) = repo::card_get(tx.conn, no, true)? else {
            continue;
        };
        out.checked += 1;
        let prior = tx.conn.query_opt(
            "SELECT state FROM card_reconcile WHERE card_no = $1",
            &[no.get().into()],
        )?;
        let prior = match &prior {
            Some(r) => Some(r.text(0)?.to_owned()),
            None => None,
        };
        let Some((facts, latest)) = card_facts(tx, no)? else {
            continue;
        };
        let finding = classify(&facts)?;
        if finding == Finding::Agree {
            if prior.as_deref().is_some_and(|s| s != "agree") {
                tx.conn.exec(
                    "UPDATE card_reconcile SET state = 'agree', difference = 0, missing = 0, \
                     card_balance = $2, book_balance = $3, checked_at = $4, resolved_at = $4 \
                     WHERE card_no = $1",
                    &[
                        no.get().into(),
                        facts.seen.into(),
                        facts.book.into(),
                        time_key(now).into(),
                    ],
                )?;
                out.resolved += 1;
            }
            continue;
        }
        out.found += 1;
        let collect = match finding {
            Finding::Missing { .. } => counter::gaps(tx, &card)?.1,
            _ => 0,
        };
        let missing = i64::try_from(finding.missing()).unwrap_or(i64::MAX);
        let values = [
            no.get().into(),
            finding.as_str().into(),
            facts.seen.into(),
            facts.book.into(),
            finding.difference().into(),
            missing.into(),
            latest.counter.into(),
            device_key(latest.device).into(),
            time_key(latest.time).into(),
            time_key(now).into(),
            i64::from(collect).into(),
        ];
        match prior {
            None => tx.conn.exec(
                "INSERT INTO card_reconcile (card_no, state, card_balance, book_balance, \
                 difference, missing, last_counter, last_device, last_time, since, checked_at, \
                 collect_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
                &values,
            )?,
            Some(_) => tx.conn.exec(
                // A new state starts its own time; the same one keeps when it was first seen.
                "UPDATE card_reconcile SET since = CASE WHEN state = $2 THEN since ELSE $10 END, \
                 resolved_at = NULL, state = $2, card_balance = $3, book_balance = $4, \
                 difference = $5, missing = $6, last_counter = $7, last_device = $8, \
                 last_time = $9, checked_at = $10, collect_count = $11 WHERE card_no = $1",
                &values,
            )?,
        };
        if collect > 0 {
            out.orders.push(Order {
                device: latest.device,
                card: no,
                count: collect,
            });
        }
    }
    Ok(out)
}

/// Notes that the orders reached their terminals.
pub fn mark_sent(tx: &mut Tx<'_>, sent: &[Order], now: NaiveDateTime) -> Result<()> {
    for o in sent {
        tx.conn.exec(
            "UPDATE card_reconcile SET collect_sent_at = $2 WHERE card_no = $1",
            &[o.card.get().into(), time_key(now).into()],
        )?;
    }
    Ok(())
}

mod listing;
pub use listing::*;

#[cfg(test)]
mod tests;
