#![allow(clippy::unwrap_used)]
//! Power-cut proof (issue 4, point 4): for every flow, power is cut at every journal byte
//! and at every card operation; after power-up the flows finish and: no record is lost, no
//! card debit is without a record, no record is booked twice at the host, no serial is
//! reused, and card balance + successful debits − reversals = starting balance.
//! Loads (top-up, pick-up; R-B4, R-B5): every load settles once, the cash and the money that
//! waited are on the card or back with the host, none written twice.
//! Covers R-P5.2–R-P5.9, R-F4.2, R-F4.3, R-F4.15, R-B4, R-B5.

mod sim;
use sim::*;
use ykt_card::{Fault, TearOutcome};
use ykt_proto::messages::{BlacklistEntry, BlacklistOp};
use ykt_proto::*;
use ykt_terminal::Key as K;

const START: Fen = 10_000;

#[derive(Clone, Copy, Debug)]
enum Flow {
    Online,
    Offline,
    Fallback,
    Reversal,
    BlackCard,
    CpuOnline,
    CpuOffline,
    /// Cancel after an online write failure: the cancellation record (R-P5.5).
    Cancel,
    /// Background upload of pending records (R-P5.9).
    Upload,
    /// Sign-in: merchant, parameters, clock, offline counter (R-P5.1).
    SignIn,
    /// An online debit whose answer asks for the card's records (R-F4.17).
    Collect,
    /// A top-up on a top-up terminal (R-B4), MF1 and CPU.
    TopUp,
    CpuTopUp,
    /// An online debit answered 卡有补助未领, then the pick-up (R-B5), MF1 and CPU.
    PickUp,
    CpuPickUp,
}

const FLOWS: [Flow; 15] = [
    Flow::TopUp,
    Flow::CpuTopUp,
    Flow::PickUp,
    Flow::CpuPickUp,
    Flow::Cancel,
    Flow::Upload,
    Flow::SignIn,
    Flow::Collect,
    Flow::Online,
    Flow::Offline,
    Flow::Fallback,
    Flow::Reversal,
    Flow::BlackCard,
    Flow::CpuOnline,
    Flow::CpuOffline,
];

/// A signed-in terminal ready for the flow, the card on the desk.
fn setup(flow: Flow) -> Rig {
    let mut p = params();
    if matches!(flow, Flow::Offline | Flow::CpuOffline | Flow::Upload) {
        p.work_mode = WorkMode::Offline;
    }
    p.fee_rates[1] = 3;
    let role = if matches!(flow, Flow::TopUp | Flow::CpuTopUp) {
        ykt_terminal::TerminalRole::TopUp
    } else {
        ykt_terminal::TerminalRole::Pos
    };
    let mut rig = Rig::blank_as(p, role);
    if matches!(flow, Flow::PickUp | Flow::CpuPickUp) {
        rig.host.info = InfoCode::SUBSIDY_WAITING;
        rig.host.loads.deposit(CARD, 2_000);
    }
    if matches!(flow, Flow::BlackCard) {
        rig.host.blacklist.push(BlacklistEntry {
            op: BlacklistOp::Add,
            card_no: CardNo::new(CARD).unwrap(),
        });
    }
    if !matches!(flow, Flow::SignIn) {
        rig.link_up();
    }
    let cpu = matches!(
        flow,
        Flow::CpuOnline | Flow::CpuOffline | Flow::CpuTopUp | Flow::CpuPickUp
    );
    let card = if cpu {
        ykt_card::SimCard::Cpu(cpu_card(CARD, UID, START, 1))
    } else {
        ykt_card::SimCard::Mf1(card_with(CARD, UID, START, 1))
    };
    rig.reader.place(card);
    rig.reader.lift();
    if matches!(flow, Flow::Reversal) {
        rig.amount(700);
        rig.retap();
        rig.lift();
        rig.advance(3_000);
    }
    if matches!(flow, Flow::Fallback) {
        rig.host.drop_debits = 2;
    }
    match flow {
        Flow::Cancel => {
            let at = rig.reader.op_count() + ops_of_debit() - 3;
            rig.reader.inject(at, Fault::Tear(TearOutcome::Old));
            rig.amount(900);
            rig.retap();
            rig.advance(60_000);
        }
        Flow::Upload => {
            rig.link_down();
            for a in [300, 400] {
                rig.amount(a);
                rig.retap();
                rig.lift();
            }
        }
        Flow::Collect => {
            rig.amount(300);
            rig.retap();
            rig.lift();
            rig.host.collect_last = 2;
        }
        _ => {}
    }
    rig
}

