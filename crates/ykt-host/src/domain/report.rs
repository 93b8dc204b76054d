//! The daily report: per merchant, per device, per accounting subject (科目, R-F4.14) and per
//! item code, for one day of the terminals' local clock, the debits booked (count, amount,
//! fee) and the debits undone by a cancellation (R-P5.5) or a reversal (冲正) made that day.
//! Read from the records, one query per grouping.

use chrono::{Days, NaiveDate};
use serde::Serialize;
use ykt_proto::{Fen, MerchantNo, PhysicalId};

use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo;

/// Groups in one report at most (one per merchant or device); more is a corrupt database.
pub const MAX_GROUPS: usize = 100_000;

/// Counts and sums of one merchant or device on one day. Money is fen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Debits booked (purchases and records collected from cards), undone ones included.
    pub debits: u64,
    pub debit_amount: Fen,
    pub debit_fee: Fen,
    /// Cancellations and reversals made this day, with what they gave back.
    pub reversals: u64,
    pub reversal_amount: Fen,
    pub reversal_fee: Fen,
}

impl Totals {
    /// What stays with the merchant: debited minus given back (both sums are of positive
    /// amounts, so the difference of two non-negative i64 cannot overflow).
    pub fn net_amount(&self) -> Fen {
        self.debit_amount - self.reversal_amount
    }

    /// What stays as fee income.
    pub fn net_fee(&self) -> Fen {
        self.debit_fee - self.reversal_fee
    }

