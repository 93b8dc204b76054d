//! What an operator alarms on about the terminals, read from the database at each scrape of
//! `/metrics` (#16): who has gone silent, and how far their blacklists lag.

use chrono::{NaiveDateTime, TimeDelta};

use crate::domain::blacklist;
use crate::error::Result;
use crate::ledger::Tx;
use crate::repo::time_key;

/// A terminal heartbeats every few minutes: silence this long means it is off or cut off.
pub(crate) const SILENT_AFTER: TimeDelta = TimeDelta::minutes(10);

/// Over the enabled terminals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TerminalHealth {
    /// Not heard from since the moment given (or never).
    pub silent: i64,
    pub blacklist_version: u32,
    /// Whose last reported blacklist version is older than the current one.
    pub blacklist_behind: i64,
    /// Versions the furthest-behind one lags (0: none behind).
    pub blacklist_lag: i64,
}

/// Counts the enabled terminals not heard from since `silent_since` (campus time) and those
/// whose blacklist is behind.
pub(crate) fn terminal_health(
    tx: &mut Tx<'_>,
    silent_since: NaiveDateTime,
) -> Result<TerminalHealth> {
    let version = blacklist::version(tx)?;
    let current = i64::from(version);
    let row = tx.conn.query_one(
        "SELECT \
           COALESCE(SUM(CASE WHEN report_at IS NULL OR report_at < $1 THEN 1 ELSE 0 END), 0), \
           COALESCE(SUM(CASE WHEN report_blacklist_version < $2 THEN 1 ELSE 0 END), 0), \
           COALESCE(MIN(report_blacklist_version), $2) \
         FROM devices WHERE status = 'enabled'",
        &[time_key(silent_since).into(), current.into()],
    )?;
    Ok(TerminalHealth {
        silent: row.int(0)?,
        blacklist_version: version,
        blacklist_behind: row.int(1)?,
        blacklist_lag: current.saturating_sub(row.int(2)?).max(0),
    })
}
