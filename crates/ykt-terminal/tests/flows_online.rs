#![allow(clippy::unwrap_used)]
//! Online consumption (R-P5.2), its timeout (R-P5.3), write failure (R-P5.4) and cancel
//! (R-P5.5), against the scripted host.

mod sim;
use sim::*;
use ykt_card::TearOutcome;
use ykt_proto::*;
use ykt_terminal::{Beep, Event, Key as K};

fn debit_requests(rig: &Rig) -> usize {
    rig.host
        .received
        .iter()
        .filter(|m| matches!(m, Message::DebitRequest(_)))
        .count()
}

// R-P5.2: record "initiated" before the request, debit after the host's yes, status success
// and uploaded, balance shown 2 s.
#[test]
fn online_debit_success() {
    let mut rig = Rig::new(params());
    rig.amount(1_250);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status, r.online),
        (RecordKind::Purchase, RecordStatus::Success, true)
    );
    assert!(rig.events.iter().any(|e| matches!(
        e,
        Event::Record {
            status: RecordStatus::Initiated,
            ..
        }
    )));
    assert_eq!(rig.balance(), 8_750);
    assert!(
        rig.screens
            .iter()
            .any(|s| s.lines.iter().any(|l| l == "余额：87.50元") && s.hold_ms == Some(2_000))
    );
    assert_eq!(rig.pending(), 0);
    assert_eq!(debit_requests(&rig), 1);
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-C6.2: an information code is shown as 提示：<text> for 1–2 s after the transaction.
#[test]
fn information_code_is_shown() {
    let mut rig = Rig::new(params());
    rig.host.info = InfoCode::EXPIRING_SOON;
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let s = rig
        .screens
        .iter()
        .find(|s| s.lines.iter().any(|l| l == "提示：卡即将过期"))
        .unwrap();
    assert!((1_000..=2_000).contains(&s.hold_ms.unwrap()));
}

// R-P5.3: 500 ms, one retry, then offline in auto mode: the card is debited by the
// terminal's calculation and the record says 扣款成功; it is uploaded later, booked once.
#[test]
fn timeout_retries_once_then_goes_offline() {
    let mut rig = Rig::new(params());
    rig.host.drop_debits = 2;
    rig.amount(300);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(rig.last_record().status, RecordStatus::Initiated);
    rig.advance(499);
    assert_eq!(debit_requests(&rig), 1);
    rig.advance(1);
    assert_eq!(debit_requests(&rig), 2, "one retry after 500 ms");
    assert_eq!(rig.last_record().status, RecordStatus::Initiated);
    rig.advance(500);
    let r = rig.last_record();
    assert_eq!((r.status, r.online), (RecordStatus::Debited, true));
    assert_eq!(rig.balance(), 9_700);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.3: the host answered the retry: no fallback, no double debit.
#[test]
fn retry_answered() {
    let mut rig = Rig::new(params());
    rig.host.drop_debits = 1;
    rig.amount(300);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.advance(500);
    assert_eq!(rig.last_record().status, RecordStatus::Success);
    assert_eq!(rig.balance(), 9_700);
    rig.settle();
    rig.check_host_books();
}

// R-P5.3 interpretation, R-F4.18: full-online mode never falls back; the record is Failed.
#[test]
fn full_online_refuses_on_timeout() {
    let mut p = params();
    p.work_mode = WorkMode::FullOnline;
    let mut rig = Rig::new(p);
    rig.host.silent = true;
    rig.amount(300);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.advance(1_000);
    assert_eq!(rig.last_record().status, RecordStatus::Failed);
    assert_eq!(rig.balance(), 10_000);
    assert!(rig.saw_screen("错误：网络故障"));
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.3, R-C6.1: codes 1–9 are handled like a timeout (retry, then offline).
#[test]
fn system_error_codes_go_offline() {
    let mut rig = Rig::new(params());
    rig.host.debit_code = Some(ReturnCode::DATABASE_ERROR);
    rig.amount(300);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(debit_requests(&rig), 2);
    assert_eq!(rig.last_record().status, RecordStatus::Debited);
    assert_eq!(rig.balance(), 9_700);
}

// R-P5.3, R-B9: code 8 (系统维护中, the host's maintenance mode) and code 9 (日终处理中)
// are handled like a timeout: one retry, then the sale completes offline in auto mode.
#[test]
fn maintenance_and_day_end_codes_go_offline() {
    for code in [ReturnCode::SYSTEM_MAINTENANCE, ReturnCode::END_OF_DAY] {
        let mut rig = Rig::new(params());
        rig.host.debit_code = Some(code);
        rig.amount(300);
        rig.place(card_with(CARD, UID, 10_000, 1));
        assert_eq!(debit_requests(&rig), 2, "code {}", code.0);
        // The record of the online attempt, completed by the terminal's own calculation.
        assert_eq!(rig.last_record().status, RecordStatus::Debited);
        assert_eq!(rig.balance(), 9_700);
    }
}

// R-P5.2, R-C6.1: an error code is shown as 错误：<text>; nothing is debited.
#[test]
fn error_code_is_shown() {
    let mut rig = Rig::new(params());
    rig.host.debit_code = Some(ReturnCode::CARD_ACCOUNT_INSUFFICIENT);
    rig.amount(300);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡账户余额不足"));
    assert_eq!(rig.last_record().status, RecordStatus::Failed);
    assert_eq!(rig.balance(), 10_000);
    assert!(
        !rig.locked(),
        "a refusal that is not a card-status error does not lock"
    );
}

// R-P5.2, R-F4.15: a card-status error (51–58) locks the card; any terminal then refuses it.
#[test]
fn card_status_error_locks_card() {
    let mut rig = Rig::new(params());
    rig.host.debit_code = Some(ReturnCode::CARD_LOST);
    rig.amount(300);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.saw_screen("错误：卡已挂失"));
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::CardLocked { card_no: CARD }))
    );
    rig.host.debit_code = None;
    rig.lift();
    rig.amount(300);
    let n = rig.records().len();
    rig.retap();
    assert!(rig.saw_screen("错误：卡已锁定"));
    assert_eq!(
        rig.records().len(),
        n,
        "a locked card is refused before any record"
    );
    assert_eq!(rig.balance(), 10_000);
}

