#![allow(clippy::unwrap_used)]
//! Money onto the card (`docs/loads.md`): top-ups on a top-up terminal (R-B4) and the pick-up
//! of what waits for a card (R-B5), MF1 and CPU, against the scripted host: journalled before
//! the request, written only on the host's yes, uploaded at once, never offline, never twice.

mod sim;
use sim::*;
use ykt_card::app::Mf1App;
use ykt_card::cpu::app::CpuApp;
use ykt_card::{SimCard, SimulatedReader, TearOutcome};
use ykt_proto::*;
use ykt_terminal::{Event, Key as K, Timer};

fn loads_sent(rig: &Rig) -> usize {
    rig.host
        .received
        .iter()
        .filter(|m| matches!(m, Message::LoadRequest(_)))
        .count()
}

/// The card's subsidy sequence, read through a spare reader.
fn subsidy_seq(rig: &Rig) -> Option<u16> {
    let mut r = SimulatedReader::new(1);
    match rig.reader.card().unwrap() {
        SimCard::Cpu(c) => {
            r.place(SimCard::Cpu(c.clone()));
            Some(CpuApp::read(&mut r).unwrap().subsidy_seq)
        }
        SimCard::Mf1(c) => {
            r.place(SimCard::Mf1(c.clone()));
            let k = keys();
            Mf1App::new(&k).read(&mut r, 0).unwrap().subsidy_seq
        }
    }
}

/// Taps a card of `balance` on the reader, CPU or MF1.
fn tap(rig: &mut Rig, cpu: bool, balance: Fen) {
    if cpu {
        rig.place_cpu(cpu_card(CARD, UID, balance, 1));
    } else {
        rig.place(card_with(CARD, UID, balance, 1));
    }
}

fn statuses(rig: &Rig) -> Vec<(RecordKind, RecordStatus)> {
    rig.records().iter().map(|r| (r.kind, r.status)).collect()
}

// R-B4: the operator keys the cash, the card is read, the record is journalled 发起交易 and
// synced before 0x08, the card is credited on the host's yes, the record is 交易成功 and
// uploaded at once; the host posts it; 充值成功 and the balance are shown.
#[test]
fn top_up_mf1() {
    let mut rig = Rig::top_up(params());
    rig.advance(2_000);
    assert_eq!(rig.screen(), "充值|请输入充值金额");
    rig.amount(5_000);
    assert!(rig.screen().contains("充值金额：50.00元"));
    rig.place(card_with(CARD, UID, 10_000, 1));
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status, r.online, r.amount, r.balance_after),
        (
            RecordKind::TopUp,
            RecordStatus::Success,
            true,
            5_000,
            15_000
        )
    );
    let journalled_first = rig.events.iter().position(|e| {
        matches!(
            e,
            Event::Record {
                status: RecordStatus::Initiated,
                kind: RecordKind::TopUp,
                ..
            }
        )
    });
    assert!(journalled_first.is_some());
    assert_eq!(rig.balance(), 15_000);
    assert!(rig.saw_screen("充值成功") && rig.saw_screen("余额：150.00元"));
    assert_eq!(rig.pending(), 0, "uploaded at once");
    assert_eq!(loads_sent(&rig), 1);
    assert_eq!(rig.host.loads.posted(), 5_000);
    assert_eq!(subsidy_seq(&rig), Some(0), "a top-up leaves the sequence");
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-B4 on a CPU card: INITIALIZE FOR LOAD before 0x08 (its answer in the request), CREDIT FOR
// LOAD with the host's MAC2; the TAC of the credit is in the record and verifies.
#[test]
fn top_up_cpu() {
    let mut rig = Rig::top_up(params());
    rig.amount(2_345);
    rig.place_cpu(cpu_card(CARD, UID, 1_000, 1));
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status),
        (RecordKind::TopUp, RecordStatus::Success)
    );
    assert_ne!(r.tac, 0);
    assert_eq!(rig.balance(), 3_345);
    let Some(Message::LoadRequest(q)) = rig
        .host
        .received
        .iter()
        .find(|m| matches!(m, Message::LoadRequest(_)))
    else {
        panic!("no 0x08")
    };
    assert!(matches!(q.card, messages::LoadCard::Cpu(i) if i.online_seq == 0));
    rig.check_invariants(1_000);
    rig.check_host_books();
}

