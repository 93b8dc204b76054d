//! Administrative domain functions at the limits of money and under concurrency across two
//! host processes (issue 10), on both backends.

use std::sync::{Arc, Barrier};

use ykt_host::domain::{admin, blacklist};
use ykt_host::*;
use ykt_proto::{CardNo, PhysicalId};

use super::support::*;

/// What a card's 24-bit wallet holds.
const MAX: i64 = 0xFF_FFFF;

fn is_invalid<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(r, Err(HostError::Invalid(_)))
}

// issue 10.1, 10.2: deposits, opening balances, subsidies, device limits and parameter money
// refuse i64's ends, −1 and the 24-bit limit + 1 (never a wrapped balance); the books stay
// clean.
pub fn money_limits_in_the_domain(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let no = c.no;
    for amount in [i64::MIN, -1, 0, MAX + 1, i64::MAX, MAX - 10_000 + 1] {
        let r = s.execute(move |tx| {
            admin::deposit(
                tx,
                admin::Payer::system(&ykt_host::domain::journal::Actor::system("test")),
                no,
                amount,
                &format!("d{amount}"),
                now(),
            )
        });
        assert!(is_invalid(&r), "deposit {amount}: {r:?}");
    }
    let full = s
        .execute(move |tx| {
            admin::deposit(
                tx,
                admin::Payer::system(&ykt_host::domain::journal::Actor::system("test")),
                no,
                MAX - 10_000,
                "top",
                now(),
            )
        })
        .unwrap();
    // R-B4: a deposit waits for the card; the balance it would give counts against the limit.
    assert_eq!((full.balance, full.waiting), (10_000, MAX - 10_000));
    let r = s.execute(move |tx| {
        let actor = ykt_host::domain::journal::Actor::system("test");
        let payer = admin::Payer::system(&actor);
        admin::deposit(tx, payer, no, 1, "over", now())
    });
    assert!(
        is_invalid(&r),
        "deposit beyond the limit once picked up: {r:?}"
    );
    for b in [i64::MIN, -5_000, -1, MAX + 1, i64::MAX] {
        assert!(is_invalid(&admin::check_opening_balance(b)), "{b}");
        let r = s.execute(move |tx| {
            let c = admin::issue_numbered_card(tx, 3_000_000_000, 1, now().date())?;
            admin::pay_opening_balance(
                tx,
                admin::Payer::system(&ykt_host::domain::journal::Actor::system("test")),
                c,
                b,
                "open",
                now(),
            )
        });
        assert!(is_invalid(&r), "opening balance {b}: {r:?}");
    }
    for amount in [i64::MIN, 0, MAX + 1, i64::MAX] {
        let r = s.execute(move |tx| admin::add_subsidy(tx, no, amount, 1, now()));
        assert!(is_invalid(&r), "subsidy {amount}: {r:?}");
    }
    for (i, limit) in [i64::MIN, -1, MAX + 1, i64::MAX].into_iter().enumerate() {
        let r = s.execute(move |tx| {
            admin::update_device(tx, DEVICE, |d| {
                d.max_amount = limit;
                Ok(())
            })
        });
        assert!(is_invalid(&r), "max_amount {limit}: {r:?}");
        let id = PhysicalId([9, 9, 9, i as u8]);
        let r = s.execute(move |tx| {
            admin::register_device(
                tx,
                NewDevice {
                    id,
                    terminal_no: 90 + i as u32,
                    merchant_no: Some(MERCHANT),
                    mac_suite: MacSuite::Aes128Cmac,
                    functions: Functions::ALL,
                    max_amount: limit,
                    params: params_codec::default_params(),
                },
            )
        });
        assert!(is_invalid(&r), "new device, max_amount {limit}: {r:?}");
        assert!(
            s.read(move |tx| repo::device_get(tx.conn, id))
                .unwrap()
                .is_none()
        );
    }
    for v in [i64::MIN, -1, MAX + 1, i64::MAX] {
        let r = s.execute(move |tx| {
            admin::change_device_params(tx, DEVICE, |p| {
                p.daily_password_threshold = v;
                Ok(())
            })
        });
        assert!(is_invalid(&r), "threshold {v}: {r:?}");
    }
    audit_clean(s);
}

// issue 10.1: the audit reads any values the columns hold: balances and transfers whose sums
// pass i64 (a plain SUM fails with "integer overflow" / "bigint out of range") are reported,
// with their exact sums, instead of failing the audit.
pub fn audit_reads_overflowing_data(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    debit(s, &c, purchase(c.no, 1, 0, 10_000, 100)).unwrap();
    audit_clean(s);
    let no = c.no.get();
    let big = i128::from(i64::MAX);
    s.execute(move |tx| {
        let card = format!("card:{no}");
        tx.conn.exec(
            "UPDATE cards SET balance = $1 WHERE no = $2",
            &[i64::MIN.into(), no.into()],
        )?;
        for id in [card.as_str(), "merchant:100"] {
            tx.conn.exec(
                "UPDATE accounts SET balance = $1 WHERE id = $2",
                &[i64::MAX.into(), id.into()],
            )?;
        }
        for id in ["forged-1", "forged-2"] {
            tx.conn.exec(
                "INSERT INTO transfers (id, from_account, to_account, amount, kind, time) \
                 VALUES ($1, 'funding', $2, $3, 'deposit', 0)",
                &[id.into(), card.as_str().into(), i64::MAX.into()],
            )?;
        }
        tx.conn.exec(
            "UPDATE records SET amount = $1, fee = $1",
            &[i64::MAX.into()],
        )
    })
    .unwrap();
    let r = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(!r.is_clean());
    // funding −10000, card and merchant i64::MAX each, fee 0.
    assert_eq!(r.balance_sum, 2 * big - 10_000, "{r:?}");
    assert_eq!(r.card_balances_out_of_range, vec![(no, i64::MIN)], "{r:?}");
    assert_eq!(r.card_mismatches, vec![(no, i64::MIN, i64::MAX)], "{r:?}");
    let card_account = format!("card:{no}");
    let sums: Vec<(&str, i128)> = r
        .account_mismatches
        .iter()
        .map(|(a, _, sum)| (a.as_str(), *sum))
        .collect();
    assert!(
        sums.contains(&(card_account.as_str(), 10_000 - 100 + 2 * big)),
        "{r:?}"
    );
    assert!(sums.contains(&("funding", -10_000 - 2 * big)), "{r:?}");
    assert!(sums.contains(&("merchant:100", 100)), "{r:?}");
    assert_eq!(r.record_mismatches.len(), 1, "{r:?}");
    assert_eq!(r.record_mismatches[0].2, 2 * big, "{r:?}");
    assert_eq!(r.record_mismatches[0].3, 100, "{r:?}");
}

