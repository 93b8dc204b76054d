#![allow(clippy::unwrap_used)]
//! The core's timers: the cancel lock of the re-tap prompt (R-P5.5, R-P5.8), timers that keep
//! running while a prompt stays open, and deadlines checked on every input, so a late host
//! answer is a timeout whether or not a tick came first (R-P5.3).

mod sim;
use proptest::prelude::*;
use sim::*;
use ykt_card::{Fault, TearOutcome};
use ykt_proto::messages::Message;
use ykt_proto::*;
use ykt_terminal::{Input, Key as K, TerminalRole};

fn offline_params() -> TerminalParams {
    TerminalParams {
        work_mode: WorkMode::Offline,
        ..params()
    }
}

/// A re-tap prompt opened now (offline write torn, not landed).
fn retap_prompt() -> Rig {
    let mut rig = Rig::new(offline_params());
    rig.amount(400);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::Old);
    assert!(rig.term().in_flight().is_some());
    assert!(
        rig.screen().starts_with("请重新刷卡|60秒内不能取消"),
        "{}",
        rig.screen()
    );
    rig
}

/// Another card on the re-tap prompt: 请刷原卡, held 1.5 s.
fn tap_other_card(rig: &mut Rig) {
    rig.reader
        .place(ykt_card::SimCard::Mf1(card_with(777, [9; 4], 5_000, 1)));
    rig.feed(Input::CardPresent);
    assert_eq!(rig.screen(), "请刷原卡");
}

fn heartbeats(rig: &Rig) -> usize {
    rig.host
        .received
        .iter()
        .filter(|m| matches!(m, Message::HeartbeatRequest(_)))
        .count()
}

// issue 10.12, R-P5.5, R-P5.8: 取消 just before the lock ends is refused with 60秒内不能取消;
// at 60 s the screen goes back to the re-tap prompt and says cancel is now possible.
#[test]
fn cancel_refused_just_before_the_lock_ends_then_allowed() {
    let mut rig = retap_prompt();
    rig.advance(58_600);
    rig.key(K::Cancel);
    assert_eq!(rig.screen(), "60秒内不能取消");
    assert!(rig.term().in_flight().is_some());
    rig.advance(1_400);
    assert!(
        rig.screen().starts_with("请重新刷卡|可按取消键取消"),
        "{}",
        rig.screen()
    );
    rig.key(K::Cancel);
    assert!(rig.term().in_flight().is_none());
    assert_eq!(rig.last_record().status, RecordStatus::CardPulled);
}

// issue 10.12, R-P5.5, R-P5.8: whatever text was on hold at 60 s (here 请刷原卡 for another
// card) gives way to the re-tap prompt with the cancel hint.
#[test]
fn lock_end_replaces_any_held_text() {
    let mut rig = retap_prompt();
    rig.advance(59_500);
    tap_other_card(&mut rig);
    rig.advance(500);
    assert!(
        rig.screen().starts_with("请重新刷卡|可按取消键取消"),
        "{}",
        rig.screen()
    );
}

// issue 10.13, R-F4.18, R-C6.2: a re-tap prompt open past 60 s stops no timer: heartbeats go
// on, and a text on hold (请刷原卡) expires.
#[test]
fn timers_run_while_the_prompt_stays_open() {
    let mut rig = retap_prompt();
    let before = heartbeats(&rig);
    rig.advance(5 * 60_000);
    assert!(rig.term().in_flight().is_some());
    assert!(
        heartbeats(&rig) - before >= 4,
        "heartbeats in 5 minutes: {}",
        heartbeats(&rig) - before
    );
    tap_other_card(&mut rig);
    rig.advance(2_000);
    assert!(
        rig.screen().starts_with("请重新刷卡|可按取消键取消"),
        "{}",
        rig.screen()
    );
    let next = rig.term().next_timer().unwrap();
    assert!(
        next > rig.now,
        "next timer {next} in the past (now {})",
        rig.now
    );
}

