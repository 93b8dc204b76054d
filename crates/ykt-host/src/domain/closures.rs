//! Closure and refund (销户 / 退款, R-B7, schema V10): a closure request cancels the card at
//! once (blacklisted, 57 online) and files the payout for when it is due (the same waiting
//! period as a replacement, `replacement_wait_days`), so late offline records still book to
//! the card first. The payout is the card's account plus the card-office deposits still
//! waiting for it (the holder paid them in: revoked into the account and paid with it);
//! subsidies still waiting are the school's: the payout revokes them back to their batch's
//! funding (R-B5, `subsidy_follow`). Paid in cash (card → `refund:cash`, a payout
//! in the clerk's shift) or to the holder's bank account (card → `refund:bank`, the list the
//! finance office sends its bank). After the payout, a late record of the card is held in
//! the exception queue with 57 (`checks::card_closed`): its money is never lost.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::json;
use ykt_proto::{CardNo, Fen};

use super::admin;
use super::journal::{self, Actor, Change};
use super::loads::{self, WaitingSource};
use super::replacements;
use super::shifts;
use crate::error::{HostError, Result};
use crate::ledger::{Transfer, Tx};
use crate::model::{Card, CardStatus};
use crate::repo::{self, time_from, time_key};

pub const REFUND_CASH_ACCOUNT: &str = "refund:cash";
pub const REFUND_BANK_ACCOUNT: &str = "refund:bank";
/// Refunds owed to holders for credits after their payout (a payable of the card office).
pub const REFUND_OWED_ACCOUNT: &str = "refund:owed";
/// `meta` row: a closure batch whose payouts sum to at least this waits for approval.
pub const BATCH_APPROVAL: &str = "closure_batch_approval";
/// At most this many closures per sweep.
pub const SWEEP_LIMIT: u32 = 500;

/// How the refund is paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Payout {
    /// 现金: a clerk of the finance office pays it out at the counter.
    Cash,
    /// 银行: to the holder's bank account; the host pays it when due.
    Bank { account: String },
}

impl Payout {
    fn method(&self) -> &'static str {
        match self {
            Payout::Cash => "cash",
            Payout::Bank { .. } => "bank",
        }
    }

    fn account(&self) -> &'static str {
        match self {
            Payout::Cash => REFUND_CASH_ACCOUNT,
            Payout::Bank { .. } => REFUND_BANK_ACCOUNT,
        }
    }

    /// A bank account number: 8 to 32 digits.
    pub fn bank(account: &str) -> Result<Payout> {
        if !(8..=32).contains(&account.len()) || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostError::Invalid("银行账号为 8 到 32 位数字".into()));
        }
        Ok(Payout::Bank {
            account: account.to_owned(),
        })
    }
}

/// Where a closure stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    Waiting,
    Paid {
        #[serde(serialize_with = "replacements::time_text")]
        at: NaiveDateTime,
        amount: Fen,
        transfer: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Closure {
    pub card_no: u32,
    pub payout: Payout,
    pub batch: Option<i64>,
    #[serde(serialize_with = "replacements::time_text")]
    pub requested_at: NaiveDateTime,
    #[serde(serialize_with = "replacements::time_text")]
    pub due_at: NaiveDateTime,
    #[serde(flatten)]
    pub state: State,
    /// Credits (reversals, cancellations) that reached the card after its payout: owed to
    /// the holder, in `refund:owed` (`domain::late_credits`).
    pub owed: Fen,
}

const COLUMNS: &str = "card_no, method, bank_account, batch_no, requested_at, due_at, state, paid_at, amount, \
     transfer_id, owed";

fn row(r: &crate::sql::Row) -> Result<Closure> {
    let payout = match (r.text(1)?, r.opt_text(2)?) {
        ("cash", _) => Payout::Cash,
        ("bank", Some(a)) => Payout::Bank {
            account: a.to_owned(),
        },
        (m, _) => return Err(HostError::Corrupt(format!("closure method {m:?}"))),
    };
    let state = match r.text(6)? {
        "waiting" => State::Waiting,
        "paid" => State::Paid {
            at: time_from(r.opt_int(7)?.unwrap_or(0))?,
            amount: r.int(8)?,
            transfer: r.opt_text(9)?.map(str::to_owned),
        },
        other => return Err(HostError::Corrupt(format!("closure state {other:?}"))),
    };
    Ok(Closure {
        card_no: r.int_as(0)?,
        payout,
        batch: r.opt_int(3)?,
        requested_at: time_from(r.int(4)?)?,
        due_at: time_from(r.int(5)?)?,
        state,
        owed: r.int(10)?,
    })
}

pub fn of_card(tx: &mut Tx<'_>, card: CardNo, lock: bool) -> Result<Option<Closure>> {
    of_card_on(tx.conn, card, lock)
}

fn of_card_on(c: &mut dyn crate::sql::Conn, card: CardNo, lock: bool) -> Result<Option<Closure>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM card_closures WHERE card_no = $1{lock}"),
        &[card.get().into()],
    )?
    .map(|r| row(&r))
    .transpose()
}

