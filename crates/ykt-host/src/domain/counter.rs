//! The card's lifetime transaction counter (R-H5, R-F4.17). Every counter a booked
//! transaction used is kept per card, so a repeat is caught exactly (61), a late record that
//! fills a gap is accepted, an implausible value is refused (62), and gaps are reported
//! (info code 4) with a request to collect the card's recent records.

use ykt_proto::{Record, ReturnCode};

use crate::error::{Result, refuse};
use crate::ledger::Tx;
use crate::model::Card;
use crate::repo;

/// Checks the record's counter against what the card has used so far.
/// Refuses 61 for a counter already used by another record, 62 for a counter below the
/// card's counter at issue or more than `max_counter_jump` above the next expected one.
pub fn check(tx: &mut Tx<'_>, card: &Card, record: &Record) -> Result<()> {
    let c = record.card_counter;
    if c < card.counter_floor
        || u64::from(c) > u64::from(card.counter_next) + u64::from(tx.policy.max_counter_jump)
    {
        return refuse(ReturnCode::CARD_COUNTER_ABNORMAL);
    }
    if c < card.counter_next && repo::counter_owner(tx.conn, card.no, c)?.is_some() {
        return refuse(ReturnCode::CARD_COUNTER_REPEATED);
    }
    Ok(())
}

/// Marks the counter used by `record` and advances the card's next expected counter.
pub fn consume(tx: &mut Tx<'_>, card: &mut Card, record: &Record) -> Result<()> {
    let c = record.card_counter;
    repo::counter_insert(tx.conn, card.no, c, record)?;
    card.counters_used += 1;
    if c >= card.counter_next {
        card.counter_next = c.saturating_add(1);
    }
    Ok(())
}

/// Frees the counter of a debit that never reached the card (a cancellation, R-P5.5): the
/// card's next transaction will carry the same counter.
pub fn release(tx: &mut Tx<'_>, card: &mut Card, record: &Record) -> Result<()> {
    let c = record.card_counter;
    repo::counter_delete(tx.conn, card.no, c)?;
    card.counters_used = card.counters_used.saturating_sub(1);
    if card.counter_next == c.saturating_add(1) {
        card.counter_next = c;
    }
    Ok(())
}

/// Gaps in the card's counters: `(missing in total, how many of the card's most recent
/// transactions to collect)`. The card keeps only its last few records, so only gaps within
/// the last `max_collect` counters can be collected.
pub fn gaps(tx: &mut Tx<'_>, card: &Card) -> Result<(u64, u8)> {
    let span = u64::from(card.counter_next.saturating_sub(card.counter_floor));
    let missing = span.saturating_sub(u64::from(card.counters_used));
    if missing == 0 {
        return Ok((0, 0));
    }
    let window = u32::from(tx.policy.max_collect);
    let low = card
        .counter_next
        .saturating_sub(window)
        .max(card.counter_floor);
    let recent = tx.conn.query(
        "SELECT counter FROM card_counters WHERE card_no = $1 AND counter >= $2 \
         ORDER BY counter LIMIT 256",
        &[card.no.get().into(), low.into()],
    )?;
    let mut seen_recent = Vec::with_capacity(recent.len());
    for r in &recent {
        seen_recent.push(r.int_as::<u32>(0)?);
    }
    // The oldest missing counter within the window decides how far back to collect.
    let collect = (low..card.counter_next)
        .find(|c| !seen_recent.contains(c))
        .map_or(0, |oldest| card.counter_next - oldest);
    Ok((missing, u8::try_from(collect).unwrap_or(u8::MAX)))
}