// R-P5.4: a write failure beeps continuously and asks for the card; on re-tap a write that
// did not land is written again, once; the record becomes success.
#[test]
fn write_failure_not_landed_is_rewritten() {
    let mut rig = Rig::new(params());
    rig.amount(500);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::Old);
    assert_eq!(rig.beeps.last(), Some(&Beep::Continuous));
    assert!(rig.screen().contains("请重新刷卡"));
    assert_eq!(rig.balance(), 10_000);
    rig.retap();
    assert_eq!(rig.last_record().status, RecordStatus::Success);
    assert_eq!(rig.balance(), 9_500);
    assert!(rig.beeps.contains(&Beep::Stop));
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.4: a write that landed is not written again (never debit twice).
#[test]
fn write_failure_landed_is_not_rewritten() {
    let mut rig = Rig::new(params());
    rig.amount(500);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::New);
    assert_eq!(rig.last_record().status, RecordStatus::Initiated);
    rig.retap();
    assert_eq!(rig.last_record().status, RecordStatus::Success);
    assert_eq!(rig.balance(), 9_500);
    rig.check_invariants(10_000);
}

// R-P5.4: another card during the prompt is not written; the prompt stays.
#[test]
fn other_card_during_retap() {
    let mut rig = Rig::new(params());
    rig.amount(500);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::Old);
    let own = rig.reader.take().unwrap();
    rig.place(card_with(CARD + 1, [9, 9, 9, 9], 10_000, 1));
    assert!(rig.saw_screen("请刷原卡"));
    assert!(rig.term().in_flight().is_some());
    rig.reader.take();
    rig.reader.place(own);
    rig.retap();
    assert_eq!(rig.last_record().status, RecordStatus::Success);
}

