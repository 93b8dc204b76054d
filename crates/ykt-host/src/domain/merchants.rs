//! Merchants' money and terms (R-B8): type and commission rate, payouts (解款) of a
//! merchant's balance minus its commission (管理费) to its bank, the merchant accounts' own
//! check (code 44) and maintenance mode (code 8, R-B9). Schema V11
//! (`backend/schema_merchants.rs`).

use chrono::NaiveDateTime;
use serde::Serialize;
use ykt_proto::{Fen, MerchantNo};

use super::journal::Change;
use crate::error::{HostError, Result};
use crate::ledger::{Transfer, Tx};
use crate::model::{MAX_COMMISSION_BP, Merchant, MerchantKind, MerchantStatus};
use crate::repo::{self, time_from, time_key};

/// The commission income (管理费收入): every payout's commission goes here.
pub const COMMISSION_ACCOUNT: &str = "income:commission";
/// The bank side of payouts: its balance is what was paid out to merchants' banks.
pub const PAYOUT_BANK_ACCOUNT: &str = "bank:payout";

/// The commission on `gross` at `bp` basis points, rounded half up to the fen: the one
/// rounding rule of commissions. `None` when the product overflows.
pub fn commission(gross: Fen, bp: u16) -> Option<Fen> {
    if gross < 0 || bp > MAX_COMMISSION_BP {
        return None;
    }
    gross
        .checked_mul(Fen::from(bp))
        .and_then(|p| p.checked_add(5_000))
        .map(|p| p / 10_000)
}

/// Sets a merchant's type and/or commission rate under its row lock; journalled by the
/// caller. A deregistered merchant keeps its terms.
pub fn set_terms(
    tx: &mut Tx<'_>,
    no: MerchantNo,
    kind: Option<MerchantKind>,
    commission_bp: Option<u16>,
) -> Result<(Merchant, Merchant)> {
    let before = repo::merchant_lock(tx.conn, no)?
        .ok_or_else(|| HostError::Invalid(format!("no merchant {no}")))?;
    if before.status == MerchantStatus::Deregistered {
        return Err(HostError::Invalid(format!("merchant {no} is deregistered")));
    }
    if commission_bp.is_some_and(|bp| bp > MAX_COMMISSION_BP) {
        return Err(HostError::Invalid(
            "a commission rate is 0 to 10000 basis points".into(),
        ));
    }
    let after = Merchant {
        kind: kind.unwrap_or(before.kind),
        commission_bp: commission_bp.unwrap_or(before.commission_bp),
        ..before.clone()
    };
    repo::merchant_set_terms(tx.conn, &after)?;
    Ok((before, after))
}

// ---- maintenance mode (code 8) -------------------------------------------------------------

/// Maintenance mode as an administrator sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Maintenance {
    On,
    Off,
}

/// Whether maintenance mode is on, read from the database (not the writer's cache).
pub fn maintenance(tx: &mut Tx<'_>) -> Result<Maintenance> {
    Ok(if repo::meta(tx.conn, "maintenance")? == 0 {
        Maintenance::Off
    } else {
        Maintenance::On
    })
}

/// Sets maintenance mode and moves `config_version`, so every writer (every host process on
/// a shared PostgreSQL database) sees it at its next batch. Returns the mode before.
pub fn set_maintenance(tx: &mut Tx<'_>, mode: Maintenance) -> Result<Maintenance> {
    let before = maintenance(tx)?;
    let value: i64 = match mode {
        Maintenance::On => 1,
        Maintenance::Off => 0,
    };
    tx.conn.exec(
        "UPDATE meta SET value = $1 WHERE name = 'maintenance'",
        &[value.into()],
    )?;
    tx.conn.exec(
        "UPDATE meta SET value = value + 1 WHERE name = 'config_version'",
        &[],
    )?;
    tx.conn.note_config_change();
    Ok(before)
}

// ---- payouts (解款) ------------------------------------------------------------------------

/// One payout period of a merchant: what it took in (gross), the commission kept and the
/// net paid to its bank, with the transfers that moved them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    pub merchant_no: MerchantNo,
    pub seq: i64,
    /// The end of the previous payout period (the merchant's creation: none).
    pub period_from: Option<NaiveDateTime>,
    pub period_to: NaiveDateTime,
    pub gross: Fen,
    pub commission: Fen,
    pub net: Fen,
    pub commission_bp: u16,
    pub net_transfer: String,
    pub commission_transfer: Option<String>,
    pub bank_ref: String,
    pub paid_by: String,
}

