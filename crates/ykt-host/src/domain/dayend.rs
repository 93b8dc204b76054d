//! Day-end (日终, R-B9), partial: closing an accounting day in ONE writer transaction —
//! terminals keep trading, the host never needs code 9 for it (`docs/spec-notes.md`). The
//! close snapshots every account's balance, freezes the day's report (stored as JSON and
//! served as stored, never recomputed), runs the audit of the books and stores the day's
//! sales per merchant and meal period (餐次). Schema V11 (`backend/schema_dayend.rs`).

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;
use serde_json::Value as Json;
use ykt_proto::{Fen, MerchantNo};

use super::report;
use crate::error::{HostError, Result};
use crate::ledger::{self, Tx};
use crate::repo::{self, time_key};

/// One meal period's sales of one merchant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MealLine {
    pub meal: String,
    pub merchant_no: MerchantNo,
    pub debits: i64,
    pub amount: Fen,
    pub fee: Fen,
}

/// A closed day as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct DayEnd {
    pub day: NaiveDate,
    pub closed_at: NaiveDateTime,
    pub closed_by: String,
    /// The frozen daily report (`report::daily` at the close).
    pub report: Json,
    pub meals: Vec<MealLine>,
    pub audit_clean: bool,
    pub accounts: i64,
}

fn day_key(day: NaiveDate) -> i64 {
    time_key(day.and_time(NaiveTime::MIN))
}

/// When `day` may close: the next midnight plus `meta.dayend_close_minute`.
pub fn closes_at(tx: &mut Tx<'_>, day: NaiveDate) -> Result<NaiveDateTime> {
    let minute = repo::meta(tx.conn, "dayend_close_minute")?;
    let next = day
        .checked_add_days(Days::new(1))
        .ok_or_else(|| HostError::Invalid(format!("no day after {day}")))?;
    Ok(next.and_time(NaiveTime::MIN) + chrono::Duration::minutes(minute.clamp(0, 1439)))
}

/// Closes `day`: refused (400) before its close time or when closed already. All in the
/// caller's transaction, which must see settled balances (`Store::execute_settled`: in a
/// writer's batch, the jobs before it have their balance changes pending); the caller
/// journals it.
pub fn close(tx: &mut Tx<'_>, day: NaiveDate, by: &str, now: NaiveDateTime) -> Result<DayEnd> {
    let due = closes_at(tx, day)?;
    if now < due {
        return Err(HostError::Invalid(format!(
            "day {day} closes at {due}, not before"
        )));
    }
    if get(tx, day)?.is_some() {
        return Err(HostError::Invalid(format!("day {day} is closed already")));
    }
    // The day's records as of now are the frozen ones; the row goes in first, so the
    // report reads exactly those (a record committed meanwhile by another writer is late).
    let start = day_key(day);
    let end = start + 86_400;
    tx.conn.exec(
        "UPDATE records SET frozen = 1 WHERE time >= $1 AND time < $2",
        &[start.into(), end.into()],
    )?;
    tx.conn.exec(
        "INSERT INTO day_ends (day, closed_at, closed_by, report, meals, audit_clean, accounts) \
         VALUES ($1, $2, $3, '', '', 0, 0)",
        &[day_key(day).into(), time_key(now).into(), by.into()],
    )?;
    let frozen = serde_json::to_value(report::daily(tx, day)?)
        .map_err(|e| HostError::Invariant(format!("report as JSON: {e}")))?;
    let meals = meal_totals(tx, day)?;
    let audit = ledger::audit(tx.conn)?;
    let audit_clean = audit.is_clean();
    if !audit_clean {
        tracing::warn!(%day, ?audit, "day-end: the audit of the books is not clean");
    }
    let meals_json = serde_json::to_string(&meals)
        .map_err(|e| HostError::Invariant(format!("meals as JSON: {e}")))?;
    tx.conn.exec(
        "UPDATE day_ends SET report = $2, meals = $3, audit_clean = $4 WHERE day = $1",
        &[
            day_key(day).into(),
            frozen.to_string().into(),
            meals_json.into(),
            i64::from(audit_clean).into(),
        ],
    )?;
    let accounts = tx.conn.exec(
        "INSERT INTO day_end_balances (day, account, balance) SELECT $1, id, balance FROM accounts",
        &[day_key(day).into()],
    )?;
    let accounts = i64::try_from(accounts).unwrap_or(i64::MAX);
    tx.conn.exec(
        "UPDATE day_ends SET accounts = $2 WHERE day = $1",
        &[day_key(day).into(), accounts.into()],
    )?;
    get(tx, day)?.ok_or_else(|| HostError::Invariant(format!("day {day} not stored")))
}

