//! Merchants (R-B8): types (42), abnormal accounts (44), payouts with commission, the
//! merchant's balance behind reversals (45); maintenance mode (8, R-B9).

use ykt_host::domain::journal::{self, Actor};
use ykt_host::domain::merchants::{self, Maintenance, PayoutAmount, SimulatedPayoutBank};
use ykt_host::domain::{admin, exceptions, report};
use ykt_host::*;
use ykt_proto::{LoadPurpose, RecordKind, RecordStatus};

use super::loads::{TOPUP_DEVICE, authorize, request, topup_origin, topup_world};
use super::support::*;

fn set_kind(s: &Store, no: u32, kind: MerchantKind) {
    s.execute(move |tx| merchants::set_terms(tx, no, Some(kind), None))
        .unwrap();
}

fn pay_out(s: &Store, no: u32) -> Result<merchants::Payout> {
    s.execute(move |tx| {
        let actor = Actor::system("test");
        let (p, change) = merchants::payout(
            tx,
            "test",
            no,
            PayoutAmount::All,
            &SimulatedPayoutBank,
            now(),
        )?;
        journal::append(tx, &actor, now(), &change)?;
        Ok(p)
    })
}

fn balance(s: &Store, account: &'static str) -> i64 {
    s.read(move |tx| repo::account_balance(tx.conn, account))
        .unwrap()
        .unwrap()
}

// R-B8, code 42: a sale at a top-up agent and a top-up at a canteen are refused; a pick-up
// fits every type; `general` (the type of merchants from before types) takes both.
pub fn merchant_type_codes(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 10_000);
    set_kind(s, MERCHANT, MerchantKind::TopUpAgent);
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 1, 0, 10_000, 100))),
        42 // code 42
    );
    authorize(
        s,
        topup_origin(),
        request(LoadPurpose::TopUpCash, c.no, 1, 0, 10_000, 500),
    )
    .unwrap();
    set_kind(s, MERCHANT, MerchantKind::Canteen);
    assert_eq!(
        refused(authorize(
            s,
            topup_origin(),
            request(LoadPurpose::TopUpCash, c.no, 2, 0, 10_000, 500)
        )),
        42 // code 42
    );
    set_kind(s, MERCHANT, MerchantKind::General);
    assert_eq!(
        s.read(|tx| admin::merchant(tx, MERCHANT)).unwrap().kind,
        MerchantKind::General
    );
    // An unknown type and a rate above 100 % are refused before anything is written.
    assert!(MerchantKind::parse("bakery").is_err());
    assert!(matches!(
        s.execute(|tx| merchants::set_terms(tx, MERCHANT, None, Some(10_001))),
        Err(HostError::Invalid(_))
    ));
    let _ = TOPUP_DEVICE;
    audit_clean(s);
}

// R-B8: a payout pays the balance minus the commission (rounded half up) to the bank; the
// commission is income; the period starts where the last one ended; the daily report's
// sales do not change because of it; the audit checks the new accounts.
pub fn payout_with_commission(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 100_000);
    s.execute(|tx| merchants::set_terms(tx, MERCHANT, None, Some(250)))
        .unwrap();
    upload(s, offline(c.no, 1, 0, 100_000, 1_001)).unwrap();
    upload(s, offline(c.no, 2, 1, 98_999, 999)).unwrap();
    let before = s.read(|tx| report::daily(tx, now().date())).unwrap();
    let p = pay_out(s, MERCHANT).unwrap();
    // 2 000 × 2.5 % = 50.
    assert_eq!((p.gross, p.commission, p.net, p.seq), (2_000, 50, 1_950, 1));
    assert_eq!(p.period_from, None);
    assert_eq!(balance(s, "merchant:100"), 0);
    assert_eq!(balance(s, merchants::COMMISSION_ACCOUNT), 50);
    assert_eq!(balance(s, merchants::PAYOUT_BANK_ACCOUNT), 1_950);
    let after = s.read(|tx| report::daily(tx, now().date())).unwrap();
    assert_eq!(before, after, "a payout does not change the sales report");
    // Nothing left: refused, nothing written.
    assert!(matches!(pay_out(s, MERCHANT), Err(HostError::Invalid(_))));
    upload(s, offline(c.no, 3, 2, 98_000, 333)).unwrap();
    let p2 = pay_out(s, MERCHANT).unwrap();
    // 333 × 2.5 % = 8.325 → 8.
    assert_eq!((p2.gross, p2.commission, p2.net, p2.seq), (333, 8, 325, 2));
    assert_eq!(p2.period_from, Some(p.period_to));
    let list = s.read(|tx| merchants::payouts(tx, MERCHANT, 10)).unwrap();
    assert_eq!(list, vec![p2, p]);
    audit_clean(s);
    // Tampering with a payout row is found.
    s.execute(|tx| {
        tx.conn
            .exec(
                "UPDATE payouts SET net = net - 1, commission = commission + 1 WHERE seq = 1",
                &[],
            )
            .map(drop)
    })
    .unwrap();
    let r = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(!r.merchant_mismatches.is_empty(), "{r:?}");
}

