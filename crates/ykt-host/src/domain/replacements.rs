//! Replacement (补卡, R-B6, schema V10): a lost or bad card is replaced by a NEW card number
//! (docs/spec-notes.md: the old number stays blacklisted, so its late offline records stay
//! unambiguous) with a new UID and keys, for the same cardholder. The old card is cancelled
//! at once (blacklisted, 57 online) and its balance moves only when the replacement is due
//! (`replacement_wait_days` after the request): [`run_due`] posts old card → money waiting
//! for the new card, which the new card picks up at its next tap.
//!
//! A record of the old card that arrives after the move is still booked to the old card:
//! [`cover_late_record`] first brings back what it needs by a recorded correction, never an
//! edit: from the moved money while it still waits (the waiting load is revoked and the rest
//! waits again), else from the new card's account; when neither covers it, the record is
//! held with 69 like any debit beyond its account (docs/operators.md).

use chrono::{Duration, NaiveDateTime};
use serde::Serialize;
use serde_json::json;
use ykt_proto::{CardNo, DisplayNo, Fen};

use super::admin;
use super::journal::{self, Actor, Change};
use super::loads::{self, LoadId, WaitingSource, WaitingState};
use super::shifts::{self, Method};
use super::subsidy_follow;
use crate::error::{HostError, Result};
use crate::ledger::{FUNDING_ACCOUNT, Transfer, Tx};
use crate::model::{Card, CardStatus, NewCard};
use crate::repo::{self, time_from, time_key};
use crate::repo_holders as rh;

/// The card fee's income account (工本费).
pub const CARD_FEE_ACCOUNT: &str = "income:card_fee";
/// `meta` row: days between a replacement or closure request and its money moving.
pub const WAIT_DAYS: &str = "replacement_wait_days";
/// At most this many days of waiting (a setting beyond is a typo).
pub const MAX_WAIT_DAYS: i64 = 90;
/// At most this many due replacements are moved per sweep; the next sweep takes the rest.
pub const SWEEP_LIMIT: u32 = 500;
/// At most this much card fee.
pub const MAX_FEE: Fen = 100_000;

/// Times in views as the journal writes them (`2026-03-02 12:00:00`).
pub(crate) fn time_text<S: serde::Serializer>(
    t: &NaiveDateTime,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// Why the old card is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// 挂失补卡: the card was reported lost.
    Lost,
    /// 坏卡补卡: the card was registered bad (53) and is not repaired but replaced.
    Bad,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Lost => "lost",
            Reason::Bad => "bad",
        }
    }

    fn parse(s: &str) -> Result<Reason> {
        match s {
            "lost" => Ok(Reason::Lost),
            "bad" => Ok(Reason::Bad),
            other => Err(HostError::Corrupt(format!("replacement reason {other:?}"))),
        }
    }
}

/// How the card fee is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeePayment {
    /// No fee (e.g. a card that broke by the card office's fault).
    None,
    /// In cash at the counter: tallied in the clerk's shift.
    Cash,
    /// From the old card's balance, at once.
    Balance,
}

