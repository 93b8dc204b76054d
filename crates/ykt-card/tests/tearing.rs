#![allow(clippy::unwrap_used)]
//! Tearing: every block operation of every write sequence fails, tears (old / new / garbage)
//! or loses the card, and the next tap must say exactly whether the transaction happened;
//! no sequence of faults may lose or double money (R-P5.4, R-P5.7, R-F4.2).

mod common;
use common::*;

use proptest::prelude::*;
use ykt_card::app::{CardRead, LockStatus, Mf1App, Pending, Resolution, TxKind, TxRequest};
use ykt_card::{Fault, SimulatedReader, TearOutcome};

fn request(kind: TxKind) -> TxRequest {
    match kind {
        TxKind::Purchase => purchase(1_234, 56, 9, at(1, 12)),
        _ => TxRequest {
            kind,
            amount: 5_000,
            fee: 0,
            time: at(1, 12),
            device: DEVICE,
            serial: 9,
        },
    }
}

/// A write sequence of the card application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Tx(TxKind),
    /// A pick-up (领取补助): a top-up credit with the subsidy sequence + 1.
    PickUp,
}

impl Write {
    fn kind(self) -> TxKind {
        match self {
            Write::Tx(k) => k,
            Write::PickUp => TxKind::TopUp,
        }
    }

    fn run(
        self,
        app: &Mf1App<'_>,
        r: &mut SimulatedReader,
        c: &CardRead,
        req: &TxRequest,
    ) -> Result<ykt_card::app::CardRecord, ykt_card::app::AppError> {
        match self {
            Write::Tx(_) => app.transact(r, c, req),
            Write::PickUp => app.pick_up(r, c, req),
        }
    }

    /// How far the subsidy sequence moves when the write lands.
    fn seq_step(self) -> u16 {
        u16::from(self == Write::PickUp)
    }
}

/// Runs `write` with `fault` at its `k`-th block operation, re-taps, resolves, and checks the
/// answer against the wallet and the subsidy sequence; finishes the transaction when it did
/// not land.
fn torn_run(write: Write, k: u64, fault: Fault, seed: u64) -> bool {
    let kind = write.kind();
    let keys = keys();
    let app = Mf1App::new(&keys);
    let start_balance = 10_000;
    let mut r = reader_with(card(start_balance), seed);
    let c = app.read(&mut r, 0).unwrap();
    assert_eq!(c.subsidy_seq, Some(0));
    let req = request(kind);
    let first = r.op_count();
    r.inject(first + k, fault);
    let outcome = write.run(&app, &mut r, &c, &req);
    let fired = r.op_count() > first + k;
    if outcome.is_ok() {
        // R-F4.2: a completed write sequence leaves main and backup equal, before any repair.
        assert_eq!(mf1(&r).raw_block(16), mf1(&r).raw_block(18));
    }
    r.clear_faults();
    r.retap();
    let pending = Pending {
        card_no: c.info.card_no,
        wallet_no: 0,
        counter_before: c.wallet.counter,
        device: DEVICE,
        serial: 9,
    };
    let (after, res) = app.resolve(&mut r, &pending).unwrap();
    let landed_balance = start_balance + req.delta();
    match res {
        Resolution::Landed(rec) => {
            assert_eq!(
                after.wallet.balance, landed_balance,
                "{kind:?} k={k} {fault:?}"
            );
            assert_eq!(after.wallet.counter, 1);
            assert_eq!((rec.amount, rec.fee, rec.serial), (req.amount, req.fee, 9));
            // R-B5: the new balance comes with the new sequence.
            assert_eq!(after.subsidy_seq, Some(write.seq_step()), "k={k} {fault:?}");
        }
        Resolution::NotLanded => {
            assert!(
                outcome.is_err(),
                "a reported success must have landed: {kind:?} k={k} {fault:?}"
            );
            assert_eq!(
                after.wallet.balance, start_balance,
                "{kind:?} k={k} {fault:?}"
            );
            assert_eq!(after.wallet.counter, 0);
            // R-B5: the old balance comes with the old sequence.
            assert_eq!(after.subsidy_seq, Some(0), "{write:?} k={k} {fault:?}");
            // The terminal writes again; exactly one transaction results.
            write.run(&app, &mut r, &after, &req).unwrap();
        }
        other => panic!("{kind:?} k={k} {fault:?}: {other:?}"),
    }
    // Whatever happened, the card now holds exactly one transaction, main equals backup, and
    // its ring shows it once.
    let fin = app.read(&mut r, 0).unwrap();
    assert_eq!(fin.wallet.balance, landed_balance);
    assert_eq!(fin.wallet.counter, 1);
    assert_eq!(fin.subsidy_seq, Some(write.seq_step()));
    assert_eq!(mf1(&r).raw_block(16), mf1(&r).raw_block(18));
    let recs = app.records(&mut r, &fin, 10).unwrap();
    assert_eq!(recs.len(), 1);
    assert!(fin.interrupted.is_none());
    fired
}