// R-B8, code 45: after a payout, a reversal that would take the merchant below zero is
// refused with 45 and held (the card was credited already: never dropped); a cancellation
// is booked (the card was never debited) and flags the merchant abnormal, 44 for its sales.
pub fn merchant_balance_codes(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    upload(s, offline(c.no, 1, 0, 10_000, 800)).unwrap();
    pay_out(s, MERCHANT).unwrap();
    let mut rev = offline(c.no, 2, 1, 9_200, 800);
    rev.kind = RecordKind::Reversal;
    rev.original_serial = Some(1);
    rev.balance_after = 10_000;
    assert_eq!(refused(upload(s, rev.clone())), 45); // code 45
    let held = s
        .read(move |tx| exceptions::get(tx, DEVICE, 2))
        .unwrap()
        .expect("held");
    assert_eq!(held.code.0, 45);
    // Again: the same answer; nothing booked.
    assert_eq!(refused(upload(s, rev)), 45);
    assert_eq!(card_now(s, c.no).balance, 9_200);
    assert_eq!(balance(s, "merchant:100"), 0);
    audit_clean(s);
    // An online debit whose card write failed, then its cancellation after a payout.
    debit(s, &c, purchase(c.no, 10, 1, 9_200, 300)).unwrap();
    pay_out(s, MERCHANT).unwrap();
    let mut cancel = purchase(c.no, 11, 1, 9_200, 300);
    cancel.kind = RecordKind::Cancellation;
    cancel.status = RecordStatus::Written;
    cancel.online = false;
    cancel.original_serial = Some(10);
    cancel.balance_after = 9_200;
    upload(s, cancel).unwrap();
    assert_eq!(card_now(s, c.no).balance, 9_200);
    assert_eq!(balance(s, "merchant:100"), -300);
    let m = s.read(|tx| admin::merchant(tx, MERCHANT)).unwrap();
    assert_eq!(m.status, MerchantStatus::Abnormal);
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 12, 2, 9_200, 100))),
        44 // code 44
    );
    // No payout from an abnormal account; the audit lists the negative merchant account.
    assert!(matches!(pay_out(s, MERCHANT), Err(HostError::Invalid(_))));
    let r = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(
        r.merchant_mismatches,
        vec!["merchant:100 negative: -300".to_owned()]
    );
}

// R-B8, code 44: the check of the merchant accounts flags an account whose balance is not
// the sum of its transfers; finance clears the flag by setting the merchant normal.
pub fn merchant_account_check(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    upload(s, offline(c.no, 1, 0, 10_000, 800)).unwrap();
    assert_eq!(
        s.execute(merchants::check_accounts).unwrap(),
        Vec::<u32>::new()
    );
    s.execute(|tx| {
        tx.conn
            .exec(
                "UPDATE accounts SET balance = balance + 5 WHERE id = 'merchant:100'",
                &[],
            )
            .map(drop)
    })
    .unwrap();
    assert_eq!(
        s.execute(merchants::check_accounts).unwrap(),
        vec![MERCHANT]
    );
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 2, 1, 9_200, 100))),
        44 // code 44
    );
    s.execute(|tx| {
        tx.conn
            .exec(
                "UPDATE accounts SET balance = balance - 5 WHERE id = 'merchant:100'",
                &[],
            )
            .map(drop)
    })
    .unwrap();
    s.execute(|tx| admin::set_merchant_status(tx, MERCHANT, MerchantStatus::Normal))
        .unwrap();
    debit(s, &c, purchase(c.no, 2, 1, 9_200, 100)).unwrap();
    audit_clean(s);
}

