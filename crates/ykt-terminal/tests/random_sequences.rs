#![allow(clippy::unwrap_used)]
//! Random sequences of taps, amounts, card removals, tears, host timeouts, errors, mode
//! changes, day changes and power cuts; after each sequence the flows are let finish and
//! the invariants of issue 4 point 4 are checked, for MF1 and CPU cards (R-P5.2–R-P5.9, R-F4.18, R-F4.22).
//! Loads are mixed in (R-B4, R-B5): on a POS money deposited for the card is picked up after
//! an online debit, on a top-up terminal a sale is a top-up and a tap without an amount a
//! pick-up; the host refuses or loses load requests. Across any sequence the money on the
//! card, what the host holds waiting and the cash taken are conserved, and no load is
//! written twice.

mod sim;
use proptest::prelude::*;
use sim::*;
use ykt_card::{Fault, TearOutcome};
use ykt_proto::messages::{ClockSetRequest, Message};
use ykt_proto::*;
use ykt_terminal::{Key as K, TerminalRole};

const START: Fen = 50_000;

#[derive(Clone, Debug)]
enum Act {
    Sale(Fen),
    Lift,
    Retap,
    TearNext(u64, u8),
    HostSilent(bool),
    DropDebits(u32),
    DebitCode(Option<u8>),
    LinkDown,
    LinkUp,
    Mode,
    NextDay,
    PowerCutAfter(u64),
    PowerOff,
    Advance(u64),
    Cancel,
    Reverse,
    Stats,
    /// Money deposited for the card at the card office (it waits for a pick-up).
    Deposit(Fen),
    /// A tap without an amount (a top-up terminal picks up what waits).
    Tap,
    DropLoads(u32),
    LoadCode(Option<u8>),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (1i64..3_000).prop_map(Act::Sale),
        2 => Just(Act::Lift),
        2 => Just(Act::Retap),
        2 => (0u64..40, 0u8..3).prop_map(|(j, o)| Act::TearNext(j, o)),
        1 => any::<bool>().prop_map(Act::HostSilent),
        1 => (0u32..3).prop_map(Act::DropDebits),
        1 => prop::option::of(prop::sample::select(vec![1u8, 9, 51, 60, 64])).prop_map(Act::DebitCode),
        1 => Just(Act::LinkDown),
        1 => Just(Act::LinkUp),
        1 => Just(Act::Mode),
        1 => Just(Act::NextDay),
        1 => (0u64..400).prop_map(Act::PowerCutAfter),
        1 => Just(Act::PowerOff),
        3 => prop::sample::select(vec![100u64, 500, 1_000, 6_000, 61_000]).prop_map(Act::Advance),
        2 => Just(Act::Cancel),
        1 => Just(Act::Reverse),
        1 => Just(Act::Stats),
        1 => (1i64..5_000).prop_map(Act::Deposit),
        1 => Just(Act::Tap),
        1 => (0u32..3).prop_map(Act::DropLoads),
        1 => prop::option::of(prop::sample::select(vec![1u8, 63, 90])).prop_map(Act::LoadCode),
    ]
}

fn apply(rig: &mut Rig, a: &Act, day: &mut u32) {
    if rig.term.is_none() || rig.halted() {
        if rig.term.is_some() {
            rig.power_off();
        }
        rig.power_up();
    }
    match a {
        Act::Sale(amount) => {
            rig.key(K::Cancel);
            rig.amount(*amount);
            rig.retap();
        }
        Act::Lift => rig.lift(),
        Act::Retap => rig.retap(),
        Act::TearNext(j, o) => {
            let outcome =
                [TearOutcome::Old, TearOutcome::New, TearOutcome::Garbage][usize::from(*o)];
            let at = rig.reader.op_count() + j;
            rig.reader.inject(at, Fault::Tear(outcome));
        }
        Act::HostSilent(s) => rig.host.silent = *s,
        Act::DropDebits(n) => rig.host.drop_debits = *n,
        Act::DebitCode(c) => rig.host.debit_code = c.map(ReturnCode),
        Act::LinkDown => rig.link_down(),
        Act::LinkUp => rig.link_up(),
        Act::Mode => rig.key(K::Mode),
        Act::NextDay => {
            *day += 1;
            rig.host.clock = at(*day, 7, 0);
            rig.host_request(Message::ClockSetRequest(ClockSetRequest {
                clock: at(*day, 7, 0),
            }));
        }
        Act::PowerCutAfter(k) => {
            rig.term.as_mut().unwrap().flash_mut().cut_power_after(*k);
        }
        Act::PowerOff => {
            rig.power_off();
            rig.power_up();
        }
        Act::Advance(ms) => rig.advance(*ms),
        Act::Cancel => rig.key(K::Cancel),
        Act::Reverse => {
            rig.key(K::Cancel);
            rig.key(K::Reversal);
            rig.retap();
        }
        Act::Stats => rig.key(K::Stats),
        Act::Deposit(amount) => rig.host.loads.deposit(CARD, *amount),
        Act::Tap => {
            rig.key(K::Cancel);
            rig.retap();
        }
        Act::DropLoads(n) => rig.host.loads.drop_loads = *n,
        Act::LoadCode(c) => rig.host.loads.load_code = c.map(ReturnCode),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_books(
        acts in prop::collection::vec(act(), 1..40),
        seed in any::<u64>(),
        cpu in any::<bool>(),
        top_up in any::<bool>(),
    ) {
        let role = if top_up { TerminalRole::TopUp } else { TerminalRole::Pos };
        let mut rig = Rig::blank_as(params(), role);
        rig.link_up();
        rig.cut_seed = seed;
        let card = if cpu {
            ykt_card::SimCard::Cpu(cpu_card(CARD, UID, START, 1))
        } else {
            ykt_card::SimCard::Mf1(card_with(CARD, UID, START, 1))
        };
        rig.reader.place(card);
        rig.reader.lift();
        let mut day = 2;
        for a in &acts {
            apply(&mut rig, a, &mut day);
            rig.check_timers(); // issue 10.13
        }
        // Let every flow finish: power back, host healthy, re-taps, cancels, uploads.
        if rig.term.is_none() || rig.halted() {
            if rig.term.is_some() {
                rig.power_off();
            }
            rig.power_up();
        }
        rig.term.as_mut().unwrap().flash_mut().cut_power_after(u64::MAX / 2);
        rig.host.debit_code = None;
        rig.host.loads.load_code = None;
        rig.host.loads.drop_loads = 0;
        rig.settle();
        prop_assert!(rig.term().in_flight().is_none());
        rig.check_invariants(START);
        rig.check_host_books();
        // Statistics agree with the journal (R-F4.22): debits minus reversals.
        let today = rig.term().wall().date();
        let s = rig.term().storage().journal.stats(today);
        prop_assert!(s.today.debit_amount >= 0 && s.yesterday.debit_amount >= 0);
    }
}
