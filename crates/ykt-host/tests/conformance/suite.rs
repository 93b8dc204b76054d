//! The conformance tests, written once for both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{NaiveDate, NaiveTime};
use ykt_host::domain::{admin, blacklist, signin};
use ykt_host::*;
use ykt_proto::{
    CardNo, CardType, DisplayNo, InfoCode, PhysicalId, RecordKind, RecordStatus, ReturnCode,
    WorkingHours,
};

use super::support::*;

// R-H7: a FEP must be registered (10), activated (11), signed in (12), not deregistered (13).
pub fn fep_lifecycle(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 1_000);
    let with_fep = |fep: u32| {
        let req = DebitRequest {
            origin: Origin { fep, ..origin() },
            record: purchase(c.no, 1, 0, 1_000, 10),
            card_view: Some(view(&c)),
        };
        s.execute(move |tx| domain::records::authorize(tx, &req, now()))
    };
    assert_eq!(refused(with_fep(9)), 10);
    s.execute(|tx| admin::register_fep(tx, 2, "fep-2")).unwrap();
    assert_eq!(refused(with_fep(2)), 11);
    assert_eq!(
        refused(s.execute(|tx| admin::sign_in_fep(tx, 2, now()))),
        11
    );
    s.execute(|tx| admin::activate_fep(tx, 2)).unwrap();
    assert_eq!(refused(with_fep(2)), 12);
    s.execute(|tx| admin::sign_in_fep(tx, 2, now())).unwrap();
    assert!(with_fep(2).is_ok());
    s.execute(|tx| admin::deregister_fep(tx, 2)).unwrap();
    assert_eq!(refused(with_fep(2)), 13);
    assert_eq!(
        refused(s.execute(|tx| admin::sign_in_fep(tx, 9, now()))),
        10
    );
    // R-H7: several FEPs serve one core at once.
    s.execute(|tx| {
        admin::register_fep(tx, 3, "fep-3")?;
        admin::activate_fep(tx, 3)?;
        admin::sign_in_fep(tx, 3, now())
    })
    .unwrap();
    let r = purchase(c.no, 3, 1, 990, 10);
    let req = DebitRequest {
        origin: Origin { fep: 3, ..origin() },
        record: r,
        card_view: Some(view(&c)),
    };
    s.execute(move |tx| domain::records::authorize(tx, &req, now()))
        .unwrap();
    audit_clean(s);
}

// R-H1: unknown device 20, not enabled 22, disabled 23, deregistered 24, terminal number 25,
// no merchant 26, outside working hours 27, function 28, not authorised 29.
pub fn device_lifecycle(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 100_000);
    let other = PhysicalId([9, 9, 9, 9]);
    let try_on = |device: PhysicalId, terminal_no: u32, serial: u32| {
        let mut record = purchase(c.no, serial, 0, 100_000, 10);
        record.device = device;
        let req = DebitRequest {
            origin: Origin {
                fep: FEP,
                device,
                terminal_no,
            },
            record,
            card_view: Some(view(&c)),
        };
        s.execute(move |tx| domain::records::authorize(tx, &req, now()))
    };
    assert_eq!(refused(try_on(other, 1, 1)), 20);
    s.execute(move |tx| {
        admin::register_device(
            tx,
            NewDevice {
                id: other,
                terminal_no: 1,
                merchant_no: None,
                mac_suite: MacSuite::Sm4Cmac,
                functions: Functions::OFFLINE_UPLOAD,
                max_amount: 0,
                params: params_codec::default_params(),
            },
        )
    })
    .unwrap();
    assert_eq!(refused(try_on(other, 1, 1)), 22);
    s.execute(move |tx| admin::set_device_status(tx, other, DeviceStatus::Enabled))
        .unwrap();
    assert_eq!(refused(try_on(other, 1, 1)), 29);
    s.execute(move |tx| admin::set_device_key(tx, other, KEY))
        .unwrap();
    assert_eq!(refused(try_on(other, 2, 1)), 25);
    assert_eq!(refused(try_on(other, 1, 1)), 26);
    s.execute(move |tx| {
        admin::update_device(tx, other, |d| {
            d.merchant_no = Some(MERCHANT);
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(refused(try_on(other, 1, 1)), 28);
    s.execute(move |tx| {
        admin::update_device(tx, other, |d| {
            d.functions = Functions::ALL;
            Ok(())
        })
    })
    .unwrap();
    // Working hours 07:00–09:00 and 22:00–02:00 (spans midnight); `now()` is 12:00.
    let mut p = params_codec::default_params();
    p.working_hours = vec![
        WorkingHours {
            start: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        },
        WorkingHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
        },
    ];
    let d = s
        .execute(move |tx| admin::set_device_params(tx, other, p.clone()))
        .unwrap();
    assert_eq!(d.params.version, 2, "a parameter change bumps the version");
    assert_eq!(refused(try_on(other, 1, 1)), 27);
    let mut p = d.params.clone();
    p.working_hours.clear();
    s.execute(move |tx| admin::set_device_params(tx, other, p.clone()))
        .unwrap();
    try_on(other, 1, 1).unwrap();
    s.execute(move |tx| admin::set_device_status(tx, other, DeviceStatus::Disabled))
        .unwrap();
    assert_eq!(refused(try_on(other, 1, 2)), 23);
    s.execute(move |tx| admin::set_device_status(tx, other, DeviceStatus::Deregistered))
        .unwrap();
    assert_eq!(refused(try_on(other, 1, 2)), 24);
    assert!(matches!(
        s.execute(move |tx| admin::set_device_status(tx, other, DeviceStatus::Enabled)),
        Err(HostError::Invalid(_))
    ));
    let stored = s.execute(move |tx| admin::device(tx, other)).unwrap();
    assert_eq!(stored.mac_suite, MacSuite::Sm4Cmac);
    assert_eq!(stored.master_key, Some(KEY));
    audit_clean(s);
}

// R-H3: merchant number of the request 36, unknown merchant 40, deregistered 41, stopped 43;
// amounts go to the merchant, fees to the platform's fee income.
pub fn merchant_codes(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 100_000);
    let mut r = purchase(c.no, 1, 0, 100_000, 100);
    r.merchant_no = 101;
    assert_eq!(refused(debit(s, &c, r)), 36);
    // The device's merchant deregistered / stopped, then a device pointing at a merchant
    // that does not exist (possible only through the raw database).
    s.execute(|tx| admin::set_merchant_status(tx, MERCHANT, MerchantStatus::Stopped))
        .unwrap();
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 1, 0, 100_000, 100))),
        43
    );
    s.execute(|tx| admin::set_merchant_status(tx, MERCHANT, MerchantStatus::Normal))
        .unwrap();
    // Fee of class 1 = 10 %: 100 → 10.
    s.execute(|tx| {
        let mut p = admin::device(tx, DEVICE)?.params;
        p.fee_rates[1] = 10;
        admin::set_device_params(tx, DEVICE, p)
    })
    .unwrap();
    let mut r = purchase(c.no, 1, 0, 100_000, 100);
    r.fee = 10;
    r.balance_after = 100_000 - 110;
    debit(s, &c, r).unwrap();
    let (m, fee) = s
        .execute(|tx| {
            Ok((
                admin::merchant_balance(tx, MERCHANT)?,
                repo::account_balance(tx.conn, ledger::FEE_ACCOUNT)?,
            ))
        })
        .unwrap();
    assert_eq!((m, fee), (100, Some(10)));
    s.execute(|tx| admin::set_merchant_status(tx, MERCHANT, MerchantStatus::Deregistered))
        .unwrap();
    let mut r = purchase(c.no, 3, 1, 99_890, 100);
    r.fee = 10;
    r.balance_after = 99_890 - 110;
    assert_eq!(refused(debit(s, &c, r.clone())), 41);
    s.execute(|tx| {
        tx.conn
            .exec("UPDATE devices SET merchant_no = 555", &[])
            .map(drop)
    })
    .unwrap();
    r.merchant_no = 555;
    assert_eq!(refused(debit(s, &c, r)), 40);
    audit_clean(s);
}