// R-B9, code 8: maintenance mode refuses online debits and loads with 8 (on every writer,
// at its next batch); uploads of records that left a card are still booked.
pub fn maintenance_mode(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 10_000);
    // A warm cache first: the mode must reach a writer that has the rows cached.
    debit(s, &c, purchase(c.no, 1, 0, 10_000, 100)).unwrap();
    let other = (f.reopen)();
    let was = s
        .execute(|tx| merchants::set_maintenance(tx, Maintenance::On))
        .unwrap();
    assert_eq!(was, Maintenance::Off);
    for store in [s, &other] {
        assert_eq!(
            refused(debit(store, &c, purchase(c.no, 2, 1, 9_900, 100))),
            8 // code 8
        );
    }
    assert_eq!(
        refused(authorize(
            s,
            topup_origin(),
            request(LoadPurpose::TopUpCash, c.no, 3, 1, 9_900, 500)
        )),
        8 // code 8
    );
    // The terminal falls back offline; its record is booked while maintenance lasts.
    upload(s, offline(c.no, 2, 1, 9_900, 100)).unwrap();
    assert_eq!(card_now(s, c.no).balance, 9_800);
    s.execute(|tx| merchants::set_maintenance(tx, Maintenance::Off))
        .unwrap();
    debit(&other, &c, purchase(c.no, 4, 2, 9_800, 100)).unwrap();
    audit_clean(s);
}

// R-B9 (partial: day-end): a day closes only after its close time and once; the close
// snapshots the account balances, freezes the day's report and stores the meal-period
// sales; a record of that day arriving later changes the live report, never the frozen one.
pub fn day_end_freezes_the_report(f: &Fixture) {
    use ykt_host::domain::dayend;
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    upload(s, offline(c.no, 1, 0, 10_000, 700)).unwrap(); // 12:00: lunch
    let day = now().date();
    let early = at("2026-03-02 23:59:59");
    assert!(matches!(
        s.execute(move |tx| dayend::close(tx, day, "test", early)),
        Err(HostError::Invalid(_))
    ));
    let closing = at("2026-03-03 00:00:00");
    let d = s
        .execute(move |tx| dayend::close(tx, day, "test", closing))
        .unwrap();
    assert!(d.audit_clean);
    assert!(d.accounts > 3);
    let live = s.read(move |tx| report::daily(tx, day)).unwrap();
    assert_eq!(d.report, serde_json::to_value(&live).unwrap());
    assert_eq!(
        d.meals,
        vec![dayend::MealLine {
            meal: "lunch".into(),
            merchant_no: MERCHANT,
            debits: 1,
            amount: 700,
            fee: 0,
        }]
    );
    let snap = s
        .read(move |tx| dayend::balance_at(tx, day, "merchant:100"))
        .unwrap();
    assert_eq!(snap, Some(700));
    assert!(matches!(
        s.execute(move |tx| dayend::close(tx, day, "test", closing)),
        Err(HostError::Invalid(_))
    ));
    // A late record of the closed day: booked; the closed day's reports do not move.
    upload_at(s, offline(c.no, 2, 1, 9_300, 50), at("2026-03-03 08:00:00")).unwrap();
    let live = s.read(move |tx| report::daily(tx, day)).unwrap();
    assert_eq!(live.total.debit_amount, 700);
    let again = s.read(move |tx| dayend::get(tx, day)).unwrap().unwrap();
    assert_eq!(again, d, "a frozen report never changes");
    assert_eq!(
        s.read(move |tx| dayend::balance_at(tx, day, "merchant:100"))
            .unwrap(),
        Some(700)
    );
    audit_clean(s);
}

fn upload_at(
    s: &Store,
    record: ykt_proto::Record,
    received: chrono::NaiveDateTime,
) -> Result<Outcome> {
    let tac = s.tac_verifier();
    s.execute(move |tx| domain::records::upload(tx, &origin(), &record, tac.as_deref(), received))
        .and_then(wire_view)
}

