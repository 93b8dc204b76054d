//! Late credits of a card whose money has moved on (R-B6, R-B7, schema V10): a reversal or
//! cancellation gives a debit back to the card's account (`records::book_reverse`); when the
//! card was replaced and its balance moved, or closed and paid out, that money would stay
//! on an account nobody uses any more. It follows the money instead, by a recorded
//! transfer, never an edit:
//!
//! - replaced, balance moved: old card → money waiting for the new card (`rpl:<old>:f…`,
//!   the reverse of `replacements::cover_late_record`'s correction; moved money still
//!   waiting joins it in one load, `…:merge`); the new card picks it up at its next tap;
//! - closed, paid out: card → `refund:owed` (`cls:<card>:owed:…`), a second refund owed to
//!   the holder that the finance office pays (docs/operators.md);
//! - otherwise (not cancelled, or still inside the waiting period) it stays on the card and
//!   the move or payout takes it along.
//!
//! A new card cancelled in turn (replaced again, closed) gets the credit on its account and
//! it follows that card's money the same way.

use chrono::NaiveDateTime;
use serde_json::json;
use ykt_proto::{CardNo, Fen, Record};

use super::closures::{self, REFUND_OWED_ACCOUNT};
use super::journal::{self, Actor, Change};
use super::loads::{self, WaitingSource};
use super::replacements::{self, State as Move};
use crate::error::{HostError, Result};
use crate::ledger::{Transfer, Tx};
use crate::model::{Card, CardStatus};
use crate::repo;

/// Where a late credit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Followed {
    /// It stays on the card (the card's money has not moved on).
    Stays,
    /// Forwarded to money waiting for the replacement card.
    ToNewCard(CardNo),
    /// Owed to the holder of the paid-out card (`refund:owed`).
    Owed,
}

/// After `credited` fen of record `by` were given back to `card` (locked, its mirror
/// updated): moves them on where the card's money went. Journalled as ykt's own action.
pub fn follow(
    tx: &mut Tx<'_>,
    card: &mut Card,
    credited: Fen,
    by: &Record,
    now: NaiveDateTime,
) -> Result<Followed> {
    if card.status != CardStatus::Cancelled || credited <= 0 {
        return Ok(Followed::Stays);
    }
    let key = format!("{}:{}", by.device, by.serial);
    if let Some(r) = replacements::of_old(tx, card.no, true)? {
        let Move::Moved { load, .. } = r.state else {
            return Ok(Followed::Stays);
        };
        let new = CardNo::new(r.new_card)
            .ok_or_else(|| HostError::Corrupt(format!("new card {}", r.new_card)))?;
        let id = format!("rpl:{}:f:{key}", card.no.get());
        let old_account = repo::card_account(card.no);
        let mut target = repo::card_get(tx.conn, new, true)?
            .ok_or_else(|| HostError::Invariant(format!("new card {} vanished", new.get())))?;
        if target.status == CardStatus::Cancelled {
            // The new card was replaced or closed in turn: the credit goes to its account and
            // follows its money from there.
            return via_cancelled_new_card(tx, card, &mut target, credited, &id, by, now);
        }
        let mut transfers = Vec::new();
        // The moved money still waiting joins the credit in one load, so a later record's
        // correction (`cover_late_record`) finds all of it in one place.
        let mut amount = credited;
        if let Some(w) = replacements::waiting_load(tx, load)? {
            let merge = format!("{id}:merge");
            loads::revoke_waiting(tx, w.id, &old_account, &merge, now)?;
            card.balance += w.amount;
            amount = amount
                .checked_add(w.amount)
                .ok_or_else(|| HostError::Invalid("waiting money overflows".into()))?;
            transfers.push(merge);
        }
        let load = loads::add_waiting(
            tx,
            new,
            amount,
            WaitingSource::Deposit,
            &old_account,
            &id,
            now,
        )?;
        transfers.push(id);
        card.balance -= amount;
        repo::card_update(tx.conn, card)?;
        tx.conn.exec(
            "UPDATE card_replacements SET forwarded = forwarded + $2, load_id = $3 \
             WHERE old_card = $1",
            &[card.no.get().into(), credited.into(), load.into()],
        )?;
        let change = Change::new(
            "card.replacement_forward",
            format!("card:{}", card.no.get()),
        )
        .after(
            json!({"credited": credited, "record": key, "new_card": new.get(), "waiting": amount}),
        );
        let change = transfers.into_iter().fold(change, Change::transfer);
        journal::append(tx, &Actor::system("upload"), now, &change)?;
        return Ok(Followed::ToNewCard(new));
    }
    let Some(c) = closures::of_card(tx, card.no, true)? else {
        return Ok(Followed::Stays);
    };
    if c.state == closures::State::Waiting {
        return Ok(Followed::Stays);
    }
    let id = format!("cls:{}:owed:{key}", card.no.get());
    tx.post(Transfer {
        id: id.clone(),
        from: repo::card_account(card.no),
        to: REFUND_OWED_ACCOUNT.to_owned(),
        amount: credited,
        kind: "refund_owed",
        record: None,
        time: now,
    })?;
    card.balance -= credited;
    repo::card_update(tx.conn, card)?;
    tx.conn.exec(
        "UPDATE card_closures SET owed = owed + $2 WHERE card_no = $1",
        &[card.no.get().into(), credited.into()],
    )?;
    let change = Change::new("card.refund_owed", format!("card:{}", card.no.get()))
        .after(json!({"credited": credited, "record": key, "owed": c.owed + credited}))
        .transfer(id);
    journal::append(tx, &Actor::system("upload"), now, &change)?;
    Ok(Followed::Owed)
}

/// A forward whose new card is cancelled too: old account → the new card's account
/// (`rpl:<old>:f:…`, counted in `forwarded`), then [`follow`] from the new card.
fn via_cancelled_new_card(
    tx: &mut Tx<'_>,
    card: &mut Card,
    target: &mut Card,
    credited: Fen,
    id: &str,
    by: &Record,
    now: NaiveDateTime,
) -> Result<Followed> {
    tx.post(Transfer {
        id: id.to_owned(),
        from: repo::card_account(card.no),
        to: repo::card_account(target.no),
        amount: credited,
        kind: "replacement_forward",
        record: None,
        time: now,
    })?;
    card.balance -= credited;
    repo::card_update(tx.conn, card)?;
    target.balance = target
        .balance
        .checked_add(credited)
        .ok_or_else(|| HostError::Invariant(format!("card {} overflows", target.no.get())))?;
    repo::card_update(tx.conn, target)?;
    tx.conn.exec(
        "UPDATE card_replacements SET forwarded = forwarded + $2 WHERE old_card = $1",
        &[card.no.get().into(), credited.into()],
    )?;
    let change = Change::new(
        "card.replacement_forward",
        format!("card:{}", card.no.get()),
    )
    .after(
        json!({"credited": credited, "record": format!("{}:{}", by.device, by.serial),
        "to_account_of": target.no.get()}),
    )
    .transfer(id);
    journal::append(tx, &Actor::system("upload"), now, &change)?;
    follow(tx, target, credited, by, now)
}
