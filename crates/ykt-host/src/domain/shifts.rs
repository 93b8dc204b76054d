//! Cash per operator and shift (R-B1): every deposit a clerk takes is tallied in that clerk's
//! open shift (opened by the first one), by how it was paid; closing the shift (扎帐) freezes
//! its tally, which is what the clerk hands over. The cash report gives a day's shifts.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;

use super::journal::{self, Actor, Change};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo::{time_from, time_key};
use ykt_proto::Fen;

/// How a deposit was paid at the card office.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// 现金: into the clerk's drawer.
    Cash,
    /// 银行卡: a card terminal at the counter.
    BankCard,
    /// 转账: a transfer the finance office matched.
    Transfer,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Cash, Method::BankCard, Method::Transfer];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::BankCard => "bank-card",
            Method::Transfer => "transfer",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The shift an operator is working: the open one, or a new one from now.
fn open_shift(tx: &mut Tx<'_>, operator: i64, now: NaiveDateTime) -> Result<i64> {
    if let Some(r) = tx.conn.query_opt(
        "SELECT id FROM shifts WHERE operator_id = $1 AND closed_at IS NULL ORDER BY id LIMIT 1 \
         FOR UPDATE",
        &[operator.into()],
    )? {
        return r.int(0);
    }
    tx.conn
        .query_one(
            "INSERT INTO shifts (operator_id, opened_at) VALUES ($1, $2) RETURNING id",
            &[operator.into(), time_key(now).into()],
        )?
        .int(0)
}

/// Tallies one deposit (its transfer) in the operator's open shift.
pub fn tally(
    tx: &mut Tx<'_>,
    operator: i64,
    transfer_id: &str,
    method: Method,
    amount: Fen,
    now: NaiveDateTime,
) -> Result<()> {
    if amount <= 0 {
        return Err(HostError::Invariant(format!("tally of {amount} fen")));
    }
    let shift = open_shift(tx, operator, now)?;
    tx.conn.exec(
        "INSERT INTO cash_entries (transfer_id, shift_id, operator_id, method, amount, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            transfer_id.into(),
            shift.into(),
            operator.into(),
            method.as_str().into(),
            amount.into(),
            time_key(now).into(),
        ],
    )?;
    Ok(())
}

/// Cash paid out of the operator's drawer (a refund at closure, R-B7): in their open shift,
/// apart from what was taken in (`cash_payouts`, schema V10).
pub fn pay_out(
    tx: &mut Tx<'_>,
    operator: i64,
    transfer_id: &str,
    amount: Fen,
    now: NaiveDateTime,
) -> Result<()> {
    if amount <= 0 {
        return Err(HostError::Invariant(format!("payout of {amount} fen")));
    }
    let shift = open_shift(tx, operator, now)?;
    tx.conn.exec(
        "INSERT INTO cash_payouts (transfer_id, shift_id, operator_id, amount, at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            transfer_id.into(),
            shift.into(),
            operator.into(),
            amount.into(),
            time_key(now).into(),
        ],
    )?;
    Ok(())
}

fn paid_out(tx: &mut Tx<'_>, shift: i64, day: Option<(i64, i64)>) -> Result<Sum> {
    let (from, to) = day.unwrap_or((i64::MIN, i64::MAX));
    let r = tx.conn.query_one(
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM cash_payouts \
         WHERE shift_id = $1 AND at >= $2 AND at < $3",
        &[shift.into(), from.into(), to.into()],
    )?;
    Ok(Sum {
        count: r.int(0)?,
        amount: r.int(1)?,
    })
}

/// One method's count and amount in a shift.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sum {
    pub count: i64,
    pub amount: Fen,
}

/// A shift and what was taken in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub id: i64,
    pub operator: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    pub cash: Sum,
    pub bank_card: Sum,
    pub transfer: Sum,
    /// Cash paid out (refunds): the drawer holds `cash` − `paid_out`.
    pub paid_out: Sum,
}

fn sums(tx: &mut Tx<'_>, shift: i64, day: Option<(i64, i64)>) -> Result<[Sum; 3]> {
    let (from, to) = day.unwrap_or((i64::MIN, i64::MAX));
    let rows = tx.conn.query(
        "SELECT method, COUNT(*), CAST(SUM(amount) AS BIGINT) FROM cash_entries \
         WHERE shift_id = $1 AND at >= $2 AND at < $3 GROUP BY method",
        &[shift.into(), from.into(), to.into()],
    )?;
    let mut out: [Sum; 3] = Default::default();
    for r in rows {
        let m = Method::parse(r.text(0)?)
            .ok_or_else(|| HostError::Corrupt(format!("payment method {:?}", r.text(0))))?;
        let i = Method::ALL.iter().position(|x| *x == m).unwrap_or(0);
        out[i] = Sum {
            count: r.int(1)?,
            amount: r.int(2)?,
        };
    }
    Ok(out)
}

