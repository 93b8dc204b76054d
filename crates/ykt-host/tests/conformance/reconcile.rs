//! Card-vs-account reconciliation (卡库不平, R-B10): each kind of finding, its first-seen
//! time and its resolution, the alarm after N days or above an amount (a fake clock: the
//! time is an argument), and the codes 58 and 70 it gives online debits.

use chrono::{NaiveDateTime, TimeDelta};
use ykt_host::domain::reconcile::{self, Alarm, Applied, CardState, Show};
use ykt_host::*;
use ykt_proto::CardNo;

use super::support::*;

fn run(s: &Store, now: NaiveDateTime) -> Applied {
    let scan = s.read(reconcile::scan).unwrap();
    s.execute(move |tx| reconcile::apply(tx, &scan.candidates, now))
        .unwrap()
}

fn states(s: &Store, show: Show, now: NaiveDateTime) -> Vec<CardState> {
    s.read(move |tx| reconcile::list(tx, show, 0, 1_000, now))
        .unwrap()
}

fn state_of(s: &Store, no: CardNo, now: NaiveDateTime) -> Option<CardState> {
    states(s, Show::All, now)
        .into_iter()
        .find(|c| c.card_no == no.get())
}

fn unexplained(s: &Store, now: NaiveDateTime) -> i64 {
    s.read(move |tx| reconcile::unexplained(tx, now)).unwrap()
}

const NO_MERCHANT: u32 = 999;

pub fn reconcile_classifies_each_kind(f: &Fixture) {
    let s = &f.store;
    world(s);
    let t0 = now();
    // In agreement: an online debit and its upload.
    let agree = card(s, 10_000);
    debit(s, &agree, purchase(agree.no, 1, 0, 10_000, 300)).unwrap();
    // Missing: counters 0 and 2 uploaded, 1 not (yet).
    let gap = card(s, 10_000);
    upload(s, offline(gap.no, 2, 0, 10_000, 100)).unwrap();
    upload(s, offline(gap.no, 4, 2, 9_700, 100)).unwrap();
    // Card higher: the card showed 20.00 more than its account before its record.
    let higher = card(s, 10_000);
    upload(s, offline(higher.no, 5, 0, 12_000, 100)).unwrap();
    // Card lower: 10.00 less.
    let lower = card(s, 10_000);
    upload(s, offline(lower.no, 6, 0, 9_000, 100)).unwrap();
    // Held: its latest record is in the exception queue (merchant unknown, code 40).
    let held = card(s, 10_000);
    upload(s, offline(held.no, 7, 0, 10_000, 100)).unwrap();
    let mut r = offline(held.no, 8, 1, 9_900, 100);
    r.merchant_no = NO_MERCHANT;
    assert_eq!(refused(upload(s, r)), 40); // code 40
    // A card no record was seen from has no state.
    let unseen = card(s, 5_000);

    let a = run(s, t0);
    assert_eq!((a.found, a.resolved), (4, 0), "{a:?}");
    let st = |no: CardNo| state_of(s, no, t0);
    assert!(st(agree.no).is_none());
    assert!(st(unseen.no).is_none());
    let g = st(gap.no).unwrap();
    assert_eq!(
        (
            g.state.as_str(),
            g.missing,
            g.difference,
            g.card_balance,
            g.book_balance
        ),
        ("missing", 1, -200, 9_600, 9_800)
    );
    // R-F4.17: the device that last saw the card is asked for the card's records back to
    // the gap (counters 1 and 2).
    assert_eq!(a.orders.len(), 1);
    assert_eq!(
        (a.orders[0].device, a.orders[0].card, a.orders[0].count),
        (DEVICE, gap.no, 2)
    );
    assert_eq!(g.collect_count, 2);
    let h = st(higher.no).unwrap();
    assert_eq!((h.state.as_str(), h.difference), ("card_higher", 2_000));
    let l = st(lower.no).unwrap();
    assert_eq!((l.state.as_str(), l.difference), ("card_lower", -1_000));
    let hd = st(held.no).unwrap();
    assert_eq!((hd.state.as_str(), hd.difference), ("held", -100));
    assert_eq!(hd.since, g.since);

    // R-B10: an online debit on a card found abnormal is refused (code 58: card higher, the
    // terminal locks it; code 70: card lower); one with missing records is not.
    assert_eq!(
        refused(debit(s, &higher, purchase(higher.no, 20, 1, 11_900, 100))),
        58
    ); // code 58
    assert_eq!(
        refused(debit(s, &lower, purchase(lower.no, 21, 1, 8_900, 100))),
        70
    ); // code 70
    debit(s, &gap, purchase(gap.no, 22, 3, 9_600, 100)).unwrap();
    // A later record of the higher card shows it as its books say: the stored state is not
    // what the rows show any more, so online debits pass again before the next run.
    upload(s, offline(higher.no, 23, 1, 9_900, 100)).unwrap();
    debit(s, &higher, purchase(higher.no, 24, 2, 9_800, 100)).unwrap();

    // The missing record arrives (collected or uploaded late): the next run finds the card
    // in agreement and keeps when it was resolved.
    upload(s, offline(gap.no, 3, 1, 9_900, 200)).unwrap();
    let t1 = t0 + TimeDelta::hours(1);
    let a = run(s, t1);
    assert_eq!(a.resolved, 2, "{a:?}"); // the gap filled, the higher card in line again
    let g = state_of(s, gap.no, t1).unwrap();
    assert_eq!(g.state, "agree");
    assert_eq!(g.resolved_at.as_deref(), Some("2026-03-02 13:00:00"));
    assert!(
        !states(s, Show::Open, t1)
            .iter()
            .any(|c| c.card_no == gap.no.get())
    );
    // Still open states keep their first-seen time.
    assert_eq!(state_of(s, higher.no, t1).unwrap().state, "agree");
    assert_eq!(state_of(s, lower.no, t1).unwrap().since, l.since);
    audit_clean(s);
}