// R-H4: unknown card 50, lost 51, frozen 52, bad 53, locked 54, disabled 55, expired 56,
// cancelled 57, class not allowed 59.
pub fn card_lifecycle_codes(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 100_000);
    let ghost = CardNo::new(999_999).unwrap();
    assert_eq!(refused(debit(s, &c, purchase(ghost, 1, 0, 100, 10))), 50);
    // (Serial 99: the unknown card's record is held, and its serial stays its own.)
    assert_eq!(refused(upload(s, offline(ghost, 99, 0, 100, 10))), 50);
    for (status, code) in [
        (CardStatus::Lost, 51),
        (CardStatus::Frozen, 52),
        (CardStatus::Bad, 53),
        (CardStatus::Locked, 54),
        (CardStatus::Disabled, 55),
    ] {
        let no = c.no;
        s.execute(move |tx| admin::set_card_status(tx, no, status))
            .unwrap();
        assert_eq!(
            refused(debit(s, &c, purchase(c.no, 1, 0, 100_000, 10))),
            code
        );
        s.execute(move |tx| admin::set_card_status(tx, no, CardStatus::Normal))
            .unwrap();
    }
    let mut late = purchase(c.no, 1, 0, 100_000, 10);
    late.time = at("2027-07-01 12:00:00");
    assert_eq!(refused(debit(s, &c, late)), 56);
    s.execute(|tx| {
        let mut p = admin::device(tx, DEVICE)?.params;
        p.allowed_classes.remove(1);
        admin::set_device_params(tx, DEVICE, p)
    })
    .unwrap();
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 100_000, 10))), 59);
    let no = c.no;
    s.execute(move |tx| admin::set_card_status(tx, no, CardStatus::Cancelled))
        .unwrap();
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 100_000, 10))), 57);
    assert!(matches!(
        s.execute(move |tx| admin::set_card_status(tx, no, CardStatus::Normal)),
        Err(HostError::Invalid(_))
    ));
    audit_clean(s);
}

// R-T2.1: card numbers are generated from 1; R-T2.2: the display number is unique,
// distinct from the card number, and both find the card.
pub fn card_numbers(f: &Fixture) {
    let s = &f.store;
    world(s);
    let a = card(s, 0);
    let b = card(s, 0);
    assert_eq!(a.no.get(), 1);
    assert_eq!(b.no.get(), 2);
    assert_ne!(u64::from(a.no.get()), a.display_no.get());
    let d = b.display_no;
    assert_eq!(
        s.execute(move |tx| admin::card_by_display(tx, d))
            .unwrap()
            .no,
        b.no
    );
    assert_eq!(card_now(s, a.no).display_no, a.display_no);
    let dup = s.execute(move |tx| {
        admin::issue_card(
            tx,
            NewCard {
                display_no: d,
                class: 0,
                expiry: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
                counter: 0,
            },
        )
    });
    assert!(matches!(dup, Err(HostError::Invalid(_))), "{dup:?}");
    let big = DisplayNo::new(9_999_999_999).unwrap();
    let c = s
        .execute(move |tx| {
            admin::issue_card(
                tx,
                NewCard {
                    display_no: big,
                    class: 255,
                    expiry: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
                    counter: 0,
                },
            )
        })
        .unwrap();
    assert_eq!(c.no.get(), 3, "a refused issue consumes no card number");
    assert_eq!(card_now(s, c.no).display_no, big);
}

// R-P5.2, R-H6: an online debit is booked card → merchant before the answer, durably:
// a new store on the same database sees it.
pub fn online_debit_books_and_is_durable(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let out = debit(s, &c, purchase(c.no, 1, 0, 10_000, 1_250)).unwrap();
    assert!(!out.duplicate);
    assert_eq!(out.balance, 8_750);
    let again = (f.reopen)();
    let after = card_now(&again, c.no);
    assert_eq!(after.balance, 8_750);
    assert_eq!(
        again
            .execute(|tx| admin::merchant_balance(tx, MERCHANT))
            .unwrap(),
        1_250
    );
    let report = again.execute(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // deposit 1 + debit 1 (a zero fee books nothing)
    assert_eq!(report.transfers, 2);
}

// R-C6.1 amounts: fee ≠ class rate 33, amount ≤ 0 or beyond 24 bits 34, card balance 64,
// above the maximum 66, balances that do not add up 67, system account 68, per-transaction
// limit 71.
pub fn amount_codes(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 10_000, 0))), 34);
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 10_000, -5))), 34);
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 1, 0, 10_000, 0x100_0000))),
        34
    );
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 1, 0, 10_000, 50_001))),
        71
    );
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 100, 200))), 64);
    let mut r = purchase(c.no, 1, 0, 10_000, 100);
    r.balance_after = 9_000;
    assert_eq!(refused(debit(s, &c, r)), 67);
    let mut r = purchase(c.no, 1, 0, 10_000, 100);
    r.fee = 1;
    r.balance_after = 9_899;
    assert_eq!(refused(debit(s, &c, r)), 33);
    // 66: the card holds more than the terminal's maximum balance (R-F4.8).
    s.execute(|tx| {
        let mut p = admin::device(tx, DEVICE)?.params;
        p.max_balance = 9_999;
        admin::set_device_params(tx, DEVICE, p)
    })
    .unwrap();
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 10_000, 100))), 66);
    s.execute(|tx| {
        let mut p = admin::device(tx, DEVICE)?.params;
        p.max_balance = 0xFF_FFFF;
        admin::set_device_params(tx, DEVICE, p)
    })
    .unwrap();
    // The card claims more than the system holds for it.
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 1, 0, 50_000, 20_000))),
        68
    );
    // Rounding half up (R-F4.13): 15 % of 10 fen = 1.5 → 2.
    s.execute(|tx| {
        let mut p = admin::device(tx, DEVICE)?.params;
        p.fee_rates[1] = 15;
        admin::set_device_params(tx, DEVICE, p)
    })
    .unwrap();
    let mut r = purchase(c.no, 1, 0, 10_000, 10);
    r.fee = 2;
    r.balance_after = 9_988;
    debit(s, &c, r).unwrap();
    assert_eq!(card_now(s, c.no).balance, 9_988);
    audit_clean(s);
}