impl Payout {
    /// As the admin API and the journal show it (times as the terminals' local clock).
    pub fn view(&self) -> serde_json::Value {
        let t = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        serde_json::json!({
            "merchant_no": self.merchant_no,
            "seq": self.seq,
            "period_from": self.period_from.map(t),
            "period_to": t(self.period_to),
            "gross": self.gross,
            "commission": self.commission,
            "net": self.net,
            "commission_bp": self.commission_bp,
            "net_transfer": self.net_transfer,
            "commission_transfer": self.commission_transfer,
            "bank_ref": self.bank_ref,
            "paid_by": self.paid_by,
        })
    }
}

/// The merchants' bank for payouts. Called inside the payout's transaction, which may still
/// roll back: a real bank's credit must be idempotent by `reference`.
pub trait PayoutBank: Send + Sync {
    /// Pays `amount` to the merchant's bank account; returns the bank's reference.
    fn credit(&self, merchant: MerchantNo, amount: Fen, reference: &str) -> Result<String>;
}

/// A bank that accepts every payout and echoes the reference.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulatedPayoutBank;

impl PayoutBank for SimulatedPayoutBank {
    fn credit(&self, _merchant: MerchantNo, _amount: Fen, reference: &str) -> Result<String> {
        Ok(format!("sim:{reference}"))
    }
}

/// What a payout pays: the whole balance, or exactly the gross a second operator approved
/// (the two-person rule: what was approved is what is paid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayoutAmount {
    All,
    Exactly(Fen),
}

/// The system parameter (meta) above which a payout's gross waits for a second operator.
pub const PAYOUT_APPROVAL: &str = "payout_approval_threshold";

/// What a payout would pay now (for the two-person rule's threshold and a preview).
pub fn payout_gross(tx: &mut Tx<'_>, no: MerchantNo) -> Result<Fen> {
    let balance = repo::account_balance(tx.conn, &repo::merchant_account(no))?
        .ok_or_else(|| HostError::Invalid(format!("no merchant {no}")))?;
    Ok(balance)
}

/// Pays the merchant's whole balance, minus its commission, to its bank: one period from the
/// previous payout to `now`. Refused (400) when the balance is not positive, or the merchant
/// is abnormal (44: its account must be explained first). The journal entry names both
/// transfers (the audit pairs them): the caller appends it (`jobs::change`, or the
/// approval's decision).
pub fn payout(
    tx: &mut Tx<'_>,
    paid_by: &str,
    no: MerchantNo,
    amount: PayoutAmount,
    bank: &dyn PayoutBank,
    now: NaiveDateTime,
) -> Result<(Payout, Change)> {
    let m = repo::merchant_lock(tx.conn, no)?
        .ok_or_else(|| HostError::Invalid(format!("no merchant {no}")))?;
    if m.status == MerchantStatus::Abnormal {
        return Err(HostError::Invalid(format!(
            "merchant {no}'s account is abnormal (44): explain it and set the merchant normal first"
        )));
    }
    let balance = payout_gross(tx, no)?;
    let gross = match amount {
        PayoutAmount::All => balance,
        PayoutAmount::Exactly(g) if g > 0 && g <= balance => g,
        PayoutAmount::Exactly(g) => {
            return Err(HostError::Invalid(format!(
                "merchant {no}'s balance {balance} fen does not cover the approved {g} fen"
            )));
        }
    };
    if gross <= 0 {
        return Err(HostError::Invalid(format!(
            "merchant {no} has nothing to pay out (balance {gross} fen)"
        )));
    }
    let commission = commission(gross, m.commission_bp)
        .ok_or_else(|| HostError::Invariant(format!("commission on {gross} overflows")))?;
    let net = gross
        .checked_sub(commission)
        .ok_or_else(|| HostError::Invariant("net payout overflows".into()))?;
    let last = tx.conn.query_opt(
        "SELECT seq, period_to FROM payouts WHERE merchant_no = $1 ORDER BY seq DESC LIMIT 1",
        &[no.into()],
    )?;
    let (seq, period_from) = match last {
        Some(r) => (r.int(0)? + 1, Some(time_from(r.int(1)?)?)),
        None => (1, None),
    };
    let net_transfer = format!("payout:{no}:{seq}:net");
    let commission_transfer = (commission > 0).then(|| format!("payout:{no}:{seq}:commission"));
    let from = repo::merchant_account(no);
    tx.post(Transfer {
        id: net_transfer.clone(),
        from: from.clone(),
        to: PAYOUT_BANK_ACCOUNT.into(),
        amount: net,
        kind: "payout",
        record: None,
        time: now,
    })?;
    if let Some(id) = &commission_transfer {
        tx.post(Transfer {
            id: id.clone(),
            from,
            to: COMMISSION_ACCOUNT.into(),
            amount: commission,
            kind: "commission",
            record: None,
            time: now,
        })?;
    }
    let bank_ref = bank.credit(no, net, &net_transfer)?;
    tx.conn.exec(
        "INSERT INTO payouts (merchant_no, seq, period_from, period_to, gross, commission, net, \
         commission_bp, net_transfer, commission_transfer, bank_ref, paid_by, paid_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            no.into(),
            seq.into(),
            period_from.map_or(0, time_key).into(),
            time_key(now).into(),
            gross.into(),
            commission.into(),
            net.into(),
            i64::from(m.commission_bp).into(),
            net_transfer.as_str().into(),
            commission_transfer.clone().into(),
            bank_ref.as_str().into(),
            paid_by.into(),
            time_key(now).into(),
        ],
    )?;
    let p = Payout {
        merchant_no: no,
        seq,
        period_from,
        period_to: now,
        gross,
        commission,
        net,
        commission_bp: m.commission_bp,
        net_transfer,
        commission_transfer,
        bank_ref,
        paid_by: paid_by.to_owned(),
    };
    let mut change = Change::new("merchant.payout", format!("merchant:{no}")).after(p.view());
    change = change.transfer(p.net_transfer.clone());
    if let Some(id) = &p.commission_transfer {
        change = change.transfer(id.clone());
    }
    Ok((p, change))
}

