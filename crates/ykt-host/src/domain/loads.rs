//! Money waiting for a card (docs/loads.md, R-B4, R-B5): card-office deposits and issued
//! subsidies wait in their account (`waiting`, `subsidy`) until a pick-up (领取) writes them
//! onto the card. This is the API the card office and the subsidy batches use:
//!
//! - [`add_waiting`]: `from_account` → the source's account, a load waiting for the card;
//! - [`revoke_waiting`] / [`expire_waiting`]: a waiting load goes back to `to_account`;
//! - [`waiting_for_card`], [`waiting_of_batch`], [`waiting_get`]: what waits, and the states.
//!
//! The pick-up itself (claim, post, void) is `domain::topup`'s; a claimed load can be neither
//! revoked nor expired until its pick-up settles (the card may already carry it).
//!
//! Every function takes the card's row lock before a waiting load's, the order the pick-up
//! takes them in, and keeps `cards.waiting` = the sum of the card's `Waiting` loads.

use chrono::NaiveDateTime;
use ykt_proto::{CardNo, Fen};

use super::checks::MAX_CARD_BALANCE;
use crate::error::{HostError, Result};
use crate::ledger::{SUBSIDY_ACCOUNT, Transfer, Tx, WAITING_ACCOUNT};
use crate::model::{Card, CardStatus};
use crate::repo;
use crate::repo_loads::{self as rows, CardColumn};
pub use crate::repo_loads::{LoadId, WaitingLoad, WaitingSource, WaitingState};

/// The account a waiting load's money sits in until it is posted onto the card.
pub fn account_of(source: WaitingSource) -> &'static str {
    match source {
        WaitingSource::Deposit => WAITING_ACCOUNT,
        WaitingSource::Subsidy { .. } => SUBSIDY_ACCOUNT,
    }
}

fn transfer_kind(source: WaitingSource) -> &'static str {
    match source {
        WaitingSource::Deposit => "deposit",
        WaitingSource::Subsidy { .. } => "subsidy",
    }
}

fn locked_card(tx: &mut Tx<'_>, no: CardNo) -> Result<Card> {
    repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))
}

/// Puts `amount` waiting for the card: a transfer `from_account` → the source's account
/// (id `transfer_id`, unique: a repeat is refused, never booked twice) and a `Waiting` load.
/// The card must exist and not be cancelled; all the card's waiting money must fit one
/// card write (an empty card's balance limit), so one pick-up can take it.
pub fn add_waiting(
    tx: &mut Tx<'_>,
    card: CardNo,
    amount: Fen,
    source: WaitingSource,
    from_account: &str,
    transfer_id: &str,
    now: NaiveDateTime,
) -> Result<LoadId> {
    if !(1..=MAX_CARD_BALANCE).contains(&amount) {
        return Err(HostError::Invalid(format!(
            "a waiting load is 1 to {MAX_CARD_BALANCE} fen"
        )));
    }
    let c = locked_card(tx, card)?;
    if c.status == CardStatus::Cancelled {
        return Err(HostError::Invalid("the card is cancelled".into()));
    }
    if c.waiting
        .checked_add(amount)
        .is_none_or(|w| w > MAX_CARD_BALANCE)
    {
        return Err(HostError::Invalid(format!(
            "more than {MAX_CARD_BALANCE} fen would wait for card {}",
            card.get()
        )));
    }
    tx.post(Transfer {
        id: transfer_id.to_owned(),
        from: from_account.to_owned(),
        to: account_of(source).to_owned(),
        amount,
        kind: transfer_kind(source),
        record: None,
        time: now,
    })
    .map_err(|e| match e {
        HostError::Invariant(_) => HostError::Invalid(format!("transfer {transfer_id} exists")),
        other => other,
    })?;
    let id = rows::waiting_insert(tx.conn, card, amount, source, transfer_id, now)?;
    rows::card_add(tx.conn, card, CardColumn::Waiting, amount)?;
    Ok(id)
}

/// How a waiting load leaves without reaching the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Withdrawal {
    Revoke,
    Expire,
}

/// The card office takes a waiting load back: its account → `to_account` (id `transfer_id`).
/// Only a `Waiting` load: a claimed one is being written onto the card.
pub fn revoke_waiting(
    tx: &mut Tx<'_>,
    id: LoadId,
    to_account: &str,
    transfer_id: &str,
    now: NaiveDateTime,
) -> Result<WaitingLoad> {
    withdraw(tx, id, to_account, transfer_id, now, Withdrawal::Revoke)
}

/// A waiting load not picked up in time (its batch's date) goes back to `to_account`.
pub fn expire_waiting(
    tx: &mut Tx<'_>,
    id: LoadId,
    to_account: &str,
    transfer_id: &str,
    now: NaiveDateTime,
) -> Result<WaitingLoad> {
    withdraw(tx, id, to_account, transfer_id, now, Withdrawal::Expire)
}

fn withdraw(
    tx: &mut Tx<'_>,
    id: LoadId,
    to_account: &str,
    transfer_id: &str,
    now: NaiveDateTime,
    how: Withdrawal,
) -> Result<WaitingLoad> {
    let unlocked = waiting_get(tx, id)?;
    locked_card(tx, unlocked.card)?;
    let mut w = rows::waiting_get(tx.conn, id, true)?
        .ok_or_else(|| HostError::Invariant(format!("waiting load {id} vanished")))?;
    if w.state != WaitingState::Waiting {
        return Err(HostError::Invalid(format!(
            "waiting load {id} is {}, not waiting",
            w.state.as_str()
        )));
    }
    tx.post(Transfer {
        id: transfer_id.to_owned(),
        from: account_of(w.source).to_owned(),
        to: to_account.to_owned(),
        amount: w.amount,
        kind: match how {
            Withdrawal::Revoke => "revoke",
            Withdrawal::Expire => "expire",
        },
        record: None,
        time: now,
    })?;
    let to = match how {
        Withdrawal::Revoke => WaitingState::Revoked { at: now },
        Withdrawal::Expire => WaitingState::Expired { at: now },
    };
    rows::waiting_set_state(tx.conn, &w, WaitingState::Waiting, to)?;
    rows::card_add(tx.conn, w.card, CardColumn::Waiting, -w.amount)?;
    w.state = to;
    Ok(w)
}

/// What waits for the card now (state `Waiting`), oldest first.
pub fn waiting_for_card(tx: &mut Tx<'_>, card: CardNo) -> Result<Vec<WaitingLoad>> {
    rows::waiting_of_card(tx.conn, card, WaitingState::Waiting.as_str())
}

/// Every load of a subsidy batch, in every state, in id order.
pub fn waiting_of_batch(tx: &mut Tx<'_>, batch: i64) -> Result<Vec<WaitingLoad>> {
    rows::waiting_of_batch(tx.conn, batch)
}

/// One waiting load; `Invalid` when there is none.
pub fn waiting_get(tx: &mut Tx<'_>, id: LoadId) -> Result<WaitingLoad> {
    rows::waiting_get(tx.conn, id, false)?
        .ok_or_else(|| HostError::Invalid(format!("no waiting load {id}")))
}