/// Whether the card was closed and paid out: its late records are held (57).
pub fn paid_out(tx: &mut Tx<'_>, card: CardNo) -> Result<bool> {
    Ok(matches!(
        of_card(tx, card, false)?,
        Some(Closure {
            state: State::Paid { .. },
            ..
        })
    ))
}

/// Closures, newest first; only those of `batch` when given.
pub fn list(tx: &mut Tx<'_>, batch: Option<i64>, limit: u32) -> Result<Vec<Closure>> {
    let rows = match batch {
        Some(b) => tx.conn.query(
            &format!(
                "SELECT {COLUMNS} FROM card_closures WHERE batch_no = $1 ORDER BY card_no \
                 LIMIT $2"
            ),
            &[b.into(), limit.min(10_000).into()],
        )?,
        None => tx.conn.query(
            &format!(
                "SELECT {COLUMNS} FROM card_closures ORDER BY requested_at DESC, card_no DESC \
                 LIMIT $1"
            ),
            &[limit.min(10_000).into()],
        )?,
    };
    rows.iter().map(row).collect()
}

fn locked_card(tx: &mut Tx<'_>, no: CardNo) -> Result<Card> {
    repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("无此卡 {}", no.get())))
}

/// What a closure of the card would pay out now: its account plus its waiting deposits.
pub fn refundable(tx: &mut Tx<'_>, card: &Card) -> Result<Fen> {
    let waiting: Fen = loads::waiting_for_card(tx, card.no)?
        .iter()
        .filter(|w| w.source == WaitingSource::Deposit)
        .map(|w| w.amount)
        .sum();
    card.balance
        .checked_add(waiting)
        .ok_or_else(|| HostError::Corrupt(format!("card {} refund overflows", card.no.get())))
}

/// 销户: cancels the card at once (blacklist) and files the payout for when it is due.
/// Journalled by the caller (`jobs::change`) with the returned closure.
pub fn request(
    tx: &mut Tx<'_>,
    actor: &Actor,
    no: CardNo,
    payout: Payout,
    batch: Option<i64>,
    now: NaiveDateTime,
) -> Result<Closure> {
    let card = locked_card(tx, no)?;
    if card.status == CardStatus::Cancelled {
        return Err(HostError::Invalid("该卡已注销".into()));
    }
    if of_card(tx, no, false)?.is_some() {
        return Err(HostError::Invalid("该卡已销户".into()));
    }
    admin::set_card_status(tx, no, CardStatus::Cancelled)?;
    let due = replacements::due_from(tx, now)?;
    let bank = match &payout {
        Payout::Bank { account } => Some(account.clone()),
        Payout::Cash => None,
    };
    tx.conn.exec(
        "INSERT INTO card_closures (card_no, method, bank_account, batch_no, requested_by, \
         requested_at, due_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting')",
        &[
            no.get().into(),
            payout.method().into(),
            bank.into(),
            batch.into(),
            actor.operator.into(),
            time_key(now).into(),
            time_key(due).into(),
        ],
    )?;
    of_card(tx, no, false)?.ok_or_else(|| HostError::Invariant("closure vanished".into()))
}

