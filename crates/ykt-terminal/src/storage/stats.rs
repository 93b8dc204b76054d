//! Terminal statistics (R-F4.22): per calendar day, the count and amount of successful
//! debits and of reversals. Derived from the journal, so they are exactly as durable as
//! the records themselves.

use chrono::NaiveDate;
use ykt_proto::{Fen, Record, RecordKind};

use super::codec::{DecodeError, Reader, Writer};

/// One day's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Successful consumption debits (money left the card).
    pub debits: u32,
    /// Amount debited for them: consumption amount plus fee.
    pub debit_amount: Fen,
    /// Reversals (冲正) whose money went back onto the card (MF1 only).
    pub reversals: u32,
    pub reversal_amount: Fen,
}

/// What the operator sees: today and the calendar day before it (zero when idle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub today: DayTotals,
    pub yesterday: DayTotals,
}

/// How a record counts: `Some((is_reversal, amount))` when it moved money on the card.
pub(crate) fn contribution(record: &Record) -> Option<(bool, Fen)> {
    if !record.status.card_debited() {
        return None;
    }
    let amount = record.amount.saturating_add(record.fee);
    match record.kind {
        RecordKind::Purchase => Some((false, amount)),
        RecordKind::Reversal => Some((true, amount)),
        // Loads put money on the card; the totals count sales.
        RecordKind::Cancellation
        | RecordKind::BlackCard
        | RecordKind::Collected
        | RecordKind::TopUp
        | RecordKind::Subsidy => None,
    }
}

impl DayTotals {
    pub(crate) fn add(&mut self, is_reversal: bool, amount: Fen) {
        if is_reversal {
            self.reversals = self.reversals.saturating_add(1);
            self.reversal_amount = self.reversal_amount.saturating_add(amount);
        } else {
            self.debits = self.debits.saturating_add(1);
            self.debit_amount = self.debit_amount.saturating_add(amount);
        }
    }

    pub(crate) fn merge(&mut self, other: &DayTotals) {
        self.debits = self.debits.saturating_add(other.debits);
        self.debit_amount = self.debit_amount.saturating_add(other.debit_amount);
        self.reversals = self.reversals.saturating_add(other.reversals);
        self.reversal_amount = self.reversal_amount.saturating_add(other.reversal_amount);
    }
}

/// Totals of records that left the journal when their space was reused, for the two
/// latest days among them (older days can never be "today" or "yesterday" again unless
/// the clock is set back by more than a day).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Baseline {
    pub days: [Option<(NaiveDate, DayTotals)>; 2],
}

pub(crate) const BASELINE_LEN: usize = 2 * (1 + 4 + 4 + 8 + 4 + 8);

impl Baseline {
    pub fn add(&mut self, date: NaiveDate, is_reversal: bool, amount: Fen) {
        let mut one = DayTotals::default();
        one.add(is_reversal, amount);
        self.merge_day(date, &one);
    }

    fn merge_day(&mut self, date: NaiveDate, totals: &DayTotals) {
        if let Some((_, t)) = self.days.iter_mut().flatten().find(|(d, _)| *d == date) {
            t.merge(totals);
            return;
        }
        // Keep the two latest dates.
        let mut all: Vec<(NaiveDate, DayTotals)> = self.days.iter().flatten().copied().collect();
        all.push((date, *totals));
        all.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
        self.days = [all.first().copied(), all.get(1).copied()];
    }

    pub fn totals(&self, date: NaiveDate) -> DayTotals {
        self.days
            .iter()
            .flatten()
            .find(|(d, _)| *d == date)
            .map(|(_, t)| *t)
            .unwrap_or_default()
    }

    pub fn encode(&self, w: &mut Writer) {
        for day in &self.days {
            match day {
                Some((date, t)) => {
                    w.u8(1);
                    w.date(*date);
                    w.u32(t.debits);
                    w.i64(t.debit_amount);
                    w.u32(t.reversals);
                    w.i64(t.reversal_amount);
                }
                None => {
                    w.u8(0);
                    w.bytes(&[0; 4 + 4 + 8 + 4 + 8]);
                }
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut days = [None, None];
        for day in &mut days {
            let present = r.bool()?;
            let date = r.date();
            let t = DayTotals {
                debits: r.u32()?,
                debit_amount: r.i64()?,
                reversals: r.u32()?,
                reversal_amount: r.i64()?,
            };
            if present {
                *day = Some((date?, t));
            }
        }
        Ok(Baseline { days })
    }
}