// R-H2: a repeat with identical content is acknowledged again and booked once; different
// content under the same (device, serial) gets 30.
pub fn records_unique_per_device_serial(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let r = purchase(c.no, 1, 0, 10_000, 100);
    debit(s, &c, r.clone()).unwrap();
    let again = debit(s, &c, r.clone()).unwrap();
    assert!(again.duplicate);
    assert_eq!(card_now(s, c.no).balance, 9_900);
    let mut other = r.clone();
    other.amount = 200;
    other.balance_after = 9_800;
    assert_eq!(refused(debit(s, &c, other.clone())), 30);
    let mut other = offline(c.no, 1, 1, 9_900, 100);
    other.online = false;
    assert_eq!(refused(upload(s, other)), 30);
    let o = offline(c.no, 2, 1, 9_900, 100);
    upload(s, o.clone()).unwrap();
    assert!(upload(s, o.clone()).unwrap().duplicate);
    let mut changed = o;
    changed.item_code = 3;
    assert_eq!(refused(upload(s, changed)), 30);
    assert_eq!(card_now(s, c.no).balance, 9_800);
    audit_clean(s);
}

// R-P5.2, R-P5.4, R-P5.9: the terminal's later upload of an authorised record reconciles its
// card-write outcome without booking again; a "card pulled" upload voids the authorisation.
pub fn online_record_upload_reconciles(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let r = purchase(c.no, 1, 0, 10_000, 100);
    debit(s, &c, r.clone()).unwrap();
    let mut done = r.clone();
    done.status = RecordStatus::Success;
    let out = upload(s, done.clone()).unwrap();
    assert!(out.duplicate);
    assert!(upload(s, done).unwrap().duplicate);
    assert_eq!(card_now(s, c.no).balance, 9_900);
    let stored = s
        .execute(|tx| repo::record_get(tx.conn, DEVICE, 1, false))
        .unwrap()
        .unwrap();
    assert_eq!(stored.record.status, RecordStatus::Success);

    let r2 = purchase(c.no, 2, 1, 9_900, 300);
    debit(s, &c, r2.clone()).unwrap();
    assert_eq!(card_now(s, c.no).balance, 9_600);
    let mut pulled = r2;
    pulled.status = RecordStatus::CardPulled;
    upload(s, pulled).unwrap();
    let after = card_now(s, c.no);
    assert_eq!(after.balance, 9_900);
    // The card was never written, so its next transaction reuses counter 1.
    debit(s, &c, purchase(c.no, 3, 1, 9_900, 50)).unwrap();
    audit_clean(s);
}

// R-P5.5: a cancellation (serial + 1) reverses the online debit; a second one gets 32; a
// cancellation of a debit the host never saw is acknowledged with info 8.
pub fn cancellation_reverses_online_debit(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let r = purchase(c.no, 10, 5, 10_000, 700);
    debit(s, &c, r.clone()).unwrap();
    assert_eq!(card_now(s, c.no).balance, 9_300);
    let mut cancel = r.clone();
    cancel.kind = RecordKind::Cancellation;
    cancel.serial = 11;
    cancel.original_serial = Some(10);
    let out = upload(s, cancel.clone()).unwrap();
    assert!(!out.duplicate);
    assert_eq!(out.balance, 10_000);
    assert_eq!(
        s.execute(|tx| admin::merchant_balance(tx, MERCHANT))
            .unwrap(),
        0
    );
    // The same cancellation again: acknowledged, not booked (R-P5.9).
    assert!(upload(s, cancel.clone()).unwrap().duplicate);
    // Another cancellation of the same debit under a new serial: 32.
    let mut second = cancel.clone();
    second.serial = 12;
    assert_eq!(refused(upload(s, second)), 32);
    // The original uploaded afterwards: acknowledged with info 7, not booked.
    let late = upload(s, r).unwrap();
    assert!(late.duplicate);
    assert_eq!(late.info(), InfoCode::ALREADY_REVERSED);
    let mut unknown = purchase(c.no, 21, 6, 10_000, 10);
    unknown.kind = RecordKind::Cancellation;
    unknown.original_serial = Some(20);
    let out = upload(s, unknown).unwrap();
    assert_eq!(out.info(), InfoCode::PURCHASE_RECORD_NOT_FOUND);
    assert_eq!(card_now(s, c.no).balance, 10_000);
    // The freed counter 5 is usable again.
    debit(s, &c, purchase(c.no, 30, 5, 10_000, 10)).unwrap();
    audit_clean(s);
}

// R-P5.6, R-P5.9: offline records are booked on upload, exactly once however often they
// are uploaded.
pub fn offline_upload_books_once(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let mut before = 10_000;
    let records: Vec<_> = (0..20u32)
        .map(|i| {
            let r = offline(c.no, 100 + i, i, before, 10 + i64::from(i));
            before = r.balance_after;
            r
        })
        .collect();
    for r in &records {
        let out = upload(s, r.clone()).unwrap();
        assert!(!out.duplicate);
    }
    for r in &records {
        assert!(upload(s, r.clone()).unwrap().duplicate);
    }
    assert_eq!(card_now(s, c.no).balance, before);
    assert_eq!(
        s.execute(|tx| admin::merchant_balance(tx, MERCHANT))
            .unwrap(),
        10_000 - before
    );
    audit_clean(s);
}

// R-F4.3, R-F4.15: records of pulled cards, failed transactions and black cards are stored,
// acknowledged, and move no money.
pub fn abnormal_records_stored_not_booked(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 1_000);
    let mut pulled = offline(c.no, 1, 0, 1_000, 100);
    pulled.status = RecordStatus::CardPulled;
    let mut black = offline(c.no, 2, 0, 1_000, 100);
    black.kind = RecordKind::BlackCard;
    black.status = RecordStatus::Failed;
    for r in [pulled, black] {
        upload(s, r.clone()).unwrap();
        let (dev, serial) = (r.device, r.serial);
        let stored = s
            .execute(move |tx| repo::record_get(tx.conn, dev, serial, false))
            .unwrap()
            .unwrap();
        assert_eq!(stored.record, r);
        assert!(!stored.booked);
    }
    assert_eq!(card_now(s, c.no).balance, 1_000);
    // Counter 0 was not consumed by them.
    upload(s, offline(c.no, 3, 0, 1_000, 100)).unwrap();
    audit_clean(s);
}