fn shift_of(tx: &mut Tx<'_>, id: i64, login: &str, day: Option<(i64, i64)>) -> Result<Shift> {
    let r = tx.conn.query_one(
        "SELECT opened_at, closed_at FROM shifts WHERE id = $1",
        &[id.into()],
    )?;
    let (opened, closed) = (
        time_from(r.int(0)?)?,
        r.opt_int(1)?.map(time_from).transpose()?,
    );
    let [cash, bank_card, transfer] = sums(tx, id, day)?;
    let paid_out = paid_out(tx, id, day)?;
    Ok(Shift {
        paid_out,
        id,
        operator: login.to_owned(),
        opened_at: opened.to_string(),
        closed_at: closed.map(|c| c.to_string()),
        cash,
        bank_card,
        transfer,
    })
}

/// Closes the operator's open shift (扎帐) and returns its tally; refused when none is open.
pub fn close(tx: &mut Tx<'_>, actor: &Actor, now: NaiveDateTime) -> Result<Shift> {
    let operator = actor
        .operator
        .ok_or_else(|| HostError::Invalid("only an operator has a shift".into()))?;
    let Some(r) = tx.conn.query_opt(
        "SELECT id FROM shifts WHERE operator_id = $1 AND closed_at IS NULL ORDER BY id LIMIT 1 \
         FOR UPDATE",
        &[operator.into()],
    )?
    else {
        return Err(HostError::Invalid("没有未结束的班次".into()));
    };
    let id = r.int(0)?;
    tx.conn.exec(
        "UPDATE shifts SET closed_at = $2 WHERE id = $1",
        &[id.into(), time_key(now).into()],
    )?;
    let shift = shift_of(tx, id, &actor.login, None)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new("shift.close", format!("shift:{id}")).after(&shift),
    )?;
    Ok(shift)
}

/// A day's cash report of one operator: each shift with what was taken on that day, and
/// the totals to hand over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CashReport {
    pub operator: String,
    pub date: String,
    pub shifts: Vec<Shift>,
    pub cash: Sum,
    pub bank_card: Sum,
    pub transfer: Sum,
    /// Cash paid out (refunds at closure).
    pub paid_out: Sum,
    /// Of `cash`: the top-ups posted at the operator's top-up devices (docs/loads.md).
    pub top_ups: Sum,
}

pub fn report(tx: &mut Tx<'_>, operator: i64, login: &str, date: NaiveDate) -> Result<CashReport> {
    let from = time_key(date.and_time(NaiveTime::MIN));
    let to = from + 86_400;
    let ids = tx.conn.query(
        "SELECT shift_id FROM cash_entries WHERE operator_id = $1 AND at >= $2 AND at < $3 \
         UNION SELECT shift_id FROM cash_payouts WHERE operator_id = $1 AND at >= $2 \
         AND at < $3 ORDER BY shift_id LIMIT 1000",
        &[operator.into(), from.into(), to.into()],
    )?;
    let mut shifts = Vec::new();
    for r in ids {
        shifts.push(shift_of(tx, r.int(0)?, login, Some((from, to)))?);
    }
    let total = |f: fn(&Shift) -> &Sum| -> Result<Sum> {
        shifts.iter().map(f).try_fold(Sum::default(), |acc, s| {
            Ok(Sum {
                count: acc.count + s.count,
                amount: acc
                    .amount
                    .checked_add(s.amount)
                    .ok_or_else(|| HostError::Corrupt("cash report overflows".into()))?,
            })
        })
    };
    // A posted top-up's cash entry is named by its record transfer (`rec:…`), a deposit's by
    // its receipt (`dep:…`).
    let t = tx.conn.query_one(
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM cash_entries \
         WHERE operator_id = $1 AND at >= $2 AND at < $3 AND transfer_id LIKE 'rec:%'",
        &[operator.into(), from.into(), to.into()],
    )?;
    let top_ups = Sum {
        count: t.int(0)?,
        amount: t.int(1)?,
    };
    Ok(CashReport {
        top_ups,
        operator: login.to_owned(),
        date: date.to_string(),
        cash: total(|s| &s.cash)?,
        bank_card: total(|s| &s.bank_card)?,
        transfer: total(|s| &s.transfer)?,
        paid_out: total(|s| &s.paid_out)?,
        shifts,
    })
}