impl FeePayment {
    pub fn as_str(self) -> &'static str {
        match self {
            FeePayment::None => "none",
            FeePayment::Cash => "cash",
            FeePayment::Balance => "balance",
        }
    }

    pub fn parse(s: &str) -> Option<FeePayment> {
        [FeePayment::None, FeePayment::Cash, FeePayment::Balance]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// Where a replacement stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    /// The old card's balance stays with it until `due`.
    Waiting {
        #[serde(serialize_with = "time_text")]
        due: NaiveDateTime,
    },
    /// The balance moved at `at`: `amount` waited for the new card as load `load`.
    Moved {
        #[serde(serialize_with = "time_text")]
        at: NaiveDateTime,
        amount: Fen,
        load: Option<LoadId>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Replacement {
    pub old_card: u32,
    pub new_card: u32,
    pub reason: Reason,
    pub fee: Fen,
    pub fee_method: FeePayment,
    #[serde(serialize_with = "time_text")]
    pub requested_at: NaiveDateTime,
    #[serde(serialize_with = "time_text")]
    pub due_at: NaiveDateTime,
    #[serde(flatten)]
    pub state: State,
    /// What corrections brought back to the old card for its late records, in sum.
    pub corrected: Fen,
    pub corrections: i64,
    /// What late credits of the old card (reversals, cancellations) forwarded to the new
    /// card's waiting money after the move, in sum (`domain::late_credits`).
    pub forwarded: Fen,
}

/// What the card office asks for.
#[derive(Clone, Debug)]
pub struct Request {
    pub old_card: CardNo,
    /// The new card's printed number (unique, as for every card).
    pub display_no: DisplayNo,
    pub fee: Fen,
    pub fee_method: FeePayment,
}

const COLUMNS: &str = "old_card, new_card, reason, fee, fee_method, requested_at, due_at, state, \
     moved_at, moved, load_id, corrected, corrections, forwarded";

fn row(r: &crate::sql::Row) -> Result<Replacement> {
    let due_at = time_from(r.int(6)?)?;
    let state = match r.text(7)? {
        "waiting" => State::Waiting { due: due_at },
        "moved" => State::Moved {
            at: time_from(r.opt_int(8)?.unwrap_or(0))?,
            amount: r.int(9)?,
            load: r.opt_int(10)?,
        },
        other => return Err(HostError::Corrupt(format!("replacement state {other:?}"))),
    };
    Ok(Replacement {
        old_card: r.int_as(0)?,
        new_card: r.int_as(1)?,
        reason: Reason::parse(r.text(2)?)?,
        fee: r.int(3)?,
        fee_method: FeePayment::parse(r.text(4)?)
            .ok_or_else(|| HostError::Corrupt(format!("fee method {:?}", r.text(4))))?,
        requested_at: time_from(r.int(5)?)?,
        due_at,
        state,
        corrected: r.int(11)?,
        corrections: r.int(12)?,
        forwarded: r.int(13)?,
    })
}

/// The replacement of `old` (the old card's number), if it was replaced.
pub fn of_old(tx: &mut Tx<'_>, old: CardNo, lock: bool) -> Result<Option<Replacement>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    tx.conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM card_replacements WHERE old_card = $1{lock}"),
            &[old.get().into()],
        )?
        .map(|r| row(&r))
        .transpose()
}

/// The replacements made, newest first.
pub fn list(tx: &mut Tx<'_>, limit: u32) -> Result<Vec<Replacement>> {
    tx.conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM card_replacements ORDER BY requested_at DESC, old_card \
                 DESC LIMIT $1"
            ),
            &[limit.min(1000).into()],
        )?
        .iter()
        .map(row)
        .collect()
}

/// The waiting period as set (days).
pub fn wait_days(tx: &mut Tx<'_>) -> Result<i64> {
    repo::meta(tx.conn, WAIT_DAYS)
}

pub fn check_wait_days(days: i64) -> Result<()> {
    if !(0..=MAX_WAIT_DAYS).contains(&days) {
        return Err(HostError::Invalid(format!(
            "{WAIT_DAYS} is 0 to {MAX_WAIT_DAYS} days"
        )));
    }
    Ok(())
}

/// When a request made `now` is due.
pub fn due_from(tx: &mut Tx<'_>, now: NaiveDateTime) -> Result<NaiveDateTime> {
    Ok(now + Duration::days(wait_days(tx)?))
}

fn locked_card(tx: &mut Tx<'_>, no: CardNo) -> Result<Card> {
    repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("无此卡 {}", no.get())))
}

