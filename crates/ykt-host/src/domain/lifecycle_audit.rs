//! The audit of the card office's lifecycle of a card's money (R-B6, R-B7, schema V10), part
//! of `ledger::audit`: the card fee income against the replacements' fees, each move and
//! correction against its transfers, the refund accounts against the paid closures, the
//! shifts' cash payouts against the cash refunds, that a paid-out card holds nothing, and
//! the late credits forwarded to a new card or owed after a payout (`late_credits`).

use super::{closures, replacements};
use crate::error::Result;
use crate::repo;
use crate::sql::Conn;

/// Every finding, at most `limit` of each kind.
pub fn audit(conn: &mut dyn Conn, limit: u32) -> Result<Vec<String>> {
    let mut out = replacements(conn, limit)?;
    out.extend(refunds(conn, limit)?);
    out.extend(owed(conn, limit)?);
    Ok(out)
}

/// The audit of replacements: the fee income equals the fees taken, and each moved
/// replacement's transfers equal its row (moved out of the old card, corrections back).
fn replacements(conn: &mut dyn Conn, limit: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let fees = conn.query_one(
        "SELECT CAST(COALESCE(SUM(fee), 0) AS BIGINT) FROM card_replacements",
        &[],
    )?;
    let income = repo::account_balance(conn, replacements::CARD_FEE_ACCOUNT)?.unwrap_or(0);
    if fees.int(0)? != income {
        out.push(format!(
            "{} is {income}, the replacements' fees {}",
            replacements::CARD_FEE_ACCOUNT,
            fees.int(0)?
        ));
    }
    for r in conn.query(
        "SELECT r.old_card, r.moved, CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) \
         FROM card_replacements r LEFT JOIN transfers t ON t.id = 'rpl:' || CAST(r.old_card AS \
         TEXT) || ':move' GROUP BY r.old_card, r.moved HAVING r.moved <> \
         CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) ORDER BY r.old_card LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!(
            "replacement of card {} moved {} but its transfer is {}",
            r.int(0)?,
            r.int(1)?,
            r.int(2)?
        ));
    }
    for r in conn.query(
        "SELECT r.old_card, r.corrected, CAST(COALESCE(SUM(CASE \
             WHEN t.id LIKE '%:revoke' THEN t.amount \
             WHEN t.id LIKE '%:rest' THEN -t.amount ELSE t.amount END), 0) AS BIGINT) \
         FROM card_replacements r LEFT JOIN transfers t \
             ON t.id LIKE 'rpl:' || CAST(r.old_card AS TEXT) || ':c%' \
         GROUP BY r.old_card, r.corrected \
         HAVING r.corrected <> CAST(COALESCE(SUM(CASE \
             WHEN t.id LIKE '%:revoke' THEN t.amount \
             WHEN t.id LIKE '%:rest' THEN -t.amount ELSE t.amount END), 0) AS BIGINT) \
         ORDER BY r.old_card LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!(
            "replacement of card {} corrected {} but its transfers say {}",
            r.int(0)?,
            r.int(1)?,
            r.int(2)?
        ));
    }
    for r in conn.query(
        "SELECT r.old_card, r.forwarded, CAST(COALESCE(SUM(CASE \
             WHEN t.id LIKE '%:merge' THEN -t.amount ELSE t.amount END), 0) AS BIGINT) \
         FROM card_replacements r LEFT JOIN transfers t \
             ON t.id LIKE 'rpl:' || CAST(r.old_card AS TEXT) || ':f:%' \
         GROUP BY r.old_card, r.forwarded \
         HAVING r.forwarded <> CAST(COALESCE(SUM(CASE \
             WHEN t.id LIKE '%:merge' THEN -t.amount ELSE t.amount END), 0) AS BIGINT) \
         ORDER BY r.old_card LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!(
            "replacement of card {} forwarded {} but its transfers say {}",
            r.int(0)?,
            r.int(1)?,
            r.int(2)?
        ));
    }
    Ok(out)
}

/// The audit of refunds owed after a payout: `refund:owed` equals the closures' `owed`, and
/// each closure's `owed` its transfers.
fn owed(conn: &mut dyn Conn, limit: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let owed = conn
        .query_one(
            "SELECT CAST(COALESCE(SUM(owed), 0) AS BIGINT) FROM card_closures",
            &[],
        )?
        .int(0)?;
    let balance = repo::account_balance(conn, closures::REFUND_OWED_ACCOUNT)?.unwrap_or(0);
    if owed != balance {
        out.push(format!(
            "{} is {balance}, the closures owe {owed}",
            closures::REFUND_OWED_ACCOUNT
        ));
    }
    for r in conn.query(
        "SELECT c.card_no, c.owed, CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) \
         FROM card_closures c LEFT JOIN transfers t \
             ON t.id LIKE 'cls:' || CAST(c.card_no AS TEXT) || ':owed:%' \
         GROUP BY c.card_no, c.owed \
         HAVING c.owed <> CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) \
         ORDER BY c.card_no LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!(
            "closure of card {} owes {} but its transfers say {}",
            r.int(0)?,
            r.int(1)?,
            r.int(2)?
        ));
    }
    Ok(out)
}

/// The audit of refunds: each refund account equals the payouts of its method, each paid
/// closure's transfer its amount, and a paid-out card holds nothing.
fn refunds(conn: &mut dyn Conn, limit: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (method, account) in [
        ("cash", closures::REFUND_CASH_ACCOUNT),
        ("bank", closures::REFUND_BANK_ACCOUNT),
    ] {
        let paid = conn
            .query_one(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM card_closures \
                 WHERE state = 'paid' AND method = $1",
                &[method.into()],
            )?
            .int(0)?;
        let balance = repo::account_balance(conn, account)?.unwrap_or(0);
        if paid != balance {
            out.push(format!(
                "{account} is {balance}, the {method} refunds {paid}"
            ));
        }
    }
    for r in conn.query(
        "SELECT c.card_no, c.amount, COALESCE(t.amount, 0), COALESCE(k.balance, 0) \
         FROM card_closures c LEFT JOIN transfers t ON t.id = c.transfer_id \
         LEFT JOIN cards k ON k.no = c.card_no WHERE c.state = 'paid' \
         AND (c.amount <> COALESCE(t.amount, 0) OR COALESCE(k.balance, 0) <> 0) \
         ORDER BY c.card_no LIMIT $1",
        &[limit.into()],
    )? {
        out.push(format!(
            "closure of card {}: paid {}, transfer {}, card holds {}",
            r.int(0)?,
            r.int(1)?,
            r.int(2)?,
            r.int(3)?
        ));
    }
    let cash = conn
        .query_one(
            "SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM cash_payouts p",
            &[],
        )?
        .int(0)?;
    let cash_closures = conn
        .query_one(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM card_closures \
             WHERE state = 'paid' AND method = 'cash'",
            &[],
        )?
        .int(0)?;
    if cash != cash_closures {
        out.push(format!(
            "cash payouts in shifts {cash}, cash refunds {cash_closures}"
        ));
    }
    Ok(out)
}