// R-P5.5: no cancel for 60 s; then a cancellation record identical but for serial + 1;
// it reaches the host, which reverses the online debit.
#[test]
fn cancel_after_online_write_failure() {
    let mut rig = Rig::new(params());
    rig.amount(500);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 3, TearOutcome::Old);
    let purchase = rig.last_record();
    rig.advance(59_999);
    rig.key(K::Cancel);
    assert!(
        rig.term().in_flight().is_some(),
        "cancel refused within 60 s"
    );
    assert!(rig.saw_screen("60秒内不能取消"));
    rig.advance(1_500); // the refusal text's hold ends
    assert!(rig.screen().contains("可按取消键取消"));
    rig.key(K::Cancel);
    assert!(rig.term().in_flight().is_none());
    let c = rig.last_record();
    assert_eq!(c.kind, RecordKind::Cancellation);
    assert_eq!(c.serial, purchase.serial + 1);
    assert_eq!(
        Record {
            serial: purchase.serial,
            kind: RecordKind::Purchase,
            original_serial: None,
            ..c.clone()
        },
        purchase
    );
    assert_eq!(rig.beeps.last(), Some(&Beep::Stop));
    rig.settle();
    assert_eq!(rig.balance(), 10_000);
    rig.check_invariants(10_000);
    rig.check_host_books();
    assert!(rig.host.records.get(&purchase.serial).unwrap().reversed);
}

// R-P5.2, R-P5.3: the link drops while waiting: no retry possible, offline at once (auto).
#[test]
fn link_down_while_waiting() {
    let mut rig = Rig::new(params());
    rig.host.hold_debits = true;
    rig.amount(200);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.link_down();
    assert_eq!(rig.last_record().status, RecordStatus::Debited);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.3: an answer arriving after the fallback is ignored (the card was debited once).
#[test]
fn late_answer_after_fallback_is_ignored() {
    let mut rig = Rig::new(params());
    rig.host.hold_debits = true;
    rig.amount(200);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.advance(1_000);
    assert_eq!(rig.last_record().status, RecordStatus::Debited);
    rig.release_held();
    assert_eq!(rig.balance(), 9_800);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-F4.17: the host asks, during the online exchange, for the card's last records; they are
// read from the card and uploaded as Collected (booked once at most).
#[test]
fn collection_during_online_debit() {
    let mut rig = Rig::new(params());
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.lift();
    rig.host.collect_last = 3;
    rig.amount(200);
    rig.retap();
    let collected: Vec<_> = rig
        .records()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Collected)
        .collect();
    assert!(
        collected.iter().all(|r| r.merchant_no == 1001),
        "own transactions keep the merchant"
    );
    assert_eq!(collected.len(), 2);
    assert!(
        collected
            .iter()
            .all(|r| r.card_no.get() == CARD && r.device == DEVICE)
    );
    rig.settle();
    rig.check_host_books();
}

// R-F4.17: a collection request from the host is served on the card's next tap.
#[test]
fn collection_request_served_on_next_tap() {
    let mut rig = Rig::new(params());
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.lift();
    rig.host_request(Message::CollectRequest(CollectRequest {
        card_no: CardNo::new(CARD).unwrap(),
        count: 5,
    }));
    assert!(
        rig.host
            .reports
            .iter()
            .any(|m| matches!(m, Message::CollectResponse(r) if r.code.is_success()))
    );
    rig.retap();
    assert_eq!(
        rig.records()
            .iter()
            .filter(|r| r.kind == RecordKind::Collected)
            .count(),
        1
    );
    rig.settle();
    rig.check_host_books();
}

// R-P5.5, R-F4.17: the write landed (torn after the wallet was written) but the holder left
// and the operator cancelled after 60 s: the cancellation goes up; when the card is shown
// again, its ring proves the debit and the terminal journals it as found (Collected) so that
// the host books it once more — the card's money is never unaccounted for.
#[test]
fn blind_cancel_of_a_landed_write_is_found_later() {
    let mut rig = Rig::new(params());
    rig.amount(500);
    rig.place_torn(card_with(CARD, UID, 10_000, 1), 2, TearOutcome::Old);
    assert_eq!(
        rig.balance(),
        9_500,
        "the wallet was written before the tear"
    );
    rig.advance(60_000);
    rig.key(K::Cancel);
    assert_eq!(rig.last_record().kind, RecordKind::Cancellation);
    rig.advance(10_000);
    assert_eq!(
        rig.host.debited.values().sum::<Fen>(),
        0,
        "host reversed the debit"
    );
    rig.retap();
    let found = rig.last_record();
    assert_eq!(
        (found.kind, found.original_serial),
        (RecordKind::Collected, Some(1))
    );
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
    assert_eq!(rig.host.debited.values().sum::<Fen>(), 500);
}