// R-B9: a record that arrives after its day closed is booked on the day it arrives and
// shown there as late (with its own day); a record of the day received before the close
// stays on its day; the closed day's frozen report and its live report do not move.
pub fn day_end_books_late_records(f: &Fixture) {
    use ykt_host::domain::dayend;
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let day = now().date(); // 2026-03-02
    let next = at("2026-03-03 00:00:00").date();
    upload(s, offline(c.no, 1, 0, 10_000, 700)).unwrap();
    let online = purchase(c.no, 2, 1, 9_300, 30);
    debit(s, &c, online.clone()).unwrap();
    let frozen = s
        .execute(move |tx| dayend::close(tx, day, "test", at("2026-03-03 00:05:00")))
        .unwrap();
    assert_eq!(frozen.report["total"]["debit_amount"], 730);
    assert_eq!(frozen.report["late"], serde_json::json!([]));
    // Two records of 03-02 arrive on 03-03: the cancellation of the online debit and a sale.
    let late = at("2026-03-03 09:00:00");
    let mut cancel = online;
    cancel.kind = RecordKind::Cancellation;
    cancel.serial = 3;
    cancel.original_serial = Some(2);
    upload_at(s, cancel, late).unwrap();
    upload_at(s, offline(c.no, 4, 2, 9_300, 40), late).unwrap();
    let closed = s.read(move |tx| report::daily(tx, day)).unwrap();
    assert_eq!(serde_json::to_value(&closed).unwrap(), frozen.report);
    let today = s.read(move |tx| report::daily(tx, next)).unwrap();
    assert_eq!(today.total.debits, 1);
    assert_eq!(today.total.debit_amount, 40);
    assert_eq!(today.total.reversals, 1);
    assert_eq!(today.total.reversal_amount, 30);
    assert_eq!(today.merchants.len(), 1);
    assert_eq!(today.merchants[0].totals, today.total);
    assert_eq!(today.late.len(), 1);
    assert_eq!(today.late[0].day, day);
    assert_eq!(today.late[0].totals, today.total);
    assert_eq!(
        s.read(move |tx| dayend::get(tx, day)).unwrap().unwrap(),
        frozen,
        "a frozen report never changes"
    );
    audit_clean(s);
}

// R-B9: the schedule closes the latest day whose close time (the setting
// `dayend_close_minute`) has passed, once; meal periods are replaced only when they fit in a
// day without overlapping, and later day-ends total by them.
pub fn day_end_schedule_and_meal_periods(f: &Fixture) {
    use ykt_host::domain::dayend::{self, MealPeriod};
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    upload(s, offline(c.no, 1, 0, 10_000, 700)).unwrap(); // 2026-03-02 12:00
    s.execute(|tx| repo::set_meta(tx.conn, dayend::CLOSE_MINUTE, 90))
        .unwrap();
    let due = |t: &'static str| s.read(move |tx| dayend::next_due(tx, at(t))).unwrap();
    assert_eq!(
        due("2026-03-03 01:29:59"),
        Some(at("2026-03-01 00:00:00").date())
    );
    assert_eq!(due("2026-03-03 01:30:00"), Some(now().date()));
    fn period(name: &str, start_minute: u16, end_minute: u16) -> MealPeriod {
        MealPeriod {
            name: name.into(),
            start_minute,
            end_minute,
        }
    }
    for bad in [
        vec![period("a", 600, 700), period("b", 690, 800)],
        vec![period("a", 700, 700)],
        vec![period("a", 1000, 1441)],
        vec![period("a", 100, 200), period("a", 300, 400)],
        vec![period("", 100, 200)],
    ] {
        assert!(matches!(
            s.execute(move |tx| dayend::set_meal_periods(tx, bad.clone())),
            Err(HostError::Invalid(_))
        ));
    }
    let set = s
        .execute(|tx| {
            dayend::set_meal_periods(tx, vec![period("午餐", 690, 780), period("早餐", 0, 690)])
        })
        .unwrap();
    assert_eq!(set[0].name, "早餐");
    assert_eq!(s.read(dayend::meal_periods).unwrap(), set);
    let closing = at("2026-03-03 01:30:00");
    let day = s
        .read(move |tx| dayend::next_due(tx, closing))
        .unwrap()
        .unwrap();
    let d = s
        .execute(move |tx| dayend::close(tx, day, "system", closing))
        .unwrap();
    assert_eq!(d.meals.len(), 1);
    assert_eq!(d.meals[0].meal, "午餐", "12:00 is in 11:30–13:00");
    assert_eq!(
        s.read(move |tx| dayend::next_due(tx, closing)).unwrap(),
        None
    );
    audit_clean(s);
}
