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

/// Terminals listed per concern on the dashboard at most (counts are of all).
pub(crate) const LISTED: i64 = 20;

/// The enabled terminals' health, by SQL over the `devices` table (3,000 terminals are
/// counted in the database, not shipped to the page).
#[derive(Clone, Debug, Default)]
pub(crate) struct TerminalHealth {
    pub enabled: i64,
    pub pending: (i64, Vec<(String, i64)>),
    pub behind: (i64, Vec<(String, i64)>),
    pub drift: (i64, Vec<(String, i64)>),
}

fn device_text(key: i64) -> String {
    u32::try_from(key).map_or_else(|_| key.to_string(), |k| format!("{k:08X}"))
}

fn concern(
    tx: &mut Tx<'_>,
    condition: &str,
    value: &str,
    arg: i64,
) -> Result<(i64, Vec<(String, i64)>)> {
    let count = tx
        .conn
        .query_one(
            &format!("SELECT COUNT(*) FROM devices WHERE status = 'enabled' AND {condition}"),
            &[arg.into()],
        )?
        .int(0)?;
    let rows = tx.conn.query(
        &format!(
            "SELECT id, {value} FROM devices WHERE status = 'enabled' AND {condition} \
             ORDER BY id LIMIT {LISTED}"
        ),
        &[arg.into()],
    )?;
    let list = rows
        .iter()
        .map(|r| Ok((device_text(r.int(0)?), r.int(1)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((count, list))
}

pub(crate) fn terminal_health(
    tx: &mut Tx<'_>,
    blacklist_version: u32,
    drift_secs: i64,
) -> Result<TerminalHealth> {
    let enabled = tx
        .conn
        .query_one("SELECT COUNT(*) FROM devices WHERE status = 'enabled'", &[])?
        .int(0)?;
    Ok(TerminalHealth {
        enabled,
        pending: concern(tx, "report_pending > $1", "report_pending", 0)?,
        behind: concern(
            tx,
            "report_blacklist_version < $1",
            "report_blacklist_version",
            i64::from(blacklist_version),
        )?,
        drift: concern(
            tx,
            "ABS(report_clock - report_at) > $1",
            "report_clock - report_at",
            drift_secs,
        )?,
    })
}