    /// Adds `o` in; a sum past i64 is refused, never wrapped.
    fn add(&mut self, o: &Totals) -> Result<()> {
        let too_big = || HostError::Invalid("the report's sums overflow".into());
        self.debits = self.debits.checked_add(o.debits).ok_or_else(too_big)?;
        self.reversals = self
            .reversals
            .checked_add(o.reversals)
            .ok_or_else(too_big)?;
        for (sum, part) in [
            (&mut self.debit_amount, o.debit_amount),
            (&mut self.debit_fee, o.debit_fee),
            (&mut self.reversal_amount, o.reversal_amount),
            (&mut self.reversal_fee, o.reversal_fee),
        ] {
            *sum = sum.checked_add(part).ok_or_else(too_big)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MerchantLine {
    pub merchant_no: MerchantNo,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceLine {
    #[serde(serialize_with = "as_text")]
    pub device: PhysicalId,
    #[serde(flatten)]
    pub totals: Totals,
}

fn as_text<T: std::fmt::Display, S: serde::Serializer>(
    v: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The debits of one accounting subject (R-F4.14), as stored on each record when the host
/// booked it; `None` (JSON `null`): records without a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectLine {
    pub subject: Option<u16>,
    #[serde(flatten)]
    pub totals: Totals,
}

/// The debits of one item code of keyboard-coded mode (R-F4.10); 0: no item code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemLine {
    pub item_code: u16,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Late records (their own day closed before they arrived) booked on the report's day,
/// grouped by their own day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LateLine {
    #[serde(serialize_with = "as_text")]
    pub day: NaiveDate,
    #[serde(flatten)]
    pub totals: Totals,
}

/// The group of a late record: the start of its own day (seconds of the time key).
const LATE_DAY: &str = "r.time - r.time % 86400";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DailyReport {
    #[serde(serialize_with = "as_text")]
    pub date: NaiveDate,
    pub merchants: Vec<MerchantLine>,
    pub devices: Vec<DeviceLine>,
    /// By accounting subject, "none" (`None`) first, then by subject number.
    pub subjects: Vec<SubjectLine>,
    /// By item code, ascending (0 = none first).
    pub items: Vec<ItemLine>,
    /// The sum over all merchants (equal to the sum over all devices).
    pub total: Totals,
    /// The late records counted in this report (already in the lines and the total above),
    /// by the closed day they belong to, oldest first (R-B9).
    pub late: Vec<LateLine>,
    /// Loads posted onto cards this day (top-ups, pick-ups) by terminal, purpose and the
    /// operator whose cash it was (docs/loads.md); not part of the debit totals.
    pub loads: Vec<super::topup::LoadLine>,
}

/// `{group}` is `merchant_no`, `device`, `subject` or `item_code`. A debit counts on the day
/// of its own time; a cancellation or reversal counts on its day, with the amounts of the
/// debit it undid (found by primary key: its original serial, or serial − 1 for a
/// cancellation, R-P5.5), in the group `{undone}` names: the undoing record's merchant and
/// device, the undone debit's subject and item code (what was given back is what was sold).
/// A *late* record — its own day closed (day-end, R-B9) without it — counts
/// instead on the day it arrived (`received_at`), so a closed day's books never move.
/// `{when}` picks the records of the day ([`ON_DAY`]) or only the late ones ([`LATE_ONLY`]).
const QUERY: &str = "
SELECT g,
    CAST(SUM(dc) AS BIGINT), CAST(SUM(da) AS BIGINT), CAST(SUM(df) AS BIGINT),
    CAST(SUM(rc) AS BIGINT), CAST(SUM(ra) AS BIGINT), CAST(SUM(rf) AS BIGINT)
FROM (
    SELECT {group} AS g, 1 AS dc, amount AS da, fee AS df, 0 AS rc, 0 AS ra, 0 AS rf
    FROM records r
    WHERE booked = 1 AND kind IN ('purchase', 'collected') AND {when}
    UNION ALL
    SELECT {undone}, 0, 0, 0, 1, o.amount, o.fee
    FROM records r JOIN records o ON o.device = r.device
        AND o.serial = COALESCE(r.original_serial, r.serial - 1) AND o.reversed_by = r.serial
    WHERE r.kind IN ('cancellation', 'reversal') AND {when}
) t
GROUP BY g
ORDER BY g
LIMIT $3";

/// Record `r` is late: its own day is closed and the close did not count it (`frozen`, set
/// by the day-end in its transaction).
const IS_LATE: &str = "(r.frozen = 0 AND EXISTS (SELECT 1 FROM day_ends d \
    WHERE d.day = r.time - r.time % 86400))";

/// The records a day's report counts: its own records that were not late, and the late
/// records of earlier days that arrived on it (by the `records_time` and
/// `records_received` indexes).
const ON_DAY: &str = "((r.time >= $1 AND r.time < $2 AND NOT {late}) \
    OR (r.received_at >= $1 AND r.received_at < $2 AND {late}))";

/// The late records that arrived on the day.
const LATE_ONLY: &str = "(r.received_at >= $1 AND r.received_at < $2 AND {late})";

/// The groups of one grouping, `None` first then ascending (NULL sorts differently on the
/// two backends).
fn grouped(
    tx: &mut Tx<'_>,
    group: &str,
    undone: &str,
    when: &str,
    date: NaiveDate,
) -> Result<Vec<(Option<i64>, Totals)>> {
    let start = date.and_time(chrono::NaiveTime::MIN);
    let end = start
        .checked_add_days(Days::new(1))
        .ok_or_else(|| HostError::Invalid(format!("no day after {date}")))?;
    let sql = QUERY
        .replace("{when}", &when.replace("{late}", IS_LATE))
        .replace("{group}", group)
        .replace("{undone}", undone);
    let limit = i64::try_from(MAX_GROUPS + 1).unwrap_or(i64::MAX);
    let rows = tx.conn.query(
        &sql,
        &[
            repo::time_key(start).into(),
            repo::time_key(end).into(),
            limit.into(),
        ],
    )?;
    if rows.len() > MAX_GROUPS {
        return Err(HostError::Invalid(format!(
            "more than {MAX_GROUPS} {group} groups in one day"
        )));
    }
    let mut groups = rows
        .iter()
        .map(|r| {
            let t = Totals {
                debits: r.int_as(1)?,
                debit_amount: r.int(2)?,
                debit_fee: r.int(3)?,
                reversals: r.int_as(4)?,
                reversal_amount: r.int(5)?,
                reversal_fee: r.int(6)?,
            };
            Ok((r.opt_int(0)?, t))
        })
        .collect::<Result<Vec<_>>>()?;
    groups.sort_by_key(|(g, _)| *g);
    Ok(groups)
}

fn key(g: Option<i64>, what: &str) -> Result<i64> {
    g.ok_or_else(|| HostError::Corrupt(format!("{what} NULL")))
}

fn small(g: i64, what: &str) -> Result<u16> {
    u16::try_from(g).map_err(|_| HostError::Corrupt(format!("{what} {g}")))
}

/// The report of `date` (the terminals' local calendar day).
pub fn daily(tx: &mut Tx<'_>, date: NaiveDate) -> Result<DailyReport> {
    let mut total = Totals::default();
    let merchants = grouped(tx, "merchant_no", "r.merchant_no", ON_DAY, date)?
        .into_iter()
        .map(|(g, totals)| {
            total.add(&totals)?;
            let g = key(g, "merchant number")?;
            let merchant_no = MerchantNo::try_from(g)
                .map_err(|_| HostError::Corrupt(format!("merchant number {g}")))?;
            Ok(MerchantLine {
                merchant_no,
                totals,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let devices = grouped(tx, "device", "r.device", ON_DAY, date)?
        .into_iter()
        .map(|(g, totals)| {
            let g = key(g, "device")?;
            let n = u32::try_from(g).map_err(|_| HostError::Corrupt(format!("device {g}")))?;
            Ok(DeviceLine {
                device: PhysicalId(n.to_be_bytes()),
                totals,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let subjects = grouped(tx, "subject", "o.subject", ON_DAY, date)?
        .into_iter()
        .map(|(g, totals)| {
            Ok(SubjectLine {
                subject: g.map(|g| small(g, "subject")).transpose()?,
                totals,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let items = grouped(tx, "item_code", "o.item_code", ON_DAY, date)?
        .into_iter()
        .map(|(g, totals)| {
            Ok(ItemLine {
                item_code: small(key(g, "item code")?, "item code")?,
                totals,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    debug_assert_eq!(
        subjects.iter().try_fold(Totals::default(), |mut a, l| {
            a.add(&l.totals).map(|()| a)
        })?,
        total,
        "every record has one subject or none"
    );
    debug_assert_eq!(
        devices.iter().try_fold(Totals::default(), |mut a, d| {
            a.add(&d.totals).map(|()| a)
        })?,
        total,
        "every record has one merchant and one device"
    );
    let late = grouped(tx, LATE_DAY, LATE_DAY, LATE_ONLY, date)?
        .into_iter()
        .map(|(g, totals)| {
            let day = repo::time_from(key(g, "late record's day")?)?.date();
            Ok(LateLine { day, totals })
        })
        .collect::<Result<Vec<_>>>()?;
    let loads = super::topup::loads_of_day(tx, date)?;
    Ok(DailyReport {
        date,
        merchants,
        devices,
        subjects,
        items,
        total,
        late,
        loads,
    })
}