fn exhaustive(write: Write) -> u64 {
    let mut k = 0;
    loop {
        let mut fired_any = false;
        for fault in faults() {
            let seeds = if fault == Fault::Tear(TearOutcome::Garbage) {
                1..5
            } else {
                1..2
            };
            for seed in seeds {
                fired_any |= torn_run(write, k, fault, seed);
            }
        }
        if !fired_any {
            break;
        }
        k += 1;
    }
    // Authenticate + read + 6 writes with their authentications: the sequence is fixed.
    assert!(k >= 8, "only {k} operations");
    k
}

// R-P5.4, R-P5.7, R-F4.2: every operation of a debit, every fault.
#[test]
fn debit_survives_a_fault_at_every_operation() {
    exhaustive(Write::Tx(TxKind::Purchase));
}

// Credits (top-up, reversal) use the same sequence.
#[test]
fn credit_survives_a_fault_at_every_operation() {
    exhaustive(Write::Tx(TxKind::TopUp));
    exhaustive(Write::Tx(TxKind::Reversal));
}

// R-B4, R-B5: every operation of a pick-up (credit + subsidy sequence), every fault: the
// next read shows the old balance with the old sequence or both new, and the retry makes
// exactly one pick-up.
#[test]
fn pick_up_survives_a_fault_at_every_operation() {
    let credit = exhaustive(Write::Tx(TxKind::TopUp));
    // Its own write of the sequence block: authenticate sector 3, write, authenticate the
    // wallet sector again for the last state write.
    assert_eq!(exhaustive(Write::PickUp), credit + 3);
}