// R-B4: no answer: asked once more with the same serial, then given up with no card write
// (never offline); the failed record goes up and the host voids what it made pending.
#[test]
fn top_up_without_answer_is_given_up() {
    let mut rig = Rig::top_up(params());
    rig.host.loads.drop_loads = 2;
    rig.amount(5_000);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(
        rig.term()
            .timers()
            .iter()
            .any(|(t, _)| *t == Timer::LoadReply)
    );
    rig.advance(2_000);
    assert_eq!(loads_sent(&rig), 2);
    rig.advance(2_000);
    assert_eq!(
        statuses(&rig),
        vec![(RecordKind::TopUp, RecordStatus::Failed)]
    );
    assert_eq!(rig.balance(), 10_000);
    assert!(rig.saw_screen("错误：网络故障"));
    rig.advance(6_000);
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-B4: an answer lost once: the repeat gets the same authorisation; one credit.
#[test]
fn top_up_repeat_after_a_lost_answer() {
    for cpu in [false, true] {
        let mut rig = Rig::top_up(params());
        rig.host.loads.drop_loads = 1;
        rig.amount(700);
        tap(&mut rig, cpu, 1_000);
        rig.advance(2_000);
        assert_eq!(rig.last_record().status, RecordStatus::Success, "cpu={cpu}");
        assert_eq!(rig.balance(), 1_700);
        rig.check_invariants(1_000);
        rig.check_host_books();
    }
}

// R-B4, R-C6.1: a final code: its text, the record fails, the card is not written.
#[test]
fn top_up_refused_with_a_final_code() {
    let mut rig = Rig::top_up(params());
    rig.host.loads.load_code = Some(ReturnCode::TOP_UP_LIMIT_REACHED);
    rig.amount(5_000);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：充值已达到限额"));
    assert_eq!(rig.last_record().status, RecordStatus::Failed);
    assert_eq!(rig.balance(), 10_000);
    assert_eq!(
        rig.refused_codes(),
        vec![Some(ReturnCode::TOP_UP_LIMIT_REACHED)]
    );
}

// R-B4: a top-up is never made offline: without the host nothing is journalled or written.
#[test]
fn top_up_never_offline() {
    let mut rig = Rig::top_up(params());
    rig.link_down();
    rig.amount(5_000);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.records().is_empty());
    assert_eq!(rig.balance(), 10_000);
    assert!(rig.saw_screen("联机失败"));
}

// R-B4: the credit would pass the card's limit (MF1: 167,772.15 元): refused before asking.
#[test]
fn top_up_over_the_card_limit_is_refused() {
    let mut rig = Rig::top_up(params());
    rig.amount(20_000);
    rig.place(card_with(CARD, UID, 16_770_000, 1));
    assert_eq!(
        rig.refused_codes(),
        vec![Some(ReturnCode::CARD_BALANCE_OVER_LIMIT)]
    );
    assert_eq!(loads_sent(&rig), 0);
}

// R-B4, R-P5.4: the credit torn at the main wallet write: the re-tap shows whether it
// landed; not landed it is written again under the same authorisation; one credit either way.
#[test]
fn torn_top_up_is_resolved_on_the_retap() {
    for outcome in [TearOutcome::Old, TearOutcome::New] {
        let mut rig = Rig::top_up(params());
        rig.amount(5_000);
        // The credit's sequence ends with main, backup, state: tear main.
        rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, outcome);
        assert_eq!(rig.term().in_flight(), Some(rig.last_record().serial));
        assert!(rig.saw_screen("请重新刷卡"));
        rig.retap();
        assert_eq!(
            rig.last_record().status,
            RecordStatus::Success,
            "{outcome:?}"
        );
        assert_eq!(rig.balance(), 15_000);
        assert_eq!(loads_sent(&rig), 1);
        rig.advance(6_000);
        rig.check_invariants(10_000);
        rig.check_host_books();
    }
}

