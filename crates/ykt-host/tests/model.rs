//! Property test of the booking state machine against a model: random sequences of online
//! debits, offline uploads, repeats, cancellations and reversals on one card. Whatever the
//! order, every record is booked once, the card mirror follows the model and the audit is
//! clean (R-H2, R-H6, R-P5.2, R-P5.5, R-P5.9).
#![allow(clippy::unwrap_used)]

#[path = "conformance/support.rs"]
mod support;

use proptest::prelude::*;
use support::*;
use ykt_host::domain::admin;
use ykt_proto::{Record, RecordKind};

#[derive(Clone, Debug)]
enum Op {
    Online(i64),
    Offline(i64),
    RepeatEarlier(usize),
    CancelLastOnline,
    ReverseLastOffline,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..500i64).prop_map(Op::Online),
        (1..500i64).prop_map(Op::Offline),
        any::<usize>().prop_map(Op::RepeatEarlier),
        Just(Op::CancelLastOnline),
        Just(Op::ReverseLastOffline),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn books_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let f = sqlite();
        let s = &f.store;
        world(s);
        let c = card(s, 10_000);
        let mut balance = 10_000i64; // the card's (and the model's) balance
        let mut counter = 0u32;
        let mut serial = 0u32;
        let mut sent: Vec<Record> = Vec::new();
        let mut last_online: Option<Record> = None;
        let mut last_offline: Option<Record> = None;
        for op in ops {
            match op {
                Op::Online(a) | Op::Offline(a) if a > balance => {}
                Op::Online(a) => {
                    serial += 2;
                    let r = purchase(c.no, serial, counter, balance, a);
                    debit(s, &c, r.clone()).unwrap();
                    balance -= a;
                    counter += 1;
                    last_online = Some(r.clone());
                    sent.push(r);
                }
                Op::Offline(a) => {
                    serial += 2;
                    let r = offline(c.no, serial, counter, balance, a);
                    prop_assert!(!upload(s, r.clone()).unwrap().duplicate);
                    balance -= a;
                    counter += 1;
                    last_offline = Some(r.clone());
                    sent.push(r);
                }
                Op::RepeatEarlier(i) if !sent.is_empty() => {
                    let r = sent[i % sent.len()].clone();
                    let out = if r.online && r.kind == RecordKind::Purchase {
                        debit(s, &c, r)
                    } else {
                        upload(s, r)
                    };
                    prop_assert!(out.unwrap().duplicate);
                }
                Op::RepeatEarlier(_) => {}
                Op::CancelLastOnline => {
                    if let Some(o) = last_online.take() {
                        let mut x = o.clone();
                        x.kind = RecordKind::Cancellation;
                        x.serial = o.serial + 1;
                        x.original_serial = Some(o.serial);
                        upload(s, x.clone()).unwrap();
                        balance += o.amount;
                        // The card was never written: its counter is free again, unless a
                        // later transaction used the next one already.
                        if counter == o.card_counter + 1 {
                            counter = o.card_counter;
                        }
                        sent.push(x);
                    }
                }
                Op::ReverseLastOffline => {
                    if let Some(o) = last_offline.take() {
                        serial += 2;
                        let mut x = offline(c.no, serial, counter, balance, o.amount);
                        x.kind = RecordKind::Reversal;
                        x.original_serial = Some(o.serial);
                        x.balance_after = balance + o.amount;
                        upload(s, x.clone()).unwrap();
                        balance += o.amount;
                        counter += 1;
                        sent.push(x);
                    }
                }
            }
            prop_assert_eq!(card_now(s, c.no).balance, balance);
        }
        let merchant = s.execute(|tx| admin::merchant_balance(tx, MERCHANT)).unwrap();
        prop_assert_eq!(merchant, 10_000 - balance);
        audit_clean(s);
    }
}