// R-C6.1 reversal (冲正): the original must exist (31) and not be reversed yet (32); the card
// gets the money back; 34/35 for reversals that do not match.
pub fn reversal_codes(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 5_000);
    let orig = offline(c.no, 1, 0, 5_000, 800);
    upload(s, orig.clone()).unwrap();
    let reversal = |serial: u32, original: u32, counter: u32| {
        let mut r = offline(c.no, serial, counter, 4_200, 800);
        r.kind = RecordKind::Reversal;
        r.original_serial = Some(original);
        r.balance_after = 5_000;
        r
    };
    assert_eq!(refused(upload(s, reversal(2, 99, 1))), 31);
    // A reversal whose card write failed is stored and moves nothing (R-F4.3).
    let mut pulled = reversal(9, 1, 1);
    pulled.status = RecordStatus::CardPulled;
    upload(s, pulled).unwrap();
    assert_eq!(card_now(s, c.no).balance, 4_200);
    upload(s, reversal(2, 1, 1)).unwrap();
    assert_eq!(card_now(s, c.no).balance, 5_000);
    assert_eq!(
        s.execute(|tx| admin::merchant_balance(tx, MERCHANT))
            .unwrap(),
        0
    );
    assert!(upload(s, reversal(2, 1, 1)).unwrap().duplicate);
    assert_eq!(refused(upload(s, reversal(3, 1, 2))), 32);
    // 35: a reversal without an original serial, a debit request that is no purchase.
    let mut no_original = reversal(4, 1, 2);
    no_original.original_serial = None;
    assert_eq!(refused(upload(s, no_original)), 35);
    let mut not_purchase = purchase(c.no, 5, 2, 5_000, 10);
    not_purchase.kind = RecordKind::Reversal;
    assert_eq!(refused(debit(s, &c, not_purchase)), 35);
    // 34: a reversal for another amount than the original's.
    upload(s, offline(c.no, 6, 2, 5_000, 100)).unwrap();
    let mut wrong = reversal(7, 6, 3);
    wrong.amount = 99;
    wrong.balance_before = 4_900;
    wrong.balance_after = 4_999;
    assert_eq!(refused(upload(s, wrong)), 34);
    audit_clean(s);
}

// R-H5, R-F4.17: a repeated counter 61, an impossible one 62, a gap gives info 4 and a
// collection request for the missing records; late records fill the gap.
pub fn lifetime_counter(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 100_000);
    debit(s, &c, purchase(c.no, 1, 0, 100_000, 10)).unwrap();
    assert_eq!(refused(debit(s, &c, purchase(c.no, 2, 0, 99_990, 10))), 61);
    let jump = s.store_policy_jump();
    assert_eq!(
        refused(debit(s, &c, purchase(c.no, 2, 1 + jump + 1, 99_990, 10))),
        62
    );
    // Counters 1, 2, 3 missing: the card is at 4.
    let out = debit(s, &c, purchase(c.no, 2, 4, 99_960, 10)).unwrap();
    assert_eq!(out.info(), InfoCode::RECORDS_MISSING);
    assert_eq!(
        out.collect, 4,
        "collect back to the oldest missing counter (1)"
    );
    // The collected records arrive (R-F4.17) and fill the gap.
    for (serial, counter) in [(3u32, 1u32), (4, 2)] {
        let mut r = offline(
            c.no,
            serial,
            counter,
            99_990 - 10 * i64::from(counter - 1),
            10,
        );
        r.kind = RecordKind::Collected;
        upload(s, r).unwrap();
    }
    let out = upload(s, offline(c.no, 5, 3, 99_970, 10)).unwrap();
    assert!(!out.notices.contains(InfoCode::RECORDS_MISSING), "{out:?}");
    assert_eq!(out.collect, 0);
    let mut again = offline(c.no, 6, 2, 99_980, 10);
    again.kind = RecordKind::Collected;
    assert!(
        upload(s, again).unwrap().duplicate,
        "a counter already booked is not booked twice"
    );
    assert_eq!(refused(upload(s, offline(c.no, 7, 2, 99_980, 10))), 61);
    assert_eq!(card_now(s, c.no).balance, 99_950);
    audit_clean(s);
}

trait PolicyJump {
    fn store_policy_jump(&self) -> u32;
}
impl PolicyJump for Store {
    fn store_policy_jump(&self) -> u32 {
        self.policy().max_counter_jump
    }
}

// R-C6.2: information codes from state: 1 low balance, 2 subsidy waiting, 3 expiring soon,
// 5 card balance differs from the system's, 6 card data differs; by priority.
pub fn info_codes_from_state(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 3_000);
    let out = debit(s, &c, purchase(c.no, 1, 0, 3_000, 100)).unwrap();
    assert_eq!(out.info(), InfoCode::NONE);
    let out = debit(s, &c, purchase(c.no, 2, 1, 2_900, 2_000)).unwrap();
    assert_eq!(out.info(), InfoCode::BALANCE_LOW);
    let no = c.no;
    s.execute(move |tx| admin::add_subsidy(tx, no, 5_000, 1, now()))
        .unwrap();
    let out = debit(s, &c, purchase(c.no, 3, 2, 900, 10)).unwrap();
    assert_eq!(
        out.notices.all(),
        &[InfoCode::SUBSIDY_WAITING, InfoCode::BALANCE_LOW]
    );
    s.execute(move |tx| {
        admin::set_card_data(tx, no, 1, NaiveDate::from_ymd_opt(2026, 3, 20).unwrap())
    })
    .unwrap();
    let fresh = card_now(s, c.no);
    let out = debit(s, &fresh, purchase(c.no, 4, 3, 890, 10)).unwrap();
    assert!(out.notices.contains(InfoCode::EXPIRING_SOON), "{out:?}");
    // The card shows a different balance than the system's mirror (880).
    let out = debit(s, &fresh, purchase(c.no, 5, 4, 870, 10)).unwrap();
    assert_eq!(out.info(), InfoCode::BALANCE_MISMATCH);
    // The card's data differs from the system's: class 2 on the card.
    let mut v = view(&fresh);
    v.class = 2;
    let req = DebitRequest {
        origin: origin(),
        record: purchase(c.no, 6, 5, 870, 10),
        card_view: Some(v),
    };
    let out = s
        .execute(move |tx| domain::records::authorize(tx, &req, now()))
        .unwrap();
    assert_eq!(out.info(), InfoCode::CARD_DATA_NEEDS_FIX);
    audit_clean(s);
}

// R-H4, R-F4.21: loss → blacklisted, version + 1; found → removed, version + 1; served
// incrementally (net changes since a version) and in bulk pages in card-number order.
pub fn blacklist_versions(f: &Fixture) {
    let s = &f.store;
    world(s);
    let cards: Vec<_> = (0..5).map(|_| card(s, 0)).collect();
    let v0 = s.execute(blacklist::version).unwrap();
    for c in &cards {
        let no = c.no;
        s.execute(move |tx| admin::report_loss(tx, no)).unwrap();
    }
    let no0 = cards[0].no;
    let (card0, v) = s.execute(move |tx| admin::report_found(tx, no0)).unwrap();
    assert_eq!(card0.status, CardStatus::Normal);
    assert_eq!(v, v0 + 6);
    assert!(matches!(
        s.execute(move |tx| admin::report_found(tx, no0)),
        Err(HostError::Invalid(_))
    ));
    let lost = |i: usize| cards[i].no;
    // From scratch: net state, card 0 appears as removed.
    let d = s
        .execute(move |tx| blacklist::changes_since(tx, v0, None, 100))
        .unwrap();
    assert_eq!(d.version, v0 + 6);
    assert_eq!(d.changes[0], (lost(0), false));
    assert_eq!(d.changes.len(), 5);
    // Since the 5th change: only the found card.
    let d = s
        .execute(move |tx| blacklist::changes_since(tx, v0 + 5, None, 100))
        .unwrap();
    assert_eq!(d.changes, vec![(lost(0), false)]);
    // Paged incremental.
    let d = s
        .execute(move |tx| blacklist::changes_since(tx, v0, None, 2))
        .unwrap();
    assert!(d.more);
    assert_eq!(d.changes.len(), 2);
    // Bulk pages: cards 1..4 listed.
    let p1 = s.execute(|tx| blacklist::bulk(tx, None, 3)).unwrap();
    assert!(p1.more);
    let last = *p1.cards.last().unwrap();
    let p2 = s
        .execute(move |tx| blacklist::bulk(tx, Some(last), 3))
        .unwrap();
    assert!(!p2.more);
    let all: Vec<_> = p1.cards.into_iter().chain(p2.cards).collect();
    assert_eq!(all, (1..5).map(lost).collect::<Vec<_>>());
    // A lost card is refused online (51).
    let c = &cards[1];
    assert_eq!(refused(debit(s, c, purchase(c.no, 1, 0, 0, 10))), 51);
}