/// 补卡: issues the new card (new number, same class and expiry, same cardholder), cancels
/// the old one (it stays blacklisted), takes the fee and files the balance move for when it
/// is due. Journalled (naming the fee's transfer) in the caller's transaction.
pub fn replace(
    tx: &mut Tx<'_>,
    actor: &Actor,
    req: &Request,
    now: NaiveDateTime,
) -> Result<(Replacement, Card)> {
    if !(0..=MAX_FEE).contains(&req.fee) {
        return Err(HostError::Invalid(format!("fee is 0 to {MAX_FEE} fen")));
    }
    if (req.fee == 0) != (req.fee_method == FeePayment::None) {
        return Err(HostError::Invalid(
            "a fee needs its payment (cash or balance); no fee is fee_method none".into(),
        ));
    }
    let mut old = locked_card(tx, req.old_card)?;
    let reason = match old.status {
        CardStatus::Lost => Reason::Lost,
        CardStatus::Bad => Reason::Bad,
        _ => {
            return Err(HostError::Invalid(
                "只有已挂失或已登记为坏卡的卡才能补卡".into(),
            ));
        }
    };
    if of_old(tx, old.no, false)?.is_some() {
        return Err(HostError::Invalid("该卡已补卡".into()));
    }
    if super::closures::of_card(tx, old.no, false)?.is_some() {
        return Err(HostError::Invalid("该卡已销户".into()));
    }
    if old.loads_pending > 0 {
        return Err(HostError::Invalid(
            "a top-up of the old card is not settled yet: wait for its record".into(),
        ));
    }
    if req.fee_method == FeePayment::Balance && old.balance < req.fee {
        return Err(HostError::Invalid("卡余额不足以支付工本费".into()));
    }
    let holder = rh::card(tx.conn, old.no, true)?.and_then(|c| c.holder);
    // The old card is cancelled first: the holder's one active card is then the new one.
    admin::set_card_status(tx, old.no, CardStatus::Cancelled)?;
    let new = admin::issue_card(
        tx,
        NewCard {
            display_no: req.display_no,
            class: old.class,
            expiry: old.expiry,
            counter: 0,
        },
    )?;
    if let Some(h) = holder {
        rh::set_card_holder(tx.conn, new.no, h)?;
    }
    let fee_transfer = format!("fee:replace:{}", old.no.get());
    match req.fee_method {
        FeePayment::None => {}
        FeePayment::Cash => {
            post(
                tx,
                &fee_transfer,
                FUNDING_ACCOUNT,
                CARD_FEE_ACCOUNT,
                req.fee,
                now,
            )?;
            match actor.operator {
                Some(op) => shifts::tally(tx, op, &fee_transfer, Method::Cash, req.fee, now)?,
                None => return Err(HostError::Invalid("cash is taken by an operator".into())),
            }
        }
        FeePayment::Balance => {
            post(
                tx,
                &fee_transfer,
                &repo::card_account(old.no),
                CARD_FEE_ACCOUNT,
                req.fee,
                now,
            )?;
            old = locked_card(tx, old.no)?;
            old.balance -= req.fee;
            repo::card_update(tx.conn, &old)?;
        }
    }
    let due = due_from(tx, now)?;
    tx.conn.exec(
        "INSERT INTO card_replacements (old_card, new_card, reason, fee, fee_method, \
         requested_by, requested_at, due_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         'waiting')",
        &[
            old.no.get().into(),
            new.no.get().into(),
            reason.as_str().into(),
            req.fee.into(),
            req.fee_method.as_str().into(),
            actor.operator.into(),
            time_key(now).into(),
            time_key(due).into(),
        ],
    )?;
    let r = of_old(tx, old.no, false)?
        .ok_or_else(|| HostError::Invariant("replacement vanished".into()))?;
    let mut change = Change::new("card.replace", format!("card:{}", old.no.get()))
        .before(json!({"status": reason.as_str(), "balance": old.balance + if req.fee_method == FeePayment::Balance { req.fee } else { 0 }}))
        .after(json!({"replacement": r, "new_card": new.no.get()}));
    if req.fee_method != FeePayment::None {
        change = change.transfer(fee_transfer);
    }
    journal::append(tx, actor, now, &change)?;
    Ok((r, new))
}

fn post(
    tx: &mut Tx<'_>,
    id: &str,
    from: &str,
    to: &str,
    amount: Fen,
    now: NaiveDateTime,
) -> Result<()> {
    tx.post(Transfer {
        id: id.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        amount,
        kind: "card_fee",
        record: None,
        time: now,
    })
}

