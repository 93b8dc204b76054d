//! Late records of a card whose money has moved on (R-B6, R-B7): credits (reversal,
//! cancellation) follow the money to the new card or are owed after a payout; records
//! collected from terminals (R-F4.17) get the same checks as uploads.

use chrono::Duration;
use ykt_host::domain::closures::{self, Payout};
use ykt_host::domain::replacements::{self, FeePayment, Request};
use ykt_host::domain::{admin, journal::Actor};
use ykt_host::*;
use ykt_proto::{CardNo, DisplayNo, Record, RecordKind};

use super::loads::balance_of;
use super::suite::as_collected;
use super::support::*;

fn replaced_and_moved(s: &Store, old: CardNo, display: u64) -> Card {
    s.execute(move |tx| admin::report_loss(tx, old)).unwrap();
    let (_, new) = s
        .execute(move |tx| {
            let req = Request {
                old_card: old,
                display_no: DisplayNo::new(display).unwrap(),
                fee: 0,
                fee_method: FeePayment::None,
            };
            replacements::replace(tx, &Actor::system("test"), &req, now())
        })
        .unwrap();
    let moved = s
        .execute(|tx| replacements::run_due(tx, &Actor::system("sweep"), now() + Duration::days(2)))
        .unwrap();
    assert_eq!(moved.len(), 1);
    new
}

fn closed_and_paid(s: &Store, no: CardNo) {
    s.execute(move |tx| {
        let a = Actor::system("test");
        closures::request(tx, &a, no, Payout::bank("6222020200112233")?, None, now())?;
        closures::run_due(tx, &a, now() + Duration::days(2))
    })
    .unwrap();
}

fn replacement(s: &Store, old: CardNo) -> replacements::Replacement {
    s.read(move |tx| replacements::of_old(tx, old, false))
        .unwrap()
        .unwrap()
}

fn closure(s: &Store, no: CardNo) -> closures::Closure {
    s.read(move |tx| closures::of_card(tx, no, false))
        .unwrap()
        .unwrap()
}

/// A reversal (冲正) of `orig` at `serial`, counter `counter`, the card showing `before`.
fn reversal(orig: &Record, serial: u32, counter: u32, before: i64) -> Record {
    let mut r = offline(orig.card_no, serial, counter, before, orig.amount);
    r.kind = RecordKind::Reversal;
    r.original_serial = Some(orig.serial);
    r.balance_after = before + orig.amount;
    r
}

// R-B6: a reversal and a cancellation of the old card that arrive after the replacement's
// move give the money back to the old account and forward it, by a recorded transfer, to
// the new card's waiting money; nothing stays on the old account, the audit is clean.
pub fn late_credit_of_replaced_card_follows_to_new_card(f: &Fixture) {
    let s = &f.store;
    world(s);
    let old = card(s, 5_000);
    let spent = offline(old.no, 1, 0, 5_000, 800);
    upload(s, spent.clone()).unwrap();
    // An online debit authorised before the loss whose card write then failed.
    let online = purchase(old.no, 10, 1, 4_200, 300);
    debit(s, &card_now(s, old.no), online.clone()).unwrap();
    let new = replaced_and_moved(s, old.no, 3_100_000_101);
    assert_eq!(card_now(s, new.no).waiting, 3_900);
    upload(s, reversal(&spent, 2, 2, 3_900)).unwrap();
    let (o, n) = (card_now(s, old.no), card_now(s, new.no));
    assert_eq!((o.balance, n.waiting), (0, 4_700));
    let mut cancel = online.clone();
    cancel.kind = RecordKind::Cancellation;
    cancel.serial = 11;
    cancel.original_serial = Some(10);
    upload(s, cancel).unwrap();
    let (o, n) = (card_now(s, old.no), card_now(s, new.no));
    assert_eq!((o.balance, n.waiting), (0, 5_000));
    assert_eq!(replacement(s, old.no).forwarded, 1_100);
    assert_eq!(balance_of(s, "merchant:100"), 0);
    audit_clean(s);
    // A later debit of the old card is covered from what was forwarded too.
    upload(s, offline(old.no, 3, 3, 4_700, 4_500)).unwrap();
    assert_eq!(card_now(s, new.no).waiting, 500);
    audit_clean(s);
    // Tampering with the forwarded sum is found.
    s.execute(|tx| {
        tx.conn
            .exec("UPDATE card_replacements SET forwarded = 1", &[])
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(!report.lifecycle_mismatches.is_empty(), "{report:?}");
}

// R-B7: a reversal of a closed card that arrives after its payout gives the money back from
// the merchant and owes it to the holder as a second refund (`refund:owed`): the paid-out
// card still holds nothing, no money created or lost, the audit is clean.
pub fn late_credit_of_paid_out_card_is_owed(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 2_000);
    let spent = offline(c.no, 1, 0, 2_000, 500);
    upload(s, spent.clone()).unwrap();
    closed_and_paid(s, c.no);
    assert_eq!(balance_of(s, "refund:bank"), 1_500);
    upload(s, reversal(&spent, 2, 1, 1_500)).unwrap();
    assert_eq!(card_now(s, c.no).balance, 0);
    assert_eq!(balance_of(s, "merchant:100"), 0);
    assert_eq!(balance_of(s, "refund:owed"), 500);
    assert_eq!(closure(s, c.no).owed, 500);
    audit_clean(s);
}

// R-F4.17, R-B6, R-B7: a record collected from a terminal's ring gets the checks an upload
// gets: a replaced card's late collected record is covered by a correction from the moved
// money; a paid-out card's is held in the exception queue (code 57).
pub fn collected_record_of_replaced_or_closed_card(f: &Fixture) {
    let s = &f.store;
    world(s);
    let old = card(s, 5_000);
    let new = replaced_and_moved(s, old.no, 3_100_000_111);
    upload(s, as_collected(&offline(old.no, 1, 0, 5_000, 800))).unwrap();
    let (o, n) = (card_now(s, old.no), card_now(s, new.no));
    assert_eq!((o.balance, n.waiting), (0, 4_200));
    assert_eq!(replacement(s, old.no).corrected, 800);
    assert_eq!(balance_of(s, "merchant:100"), 800);
    audit_clean(s);
    let c = card(s, 2_000);
    closed_and_paid(s, c.no);
    // code 57
    let late = as_collected(&offline(c.no, 5, 0, 2_000, 600));
    assert_eq!(refused(upload(s, late.clone())), 57);
    assert_eq!(refused(upload(s, late)), 57);
    assert_eq!(card_now(s, c.no).balance, 0);
    audit_clean(s);
}

// R-B6, R-B7: a late credit of a card replaced twice follows the money along the chain: to
// the second card's account, and on to money waiting for the third card.
pub fn late_credit_follows_a_chain_of_replacements(f: &Fixture) {
    let s = &f.store;
    world(s);
    let first = card(s, 3_000);
    let spent = offline(first.no, 1, 0, 3_000, 700);
    upload(s, spent.clone()).unwrap();
    let second = replaced_and_moved(s, first.no, 3_100_000_121);
    let third = replaced_and_moved(s, second.no, 3_100_000_122);
    assert_eq!(card_now(s, third.no).waiting, 2_300);
    upload(s, reversal(&spent, 2, 1, 2_300)).unwrap();
    assert_eq!(card_now(s, first.no).balance, 0);
    assert_eq!(card_now(s, second.no).balance, 0);
    assert_eq!(card_now(s, third.no).waiting, 3_000);
    assert_eq!(replacement(s, first.no).forwarded, 700);
    assert_eq!(replacement(s, second.no).forwarded, 700);
    audit_clean(s);
}