// CPU card records carry a TAC the host verifies through the `TacVerifier` hook.
pub fn cpu_tac_verified(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let mut r = offline(c.no, 1, 0, 10_000, 500);
    r.card_type = CardType::Cpu;
    r.tac = expected_tac(&r) ^ 1;
    assert_eq!(refused(upload(s, r.clone())), ReturnCode::OTHER_ERROR.0);
    // R-B3: held in the exception queue; the same transaction with its right TAC is the
    // card office's to book (exceptions.rs). A new record with the right TAC books.
    let mut r = offline(c.no, 3, 0, 10_000, 500);
    r.card_type = CardType::Cpu;
    r.tac = expected_tac(&r);
    upload(s, r).unwrap();
    // Online: authorised without a TAC, the success upload brings it and is verified.
    let mut o = purchase(c.no, 2, 1, 9_500, 100);
    o.card_type = CardType::Cpu;
    debit(s, &c, o.clone()).unwrap();
    let mut done = o;
    done.status = RecordStatus::Success;
    done.tac = 42;
    assert_eq!(refused(upload(s, done.clone())), ReturnCode::OTHER_ERROR.0);
    done.tac = expected_tac(&done);
    upload(s, done).unwrap();
    assert_eq!(card_now(s, c.no).balance, 9_400);
    audit_clean(s);
}

