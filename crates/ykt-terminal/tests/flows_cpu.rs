#![allow(clippy::unwrap_used)]
//! CPU (PBOC-style purse) cards through the same flows: offline (R-P5.6) and online (R-P5.2)
//! debits with a TAC the host can verify, a lost answer resolved by GET TRANSACTION PROVE
//! (R-P5.4), a debit that did not happen written again (R-P5.7), password (R-F4.11), black
//! card (R-F4.15), no reversal (R-F4.22: MF1 only).

mod sim;
use sim::*;
use ykt_card::Fault;
use ykt_proto::messages::{BlacklistEntry, BlacklistOp};
use ykt_proto::*;
use ykt_terminal::{Beep, Key as K};

const UID2: [u8; 4] = [0xC0, 0xC1, 0xC2, 0xC3];

/// Reader operations of a whole CPU tap-and-debit.
fn ops_of_cpu_debit(p: TerminalParams) -> u64 {
    let mut rig = Rig::new(p);
    rig.amount(100);
    let before = rig.reader.op_count();
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    rig.reader.op_count() - before
}

// R-P5.6 (CPU): offline purchase, record with the purse's offline sequence and a TAC.
#[test]
fn cpu_offline_debit() {
    let p = TerminalParams {
        work_mode: WorkMode::Offline,
        ..params()
    };
    let mut rig = Rig::new(p);
    rig.amount(1_500);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    let r = rig.last_record();
    assert_eq!(
        (r.card_type, r.status, r.card_counter),
        (CardType::Cpu, RecordStatus::Written, 0)
    );
    assert_ne!(r.tac, 0);
    assert_eq!(rig.balance(), 8_500);
    rig.lift();
    rig.amount(100);
    rig.retap();
    assert_eq!(rig.last_record().card_counter, 1);
    rig.check_invariants(10_000);
    rig.check_host_books();
}

/// Card 4242's purse (serial 594B540000001092) whose public file names card 16126098.
fn cpu_card_with_foreign_number() -> ykt_card::cpu::CpuCard {
    let mut c = cpu_card(CARD, UID2, 10_000, 1);
    assert_eq!(c.serial, [0x59, 0x4B, 0x54, 0, 0, 0x00, 0x10, 0x92]);
    c.ef15[8] = 0xF6; // card number 0xF61092 = 16126098
    c
}

/// A card whose number and serial disagree is refused with 58 before anything is debited or
/// asked of the host, and the tap is kept as a failed record, uploaded unbooked.
fn foreign_number_refused(work_mode: WorkMode) {
    let p = TerminalParams {
        work_mode,
        ..params()
    };
    let mut rig = Rig::new(p);
    rig.amount(700);
    rig.place_cpu(cpu_card_with_foreign_number());
    assert_eq!(
        rig.refused_codes(),
        vec![Some(ReturnCode::CARD_STATUS_ABNORMAL)]
    );
    assert!(rig.saw_screen("错误：卡状态异常"));
    assert_eq!(rig.balance(), 10_000);
    assert!(
        !rig.host
            .received
            .iter()
            .any(|m| matches!(m, Message::DebitRequest(_)))
    );
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status, r.card_no.get(), r.amount, r.fee),
        (
            RecordKind::Purchase,
            RecordStatus::Failed,
            16_126_098,
            700,
            0
        )
    );
    assert_eq!((r.balance_before, r.balance_after), (10_000, 10_000));
    rig.settle();
    assert!(rig.host.records.get(&r.serial).is_some_and(|s| !s.booked));
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// issue 18.1, R-C6.1 (58), R-F4.3: offline, a CPU card whose number is not its serial's.
#[test]
fn cpu_number_not_matching_serial_refused_offline() {
    foreign_number_refused(WorkMode::Offline);
}

// issue 18.1, R-C6.1 (58), R-F4.3: online too (the host would authorise the named card and
// the purse of another would be debited).
#[test]
fn cpu_number_not_matching_serial_refused_online() {
    foreign_number_refused(WorkMode::Auto);
}