/// Runs `job` at the same moment on two stores (two host processes on one database).
fn race<T: Send + 'static>(
    stores: [&Store; 2],
    job: impl Fn(&Store) -> Result<T> + Send + Sync + 'static,
) -> [Result<T>; 2] {
    let barrier = Arc::new(Barrier::new(2));
    let job = Arc::new(job);
    let threads = stores.map(|s| {
        let (s, barrier, job) = (s.clone(), Arc::clone(&barrier), Arc::clone(&job));
        std::thread::spawn(move || {
            barrier.wait();
            job(&s)
        })
    });
    threads.map(|t| t.join().unwrap())
}

const ROUNDS: usize = 30;

// issue 10.5, R-H4: two loss reports of one card at the same moment on two hosts: exactly
// one succeeds, with the next blacklist version; the other gets the refusal a second report
// gets. The same for two reports of the card found.
pub fn loss_reports_race_across_stores(f: &Fixture) {
    let a = f.store.clone();
    world(&a);
    let b = (f.reopen)();
    let mut versions = Vec::new();
    for round in 0..ROUNDS {
        let no: CardNo = card(&a, 0).no;
        for (lose, why) in [
            (true, "only a normal card can be reported lost"),
            (false, "the card is not reported lost"),
        ] {
            let before = a.read(blacklist::version).unwrap();
            let out = race([&a, &b], move |s| {
                s.execute(move |tx| {
                    if lose {
                        admin::report_loss(tx, no)
                    } else {
                        admin::report_found(tx, no)
                    }
                })
            });
            let ok: Vec<u32> = out
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|r| r.1)
                .collect();
            assert_eq!(ok, vec![before + 1], "round {round}: {out:?}");
            let refused = out.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert!(
                matches!(refused, HostError::Invalid(m) if m == why),
                "round {round}: {refused:?}"
            );
            assert_eq!(a.read(blacklist::version).unwrap(), before + 1);
            versions.push(before + 1);
        }
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    audit_clean(&a);
}

// issue 10.5, R-H1: two parameter patches of one device at the same moment on two hosts
// both take effect (neither undoes the other), each with its own version.
pub fn params_patches_race_across_stores(f: &Fixture) {
    let a = f.store.clone();
    world(&a);
    let b = (f.reopen)();
    for round in 0..ROUNDS as u16 {
        let before = a.read(|tx| admin::device(tx, DEVICE)).unwrap().params;
        let out = race([&a, &b], move |s| {
            s.execute(move |tx| {
                admin::change_device_params(tx, DEVICE, |p| {
                    // Read-modify-write of what is found: a lost update shows as + 1.
                    p.max_daily_uses += 1;
                    p.max_offline_hours += 1;
                    Ok(())
                })
            })
        });
        let versions: Vec<u32> = out
            .iter()
            .map(|r| r.as_ref().unwrap().params.version)
            .collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            vec![before.version + 1, before.version + 2],
            "round {round}: {out:?}"
        );
        let after = a.read(|tx| admin::device(tx, DEVICE)).unwrap().params;
        assert_eq!(
            after.max_daily_uses,
            before.max_daily_uses + 2,
            "round {round}"
        );
        assert_eq!(after.max_offline_hours, before.max_offline_hours + 2);
    }
}

// issue 10.5, R-T2.2: two cards issued at the same moment on two hosts with one display
// number: exactly one is issued; the other gets the refusal a later issue gets.
pub fn display_number_race_across_stores(f: &Fixture) {
    let a = f.store.clone();
    world(&a);
    let b = (f.reopen)();
    for round in 0..ROUNDS as u64 {
        let display = ykt_proto::DisplayNo::new(4_000_000_000 + round).unwrap();
        let out = race([&a, &b], move |s| {
            s.execute(move |tx| {
                admin::issue_card(
                    tx,
                    NewCard {
                        display_no: display,
                        class: 1,
                        expiry: now().date(),
                        counter: 0,
                    },
                )
            })
        });
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 1, "{out:?}");
        let refused = out.iter().find_map(|r| r.as_ref().err()).unwrap();
        let why = format!("display number {} is in use", display.get());
        assert!(
            matches!(refused, HostError::Invalid(m) if *m == why),
            "round {round}: {refused:?}"
        );
    }
    audit_clean(&a);
}