/// Runs a payout a second operator approved (`approvals::decide`): exactly the requested
/// gross, paid by the approver; the returned change names its transfers.
pub fn approved_payout(
    tx: &mut Tx<'_>,
    a: &super::approvals::Approval,
    approver: &str,
    bank: &dyn PayoutBank,
    now: NaiveDateTime,
) -> Result<Change> {
    let p = &a.payload;
    let bad = || HostError::Corrupt(format!("approval {} payload {p}", a.id));
    let no = p["merchant_no"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(bad)?;
    let gross = p["gross"].as_i64().ok_or_else(bad)?;
    let (_, change) = payout(tx, approver, no, PayoutAmount::Exactly(gross), bank, now)?;
    Ok(change)
}

/// A merchant's payouts, newest first (at most `limit`).
pub fn payouts(tx: &mut Tx<'_>, no: MerchantNo, limit: u32) -> Result<Vec<Payout>> {
    let rows = tx.conn.query(
        "SELECT seq, period_from, period_to, gross, commission, net, commission_bp, \
         net_transfer, commission_transfer, bank_ref, paid_by FROM payouts \
         WHERE merchant_no = $1 ORDER BY seq DESC LIMIT $2",
        &[no.into(), limit.into()],
    )?;
    rows.iter()
        .map(|r| {
            let from = r.int(1)?;
            Ok(Payout {
                merchant_no: no,
                seq: r.int(0)?,
                period_from: if from == 0 {
                    None
                } else {
                    Some(time_from(from)?)
                },
                period_to: time_from(r.int(2)?)?,
                gross: r.int(3)?,
                commission: r.int(4)?,
                net: r.int(5)?,
                commission_bp: r.int_as(6)?,
                net_transfer: r.text(7)?.to_owned(),
                commission_transfer: r.opt_text(8)?.map(str::to_owned),
                bank_ref: r.text(9)?.to_owned(),
                paid_by: r.text(10)?.to_owned(),
            })
        })
        .collect()
}

// ---- the merchant accounts' own check (code 44) -------------------------------------------

/// Finds merchant accounts that fail their own check — a negative balance, or a balance that
/// is not the sum of the account's transfers — and sets each such merchant `abnormal` (44),
/// so online sales on it are refused until finance has explained it. Returns
/// the merchants newly marked. Run by the admin route and by `ykt serve`'s schedule.
pub fn check_accounts(tx: &mut Tx<'_>) -> Result<Vec<MerchantNo>> {
    let rows = tx.conn.query(
        "SELECT m.no FROM merchants m JOIN accounts a ON a.id = 'merchant:' || CAST(m.no AS TEXT) \
         WHERE m.status = 'normal' AND (a.balance < 0 OR a.balance <> \
           (SELECT CAST(COALESCE(SUM(CASE WHEN t.to_account = a.id THEN t.amount \
                                          ELSE -t.amount END), 0) AS BIGINT) \
            FROM transfers t WHERE t.to_account = a.id OR t.from_account = a.id)) \
         ORDER BY m.no LIMIT 1000",
        &[],
    )?;
    let mut marked = Vec::new();
    for r in rows {
        let no: MerchantNo = r.int_as(0)?;
        repo::merchant_set_status(tx.conn, no, MerchantStatus::Abnormal)?;
        marked.push(no);
    }
    Ok(marked)
}

/// Sets a normal merchant abnormal (44) when its account, with what this transaction has
/// posted, is below zero (a cancellation booked after a payout). Merchant 0 is suspense.
pub fn flag_if_overdrawn(tx: &mut Tx<'_>, no: MerchantNo) -> Result<()> {
    if no == 0 {
        return Ok(());
    }
    let account = repo::merchant_account(no);
    let stored = repo::account_balance(tx.conn, &account)?.unwrap_or(0);
    if i128::from(stored) + tx.pending(&account) >= 0 {
        return Ok(());
    }
    if let Some(m) = repo::merchant_lock(tx.conn, no)?
        && m.status == MerchantStatus::Normal
    {
        tracing::warn!(
            merchant = no,
            "merchant account below zero: marked abnormal (44)"
        );
        repo::merchant_set_status(tx.conn, no, MerchantStatus::Abnormal)?;
    }
    Ok(())
}

/// The payouts' own audit: each payout row's transfers exist with its amounts, and the
/// commission income and payout bank accounts equal the sums of the payouts.
pub fn audit(conn: &mut dyn crate::sql::Conn, limit: u32) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for r in conn.query(
        "SELECT p.merchant_no, p.seq FROM payouts p \
         LEFT JOIN transfers n ON n.id = p.net_transfer \
         LEFT JOIN transfers c ON c.id = p.commission_transfer \
         WHERE (p.net > 0 AND (n.id IS NULL OR n.amount <> p.net OR n.kind <> 'payout' \
                OR n.from_account <> 'merchant:' || CAST(p.merchant_no AS TEXT))) \
            OR (p.net = 0 AND n.id IS NOT NULL) \
            OR (p.commission > 0 AND (c.id IS NULL OR c.amount <> p.commission)) \
            OR (p.commission = 0 AND p.commission_transfer IS NOT NULL) \
         ORDER BY p.merchant_no, p.seq LIMIT $1",
        &[limit.into()],
    )? {
        found.push(format!("payout {}/{}", r.int(0)?, r.int(1)?));
    }
    for (account, column) in [
        (COMMISSION_ACCOUNT, "commission"),
        (PAYOUT_BANK_ACCOUNT, "net"),
    ] {
        let sum = conn
            .query_one(
                &format!("SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) FROM payouts"),
                &[],
            )?
            .int(0)?;
        let balance = repo::account_balance(conn, account)?;
        if balance != Some(sum) {
            found.push(format!("{account}: balance {balance:?}, payouts {sum}"));
        }
    }
    for r in conn.query(
        "SELECT id, balance FROM accounts WHERE kind = 'merchant' AND balance < 0 \
         ORDER BY id LIMIT $1",
        &[limit.into()],
    )? {
        found.push(format!("{} negative: {}", r.text(0)?, r.int(1)?));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // R-B8: the commission is gross × rate / 10000 rounded half up, exact in integers,
        // never more than the gross.
        #[test]
        fn commission_rounds_half_up(gross in 0..=1_000_000_000_000i64, bp in 0..=10_000u16) {
            let c = commission(gross, bp).unwrap();
            let exact2 = 2 * i128::from(gross) * i128::from(bp); // 20000 × the exact value
            let c2 = 20_000 * i128::from(c);
            prop_assert!(c2 > exact2 - 10_000 && c2 <= exact2 + 10_000);
            prop_assert!(c <= gross);
        }
    }

    #[test]
    fn commission_edges() {
        assert_eq!(commission(100, 250), Some(3)); // 2.5 → 3
        assert_eq!(commission(99, 50), Some(0)); // 0.495 → 0
        assert_eq!(commission(1, 5_000), Some(1)); // 0.5 → 1
        assert_eq!(commission(Fen::MAX, 10_000), None);
        assert_eq!(commission(100, 10_001), None);
        assert_eq!(commission(-1, 1), None);
    }
}