// R-F4.15: a torn lock write leaves the card unlocked (old) or locked (new, or garbage read
// as locked) — never a readable "unlocked" that was meant to be locked by garbage.
#[test]
fn torn_lock_write_fails_safe() {
    for fault in faults() {
        for k in 0..3 {
            let keys = keys();
            let app = Mf1App::new(&keys);
            let mut r = reader_with(card(100), 3);
            let c = app.read(&mut r, 0).unwrap();
            r.inject(r.op_count() + k, fault);
            let lock = LockStatus {
                locked: true,
                blacklist_version: 7,
                changed_at: at(1, 9),
                device: DEVICE,
            };
            let ok = app.set_lock(&mut r, &c, &lock).is_ok();
            r.clear_faults();
            r.retap();
            let now = app.read(&mut r, 0).unwrap();
            if ok {
                assert!(now.locked());
            }
            if now.lock.is_some_and(|l| !l.locked) {
                // Old content: the terminal sees an unlocked card and writes the flag again.
                app.set_lock(&mut r, &now, &lock).unwrap();
                assert!(app.read(&mut r, 0).unwrap().locked());
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Step {
    write: Write,
    amount: i64,
    fee: i64,
    fault_at: u64,
    fault: Fault,
}

fn step() -> impl Strategy<Value = Step> {
    let kind = prop_oneof![
        3 => Just(Write::Tx(TxKind::Purchase)),
        1 => Just(Write::Tx(TxKind::TopUp)),
        1 => Just(Write::Tx(TxKind::Reversal)),
        1 => Just(Write::PickUp),
    ];
    let fault = prop_oneof![
        Just(Fault::FailBefore),
        Just(Fault::Tear(TearOutcome::Old)),
        Just(Fault::Tear(TearOutcome::New)),
        Just(Fault::Tear(TearOutcome::Garbage)),
        Just(Fault::RemovedAfter),
        Just(Fault::AckLost),
    ];
    (kind, 0i64..3_000, 0i64..100, 0u64..30, fault).prop_map(
        |(write, amount, fee, fault_at, fault)| Step {
            write,
            amount,
            fee,
            fault_at,
            fault,
        },
    )
}

/// Reads once with `fault` at the `k`-th operation (the read's own repairs torn), then reads
/// again undisturbed.
fn read_after_faulted_read(
    app: &Mf1App<'_>,
    r: &mut SimulatedReader,
    k: u64,
    fault: Fault,
) -> CardRead {
    r.inject(r.op_count() + k, fault);
    let _ = app.read(r, 0);
    r.clear_faults();
    r.retap();
    app.read(r, 0).unwrap()
}

fn read_retrying(app: &Mf1App<'_>, r: &mut SimulatedReader) -> ykt_card::app::CardRead {
    r.retap();
    match app.read(r, 0) {
        Ok(c) => c,
        Err(_) => {
            r.clear_faults();
            r.retap();
            app.read(r, 0).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Random sequences of debits, credits and pick-ups with faults anywhere (reads, repairs,
    // writes, resolutions): the card's balance always equals the sum of the transactions the
    // terminals were told happened, every record in the ring is one of them, and the subsidy
    // sequence counts the pick-ups that landed (R-B5).
    #[test]
    fn no_sequence_of_faults_loses_or_doubles_money(steps in proptest::collection::vec(step(), 1..12), seed: u64) {
        let keys = keys();
        let app = Mf1App::new(&keys);
        let mut r = reader_with(card(50_000), seed);
        let mut expected = 50_000i64;
        let mut expected_seq = 0u16;
        let mut done = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let serial = i as u32 + 1;
            r.inject(r.op_count() + s.fault_at, s.fault);
            let c = read_retrying(&app, &mut r);
            prop_assert_eq!(c.wallet.balance, expected);
            prop_assert_eq!(c.subsidy_seq, Some(expected_seq));
            let kind = s.write.kind();
            let fee = if kind == TxKind::Purchase { s.fee } else { 0 };
            let req = TxRequest { kind, amount: s.amount, fee, time: at(1 + i as u32 % 3, 12), device: DEVICE, serial };
            if c.wallet.balance + req.delta() < 0 {
                r.clear_faults();
                continue;
            }
            let pending = Pending { card_no: c.info.card_no, wallet_no: 0, counter_before: c.wallet.counter, device: DEVICE, serial };
            let landed = match s.write.run(&app, &mut r, &c, &req) {
                Ok(_) => true,
                Err(_) => {
                    r.clear_faults();
                    r.retap();
                    let (after, res) = app.resolve(&mut r, &pending).unwrap();
                    match res {
                        Resolution::Landed(_) => true,
                        Resolution::NotLanded => {
                            s.write.run(&app, &mut r, &after, &req).unwrap();
                            true
                        }
                        other => return Err(TestCaseError::fail(format!("unresolvable: {other:?}"))),
                    }
                }
            };
            if landed {
                expected += req.delta();
                expected_seq += s.write.seq_step();
                done.push(serial);
            }
        }
        r.clear_faults();
        let fin = read_retrying(&app, &mut r);
        prop_assert_eq!(fin.wallet.balance, expected);
        prop_assert_eq!(fin.subsidy_seq, Some(expected_seq));
        prop_assert_eq!(fin.wallet.counter as usize, done.len());
        let recs = app.records(&mut r, &fin, 100).unwrap();
        let want: Vec<u32> = done.iter().rev().take(recs.len()).copied().collect();
        prop_assert_eq!(recs.iter().map(|x| x.serial).collect::<Vec<_>>(), want);
    }
}

/// A card left by a debit torn at its `op`-th operation with `outcome`.
fn torn_card(op: u64, outcome: TearOutcome) -> (SimulatedReader, i64) {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 5);
    let c = app.read(&mut r, 0).unwrap();
    r.inject(r.op_count() + op, Fault::Tear(outcome));
    assert!(
        app.transact(&mut r, &c, &purchase(700, 0, 1, at(1, 12)))
            .is_err()
    );
    r.clear_faults();
    r.retap();
    (
        r,
        if op >= 7 && !(op == 7 && outcome != TearOutcome::New) {
            9_300
        } else {
            10_000
        },
    )
}

// R-F4.2: the repairs a read makes (main from backup, backup from main, finishing or
// abandoning an interrupted debit) are themselves torn at every operation; the next read
// still settles the card to exactly one outcome.
#[test]
fn repairs_survive_a_fault_at_every_operation() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    // Main torn to garbage (repair main from backup, abandon), backup torn (repair backup,
    // finish), final state write torn (state damaged only).
    for (at, outcome) in [
        (7, TearOutcome::Garbage),
        (8, TearOutcome::Garbage),
        (8, TearOutcome::Old),
        (9, TearOutcome::Garbage),
    ] {
        for k in 0..16 {
            for fault in faults() {
                let (mut r, expected) = torn_card(at, outcome);
                let fin = read_after_faulted_read(&app, &mut r, k, fault);
                assert_eq!(
                    fin.wallet.balance, expected,
                    "torn at {at} {outcome:?}, then k={k} {fault:?}"
                );
                assert_eq!(fin.wallet.counter, u32::from(expected != 10_000));
                let again = app.read(&mut r, 0).unwrap();
                assert!(again.interrupted.is_none());
                assert_eq!(mf1(&r).raw_block(16), mf1(&r).raw_block(18));
            }
        }
    }
}

/// A card left by a pick-up of 5,000 fen torn at its `op`-th operation with `outcome`.
fn torn_pick_up(op: u64, outcome: TearOutcome) -> SimulatedReader {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 11);
    let c = app.read(&mut r, 0).unwrap();
    r.inject(r.op_count() + op, Fault::Tear(outcome));
    let _ = app.pick_up(&mut r, &c, &request(TxKind::TopUp));
    r.clear_faults();
    r.retap();
    r
}

// R-B5, R-F4.2: the read that settles a torn pick-up (finishing it: backup, subsidy
// sequence, state) is itself torn at every operation; the next read still shows the old
// balance with the old sequence or the new balance with the new sequence, the same as an
// undisturbed read would.
#[test]
fn pick_up_repairs_survive_a_fault_at_every_operation() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    for op in 0..14 {
        for outcome in [TearOutcome::Old, TearOutcome::New, TearOutcome::Garbage] {
            let mut clean = torn_pick_up(op, outcome);
            let settled = app.read(&mut clean, 0).unwrap();
            let want = (settled.wallet.balance, settled.subsidy_seq);
            assert!(
                want == (10_000, Some(0)) || want == (15_000, Some(1)),
                "torn at {op} {outcome:?}: {want:?}"
            );
            for k in 0..20 {
                for fault in faults() {
                    let mut r = torn_pick_up(op, outcome);
                    let fin = read_after_faulted_read(&app, &mut r, k, fault);
                    assert_eq!(
                        (fin.wallet.balance, fin.subsidy_seq),
                        want,
                        "torn at {op} {outcome:?}, then k={k} {fault:?}"
                    );
                    let again = app.read(&mut r, 0).unwrap();
                    assert!(again.interrupted.is_none());
                    assert_eq!(mf1(&r).raw_block(16), mf1(&r).raw_block(18));
                }
            }
        }
    }
}