/// Pays a due closure out (a clerk at the counter: cash is tallied as a payout in their
/// shift; or ykt's sweep for bank payouts). Journalled here, naming the transfers.
pub fn pay(tx: &mut Tx<'_>, actor: &Actor, no: CardNo, now: NaiveDateTime) -> Result<Closure> {
    let mut card = locked_card(tx, no)?;
    let c = of_card(tx, no, true)?.ok_or_else(|| HostError::Invalid("该卡未销户".into()))?;
    if c.state != State::Waiting {
        return Err(HostError::Invalid("该卡已退款".into()));
    }
    if c.due_at > now {
        return Err(HostError::Invalid(format!(
            "退款须等到 {}（等待期内脱机记录仍可上传）",
            c.due_at
        )));
    }
    if card.loads_pending > 0 {
        return Err(HostError::Invalid(
            "a top-up of the card is not settled yet: wait for its record".into(),
        ));
    }
    let account = repo::card_account(no);
    let mut transfers = Vec::new();
    for w in loads::waiting_for_card(tx, no)? {
        if w.source != WaitingSource::Deposit {
            continue;
        }
        let id = format!("cls:{}:w{}", no.get(), w.id);
        loads::revoke_waiting(tx, w.id, &account, &id, now)?;
        card.balance += w.amount;
        transfers.push(id);
    }
    // Subsidies still waiting are the school's: back to their batch's funding (R-B5).
    let subsidies = super::subsidy_follow::revoke_for_closure(tx, no, now)?;
    transfers.extend(subsidies.transfers);
    let amount = card.balance.max(0);
    let transfer = (amount > 0).then(|| format!("cls:{}:refund", no.get()));
    if let Some(id) = &transfer {
        tx.post(Transfer {
            id: id.clone(),
            from: account,
            to: c.payout.account().to_owned(),
            amount,
            kind: "refund",
            record: None,
            time: now,
        })?;
        card.balance -= amount;
        transfers.push(id.clone());
        if c.payout == Payout::Cash {
            let op = actor
                .operator
                .ok_or_else(|| HostError::Invalid("cash is paid out by an operator".into()))?;
            shifts::pay_out(tx, op, id, amount, now)?;
        }
    }
    repo::card_update(tx.conn, &card)?;
    tx.conn.exec(
        "UPDATE card_closures SET state = 'paid', paid_at = $2, paid_by = $3, amount = $4, \
         transfer_id = $5 WHERE card_no = $1 AND state = 'waiting'",
        &[
            no.get().into(),
            time_key(now).into(),
            actor.operator.into(),
            amount.into(),
            transfer.into(),
        ],
    )?;
    let after =
        of_card(tx, no, false)?.ok_or_else(|| HostError::Invariant("closure vanished".into()))?;
    let mut change = Change::new("card.refund", format!("card:{}", no.get()))
        .after(json!({"closure": after, "subsidies_revoked": subsidies.details}));
    for t in transfers {
        change = change.transfer(t);
    }
    journal::append(tx, actor, now, &change)?;
    Ok(after)
}

/// The sweep's part: every bank payout due at `now` (cash waits for its clerk).
pub fn run_due(tx: &mut Tx<'_>, actor: &Actor, now: NaiveDateTime) -> Result<Vec<Closure>> {
    let due: Vec<i64> = tx
        .conn
        .query(
            "SELECT card_no FROM card_closures WHERE state = 'waiting' AND method = 'bank' \
             AND due_at <= $1 ORDER BY due_at, card_no LIMIT $2",
            &[time_key(now).into(), SWEEP_LIMIT.into()],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<_>>()?;
    let mut paid = Vec::with_capacity(due.len());
    for n in due {
        let no = u32::try_from(n)
            .ok()
            .and_then(CardNo::new)
            .ok_or_else(|| HostError::Corrupt(format!("closure of card {n}")))?;
        paid.push(pay(tx, actor, no, now)?);
    }
    Ok(paid)
}