/// The move of every replacement due at `now` (at most [`SWEEP_LIMIT`]): the old card's
/// balance → money waiting for the new card, journalled as ykt's own action. The server
/// runs it periodically; the card office can run it at once (`ykt card moves run`).
pub fn run_due(tx: &mut Tx<'_>, actor: &Actor, now: NaiveDateTime) -> Result<Vec<Replacement>> {
    let due: Vec<i64> = tx
        .conn
        .query(
            "SELECT old_card FROM card_replacements WHERE state = 'waiting' AND due_at <= $1 \
             ORDER BY due_at, old_card LIMIT $2",
            &[time_key(now).into(), SWEEP_LIMIT.into()],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<_>>()?;
    let mut moved = Vec::with_capacity(due.len());
    for old in due {
        let no = u32::try_from(old)
            .ok()
            .and_then(CardNo::new)
            .ok_or_else(|| HostError::Corrupt(format!("replacement of card {old}")))?;
        moved.push(move_one(tx, actor, no, now)?);
    }
    Ok(moved)
}

fn move_one(
    tx: &mut Tx<'_>,
    actor: &Actor,
    old: CardNo,
    now: NaiveDateTime,
) -> Result<Replacement> {
    let mut card = locked_card(tx, old)?;
    let r = of_old(tx, old, true)?
        .ok_or_else(|| HostError::Invariant(format!("replacement of {} vanished", old.get())))?;
    let State::Waiting { .. } = r.state else {
        return Err(HostError::Invariant(format!(
            "replacement of {} moved twice",
            old.get()
        )));
    };
    let new = CardNo::new(r.new_card)
        .ok_or_else(|| HostError::Corrupt(format!("new card {}", r.new_card)))?;
    // Deposits still waiting for the old card are the holder's: they move with the balance
    // (into the old account first). Subsidies go to the new card as they are, keeping their
    // batch (R-B5, `subsidy_follow`).
    let mut revoked = Vec::new();
    for w in loads::waiting_for_card(tx, old)? {
        if w.source != WaitingSource::Deposit {
            continue;
        }
        let id = format!("rpl:{}:w{}", old.get(), w.id);
        loads::revoke_waiting(tx, w.id, &repo::card_account(old), &id, now)?;
        card.balance += w.amount;
        revoked.push(id);
    }
    if !revoked.is_empty() {
        repo::card_update(tx.conn, &card)?;
    }
    let subsidies = subsidy_follow::to_new_card(tx, old, new, now)?;
    let amount = card.balance.max(0);
    let transfer = format!("rpl:{}:move", old.get());
    let load = if amount > 0 {
        let load = loads::add_waiting(
            tx,
            new,
            amount,
            WaitingSource::Deposit,
            &repo::card_account(old),
            &transfer,
            now,
        )?;
        card.balance -= amount;
        repo::card_update(tx.conn, &card)?;
        Some(load)
    } else {
        None
    };
    tx.conn.exec(
        "UPDATE card_replacements SET state = 'moved', moved_at = $2, moved = $3, load_id = $4 \
         WHERE old_card = $1 AND state = 'waiting'",
        &[
            old.get().into(),
            time_key(now).into(),
            amount.into(),
            load.into(),
        ],
    )?;
    let after = of_old(tx, old, false)?
        .ok_or_else(|| HostError::Invariant("replacement vanished".into()))?;
    let mut change = Change::new("card.replacement_move", format!("card:{}", old.get()))
        .before(json!({"balance": amount}))
        .after(json!({"replacement": after, "subsidies": subsidies.details}));
    for id in revoked.into_iter().chain(subsidies.transfers) {
        change = change.transfer(id);
    }
    if load.is_some() {
        change = change.transfer(transfer);
    }
    journal::append(tx, actor, now, &change)?;
    Ok(after)
}

/// How a late record of a replaced card was covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covered {
    /// Nothing to do: not a moved replacement, or its account covers the record.
    Nothing,
    /// From the moved money still waiting for the new card.
    FromWaiting(Fen),
    /// From the new card's account (it had picked the money up).
    FromNewCard(Fen),
    /// Neither covers it: the record is held with 69 (docs/operators.md).
    Uncovered,
}