// issue 10.14, R-P5.3: an answer that arrives after the retry deadline, with no tick in
// between, is a timeout: auto mode debits offline (扣款成功), the answer is ignored.
#[test]
fn late_answer_without_a_tick_is_a_timeout() {
    let mut rig = Rig::new(params());
    rig.host.hold_debits = true;
    rig.amount(200);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.now += 1_200;
    rig.release_held();
    assert_eq!(rig.last_record().status, RecordStatus::Debited);
    assert_eq!(rig.balance(), 9_800);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// issue 10.14, R-P5.3: an answer after the first deadline but before the retry's, with no tick
// in between: the retry goes out first (as a tick would have sent it), then the answer counts.
#[test]
fn answer_between_the_deadlines_without_a_tick_follows_the_retry() {
    let mut rig = Rig::new(params());
    rig.host.hold_debits = true;
    rig.amount(200);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.now += 700;
    let first = rig.host.held.remove(0);
    rig.feed(Input::FromHost(first));
    let debits = rig
        .host
        .received
        .iter()
        .filter(|m| matches!(m, Message::DebitRequest(_)))
        .count();
    assert_eq!(debits, 2, "the retry was sent before the answer was read");
    assert_eq!(rig.last_record().status, RecordStatus::Success);
    assert_eq!(rig.balance(), 9_800);
}

#[derive(Clone, Debug)]
enum Act {
    Sale(Fen),
    Wait(u64),
    Deliver,
    HostSilent(bool),
    FailNext(u64),
    Tap,
    Cancel,
    Other(K),
    /// Money waits for the card: a pick-up follows the next online debit (R-B5).
    Deposit(Fen),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => (1i64..2_000).prop_map(Act::Sale),
        4 => prop::sample::select(vec![100u64, 450, 500, 600, 1_000, 1_600, 5_000, 30_000, 61_000])
            .prop_map(Act::Wait),
        3 => Just(Act::Deliver),
        1 => any::<bool>().prop_map(Act::HostSilent),
        1 => (0u64..30).prop_map(Act::FailNext),
        2 => Just(Act::Tap),
        2 => Just(Act::Cancel),
        1 => prop::sample::select(vec![K::Mode, K::Stats, K::SignIn, K::Digit(5)]).prop_map(Act::Other),
        1 => (1i64..2_000).prop_map(Act::Deposit),
    ]
}

/// Runs `acts` with the timers fired at their deadlines while time passes, against a host
/// whose every answer is held until `Deliver`. The card stays in the field (a card moved
/// between two inputs changes the world, not the inputs); card operations fail by
/// transmission errors. Returns the rig and the faults planned.
fn run_with_ticks(acts: &[Act], cpu: bool, role: TerminalRole) -> (Rig, Vec<u64>) {
    let mut rig = Rig::blank_as(params(), role);
    rig.link_up();
    rig.reader.place(the_card(cpu));
    rig.host.hold_all = true;
    let mut faults = vec![];
    for a in acts {
        match a {
            Act::Sale(fen) => {
                rig.key(K::Cancel);
                rig.amount(*fen);
                rig.feed(Input::CardPresent);
            }
            Act::Wait(ms) => rig.advance(*ms),
            Act::Deliver => rig.release_held(),
            Act::HostSilent(s) => rig.host.silent = *s,
            Act::FailNext(j) => {
                let at = rig.reader.op_count() + j;
                faults.push(at);
                rig.reader.inject(at, Fault::FailBefore);
            }
            Act::Tap => rig.feed(Input::CardPresent),
            Act::Cancel => rig.key(K::Cancel),
            Act::Other(k) => rig.key(*k),
            Act::Deposit(fen) => rig.host.loads.deposit(CARD, *fen),
        }
        rig.check_timers();
    }
    rig.feed(Input::Tick);
    (rig, faults)
}

fn the_card(cpu: bool) -> ykt_card::SimCard {
    if cpu {
        ykt_card::SimCard::Cpu(cpu_card(CARD, UID, 50_000, 1))
    } else {
        ykt_card::SimCard::Mf1(card_with(CARD, UID, 50_000, 1))
    }
}

/// The same inputs at the same times to a fresh terminal, without a single tick but the last.
fn replay_without_ticks(with: &Rig, faults: &[u64], cpu: bool, role: TerminalRole) -> Rig {
    let mut rig = Rig::blank_as(params(), role);
    rig.reader.place(the_card(cpu));
    for &at in faults {
        rig.reader.inject(at, Fault::FailBefore);
    }
    for (t, input) in &with.inputs {
        if *input != Input::Tick {
            rig.now = *t;
            rig.feed(input.clone());
            rig.check_timers();
        }
    }
    rig.now = with.now;
    rig.feed(Input::Tick);
    rig
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    // issue 10.14, R-P5.3 (and every timer of docs/terminal.md): the same inputs at the same
    // times give the same outcome whether or not ticks came in between; issue 10.13: after
    // every input the next timer is the earliest pending deadline, never in the past. On a
    // POS and on a top-up terminal, pick-ups and top-ups included (R-B4, R-B5).
    #[test]
    fn outcome_does_not_depend_on_ticks(
        acts in prop::collection::vec(act(), 1..30),
        cpu in any::<bool>(),
        top_up in any::<bool>(),
    ) {
        let role = if top_up { TerminalRole::TopUp } else { TerminalRole::Pos };
        let (with, faults) = run_with_ticks(&acts, cpu, role);
        let without = replay_without_ticks(&with, &faults, cpu, role);
        prop_assert_eq!(with.records(), without.records());
        prop_assert_eq!(&with.events, &without.events);
        prop_assert_eq!(&with.screens, &without.screens);
        prop_assert_eq!(&with.beeps, &without.beeps);
        prop_assert_eq!(&with.sent, &without.sent);
        prop_assert_eq!(with.balance(), without.balance());
    }
}