/// The operator's and holder's part of the flow.
fn run(flow: Flow, rig: &mut Rig) {
    match flow {
        Flow::Cancel => rig.key(K::Cancel),
        Flow::Upload | Flow::SignIn => rig.link_up(),
        Flow::Reversal => {
            rig.key(K::Reversal);
            rig.retap();
        }
        _ => {
            rig.amount(1_234);
            rig.retap();
        }
    }
    rig.advance(1_000);
}

fn bytes_of(flow: Flow) -> u64 {
    let mut rig = setup(flow);
    let before = rig.term.as_mut().unwrap().flash_mut().bytes_written();
    run(flow, &mut rig);
    rig.term.as_mut().unwrap().flash_mut().bytes_written() - before
}

fn finish_and_check(rig: &mut Rig, what: &str) {
    if rig.term.is_some() {
        rig.power_off();
    }
    rig.power_up();
    rig.link_up();
    rig.settle();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rig.check_invariants(START);
        rig.check_host_books();
    }));
    if r.is_err() {
        panic!("invariants broken after {what}");
    }
}

/// Every byte of the flow's writes, except inside long runs (the 16 KiB parameter slot of
/// sign-in), where a cut every 97 bytes stands for the others: a slot is CRC-checked whole,
/// so every cut inside it has the same effect.
fn cut_points(total: u64) -> impl Iterator<Item = u64> {
    (0..=total).filter(move |k| *k < 1_024 || total - k < 1_024 || k % 97 == 0)
}

// Cut at every byte the flow writes to flash (journal, state, blacklist), each followed by a
// seeded keep / drop / tear of the unsynced writes.
#[test]
fn power_cut_at_every_flash_byte() {
    for flow in FLOWS {
        let total = bytes_of(flow);
        assert!(total > 0);
        let mut halted = 0;
        for k in cut_points(total) {
            let mut rig = setup(flow);
            rig.cut_seed = k;
            rig.term.as_mut().unwrap().flash_mut().cut_power_after(k);
            run(flow, &mut rig);
            halted += u64::from(rig.halted());
            finish_and_check(
                &mut rig,
                &format!("{flow:?}: power cut after {k} of {total} bytes"),
            );
        }
        eprintln!("{flow:?}: {total} bytes, {halted} runs halted by the cut");
        // Every cut stops the core (the proof is not vacuous).
        assert_eq!(halted, cut_points(total).count() as u64);
    }
}

// Cut at every card operation of the flow: the card is torn (old, new or garbage left in the
// block being written) and the terminal loses power at that moment.
#[test]
fn power_cut_at_every_card_operation() {
    for flow in FLOWS {
        let ops = {
            let mut rig = setup(flow);
            let before = rig.reader.op_count();
            run(flow, &mut rig);
            rig.reader.op_count() - before
        };
        for j in 0..ops {
            for outcome in [TearOutcome::Old, TearOutcome::New, TearOutcome::Garbage] {
                let mut rig = setup(flow);
                let at = rig.reader.op_count() + j;
                rig.reader.inject(at, Fault::Tear(outcome));
                run(flow, &mut rig);
                finish_and_check(
                    &mut rig,
                    &format!("{flow:?}: card torn ({outcome:?}) at op {j} of {ops}"),
                );
            }
        }
    }
}

// The same tears without a power cut: the live re-tap flow resolves them (R-P5.4, R-P5.7).
#[test]
fn tear_at_every_card_operation_live() {
    for flow in FLOWS {
        let ops = {
            let mut rig = setup(flow);
            let before = rig.reader.op_count();
            run(flow, &mut rig);
            rig.reader.op_count() - before
        };
        for j in 0..ops {
            let mut rig = setup(flow);
            let at = rig.reader.op_count() + j;
            rig.reader.inject(at, Fault::Tear(TearOutcome::Garbage));
            run(flow, &mut rig);
            rig.settle();
            rig.check_invariants(START);
            rig.check_host_books();
        }
    }
}
