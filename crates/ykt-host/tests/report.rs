//! The daily report (`domain::report::daily`) on SQLite and PostgreSQL: per merchant and per
//! device, debits, fees and the cancellations / reversals that undid some of them.
#![allow(clippy::unwrap_used)]

#[path = "conformance/support.rs"]
mod support;

use chrono::NaiveDate;
use support::*;
use ykt_host::Origin;
use ykt_host::domain::admin;
use ykt_host::domain::report::{self, Totals};
use ykt_proto::{PhysicalId, RecordKind, RecordStatus};

const OTHER_MERCHANT: u32 = 200;
const OTHER_DEVICE: PhysicalId = PhysicalId([0x0A, 0x0B, 0x0C, 0x0D]);

fn day() -> NaiveDate {
    now().date()
}

// R-H3, R-P5.5: per merchant and device, debits with fees, and the cancellation of an online
// debit counted as a reversal with the amounts it gave back; other days and unbooked records
// (black card, card pulled) count nothing.
fn report_counts_debits_reversals_fees(f: &Fixture) {
    let s = &f.store;
    world(s);
    s.execute(|tx| {
        admin::create_merchant(tx, OTHER_MERCHANT, "二食堂")?;
        add_device(tx, OTHER_DEVICE, 8)?;
        // Class 1 pays a 5 % fee on the first device (R-F4.13).
        let mut p = admin::device(tx, DEVICE)?.params;
        p.fee_rates[1] = 5;
        admin::set_device_params(tx, DEVICE, p)?;
        // The second device belongs to the second merchant.
        let mut d = admin::device(tx, OTHER_DEVICE)?;
        d.merchant_no = Some(OTHER_MERCHANT);
        ykt_host::repo::device_update(tx.conn, &d)
    })
    .unwrap();
    let c = card(s, 100_000);

    // Device 1, merchant 100: an online debit with a fee, cancelled (R-P5.5) ...
    let mut online = purchase(c.no, 10, 0, 100_000, 1_000);
    online.fee = 50;
    online.balance_after = 100_000 - 1_050;
    debit(s, &c, online.clone()).unwrap();
    let mut cancel = online.clone();
    cancel.kind = RecordKind::Cancellation;
    cancel.serial = 11;
    cancel.original_serial = Some(10);
    upload(s, cancel).unwrap();
    // ... and an offline debit, uploaded twice (booked once).
    let off = offline(c.no, 12, 0, 100_000, 700);
    upload(s, off.clone()).unwrap();
    assert!(upload(s, off).unwrap().duplicate);
    // An abnormal record: stored, not booked, not reported.
    let mut pulled = offline(c.no, 13, 1, 99_300, 500);
    pulled.status = RecordStatus::CardPulled;
    upload(s, pulled).unwrap();

    // Device 2, merchant 200: one offline debit today, one yesterday.
    let mut other = offline(c.no, 1, 1, 99_300, 300);
    other.device = OTHER_DEVICE;
    other.merchant_no = OTHER_MERCHANT;
    let tac = s.tac_verifier();
    let o2 = Origin {
        fep: FEP,
        device: OTHER_DEVICE,
        terminal_no: 8,
    };
    let up = |r: ykt_proto::Record| {
        let tac = tac.clone();
        s.execute(move |tx| ykt_host::domain::records::upload(tx, &o2, &r, tac.as_deref(), now()))
            .unwrap()
    };
    up(other.clone());
    let mut yesterday = offline(c.no, 2, 2, 99_000, 200);
    yesterday.device = OTHER_DEVICE;
    yesterday.merchant_no = OTHER_MERCHANT;
    yesterday.time = at("2026-03-01 18:30:00");
    up(yesterday);

    let r = s.read(|tx| report::daily(tx, day())).unwrap();
    assert_eq!(r.merchants.len(), 2);
    let m1 = &r.merchants[0];
    assert_eq!(m1.merchant_no, MERCHANT);
    assert_eq!(
        m1.totals,
        Totals {
            debits: 2,
            debit_amount: 1_700,
            debit_fee: 50,
            reversals: 1,
            reversal_amount: 1_000,
            reversal_fee: 50,
        }
    );
    assert_eq!((m1.totals.net_amount(), m1.totals.net_fee()), (700, 0));
    let m2 = &r.merchants[1];
    assert_eq!(m2.merchant_no, OTHER_MERCHANT);
    assert_eq!((m2.totals.debits, m2.totals.debit_amount), (1, 300));
    assert_eq!(r.devices.len(), 2);
    assert_eq!(r.devices[0].device, DEVICE);
    assert_eq!(r.devices[0].totals, m1.totals);
    assert_eq!(r.devices[1].device, OTHER_DEVICE);
    assert_eq!(r.devices[1].totals, m2.totals);
    assert_eq!(r.total.debits, 3);
    assert_eq!(r.total.net_amount(), 1_000);

    // The day before holds only yesterday's debit; the day after nothing.
    let before = s
        .read(|tx| report::daily(tx, at("2026-03-01 00:00:00").date()))
        .unwrap();
    assert_eq!(before.total.debits, 1);
    assert_eq!(before.total.debit_amount, 200);
    let after = s
        .read(|tx| report::daily(tx, at("2026-03-03 00:00:00").date()))
        .unwrap();
    assert!(after.merchants.is_empty() && after.devices.is_empty());
    assert_eq!(after.total, Totals::default());
    audit_clean(s);
}