// R-H6: the audit finds books that do not balance, accounts that differ from their
// transfers, card mirrors that differ from their accounts, records booked twice, and (R-H5,
// R-H4) counters and blacklist entries that disagree with the card.
pub fn audit_detects_tampering(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    debit(s, &c, purchase(c.no, 1, 0, 10_000, 100)).unwrap();
    audit_clean(s);
    let no = c.no.get();
    s.execute(move |tx| {
        tx.conn.exec(
            "INSERT INTO transfers (id, from_account, to_account, amount, kind, device, serial, \
             time) VALUES ('rec:forged', $1, 'merchant:100', 100, 'debit', $2, 1, 0)",
            &[format!("card:{no}").into(), repo::device_key(DEVICE).into()],
        )
    })
    .unwrap();
    let report = s.execute(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.balance_sum, 0, "balances untouched still sum to 0");
    assert_eq!(report.account_mismatches.len(), 2, "{report:?}");
    assert_eq!(report.record_mismatches.len(), 1, "{report:?}");
    s.execute(move |tx| {
        tx.conn.exec(
            "UPDATE cards SET balance = balance + 1 WHERE no = $1",
            &[no.into()],
        )
    })
    .unwrap();
    let report = s.execute(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(report.card_mismatches.len(), 1, "{report:?}");
    s.execute(move |tx| {
        tx.conn.exec(
            "UPDATE cards SET counters_used = 9, status = 'frozen' WHERE no = $1",
            &[no.into()],
        )
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(report.counter_mismatches, vec![no]);
    assert_eq!(report.blacklist_mismatches, vec![no]);
    s.execute(|tx| {
        tx.conn.exec(
            "UPDATE accounts SET balance = balance + 5 WHERE id = 'fee'",
            &[],
        )
    })
    .unwrap();
    let report = s.execute(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(report.balance_sum, 5);
}

// R-F4.1, R-P5.1, R-F4.20: sign-in answers with merchant, parameters, blacklist version and
// clock; the terminal's clock and blacklist version are kept for monitoring.
pub fn sign_in_and_status(f: &Fixture) {
    let s = &f.store;
    world(s);
    let term_clock = at("2026-03-02 11:58:00");
    let r = s
        .execute(move |tx| signin::sign_in(tx, &origin(), term_clock, 3, now()))
        .unwrap();
    assert_eq!(r.merchant_no, MERCHANT);
    assert_eq!(r.merchant_name, "一食堂");
    assert_eq!(r.clock, now());
    assert_eq!(r.params.version, 1);
    let d = s.execute(|tx| admin::device(tx, DEVICE)).unwrap();
    let report = d.last_report.unwrap();
    assert_eq!(
        (report.terminal_clock, report.blacklist_version),
        (term_clock, 3)
    );
    s.execute(|tx| {
        admin::report_device_status(
            tx,
            DEVICE,
            DeviceReport {
                at: now(),
                pending_records: 12,
                terminal_clock: now(),
                blacklist_version: 4,
            },
        )
    })
    .unwrap();
    let d = s.execute(|tx| admin::device(tx, DEVICE)).unwrap();
    assert_eq!(d.last_report.unwrap().pending_records, 12);
    let bad = Origin {
        device: PhysicalId([0xEE; 4]),
        ..origin()
    };
    assert_eq!(
        refused(s.execute(move |tx| signin::sign_in(tx, &bad, now(), 0, now()))),
        20
    );
}

// A refused or failing job inside a group-committed batch does not disturb the others.
pub fn batch_isolates_failed_job(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 100_000);
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..60u32 {
        // Every third request is refused (amount 0); all others book.
        let amount = if i % 3 == 0 { 0 } else { 10 };
        let mut r = offline(c.no, 1_000 + i, i, 0, amount);
        r.balance_before = 100_000;
        r.balance_after = 100_000 - amount;
        let tac = s.tac_verifier();
        let reply = tx.clone();
        s.submit(
            move |t| domain::records::upload(t, &origin(), &r, tac.as_deref(), now()),
            move |res| reply.send(res.is_ok()).unwrap(),
        )
        .unwrap();
    }
    drop(tx);
    let oks = rx.iter().filter(|ok| *ok).count();
    assert_eq!(oks, 40);
    assert_eq!(card_now(s, c.no).balance, 100_000 - 400);
    audit_clean(s);
}

// Scale-out (R-H7 several FEPs, R-H2, R-H4): two independent stores (own writers, own
// connections) on one database hammer the same cards and the blacklist from threads;
// nothing is booked twice and blacklist versions stay unique and gap-free.
pub fn scale_out_two_stores(f: &Fixture) {
    let a = f.store.clone();
    world(&a);
    let b = (f.reopen)();
    let cards: Vec<_> = (0..4).map(|_| card(&a, 1_000_000)).collect();
    let cards = Arc::new(cards);
    let booked = Arc::new(AtomicI64::new(0));
    let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for t in 0..4u32 {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        let cards = Arc::clone(&cards);
        let booked = Arc::clone(&booked);
        let versions = Arc::clone(&versions);
        threads.push(std::thread::spawn(move || {
            for i in 0..40u32 {
                // Both stores upload the same records: each must be booked once.
                let c = &cards[(i % 4) as usize];
                let serial = i;
                let r = offline(c.no, serial, i / 4, 0, 10);
                let mut r = r;
                r.balance_before = 1_000_000;
                r.balance_after = 1_000_000 - 10;
                let out = upload(&store, r).unwrap();
                if !out.duplicate {
                    booked.fetch_add(10, Ordering::SeqCst);
                }
                // And race on the blacklist: each thread loses and finds its own card.
                if i % 10 == t {
                    let no = cards[(t % 4) as usize].no;
                    let (_, v1) = store.execute(move |tx| admin::report_loss(tx, no)).unwrap();
                    let (_, v2) = store
                        .execute(move |tx| admin::report_found(tx, no))
                        .unwrap();
                    versions.lock().unwrap().extend([v1, v2]);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let total: i64 = cards
        .iter()
        .map(|c| 1_000_000 - card_now(&b, c.no).balance)
        .sum();
    assert_eq!(total, 400, "40 distinct records of 10 fen");
    assert_eq!(booked.load(Ordering::SeqCst), 400);
    // Every blacklist change got its own version: together they are 1..=n, no gap.
    let v = a.execute(blacklist::version).unwrap();
    let mut seen = versions.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (1..=v).collect::<Vec<_>>());
    assert_eq!(v, 32, "4 threads × 4 rounds × (loss + found)");
    audit_clean(&a);
}

// Reads run on reader connections: they see every committed write, and cannot write.
pub fn reads_are_separate_and_read_only(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 700);
    let no = c.no;
    assert_eq!(s.read(move |tx| admin::card(tx, no)).unwrap().balance, 700);
    s.execute(move |tx| admin::report_loss(tx, no)).unwrap();
    let d = s
        .read(|tx| blacklist::changes_since(tx, 0, None, 10))
        .unwrap();
    assert_eq!(d.changes, vec![(no, true)]);
    let write = s.read(move |tx| admin::report_found(tx, no));
    assert!(matches!(write, Err(HostError::Db { .. })), "{write:?}");
    assert_eq!(card_now(s, no).status, CardStatus::Lost);
}

// Scale-out under group commit (R-H2, R-H6): two stores on one database each queue many
// uploads at once, so batches lock the same cards in opposite orders. Deadlocks are
// resolved by re-running the jobs; every record is booked exactly once.
pub fn concurrent_batches_across_stores(f: &Fixture) {
    let a = f.store.clone();
    world(&a);
    let b = (f.reopen)();
    let second = PhysicalId([5, 6, 7, 8]);
    a.execute(move |tx| add_device(tx, second, 8)).unwrap();
    let cards: Vec<_> = (0..6).map(|_| card(&a, 1_000_000)).collect();
    let per_store = 120u32;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for (store, device, terminal_no, reverse) in
        [(&a, DEVICE, TERMINAL_NO, false), (&b, second, 8, true)]
    {
        for i in 0..per_store {
            let k = if reverse { per_store - 1 - i } else { i };
            let c = &cards[(k % 6) as usize];
            // Counters are unique per card across both stores: even for one, odd for the other.
            let counter = (k / 6) * 2 + u32::from(reverse);
            let mut r = offline(c.no, k, counter, 1_000_000, 3);
            r.device = device;
            let origin = Origin {
                fep: FEP,
                device,
                terminal_no,
            };
            let tac = store.tac_verifier();
            let reply = done_tx.clone();
            store
                .submit(
                    move |tx| domain::records::upload(tx, &origin, &r, tac.as_deref(), now()),
                    move |res| {
                        reply
                            .send(res.and_then(wire_view).map(|o| o.duplicate))
                            .unwrap()
                    },
                )
                .unwrap();
        }
    }
    drop(done_tx);
    let results: Vec<_> = done_rx.iter().collect();
    assert_eq!(results.len(), 2 * per_store as usize);
    for r in &results {
        assert!(matches!(r, Ok(false)), "{r:?}");
    }
    let total: i64 = cards
        .iter()
        .map(|c| 1_000_000 - card_now(&b, c.no).balance)
        .sum();
    assert_eq!(total, 3 * 2 * i64::from(per_store));
    audit_clean(&a);
}

// ---- records collected from cards across terminals (R-F4.17, R-H2, R-H5) -----------------

const OTHER: PhysicalId = PhysicalId([0x05, 0x06, 0x07, 0x08]);
const OTHER_MERCHANT: u32 = 200;

fn origin_of(device: PhysicalId, terminal_no: u32) -> Origin {
    Origin {
        fep: FEP,
        device,
        terminal_no,
    }
}

/// Terminal B: another device of the system, at another merchant.
fn other_terminal(s: &Store) -> Origin {
    s.execute(|tx| {
        admin::create_merchant(tx, OTHER_MERCHANT, "二食堂")?;
        admin::register_device(
            tx,
            NewDevice {
                id: OTHER,
                terminal_no: 8,
                merchant_no: Some(OTHER_MERCHANT),
                mac_suite: MacSuite::Aes128Cmac,
                functions: Functions::ALL,
                max_amount: 50_000,
                params: ykt_host::params_codec::default_params(),
            },
        )?;
        admin::set_device_status(tx, OTHER, DeviceStatus::Enabled)?;
        admin::set_device_key(tx, OTHER, KEY)
    })
    .unwrap();
    origin_of(OTHER, 8)
}

fn upload_as(s: &Store, o: Origin, r: ykt_proto::Record) -> Result<Outcome> {
    let tac = s.tac_verifier();
    s.execute(move |tx| domain::records::upload(tx, &o, &r, tac.as_deref(), now()))
        .and_then(wire_view)
}

/// The record as another terminal reads it from the card's ring (`CardRecord::to_collected`):
/// the maker's device and serial, no merchant, written, the reader's wallet.
pub fn as_collected(r: &ykt_proto::Record) -> ykt_proto::Record {
    ykt_proto::Record {
        kind: RecordKind::Collected,
        status: RecordStatus::Written,
        online: false,
        merchant_no: 0,
        wallet_no: 0,
        ..r.clone()
    }
}

fn stored(s: &Store, d: PhysicalId, serial: u32) -> (repo::StoredRecord, Option<PhysicalId>) {
    s.read(move |tx| {
        let r = repo::record_get(tx.conn, d, serial, false)?.unwrap();
        Ok((r, repo::record_collected_by(tx.conn, d, serial)?))
    })
    .unwrap()
}

fn merchant(s: &Store, no: u32) -> i64 {
    s.execute(move |tx| admin::merchant_balance(tx, no))
        .unwrap()
}

// R-F4.17, R-H5, R-H2: a debit pending on terminal A (offline, not uploaded) leaves a gap the
// host sees when the card is used online on terminal B (info 4 + collect); B uploads the
// record from the card's ring with A's identity and merchant 0; the host books it once, to
// A's merchant, marked as collected by B; A's own upload later is the same transaction and
// is acknowledged, never booked twice; a different content under that identity is 30.
pub fn collected_across_terminals(f: &Fixture) {
    let s = &f.store;
    world(s);
    let b = other_terminal(s);
    let c = card(s, 10_000);
    // On A, offline, pending: counter 0, 3.00 元.
    let on_a = offline(c.no, 41, 0, 10_000, 300);
    // On B, online: counter 1 → the host sees counter 0 missing.
    let mut on_b = purchase(c.no, 1, 1, 9_700, 100);
    on_b.device = OTHER;
    on_b.merchant_no = OTHER_MERCHANT;
    let req = DebitRequest {
        origin: b,
        record: on_b,
        card_view: Some(view(&c)),
    };
    let out = s
        .execute(move |tx| domain::records::authorize(tx, &req, now()))
        .unwrap();
    assert_eq!(out.info(), InfoCode::RECORDS_MISSING);
    assert_eq!(out.collect, 2, "back to counter 0");
    // B collects the ring; a merchant the uploader claims for A's record is not trusted.
    let collected = ykt_proto::Record {
        merchant_no: OTHER_MERCHANT,
        ..as_collected(&on_a)
    };
    let out = upload_as(s, b, collected.clone()).unwrap();
    assert!(!out.duplicate);
    assert!(!out.notices.contains(InfoCode::RECORDS_MISSING), "{out:?}");
    assert_eq!(out.collect, 0);
    assert_eq!(card_now(s, c.no).balance, 9_600);
    assert_eq!(merchant(s, MERCHANT), 300, "A's merchant");
    assert_eq!(merchant(s, OTHER_MERCHANT), 100);
    let (rec, by) = stored(s, DEVICE, 41);
    assert!(rec.booked);
    assert_eq!(rec.record.kind, RecordKind::Collected);
    assert_eq!(rec.record.merchant_no, MERCHANT);
    assert_eq!(by, Some(OTHER), "provenance: collected by B");
    // B collects it again: acknowledged, nothing booked.
    assert!(upload_as(s, b, collected.clone()).unwrap().duplicate);
    // A's network comes back: its own record is the same transaction.
    let out = upload(s, on_a.clone()).unwrap();
    assert!(out.duplicate);
    assert_eq!(card_now(s, c.no).balance, 9_600);
    assert_eq!(merchant(s, MERCHANT), 300);
    // The same identity with other money is a different record (R-H2).
    let forged = ykt_proto::Record {
        amount: 299,
        balance_after: 9_701,
        ..on_a.clone()
    };
    assert_eq!(refused(upload(s, forged)), 30);
    let mut forged_collected = as_collected(&on_a);
    forged_collected.time += chrono::Duration::seconds(1);
    assert_eq!(refused(upload_as(s, b, forged_collected)), 30);
    audit_clean(s);
}

// R-F4.17, R-H2: the other order: the maker uploaded first, then another terminal collects
// the same transaction → acknowledged, stored once, booked once; a collected record whose
// counter another record already used is kept unbooked.
pub fn collected_after_maker_upload(f: &Fixture) {
    let s = &f.store;
    world(s);
    let b = other_terminal(s);
    let c = card(s, 5_000);
    let on_a = offline(c.no, 7, 0, 5_000, 250);
    assert!(!upload(s, on_a.clone()).unwrap().duplicate);
    let out = upload_as(s, b, as_collected(&on_a)).unwrap();
    assert!(out.duplicate);
    let (rec, by) = stored(s, DEVICE, 7);
    assert_eq!(rec.record, on_a, "the maker's record stays as it was");
    assert_eq!(by, None);
    // A ring record of another identity at a counter already booked (R-H5): kept, unbooked.
    let mut twin = as_collected(&on_a);
    twin.serial = 8;
    assert!(upload_as(s, b, twin).unwrap().duplicate);
    let (rec, by) = stored(s, DEVICE, 8);
    assert!(!rec.booked);
    assert_eq!(by, Some(OTHER));
    assert_eq!(card_now(s, c.no).balance, 4_750);
    assert_eq!(merchant(s, MERCHANT), 250);
    audit_clean(s);
}

// R-F4.17, R-H6: a collected record made by a device the host does not know (or one without
// a merchant) is booked to the suspense account: the card's money is never lost and the books
// balance. The uploader itself must be valid (20 for an unknown uploader).
pub fn collected_unknown_device_to_suspense(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 2_000);
    let mut ghost = as_collected(&offline(c.no, 3, 0, 2_000, 150));
    ghost.device = PhysicalId([0x0E, 0x0E, 0x0E, 0x0E]);
    let unknown = origin_of(PhysicalId([0x0D, 0, 0, 1]), 1);
    assert_eq!(refused(upload_as(s, unknown, ghost.clone())), 20);
    assert!(!upload_as(s, origin(), ghost.clone()).unwrap().duplicate);
    let suspense = s
        .read(|tx| repo::account_balance(tx.conn, "suspense"))
        .unwrap();
    assert_eq!(suspense, Some(150));
    assert_eq!(merchant(s, MERCHANT), 0);
    assert_eq!(card_now(s, c.no).balance, 1_850);
    let (rec, by) = stored(s, ghost.device, 3);
    assert!(rec.booked);
    assert_eq!(rec.record.merchant_no, 0);
    assert_eq!(by, Some(DEVICE));
    assert!(upload_as(s, origin(), ghost).unwrap().duplicate);
    audit_clean(s);
}

// R-H1 with the writers' configuration cache: a device disabled through another store (a
// second host process), or by SQL outside ykt, is refused (23) from the next request on.
pub fn config_changes_reach_every_writer(f: &Fixture) {
    let a = &f.store;
    world(a);
    let c = card(a, 100_000);
    let b = (f.reopen)();
    debit(a, &c, purchase(c.no, 1, 0, 100_000, 10)).unwrap();
    b.execute(|tx| admin::set_device_status(tx, DEVICE, DeviceStatus::Disabled))
        .unwrap();
    assert_eq!(refused(debit(a, &c, purchase(c.no, 2, 1, 99_990, 10))), 23);
    b.execute(|tx| admin::set_device_status(tx, DEVICE, DeviceStatus::Enabled))
        .unwrap();
    debit(a, &c, purchase(c.no, 3, 1, 99_990, 10)).unwrap();
    b.execute(|tx| {
        tx.conn
            .exec("UPDATE devices SET status = 'disabled'", &[])
            .map(drop)
    })
    .unwrap();
    assert_eq!(refused(debit(a, &c, purchase(c.no, 4, 2, 99_980, 10))), 23);
    audit_clean(a);
}

// R-H1: a device disabled by a job that shares a group commit with a debit, ahead of it,
// refuses that debit (23): the cache is not used past a configuration change.
pub fn config_change_seen_in_the_same_batch(f: &Fixture) {
    world(&f.store);
    let s = &(f.reopen_one_writer)();
    let c = card(s, 100_000);
    // This writer now holds the device, enabled, in its cache.
    debit(s, &c, purchase(c.no, 1, 0, 100_000, 10)).unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    s.submit(
        move |_tx| {
            let _ = started_tx.send(());
            let _ = release_rx.lock().unwrap().recv();
            Ok(())
        },
        |_r: Result<()>| {},
    )
    .unwrap();
    started_rx.recv().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let disabled = done_tx.clone();
    s.submit(
        |tx| admin::set_device_status(tx, DEVICE, DeviceStatus::Disabled).map(drop),
        move |r| disabled.send(r.map(|()| 0)).unwrap(),
    )
    .unwrap();
    let req = DebitRequest {
        origin: origin(),
        record: purchase(c.no, 2, 1, 99_990, 10),
        card_view: Some(view(&c)),
    };
    s.submit(
        move |tx| domain::records::authorize(tx, &req, now()).map(|o| o.balance),
        move |r| done_tx.send(r).unwrap(),
    )
    .unwrap();
    release_tx.send(()).unwrap();
    assert!(done_rx.recv().unwrap().is_ok(), "the device was disabled");
    assert_eq!(refused(done_rx.recv().unwrap()), 23);
    audit_clean(s);
}

/// Sets the price list of keyboard-coded mode of `device`: (item code, price, subject).
fn set_price_list(s: &Store, device: PhysicalId, items: &[(u16, i64, u16)]) {
    let items: Vec<ykt_proto::PriceItem> = items
        .iter()
        .map(|&(code, price, subject)| ykt_proto::PriceItem {
            code,
            price,
            subject,
        })
        .collect();
    s.execute(move |tx| {
        let mut p = admin::device(tx, device)?.params;
        p.consumption_mode = ykt_proto::ConsumptionMode::Coded;
        p.price_list = items.clone();
        admin::set_device_params(tx, device, p)
    })
    .unwrap();
}

fn coded(mut r: ykt_proto::Record, item_code: u16) -> ykt_proto::Record {
    r.item_code = item_code;
    r
}

// R-F4.14: the host stores on each record the accounting subject of its item code in the
// price list of the device that made it, as that list is when the record is stored: online
// (authorisation), uploaded offline, cancellation, collected by another terminal (the maker's
// list, not the uploader's). Item code 0, an item code not in the list and an item of subject
// 0 have none (NULL). A later change of the price list rewrites no stored subject. The daily
// report groups booked debits by subject and by item code, with cancellations netted under
// the subject and item of the debit they undid.
pub fn subjects_on_records_and_in_report(f: &Fixture) {
    use ykt_host::domain::report::{self, Totals};
    let s = &f.store;
    world(s);
    let b = other_terminal(s);
    set_price_list(s, DEVICE, &[(1, 500, 10), (2, 300, 20), (3, 100, 0)]);
    let c = card(s, 100_000);

    // Online, item 1 → subject 10.
    debit(s, &c, coded(purchase(c.no, 1, 0, 100_000, 500), 1)).unwrap();
    // Online, item 2 → subject 20, then cancelled (R-P5.5).
    let on2 = coded(purchase(c.no, 2, 1, 99_500, 300), 2);
    debit(s, &c, on2.clone()).unwrap();
    let cancel = ykt_proto::Record {
        kind: RecordKind::Cancellation,
        serial: 3,
        original_serial: Some(2),
        ..on2
    };
    upload(s, cancel).unwrap();
    // Offline uploads: item 2 → 20; item 9 (not in the list), item 3 (subject 0) and
    // item 0 → none.
    upload(s, coded(offline(c.no, 4, 1, 99_500, 300), 2)).unwrap();
    upload(s, coded(offline(c.no, 5, 2, 99_200, 200), 9)).unwrap();
    upload(s, coded(offline(c.no, 6, 3, 99_000, 100), 3)).unwrap();
    upload(s, offline(c.no, 7, 4, 98_900, 50)).unwrap();
    let subject = |serial: u32| stored(s, DEVICE, serial).0.subject;
    assert_eq!(subject(1), Some(10));
    assert_eq!(subject(2), Some(20));
    assert_eq!(subject(3), Some(20), "the cancellation's own item code");
    assert_eq!(subject(4), Some(20));
    assert_eq!((subject(5), subject(6), subject(7)), (None, None, None));

    // The price list changes: item 1 → 11, item 9 → 30. History stays as booked; the online
    // record's upload (reconciliation) keeps its subject; new records take the new list.
    set_price_list(s, DEVICE, &[(1, 500, 11), (9, 70, 30)]);
    let mut written = coded(purchase(c.no, 1, 0, 100_000, 500), 1);
    written.status = RecordStatus::Written;
    assert!(upload(s, written).unwrap().duplicate);
    assert_eq!(subject(1), Some(10));
    assert_eq!(subject(5), None);
    upload(s, coded(offline(c.no, 8, 5, 98_850, 70), 9)).unwrap();
    assert_eq!(subject(8), Some(30));
    // Terminal B (no price list) collects a record of this device from the card: the
    // maker's list decides. (A card's ring keeps no item code; here one is given to show
    // whose list is read.)
    let pending = coded(offline(c.no, 9, 6, 98_780, 40), 1);
    assert!(!upload_as(s, b, as_collected(&pending)).unwrap().duplicate);
    let (rec, by) = stored(s, DEVICE, 9);
    assert_eq!((rec.booked, by, rec.subject), (true, Some(OTHER), Some(11)));
    // The same record made on B (empty price list) has no subject.
    let mut on_b = coded(offline(c.no, 1, 7, 98_740, 10), 1);
    on_b.device = OTHER;
    on_b.merchant_no = OTHER_MERCHANT;
    upload_as(s, b, on_b).unwrap();
    assert_eq!(stored(s, OTHER, 1).0.subject, None);

    let r = s.read(|tx| report::daily(tx, now().date())).unwrap();
    let t = |debits: u64, debit_amount: i64, reversals: u64, reversal_amount: i64| Totals {
        debits,
        debit_amount,
        debit_fee: 0,
        reversals,
        reversal_amount,
        reversal_fee: 0,
    };
    let subjects: Vec<(Option<u16>, Totals)> =
        r.subjects.iter().map(|l| (l.subject, l.totals)).collect();
    assert_eq!(
        subjects,
        vec![
            (None, t(4, 360, 0, 0)),
            (Some(10), t(1, 500, 0, 0)),
            (Some(11), t(1, 40, 0, 0)),
            (Some(20), t(2, 600, 1, 300)),
            (Some(30), t(1, 70, 0, 0)),
        ]
    );
    let items: Vec<(u16, Totals)> = r.items.iter().map(|l| (l.item_code, l.totals)).collect();
    assert_eq!(
        items,
        vec![
            (0, t(1, 50, 0, 0)),
            (1, t(3, 550, 0, 0)),
            (2, t(2, 600, 1, 300)),
            (3, t(1, 100, 0, 0)),
            (9, t(2, 270, 0, 0)),
        ]
    );
    assert_eq!(r.total, t(9, 1_570, 1, 300));
    assert_eq!(r.total.net_amount(), 1_270);
    // The JSON of the admin API: `null` for records without a subject.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["subjects"][0]["subject"], serde_json::Value::Null);
    assert_eq!(json["subjects"][3]["subject"], 20);
    assert_eq!(json["subjects"][3]["reversal_amount"], 300);
    assert_eq!(json["items"][2]["item_code"], 2);
    audit_clean(s);
}
