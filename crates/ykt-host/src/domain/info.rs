//! Information codes (R-C6.2) from real state. Several may apply; they are listed by
//! priority and the first goes on the wire:
//! 4 records missing (it comes with a collection request the terminal must act on),
//! 5 balance differs, 6 card data differs (both need the card office), 7 already reversed,
//! 8 purchase record not found (answers to the terminal's own request), 2 subsidy waiting,
//! 3 expiring soon, 1 balance low (reminders).

use chrono::NaiveDate;
use ykt_proto::{DisplayNo, Fen, InfoCode};

use crate::model::{Card, Policy};

const PRIORITY: [InfoCode; 8] = [
    InfoCode::RECORDS_MISSING,
    InfoCode::BALANCE_MISMATCH,
    InfoCode::CARD_DATA_NEEDS_FIX,
    InfoCode::ALREADY_REVERSED,
    InfoCode::PURCHASE_RECORD_NOT_FOUND,
    InfoCode::SUBSIDY_WAITING,
    InfoCode::EXPIRING_SOON,
    InfoCode::BALANCE_LOW,
];

/// What the card itself says about its data (carried by an online request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardView {
    pub display_no: DisplayNo,
    pub class: u8,
    pub expiry: NaiveDate,
}

impl CardView {
    /// The system's own view of a card, where the terminal sent none.
    pub fn of(card: &crate::model::Card) -> CardView {
        CardView {
            display_no: card.display_no,
            class: card.class,
            expiry: card.expiry,
        }
    }
}

/// The notices of one exchange, ordered by priority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notices(Vec<InfoCode>);

impl Notices {
    pub fn add(&mut self, code: InfoCode) {
        if !self.0.contains(&code) {
            self.0.push(code);
            self.0.sort_by_key(|c| {
                PRIORITY
                    .iter()
                    .position(|p| p == c)
                    .unwrap_or(PRIORITY.len())
            });
        }
    }

    /// The code to send: the most important one, or 0.
    pub fn primary(&self) -> InfoCode {
        self.0.first().copied().unwrap_or(InfoCode::NONE)
    }

    pub fn all(&self) -> &[InfoCode] {
        &self.0
    }

    pub fn contains(&self, code: InfoCode) -> bool {
        self.0.contains(&code)
    }
}

/// The notices that follow from the card's state after a transaction.
pub struct CardFacts<'a> {
    pub card: &'a Card,
    pub policy: &'a Policy,
    pub today: NaiveDate,
    /// The balance the card showed before the transaction, and the system's mirror then.
    pub card_balance_before: Fen,
    pub mirror_before: Fen,
    pub balance_after: Fen,
    pub view: Option<CardView>,
    pub pending_subsidies: bool,
    pub missing_records: u64,
}

pub fn card_notices(f: &CardFacts<'_>, notices: &mut Notices) {
    if f.missing_records > 0 {
        notices.add(InfoCode::RECORDS_MISSING);
    }
    if f.card_balance_before != f.mirror_before {
        notices.add(InfoCode::BALANCE_MISMATCH);
    }
    if let Some(v) = f.view
        && (v.display_no != f.card.display_no
            || v.class != f.card.class
            || v.expiry != f.card.expiry)
    {
        notices.add(InfoCode::CARD_DATA_NEEDS_FIX);
    }
    if f.pending_subsidies {
        notices.add(InfoCode::SUBSIDY_WAITING);
    }
    let days_left = (f.card.expiry - f.today).num_days();
    if days_left <= i64::from(f.policy.expiry_warning_days) {
        notices.add(InfoCode::EXPIRING_SOON);
    }
    if f.balance_after < f.policy.low_balance {
        notices.add(InfoCode::BALANCE_LOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-C6.2: several notices at once go out by priority; the first is sent.
    #[test]
    fn priority() {
        let mut n = Notices::default();
        assert_eq!(n.primary(), InfoCode::NONE);
        n.add(InfoCode::BALANCE_LOW);
        n.add(InfoCode::EXPIRING_SOON);
        n.add(InfoCode::RECORDS_MISSING);
        n.add(InfoCode::BALANCE_LOW);
        assert_eq!(
            n.all(),
            &[
                InfoCode::RECORDS_MISSING,
                InfoCode::EXPIRING_SOON,
                InfoCode::BALANCE_LOW
            ]
        );
        assert_eq!(n.primary(), InfoCode::RECORDS_MISSING);
    }
}