#[test]
fn sqlite_report() {
    report_counts_debits_reversals_fees(&sqlite());
}

#[test]
fn postgres_report() {
    let Some(f) = postgres() else { return };
    report_counts_debits_reversals_fees(&f);
}

mod model {
    //! The report against a model: random offline debits and abnormal records over two
    //! devices of two merchants and three days; the report's figures are the model's sums.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    struct Op {
        second_device: bool,
        day: u64,
        amount: i64,
        fee: i64,
        abnormal: bool,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            any::<bool>(),
            0..3u64,
            1..5_000i64,
            0..100i64,
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(second_device, day, amount, fee, abnormal)| Op {
                second_device,
                day,
                amount,
                fee,
                abnormal,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
        // R-H3, R-H6: every booked debit counts once, on its own day, for its merchant and
        // device; abnormal records count nowhere.
        #[test]
        fn report_equals_model(ops in proptest::collection::vec(op(), 0..25)) {
            let f = sqlite();
            let s = &f.store;
            world(s);
            s.execute(|tx| {
                admin::create_merchant(tx, OTHER_MERCHANT, "二食堂")?;
                add_device(tx, OTHER_DEVICE, 8)?;
                let mut d = admin::device(tx, OTHER_DEVICE)?;
                d.merchant_no = Some(OTHER_MERCHANT);
                ykt_host::repo::device_update(tx.conn, &d)
            })
            .unwrap();
            let c = card(s, 10_000_000);
            let first_day = day();
            let mut balance = 10_000_000;
            let mut model: BTreeMap<(NaiveDate, u32), (u64, i64, i64)> = BTreeMap::new();
            for (i, o) in ops.iter().enumerate() {
                let serial = u32::try_from(i).unwrap() + 1;
                let (device, merchant, terminal_no) = if o.second_device {
                    (OTHER_DEVICE, OTHER_MERCHANT, 8)
                } else {
                    (DEVICE, MERCHANT, TERMINAL_NO)
                };
                let mut r = offline(c.no, serial, serial - 1, balance, o.amount);
                r.device = device;
                r.merchant_no = merchant;
                r.fee = o.fee;
                r.balance_after = balance - o.amount - o.fee;
                r.time = (first_day + chrono::Days::new(o.day)).and_hms_opt(12, 0, 0).unwrap();
                if o.abnormal {
                    r.status = RecordStatus::CardPulled;
                } else {
                    balance = r.balance_after;
                    let e = model.entry((r.time.date(), merchant)).or_default();
                    *e = (e.0 + 1, e.1 + o.amount, e.2 + o.fee);
                }
                let origin = Origin { fep: FEP, device, terminal_no };
                let tac = s.tac_verifier();
                s.execute(move |tx| {
                    ykt_host::domain::records::upload(tx, &origin, &r, tac.as_deref(), now())
                })
                .unwrap();
            }
            for d in 0..3 {
                let date = first_day + chrono::Days::new(d);
                let r = s.read(move |tx| report::daily(tx, date)).unwrap();
                let got: Vec<(u32, u64, i64, i64)> = r
                    .merchants
                    .iter()
                    .map(|m| (m.merchant_no, m.totals.debits, m.totals.debit_amount, m.totals.debit_fee))
                    .collect();
                let want: Vec<(u32, u64, i64, i64)> = model
                    .range((date, 0)..=(date, u32::MAX))
                    .map(|((_, m), (n, a, fee))| (*m, *n, *a, *fee))
                    .collect();
                prop_assert_eq!(got, want);
                // Devices map one to one onto merchants here.
                prop_assert_eq!(r.devices.len(), r.merchants.len());
                prop_assert_eq!(r.total.reversals, 0);
            }
            audit_clean(s);
        }
    }
}