// R-P5.2 (CPU): online authorisation, then the purchase; the TAC is in the record.
#[test]
fn cpu_online_debit() {
    let mut p = params();
    p.fee_rates[1] = 10;
    let mut rig = Rig::new(p);
    rig.amount(1_000);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    let r = rig.last_record();
    assert_eq!(
        (r.status, r.online, r.fee),
        (RecordStatus::Success, true, 100)
    );
    assert_eq!(rig.balance(), 8_900);
    assert!(
        rig.host
            .received
            .iter()
            .any(|m| matches!(m, Message::DebitRequest(d) if d.card_type == CardType::Cpu))
    );
    rig.check_invariants(10_000);
}

// R-P5.4 (CPU): the purchase's answer is lost; on re-tap the card proves the debit and the
// record gets its TAC, with no second debit.
#[test]
fn cpu_lost_answer_proven() {
    let mut rig = Rig::new(params());
    let at = rig.reader.op_count() + ops_of_cpu_debit(params()) - 1;
    rig.reader.inject(at, Fault::AckLost);
    rig.amount(700);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    assert_eq!(rig.beeps.last(), Some(&Beep::Continuous));
    rig.retap();
    let r = rig.last_record();
    assert_eq!(r.status, RecordStatus::Success);
    assert_ne!(r.tac, 0);
    assert_eq!(rig.balance(), 9_300);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.7 (CPU): the purchase did not happen: written again on re-tap, once.
#[test]
fn cpu_failed_debit_rewritten() {
    let p = TerminalParams {
        work_mode: WorkMode::Offline,
        ..params()
    };
    let mut rig = Rig::new(p.clone());
    let at = rig.reader.op_count() + ops_of_cpu_debit(p) - 1;
    rig.reader.inject(at, Fault::FailBefore);
    rig.amount(700);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    assert_eq!(rig.last_record().status, RecordStatus::NotWritten);
    assert_eq!(rig.balance(), 10_000);
    rig.retap();
    assert_eq!(rig.last_record().status, RecordStatus::Written);
    assert_eq!(rig.balance(), 9_300);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-P5.8 (CPU): cancel after 60 s → 中途拔卡, nothing debited.
#[test]
fn cpu_cancel() {
    let p = TerminalParams {
        work_mode: WorkMode::Offline,
        ..params()
    };
    let mut rig = Rig::new(p.clone());
    let at = rig.reader.op_count() + ops_of_cpu_debit(p) - 1;
    rig.reader.inject(at, Fault::FailBefore);
    rig.amount(700);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    rig.advance(60_000);
    rig.key(K::Cancel);
    assert_eq!(rig.last_record().status, RecordStatus::CardPulled);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-F4.11 (CPU): the password is verified by the card.
#[test]
fn cpu_password() {
    let mut p = params();
    p.single_password_threshold = 500;
    let mut rig = Rig::new(p);
    rig.amount(500);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    rig.type_digits("9999");
    rig.key(K::Enter);
    assert!(rig.saw_screen("错误：卡密码错误"));
    rig.retap();
    rig.type_digits(PIN);
    rig.key(K::Enter);
    assert_eq!(rig.balance(), 9_500);
}

// R-F4.15 (CPU): a listed purse is blocked on the card and refused everywhere after.
#[test]
fn cpu_black_card() {
    let mut rig = Rig::blank(params());
    rig.host.blacklist.push(BlacklistEntry {
        op: BlacklistOp::Add,
        card_no: CardNo::new(CARD).unwrap(),
    });
    rig.link_up();
    rig.amount(100);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    assert!(rig.saw_screen("错误：卡已锁定"));
    assert!(rig.locked());
    assert_eq!(rig.last_record().kind, RecordKind::BlackCard);
}

// R-F4.22: reversal is for MF1 cards; a CPU card is refused with a clear text.
#[test]
fn cpu_no_reversal() {
    let mut rig = Rig::new(params());
    rig.amount(100);
    rig.place_cpu(cpu_card(CARD, UID2, 10_000, 1));
    rig.lift();
    rig.key(K::Reversal);
    rig.retap();
    assert!(rig.saw_screen("CPU卡不支持冲正"));
    assert_eq!(rig.balance(), 9_900);
}