pub fn reconcile_alarm_after_days_or_amount(f: &Fixture) {
    let s = &f.store;
    world(s);
    let t0 = now();
    let small = card(s, 10_000);
    upload(s, offline(small.no, 1, 0, 10_500, 100)).unwrap(); // card higher by 5.00
    let large = card(s, 50_000);
    upload(s, offline(large.no, 2, 0, 30_000, 100)).unwrap(); // card lower by 200.00
    run(s, t0);
    // Defaults: 2 days, 100.00.
    let alarm = s.read(reconcile::alarm_settings).unwrap();
    assert_eq!(
        alarm,
        Alarm {
            days: 2,
            fen: 10_000
        }
    );
    assert_eq!(unexplained(s, t0), 1);
    let alarms = states(s, Show::Alarms, t0);
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].card_no, large.no.get());
    assert!(alarms[0].alarm);
    // A run later keeps the first-seen time, so the small one alarms once 2 days old.
    let almost = t0 + TimeDelta::days(2) - TimeDelta::seconds(1);
    run(s, almost);
    assert_eq!(unexplained(s, almost), 1);
    let later = t0 + TimeDelta::days(2);
    assert_eq!(unexplained(s, later), 2);
    // The thresholds are system parameters, within limits.
    s.execute(|tx| {
        reconcile::set_alarm(
            tx,
            Alarm {
                days: 7,
                fen: 50_000,
            },
        )
    })
    .unwrap();
    assert_eq!(unexplained(s, later), 0);
    for bad in [
        Alarm { days: 0, fen: 1 },
        Alarm { days: 1, fen: 0 },
        Alarm {
            days: reconcile::MAX_ALARM_DAYS + 1,
            fen: 1,
        },
        Alarm {
            days: 1,
            fen: 0x100_0000,
        },
    ] {
        assert!(matches!(
            s.execute(move |tx| reconcile::set_alarm(tx, bad)),
            Err(HostError::Invalid(_))
        ));
    }
    audit_clean(s);
    // The audit checks the stored states against themselves (R-B10).
    let no = small.no.get();
    s.execute(move |tx| {
        tx.conn.exec(
            "UPDATE card_reconcile SET difference = difference + 1 WHERE card_no = $1",
            &[no.into()],
        )
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.reconcile_mismatches.len(), 1, "{report:?}");
}

// R-B10, codes 60 and 54: the host's copy of a card's PIN is an Argon2id hash; wrong tries
// count, the last one allowed locks the card, a right one clears the count.
pub fn pin_wrong_tries_lock_the_card(f: &Fixture) {
    use ykt_host::domain::pin::{self, Tried};
    use ykt_host::model::CardStatus;
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let no = c.no;
    // No PIN on the host yet: a clear error, nothing counted.
    assert!(matches!(
        s.execute(move |tx| pin::count_try(tx, no, false)),
        Err(HostError::Invalid(_))
    ));
    let h = ykt_host::secrets::hash_password("123456").unwrap();
    assert!(!h.contains("123456"));
    let stored = h.clone();
    s.execute(move |tx| pin::set(tx, no, &stored, now()))
        .unwrap();
    let kept = s.read(move |tx| pin::hash_of(tx, no)).unwrap().unwrap();
    assert!(ykt_host::secrets::verify_password("123456", &kept));
    assert!(!ykt_host::secrets::verify_password("654321", &kept));
    let try_pin = |right: bool| s.execute(move |tx| pin::count_try(tx, no, right)).unwrap();
    // Default: 3 wrong tries in a row.
    assert_eq!(try_pin(false), Tried::Wrong { left: 2 });
    assert_eq!(try_pin(false).code().0, 60); // code 60
    assert_eq!(try_pin(true), Tried::Right);
    assert_eq!(try_pin(false), Tried::Wrong { left: 2 });
    assert_eq!(try_pin(false), Tried::Wrong { left: 1 });
    let last = try_pin(false);
    assert_eq!((last, last.code().0), (Tried::Locked, 54)); // code 54
    assert_eq!(card_now(s, no).status, CardStatus::Locked);
    // Locked: an online debit gets 54 too.
    assert_eq!(refused(debit(s, &c, purchase(no, 1, 0, 10_000, 100))), 54); // code 54
    // The setting has limits.
    for bad in [0, 11] {
        assert!(matches!(
            s.execute(move |tx| pin::set_max_failures(tx, bad)),
            Err(HostError::Invalid(_))
        ));
    }
    s.execute(|tx| pin::set_max_failures(tx, 5)).unwrap();
    // A reset clears the count; the card stays locked until the card office unlocks it.
    let stored = h.clone();
    s.execute(move |tx| pin::set(tx, no, &stored, now()))
        .unwrap();
    assert_eq!(try_pin(false), Tried::Wrong { left: 4 });
    assert_eq!(card_now(s, no).status, CardStatus::Locked);
    // A hash that is not Argon2id is the host's own bug, never stored.
    assert!(matches!(
        s.execute(move |tx| pin::set(tx, no, "plain", now())),
        Err(HostError::Invariant(_))
    ));
    audit_clean(s);
}
