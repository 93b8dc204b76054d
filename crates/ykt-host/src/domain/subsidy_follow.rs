//! Subsidies still waiting for a card the card office replaces or closes (R-B5, R-B6, R-B7):
//! they are not stranded with a card that can never pick them up.
//!
//! - Replacement (when its balance moves): the waiting load itself goes to the new card — the
//!   same load and the same money in `subsidy`, its line now naming the new card — so it keeps
//!   its batch, expiry and line: the batch's report and audit still account for it, and the
//!   new card picks it up at its next tap. No money moves, so no transfer: the move is named
//!   in the replacement's journal entry. When the new card already has a line in that batch
//!   (a list imported after the replacement) or its waiting money would exceed one card
//!   write, the old line is revoked instead (below): the holder gets the batch once.
//! - Closure (at the payout): the load is revoked back to its batch's funding account, as the
//!   batch's own revoke does (`subsidy:<batch>:<line>:revoke`, the line revoked, the batch's
//!   count), named in the refund's journal entry.

use chrono::NaiveDateTime;
use serde_json::{Value, json};
use ykt_proto::{CardNo, Fen};

use super::checks::MAX_CARD_BALANCE;
use super::loads::{self, LoadId, WaitingSource};
use crate::error::{HostError, Result};
use crate::ledger::{FUNDING_ACCOUNT, Tx};
use crate::repo;
use crate::repo_loads::{self as rows, CardColumn};
use crate::repo_subsidies::{self as rs, BatchState, StoredLine};

/// What the followed subsidies did: journal details, and the transfers to name.
#[derive(Debug, Default)]
pub struct Followed {
    pub details: Vec<Value>,
    pub transfers: Vec<String>,
}

/// A subsidy load waiting for a card, and its batch line (none for a subsidy posted without
/// a batch file, `admin::add_subsidy`).
struct Waiting {
    load: LoadId,
    amount: Fen,
    batch: i64,
    line: Option<(u32, u64)>,
}

fn waiting_subsidies(tx: &mut Tx<'_>, card: CardNo) -> Result<Vec<Waiting>> {
    let mut out = Vec::new();
    for w in loads::waiting_for_card(tx, card)? {
        let WaitingSource::Subsidy { batch, .. } = w.source else {
            continue;
        };
        let line = tx
            .conn
            .query_opt(
                "SELECT batch_no, line FROM subsidy_lines WHERE load_id = $1",
                &[w.id.into()],
            )?
            .map(|r| Ok::<_, HostError>((r.int_as(0)?, r.int_as(1)?)))
            .transpose()?;
        out.push(Waiting {
            load: w.id,
            amount: w.amount,
            batch,
            line,
        });
    }
    Ok(out)
}

/// At a replacement's move: every subsidy waiting for `old` goes to `new` (or is revoked
/// when it cannot, module docs). The old card's row is locked by the caller.
pub fn to_new_card(
    tx: &mut Tx<'_>,
    old: CardNo,
    new: CardNo,
    now: NaiveDateTime,
) -> Result<Followed> {
    let mut f = Followed::default();
    for w in waiting_subsidies(tx, old)? {
        let target = repo::card_get(tx.conn, new, true)?
            .ok_or_else(|| HostError::Invariant(format!("new card {} vanished", new.get())))?;
        let taken = match w.line {
            Some((batch, _)) => tx
                .conn
                .query_opt(
                    "SELECT line FROM subsidy_lines WHERE batch_no = $1 AND card_no = $2",
                    &[batch.into(), new.get().into()],
                )?
                .is_some(),
            None => false,
        };
        let fits = target
            .waiting
            .checked_add(w.amount)
            .is_some_and(|sum| sum <= MAX_CARD_BALANCE);
        if taken || !fits {
            revoke_one(tx, old, &w, now, &mut f)?;
            continue;
        }
        rows::waiting_get(tx.conn, w.load, true)?;
        let n = tx.conn.exec(
            "UPDATE waiting_loads SET card_no = $2 WHERE id = $1 AND state = 'waiting'",
            &[w.load.into(), new.get().into()],
        )?;
        if n != 1 {
            return Err(HostError::Invariant(format!(
                "subsidy load {} stopped waiting",
                w.load
            )));
        }
        if let Some((batch, line)) = w.line {
            tx.conn.exec(
                "UPDATE subsidy_lines SET card_no = $3 WHERE batch_no = $1 AND line = $2",
                &[
                    batch.into(),
                    i64::try_from(line).unwrap_or(i64::MAX).into(),
                    new.get().into(),
                ],
            )?;
        }
        rows::card_add(tx.conn, old, CardColumn::Waiting, -w.amount)?;
        rows::card_add(tx.conn, new, CardColumn::Waiting, w.amount)?;
        f.details.push(json!({
            "batch": w.batch, "line": w.line.map(|l| l.1), "load": w.load,
            "amount": w.amount, "to_card": new.get(),
        }));
    }
    Ok(f)
}

/// At a closure's payout: every subsidy waiting for `card` goes back to its funding.
pub fn revoke_for_closure(tx: &mut Tx<'_>, card: CardNo, now: NaiveDateTime) -> Result<Followed> {
    let mut f = Followed::default();
    for w in waiting_subsidies(tx, card)? {
        revoke_one(tx, card, &w, now, &mut f)?;
    }
    Ok(f)
}

/// Revokes one waiting subsidy: a batch line as the batch's own revoke does it; one
/// without a line back to `funding`, the account `admin::add_subsidy` took it from.
fn revoke_one(
    tx: &mut Tx<'_>,
    card: CardNo,
    w: &Waiting,
    now: NaiveDateTime,
    f: &mut Followed,
) -> Result<()> {
    let Some((batch, line)) = w.line else {
        let transfer = format!("sub:{}:{}:revoke", w.batch, card.get());
        loads::revoke_waiting(tx, w.load, FUNDING_ACCOUNT, &transfer, now)?;
        f.details.push(json!({
            "batch": w.batch, "load": w.load, "amount": w.amount, "revoked_to": FUNDING_ACCOUNT,
        }));
        f.transfers.push(transfer);
        return Ok(());
    };
    let b = rs::batch_get(tx.conn, batch, true)?
        .ok_or_else(|| HostError::Invariant(format!("subsidy batch {batch} vanished")))?;
    if b.state != BatchState::Issued {
        return Err(HostError::Invariant(format!(
            "subsidy batch {batch} has a waiting load but is {}",
            b.state.as_str()
        )));
    }
    let transfer = format!("subsidy:{batch}:{line}:revoke");
    loads::revoke_waiting(tx, w.load, &b.funding, &transfer, now)?;
    rs::line_set(
        tx.conn,
        batch,
        line,
        StoredLine::Issued,
        StoredLine::Revoked,
        None,
    )?;
    let mut after = b.clone();
    after.revoked += 1;
    rs::batch_update(tx.conn, &after, BatchState::Issued)?;
    f.details.push(json!({
        "batch": batch, "line": line, "load": w.load, "amount": w.amount,
        "revoked_to": b.funding,
    }));
    f.transfers.push(transfer);
    Ok(())
}
