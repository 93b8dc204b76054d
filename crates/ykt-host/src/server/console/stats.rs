//! The dashboard's figures that no API route gives: debits by hour and the last minute's
//! rate. Read-only queries over the `records_time` index (one range per hour).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

use crate::error::Result;
use crate::ledger::Tx;
use crate::repo::time_key;

/// Debits of one period: count and amount (fen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Debits {
    pub count: i64,
    pub amount: i64,
}

const DEBITS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM records \
     WHERE booked = 1 AND kind IN ('purchase', 'collected') AND time >= $1 AND time < $2";

pub(crate) fn debits(tx: &mut Tx<'_>, from: NaiveDateTime, to: NaiveDateTime) -> Result<Debits> {
    let row = tx
        .conn
        .query_one(DEBITS, &[time_key(from).into(), time_key(to).into()])?;
    Ok(Debits {
        count: row.int(0)?,
        amount: row.int(1)?,
    })
}

/// The day's debits in each of its 24 hours (terminal clock, as the daily report counts).
pub(crate) fn by_hour(tx: &mut Tx<'_>, day: NaiveDate) -> Result<[Debits; 24]> {
    let mut out = [Debits::default(); 24];
    let start = day.and_time(NaiveTime::MIN);
    for (h, slot) in out.iter_mut().enumerate() {
        let from = start + TimeDelta::hours(h as i64);
        *slot = debits(tx, from, from + TimeDelta::hours(1))?;
    }
    Ok(out)
}

/// Everything the dashboard reads itself, in one transaction.
#[derive(Clone, Debug)]
pub(crate) struct Today {
    pub today: [Debits; 24],
    pub yesterday: [Debits; 24],
    /// Debits in the last 60 seconds.
    pub last_minute: i64,
}

pub(crate) fn today(tx: &mut Tx<'_>, now: NaiveDateTime) -> Result<Today> {
    let day = now.date();
    let yesterday = day.pred_opt().unwrap_or(day);
    Ok(Today {
        today: by_hour(tx, day)?,
        yesterday: by_hour(tx, yesterday)?,
        last_minute: debits(
            tx,
            now - TimeDelta::seconds(60),
            now + TimeDelta::seconds(1),
        )?
        .count,
    })
}

/// Sums an hour list, checked.
pub(crate) fn total(hours: &[Debits; 24]) -> Option<Debits> {
    hours.iter().try_fold(Debits::default(), |a, d| {
        Some(Debits {
            count: a.count.checked_add(d.count)?,
            amount: a.amount.checked_add(d.amount)?,
        })
    })
}