// R-B4: the card is not shown again: cancel after 60 s leaves the load 发起交易 (unknown, no
// cancellation record); the host keeps it pending and settles it by the card's next record.
#[test]
fn blind_cancel_leaves_the_load_unknown() {
    let mut rig = Rig::top_up(params());
    rig.amount(5_000);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::New);
    rig.lift();
    rig.advance(60_000);
    rig.key(K::Cancel);
    assert_eq!(
        statuses(&rig),
        vec![(RecordKind::TopUp, RecordStatus::Initiated)]
    );
    rig.advance(6_000);
    assert_eq!(rig.pending(), 0);
    assert_eq!(rig.host.loads.pending().count(), 1);
    // Uploaded as 发起交易, it stays so: a power cut and the card on the reader change nothing.
    rig.power_off();
    rig.reader.retap();
    rig.power_up();
    rig.link_up();
    rig.advance(6_000);
    assert_eq!(
        statuses(&rig),
        vec![(RecordKind::TopUp, RecordStatus::Initiated)]
    );
    // The card's next record (another top-up) tells the host the first one landed.
    rig.amount(100);
    rig.retap();
    rig.advance(6_000);
    assert_eq!(rig.balance(), 15_100);
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-B5: an online debit answered 卡有补助未领: what waits is asked (0x09) while the card is on
// the reader, 领取补助 is shown and the pick-up is loaded (record kind 7) with the card's
// subsidy sequence + 1; the host posts it.
#[test]
fn pick_up_after_an_online_debit() {
    for cpu in [false, true] {
        let mut rig = Rig::new(params());
        rig.host.info = InfoCode::SUBSIDY_WAITING;
        rig.host.loads.deposit(CARD, 20_000);
        rig.amount(300);
        tap(&mut rig, cpu, 10_000);
        assert_eq!(
            statuses(&rig),
            vec![
                (RecordKind::Purchase, RecordStatus::Success),
                (RecordKind::Subsidy, RecordStatus::Success)
            ],
            "cpu={cpu}"
        );
        assert!(rig.saw_screen("领取补助：200.00元"));
        assert!(rig.saw_screen("领取成功"));
        assert_eq!(rig.balance(), 10_000 - 300 + 20_000);
        assert_eq!(subsidy_seq(&rig), Some(1));
        rig.advance(6_000);
        assert_eq!(rig.host.loads.picked_up.get(&CARD), Some(&1));
        rig.check_invariants(10_000);
        rig.check_host_books();
    }
}

// R-B5: on a top-up terminal a tap without an amount picks up what waits; nothing waiting,
// nothing is journalled.
#[test]
fn pick_up_on_a_top_up_terminal() {
    let mut rig = Rig::top_up(params());
    rig.place(card_with(CARD, UID, 1_000, 1));
    assert!(rig.records().is_empty());
    rig.host.loads.deposit(CARD, 800);
    rig.retap();
    assert_eq!(
        statuses(&rig),
        vec![(RecordKind::Subsidy, RecordStatus::Success)]
    );
    assert_eq!(rig.balance(), 1_800);
    assert_eq!(subsidy_seq(&rig), Some(1));
    rig.advance(6_000);
    rig.check_invariants(1_000);
    rig.check_host_books();
}

// R-B5, code 63: the card's subsidy sequence differs from the host's count: shown, nothing
// written.
#[test]
fn subsidy_sequence_mismatch_is_refused() {
    let mut rig = Rig::top_up(params());
    rig.host.loads.deposit(CARD, 800);
    rig.host.loads.picked_up.insert(CARD, 3);
    rig.place(card_with(CARD, UID, 1_000, 1));
    assert!(rig.saw_screen("错误：卡补助序号异常"));
    assert!(rig.records().is_empty());
    assert_eq!(rig.balance(), 1_000);
}

// R-B4: power lost after the authorisation, before the card write: at power-up the load is
// settled from the card on the reader (not landed → 中途拔卡) and the host voids it; without
// the card it goes up 发起交易 and the card's next record settles it.
#[test]
fn power_cut_before_the_write_is_settled() {
    for card_there in [true, false] {
        let mut rig = Rig::top_up(params());
        rig.amount(5_000);
        // The card leaves before it is written: the answer finds no card.
        rig.reader
            .place(SimCard::Mf1(card_with(CARD, UID, 10_000, 1)));
        rig.host.loads.drop_loads = 1;
        rig.feed(ykt_terminal::Input::CardPresent);
        assert_eq!(rig.last_record().status, RecordStatus::Initiated);
        rig.power_off();
        if !card_there {
            rig.reader.lift();
        }
        rig.power_up();
        rig.link_up();
        rig.advance(6_000);
        let want = if card_there {
            RecordStatus::CardPulled
        } else {
            RecordStatus::Initiated
        };
        assert_eq!(rig.last_record().status, want);
        rig.settle();
        assert_eq!(rig.balance(), 10_000 + rig.host.loads.posted());
        rig.check_invariants(10_000);
        rig.check_host_books();
    }
}

// R-P5.1: a top-up terminal's sign-in times out after 5 s, like a POS's.
#[test]
fn top_up_sign_in_times_out_after_5_s() {
    let mut rig = Rig::blank_as(params(), ykt_terminal::TerminalRole::TopUp);
    rig.host.silent = true;
    rig.link_up();
    let deadline = rig
        .term()
        .timers()
        .into_iter()
        .find(|(t, _)| *t == Timer::SignInReply)
        .map(|(_, at)| at);
    assert_eq!(deadline, Some(rig.now + 5_000));
    rig.advance(5_000);
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::SignInFailed { code: None }))
    );
}
