#![allow(clippy::unwrap_used)]
//! Offline consumption with immediate upload (R-P5.6), its write failure (R-P5.7) and cancel
//! (R-P5.8), background upload (R-P5.9), work modes and offline time (R-F4.18), abnormal
//! records (R-F4.3).

mod sim;
use sim::*;
use ykt_card::TearOutcome;
use ykt_proto::*;
use ykt_terminal::{Beep, Event, Key as K};

fn offline_params() -> TerminalParams {
    TerminalParams {
        work_mode: WorkMode::Offline,
        ..params()
    }
}

// R-P5.6: checks, record 未写卡 before the card write, balance 2 s, 写卡成功, immediate
// upload and 已上传 after the host's check of serial and device.
#[test]
fn offline_debit_uploads_at_once() {
    let mut rig = Rig::new(offline_params());
    rig.amount(700);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let statuses: Vec<_> = rig
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Record { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [RecordStatus::NotWritten, RecordStatus::Written]);
    assert!(
        rig.screens
            .iter()
            .any(|s| s.lines.contains(&"余额：93.00元".to_string()) && s.hold_ms == Some(2_000))
    );
    assert!(
        rig.host
            .received
            .iter()
            .any(|m| matches!(m, Message::UploadRequest(_)))
    );
    assert!(
        !rig.host
            .received
            .iter()
            .any(|m| matches!(m, Message::DebitRequest(_)))
    );
    assert_eq!(rig.pending(), 0);
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.6: while records are not uploaded the indicator stays on screen; it goes when all are.
#[test]
fn pending_indicator_until_uploaded() {
    let mut rig = Rig::new(offline_params());
    rig.link_down();
    for i in 0..3 {
        rig.amount(100 + i);
        rig.place(card_with(CARD, UID, 10_000, 1));
        rig.lift();
        rig.advance(3_000);
    }
    assert!(rig.screen().contains("未上传流水：3笔"), "{}", rig.screen());
    rig.link_up();
    rig.advance(3_000);
    assert_eq!(rig.pending(), 0);
    assert!(!rig.screen().contains("未上传流水"));
}

// R-P5.9: pending records go up in the background, oldest first, each booked once even when
// an acknowledgement is lost and the batch is sent again.
#[test]
fn background_upload_oldest_first_exactly_once() {
    let mut rig = Rig::new(offline_params());
    rig.link_down();
    let mut card = card_with(CARD, UID, 10_000, 1);
    for i in 0..20 {
        rig.amount(10 + i);
        rig.place(card);
        card = rig
            .reader
            .take()
            .map(|c| match c {
                ykt_card::SimCard::Mf1(m) => m,
                _ => unreachable!(),
            })
            .unwrap();
    }
    rig.reader.place(ykt_card::SimCard::Mf1(card));
    rig.host.drop_upload_acks = 1;
    rig.link_up();
    let first = rig
        .host
        .received
        .iter()
        .find_map(|m| match m {
            Message::UploadRequest(u) => {
                Some(u.records.iter().map(|r| r.serial).collect::<Vec<_>>())
            }
            _ => None,
        })
        .unwrap();
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(first[0], 1);
    rig.advance(30_000);
    assert_eq!(rig.pending(), 0);
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.9: a lost acknowledgement: the record is resent after the timeout, the host
// acknowledges the repeat and books nothing twice.
#[test]
fn lost_upload_ack_is_resent() {
    let mut rig = Rig::new(offline_params());
    rig.host.drop_upload_acks = 1;
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(rig.pending(), 1);
    assert_eq!(rig.host.bookings.len(), 1);
    rig.advance(11_000);
    assert_eq!(rig.pending(), 0);
    let uploads = rig
        .host
        .received
        .iter()
        .filter(|m| matches!(m, Message::UploadRequest(_)))
        .count();
    assert_eq!(uploads, 2);
    assert_eq!(rig.host.bookings.len(), 1);
    rig.check_host_books();
}

// R-P5.7: offline write failure → beep, re-tap, rewrite if not landed → 写卡成功.
#[test]
fn offline_write_failure_rewritten() {
    let mut rig = Rig::new(offline_params());
    rig.amount(400);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::Garbage);
    assert_eq!(rig.beeps.last(), Some(&Beep::Continuous));
    assert_eq!(rig.last_record().status, RecordStatus::NotWritten);
    rig.retap();
    assert_eq!(rig.last_record().status, RecordStatus::Written);
    assert_eq!(rig.balance(), 9_600);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.7: a landed write is only marked.
#[test]
fn offline_write_failure_landed() {
    let mut rig = Rig::new(offline_params());
    rig.amount(400);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 2, TearOutcome::Old);
    rig.retap();
    assert_eq!(rig.last_record().status, RecordStatus::Written);
    assert_eq!(rig.balance(), 9_600);
    rig.check_invariants(10_000);
}

// R-P5.8, R-F4.3: cancel only after 60 s; the record becomes 中途拔卡 and is uploaded.
#[test]
fn offline_cancel_marks_card_pulled() {
    let mut rig = Rig::new(offline_params());
    rig.amount(400);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::Old);
    let n = rig.records().len();
    rig.advance(30_000);
    rig.key(K::Cancel);
    assert!(rig.term().in_flight().is_some());
    rig.advance(30_000);
    rig.key(K::Cancel);
    assert_eq!(
        rig.records().len(),
        n,
        "no new record: the same one is marked"
    );
    let r = rig.last_record();
    assert_eq!(r.status, RecordStatus::CardPulled);
    rig.settle();
    assert!(
        rig.host
            .records
            .get(&r.serial)
            .is_some_and(|s| s.record.status == RecordStatus::CardPulled && !s.booked)
    );
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-F4.18: auto mode works offline by itself while the host is gone and online again when it
// answers, with no operator action.
#[test]
fn auto_mode_switches_both_ways() {
    let mut rig = Rig::new(params());
    rig.link_down();
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let r = rig.last_record();
    assert_eq!((r.online, r.status), (false, RecordStatus::Written));
    rig.lift();
    rig.link_up();
    rig.amount(100);
    rig.retap();
    let r = rig.last_record();
    assert_eq!((r.online, r.status), (true, RecordStatus::Success));
}

// R-F4.18: the offline time counts from going offline; past the maximum offline transactions
// are refused until online again or reset by hand.
#[test]
fn max_offline_hours() {
    let mut p = params();
    p.max_offline_hours = 1;
    let mut rig = Rig::new(p);
    rig.link_down();
    rig.advance(3_600_000);
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("脱机时间超限"));
    assert_eq!(rig.balance(), 10_000);
    rig.key(K::ResetOffline);
    rig.advance(2_000);
    rig.amount(100);
    rig.retap();
    assert_eq!(rig.balance(), 9_900);
    // Online again clears the counter.
    rig.link_up();
    assert_eq!(rig.term().storage().state.offline().offline_ms(rig.now), 0);
}