/// A closed day as frozen at its close.
pub fn get(tx: &mut Tx<'_>, day: NaiveDate) -> Result<Option<DayEnd>> {
    let Some(r) = tx.conn.query_opt(
        "SELECT closed_at, closed_by, report, meals, audit_clean, accounts FROM day_ends \
         WHERE day = $1",
        &[day_key(day).into()],
    )?
    else {
        return Ok(None);
    };
    let json = |s: &str| {
        serde_json::from_str::<Json>(s).map_err(|e| HostError::Corrupt(format!("day end: {e}")))
    };
    let meals = json(r.text(3)?)?
        .as_array()
        .ok_or_else(|| HostError::Corrupt("day end meals".into()))?
        .iter()
        .map(|m| {
            let int = |k: &str| {
                m[k].as_i64()
                    .ok_or_else(|| HostError::Corrupt(format!("day end meal {k}")))
            };
            Ok(MealLine {
                meal: m["meal"].as_str().unwrap_or_default().to_owned(),
                merchant_no: MerchantNo::try_from(int("merchant_no")?)
                    .map_err(|_| HostError::Corrupt("day end merchant".into()))?,
                debits: int("debits")?,
                amount: int("amount")?,
                fee: int("fee")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(DayEnd {
        day,
        closed_at: repo::time_from(r.int(0)?)?,
        closed_by: r.text(1)?.to_owned(),
        report: json(r.text(2)?)?,
        meals,
        audit_clean: r.int(4)? != 0,
        accounts: r.int(5)?,
    }))
}

/// The closed days, newest first (at most `limit`).
pub fn list(tx: &mut Tx<'_>, limit: u32) -> Result<Vec<DayEnd>> {
    let days = tx.conn.query(
        "SELECT day FROM day_ends ORDER BY day DESC LIMIT $1",
        &[limit.into()],
    )?;
    let mut out = Vec::new();
    for r in days {
        let day = repo::time_from(r.int(0)?)?.date();
        out.extend(get(tx, day)?);
    }
    Ok(out)
}

impl DayEnd {
    /// As the admin API shows it.
    pub fn view(&self) -> Json {
        serde_json::json!({
            "day": self.day.to_string(),
            "closed_at": self.closed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            "closed_by": self.closed_by,
            "audit_clean": self.audit_clean,
            "accounts": self.accounts,
            "meals": self.meals,
            "report": self.report,
        })
    }
}

/// An account's balance in the snapshot of a closed day.
pub fn balance_at(tx: &mut Tx<'_>, day: NaiveDate, account: &str) -> Result<Option<Fen>> {
    tx.conn
        .query_opt(
            "SELECT balance FROM day_end_balances WHERE day = $1 AND account = $2",
            &[day_key(day).into(), account.into()],
        )?
        .map(|r| r.int(0))
        .transpose()
}

/// The day's booked sales per meal period and merchant (reversals are in the frozen report).
fn meal_totals(tx: &mut Tx<'_>, day: NaiveDate) -> Result<Vec<MealLine>> {
    let start = day_key(day);
    let periods = tx.conn.query(
        "SELECT name, start_minute, end_minute FROM meal_periods ORDER BY start_minute LIMIT 24",
        &[],
    )?;
    let mut out = Vec::new();
    for p in periods {
        let (name, from, to) = (p.text(0)?.to_owned(), p.int(1)?, p.int(2)?);
        for r in tx.conn.query(
            "SELECT merchant_no, COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT), \
             CAST(COALESCE(SUM(fee), 0) AS BIGINT) FROM records \
             WHERE booked = 1 AND frozen = 1 AND kind IN ('purchase', 'collected') \
             AND time >= $1 AND time < $2 GROUP BY merchant_no ORDER BY merchant_no LIMIT 10000",
            &[(start + from * 60).into(), (start + to * 60).into()],
        )? {
            out.push(MealLine {
                meal: name.clone(),
                merchant_no: r.int_as(0)?,
                debits: r.int(1)?,
                amount: r.int(2)?,
                fee: r.int(3)?,
            });
        }
    }
    Ok(out)
}

/// The system parameter (meta): minutes after midnight at which the previous day may close.
pub const CLOSE_MINUTE: &str = "dayend_close_minute";

/// The latest day whose close time has passed at `now`.
pub fn due_day(tx: &mut Tx<'_>, now: NaiveDateTime) -> Result<NaiveDate> {
    let minute = repo::meta(tx.conn, CLOSE_MINUTE)?.clamp(0, 1439);
    (now - chrono::Duration::minutes(minute))
        .date()
        .pred_opt()
        .ok_or_else(|| HostError::Invalid(format!("no day before {now}")))
}

/// The schedule's step (`ykt serve`): the latest due day when it is not closed yet. Days
/// before it that were never closed (the host was down) are left to `ykt dayend run`.
pub fn next_due(tx: &mut Tx<'_>, now: NaiveDateTime) -> Result<Option<NaiveDate>> {
    let day = due_day(tx, now)?;
    Ok(get(tx, day)?.is_none().then_some(day))
}

/// One meal period (餐次): minutes after midnight, end exclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MealPeriod {
    pub name: String,
    pub start_minute: u16,
    pub end_minute: u16,
}

/// Meal periods at most, and the longest name.
pub const MAX_MEAL_PERIODS: usize = 24;
pub const MAX_MEAL_NAME: usize = 32;

/// The meal periods, by start.
pub fn meal_periods(tx: &mut Tx<'_>) -> Result<Vec<MealPeriod>> {
    tx.conn
        .query(
            "SELECT name, start_minute, end_minute FROM meal_periods ORDER BY start_minute \
             LIMIT 24",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(MealPeriod {
                name: r.text(0)?.to_owned(),
                start_minute: r.int_as(1)?,
                end_minute: r.int_as(2)?,
            })
        })
        .collect()
}

/// Checks a new set of meal periods: within one day, none empty, no two overlapping, names
/// unique and short. Returns them sorted by start.
pub fn check_meal_periods(mut periods: Vec<MealPeriod>) -> Result<Vec<MealPeriod>> {
    let bad = |m: String| Err(HostError::Invalid(m));
    if periods.len() > MAX_MEAL_PERIODS {
        return bad(format!("at most {MAX_MEAL_PERIODS} meal periods"));
    }
    periods.sort_by_key(|p| p.start_minute);
    let mut names = std::collections::BTreeSet::new();
    for p in &periods {
        let n = p.name.trim();
        if n.is_empty() || n.chars().count() > MAX_MEAL_NAME || n != p.name {
            return bad(format!(
                "a meal period's name is 1 to {MAX_MEAL_NAME} characters, no surrounding spaces"
            ));
        }
        if !names.insert(n) {
            return bad(format!("meal period {n} twice"));
        }
        if p.start_minute >= p.end_minute || p.end_minute > 1440 {
            return bad(format!(
                "meal period {n}: 0 <= start_minute < end_minute <= 1440"
            ));
        }
    }
    if let Some(w) = periods
        .windows(2)
        .find(|w| w[1].start_minute < w[0].end_minute)
    {
        return bad(format!(
            "meal periods {} and {} overlap",
            w[0].name, w[1].name
        ));
    }
    Ok(periods)
}

/// Replaces the meal periods (checked first); later day-ends total by the new ones, closed
/// days keep theirs. The caller journals it.
pub fn set_meal_periods(tx: &mut Tx<'_>, periods: Vec<MealPeriod>) -> Result<Vec<MealPeriod>> {
    let periods = check_meal_periods(periods)?;
    tx.conn.exec("DELETE FROM meal_periods", &[])?;
    for p in &periods {
        tx.conn.exec(
            "INSERT INTO meal_periods (name, start_minute, end_minute) VALUES ($1, $2, $3)",
            &[
                p.name.as_str().into(),
                i64::from(p.start_minute).into(),
                i64::from(p.end_minute).into(),
            ],
        )?;
    }
    Ok(periods)
}
