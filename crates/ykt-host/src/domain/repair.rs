//! Bad-card repair (坏卡修复, R-B6, code 53): a card registered bad is refused with 53 at
//! every terminal until the card office rewrites it from the system's view on its card
//! writer. The host answers what to write — the card's data, the counter the host expects
//! next, and the balance of its ACCOUNT (not what the broken card may still show) — with
//! the difference to the card's last known balance (from its latest stored record)
//! explained in the answer and the journal. The card is then normal again (off the
//! blacklist). Money waiting for it is picked up at its next tap, as always.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::json;
use ykt_proto::{CardNo, Fen};

use super::admin;
use super::journal::{self, Actor, Change};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::model::CardStatus;
use crate::repo;

/// The latest record the host holds of the card: what the card said after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastRecord {
    pub device: String,
    pub serial: u32,
    pub counter: u32,
    pub balance_after: Fen,
    pub time: String,
}

/// What the card writer writes, and why its balance is what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub card_no: u32,
    pub display_no: u64,
    pub class: u8,
    pub expiry: String,
    /// The balance to write: the account's.
    pub balance: Fen,
    /// The lifetime counter to write: the next the host expects.
    pub counter: u32,
    pub subsidy_seq: u16,
    pub last_record: Option<LastRecord>,
    /// `balance` − the last record's balance after (0 without a record).
    pub difference: Fen,
    /// The difference in words, for the clerk and the cardholder.
    pub explanation: String,
    /// Money waiting for the card, picked up at its next tap (not written now).
    pub waiting: Fen,
}

fn explain(last: Option<&LastRecord>, difference: Fen) -> String {
    match (last, difference) {
        (None, _) => "主机无此卡的交易记录：按账户余额写卡".into(),
        (Some(_), 0) => "账户余额与卡上最后一笔记录后的余额一致".into(),
        (Some(_), d) if d > 0 => format!(
            "账户比卡上最后记录多 {d} 分：此后入账的款项（冲正、撤销或卡务处理）尚未写入此卡，\
             按账户余额写卡"
        ),
        (Some(_), d) => format!(
            "账户比卡上最后记录少 {} 分：主机已入账的扣款（如待领取款项的更正）尚未反映到卡上，\
             按账户余额写卡",
            -d
        ),
    }
}

/// The rewrite of a bad card: the card becomes normal, the answer says what to write.
/// Journalled here with the balances and the explanation.
pub fn repair(tx: &mut Tx<'_>, actor: &Actor, no: CardNo, now: NaiveDateTime) -> Result<Repair> {
    let card = repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("无此卡 {}", no.get())))?;
    if card.status != CardStatus::Bad {
        return Err(HostError::Invalid(
            "只有登记为坏卡的卡才能修复（先登记坏卡）".into(),
        ));
    }
    let account = repo::account_balance(tx.conn, &repo::card_account(no))?
        .ok_or_else(|| HostError::Invariant(format!("card {} has no account", no.get())))?;
    let last = repo::records_of_card(tx.conn, no, 1)?
        .into_iter()
        .next()
        .map(|s| LastRecord {
            device: s.record.device.to_string(),
            serial: s.record.serial,
            counter: s.record.card_counter,
            balance_after: s.record.balance_after,
            time: s.record.time.to_string(),
        });
    let difference = last
        .as_ref()
        .map_or(0, |l| account.saturating_sub(l.balance_after));
    let (card, _) = admin::report_repaired(tx, no)?;
    let r = Repair {
        card_no: no.get(),
        display_no: card.display_no.get(),
        class: card.class,
        expiry: card.expiry.to_string(),
        balance: account,
        counter: card.counter_next,
        subsidy_seq: card.subsidy_seq,
        explanation: explain(last.as_ref(), difference),
        last_record: last,
        difference,
        waiting: card.waiting,
    };
    let change = Change::new("card.repair", format!("card:{}", no.get()))
        .before(json!({"status": "bad"}))
        .after(json!(r));
    journal::append(tx, actor, now, &change)?;
    Ok(r)
}