/// Before a late debiting record of `card` is booked: when the card was replaced and its
/// balance moved, brings back what the record needs beyond the old account (`total`) by a
/// recorded correction. `card` is the locked old card, its mirror updated here.
pub fn cover_late_record(
    tx: &mut Tx<'_>,
    card: &mut Card,
    total: Fen,
    now: NaiveDateTime,
) -> Result<Covered> {
    if card.status != CardStatus::Cancelled || card.balance >= total {
        return Ok(Covered::Nothing);
    }
    let Some(r) = of_old(tx, card.no, true)? else {
        return Ok(Covered::Nothing);
    };
    let State::Moved { amount, load, .. } = r.state else {
        return Ok(Covered::Nothing);
    };
    let deficit = total - card.balance;
    // Never more back than was moved (and forwarded after), minus what earlier corrections
    // brought back.
    if deficit > amount + r.forwarded - r.corrected {
        return Ok(Covered::Uncovered);
    }
    let new = CardNo::new(r.new_card)
        .ok_or_else(|| HostError::Corrupt(format!("new card {}", r.new_card)))?;
    let n = r.corrections + 1;
    let old_account = repo::card_account(card.no);
    let mut transfers = Vec::new();
    let mut new_load = load;
    let covered = match waiting_load(tx, load)? {
        Some(w) if w.amount >= deficit => {
            let back = format!("rpl:{}:c{n}:revoke", card.no.get());
            loads::revoke_waiting(tx, w.id, &old_account, &back, now)?;
            transfers.push(back);
            let rest = w.amount - deficit;
            card.balance += w.amount;
            new_load = None;
            if rest > 0 {
                let again = format!("rpl:{}:c{n}:rest", card.no.get());
                let id = loads::add_waiting(
                    tx,
                    new,
                    rest,
                    WaitingSource::Deposit,
                    &old_account,
                    &again,
                    now,
                )?;
                transfers.push(again);
                card.balance -= rest;
                new_load = Some(id);
            }
            Covered::FromWaiting(deficit)
        }
        _ => {
            let mut new_card = locked_card(tx, new)?;
            if new_card.balance < deficit {
                return Ok(Covered::Uncovered);
            }
            let id = format!("rpl:{}:c{n}", card.no.get());
            tx.post(Transfer {
                id: id.clone(),
                from: repo::card_account(new),
                to: old_account,
                amount: deficit,
                kind: "replacement_correction",
                record: None,
                time: now,
            })?;
            transfers.push(id);
            new_card.balance -= deficit;
            repo::card_update(tx.conn, &new_card)?;
            card.balance += deficit;
            Covered::FromNewCard(deficit)
        }
    };
    repo::card_update(tx.conn, card)?;
    tx.conn.exec(
        "UPDATE card_replacements SET corrected = corrected + $2, corrections = $3, \
         load_id = $4 WHERE old_card = $1",
        &[
            card.no.get().into(),
            deficit.into(),
            n.into(),
            new_load.into(),
        ],
    )?;
    let mut change = Change::new(
        "card.replacement_correction",
        format!("card:{}", card.no.get()),
    )
    .after(
        json!({"deficit": deficit, "new_card": new.get(), "from": match covered {
            Covered::FromWaiting(_) => "waiting",
            _ => "new_card",
        }}),
    );
    for t in transfers {
        change = change.transfer(t);
    }
    journal::append(tx, &Actor::system("upload"), now, &change)?;
    Ok(covered)
}

pub(crate) fn waiting_load(
    tx: &mut Tx<'_>,
    load: Option<LoadId>,
) -> Result<Option<loads::WaitingLoad>> {
    let Some(id) = load else { return Ok(None) };
    let w = loads::waiting_get(tx, id)?;
    Ok((w.state == WaitingState::Waiting).then_some(w))
}