// R-F4.18: the mode is set by hand: full online → auto → offline; full online refuses
// without a host, offline never asks the host.
#[test]
fn modes_set_by_hand() {
    let mut rig = Rig::new(params());
    rig.key(K::Mode);
    assert_eq!(
        rig.term().storage().params.get().work_mode(),
        WorkMode::Offline
    );
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(!rig.last_record().online);
    rig.lift();
    rig.key(K::Mode);
    assert_eq!(
        rig.term().storage().params.get().work_mode(),
        WorkMode::FullOnline
    );
    rig.link_down();
    rig.amount(100);
    rig.retap();
    assert!(rig.saw_screen("错误：网络故障"));
    assert_eq!(rig.balance(), 9_900);
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::ModeChanged(WorkMode::FullOnline)))
    );
}

// R-P5.1, R-F4.18: sign-in work mode 0 (无联机校验) makes the terminal verify offline.
#[test]
fn no_online_check_means_offline() {
    let mut rig = Rig::blank(params());
    rig.host.online_check = ykt_proto::messages::OnlineCheck::NotRequired;
    rig.link_up();
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(!rig.last_record().online);
}

// R-P5.9, R-F4.3: when the journal holds its limit of records not uploaded, new transactions
// are refused with a clear text (no record is ever dropped to make room).
#[test]
fn journal_full_refuses() {
    let mut rig = Rig::new(offline_params());
    rig.link_down();
    rig.place(card_with(CARD, UID, 100_000, 1));
    for _ in 0..200 {
        rig.amount(1);
        rig.retap();
    }
    assert_eq!(rig.pending(), 200);
    rig.amount(1);
    rig.retap();
    assert!(rig.saw_screen("流水已满，请上传"));
    assert_eq!(rig.pending(), 200);
    assert_eq!(rig.balance(), 100_000 - 200);
    rig.link_up();
    rig.advance(60_000);
    assert_eq!(rig.pending(), 0);
    rig.check_host_books();
}

// R-F4.18: observers are told when the terminal goes offline and comes back.
#[test]
fn online_events_follow_the_host() {
    let mut rig = Rig::new(params());
    let online = |rig: &Rig| {
        rig.events
            .iter()
            .filter_map(|e| match e {
                Event::Online(o) => Some(*o),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(online(&rig).last(), Some(&true));
    rig.link_down();
    assert_eq!(online(&rig).last(), Some(&false));
    rig.link_up();
    assert_eq!(online(&rig).last(), Some(&true));
    // A silent host (heartbeat unanswered) counts as offline until it answers again.
    rig.host.silent = true;
    rig.advance(66_000);
    assert_eq!(online(&rig).last(), Some(&false));
    rig.host.silent = false;
    rig.advance(6_000);
    assert_eq!(online(&rig).last(), Some(&true));
}
