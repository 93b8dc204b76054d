#![allow(clippy::unwrap_used)]
//! Operator authorisation cards on the POS (R-B11): a function the device parameters protect
//! asks for the operator card (请刷授权卡), then its PIN, checks it with the host (0x0A) and
//! runs only on 0; the host's 80–89 are shown as the spec's texts.

mod sim;
use chrono::NaiveDate;
use sim::*;
use ykt_card::app::issue::IssueParams;
use ykt_card::app::operator::{OperatorData, issue_operator};
use ykt_card::mf1::Mf1Card;
use ykt_proto::messages::*;
use ykt_proto::*;
use ykt_terminal::{AUTH_REPLY_MS, AUTH_STEP_MS, Event, Key as K, Timer};

const OPERATOR_CARD: u32 = 900_001;
const OPERATOR_UID: [u8; 4] = [0x0A, 0x0B, 0x0C, 0x0D];
const OPERATOR_PIN: &str = "246810";

fn protecting(functions: &[AuthFunction]) -> TerminalParams {
    let mut p = params();
    p.operator_card = functions.iter().copied().collect();
    p
}

/// A signed-in POS whose host knows the operator card, authorising `allowed`.
fn rig_with(protected: &[AuthFunction], allowed: &[AuthFunction]) -> Rig {
    let mut rig = Rig::new(protecting(protected));
    rig.host.auth_cards.insert(
        OPERATOR_CARD,
        (OPERATOR_PIN.into(), allowed.iter().copied().collect()),
    );
    rig
}

/// An operator card (block 8, `ykt_card::app::operator`) valid 2026-01-01 until 2030-01-01
/// for `functions`, with the PIN `OPERATOR_PIN`.
fn operator_card_for(functions: &[AuthFunction], from: NaiveDate, until: NaiveDate) -> Mf1Card {
    let p = IssueParams {
        card_no: CardNo::new(OPERATOR_CARD).unwrap(),
        display_no: DisplayNo::new(u64::from(OPERATOR_CARD)).unwrap(),
        class: 0,
        expiry: NaiveDate::from_ymd_opt(2030, 6, 30).unwrap(),
        balances: vec![0],
        pin: OPERATOR_PIN.into(),
    };
    let op = OperatorData {
        auth_card_no: OPERATOR_CARD,
        operator: 3,
        valid_from: from,
        valid_until: until,
        functions: functions.iter().copied().collect::<AuthFunctions>().bits(),
    };
    issue_operator(&keys(), OPERATOR_UID, &p, &op).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn operator_card() -> Mf1Card {
    operator_card_for(&AuthFunction::ALL, day(2026, 1, 1), day(2030, 1, 1))
}

/// Taps the operator card and keys `pin`.
fn authorise(rig: &mut Rig, pin: &str) {
    assert_eq!(rig.screen(), "请刷授权卡");
    rig.place(operator_card());
    assert!(
        rig.screen().starts_with("请输入授权卡密码"),
        "{}",
        rig.screen()
    );
    rig.type_digits(pin);
    assert!(
        rig.screen().ends_with(&"*".repeat(pin.len())),
        "{}",
        rig.screen()
    );
    rig.key(K::Enter);
}

fn checks_sent(rig: &Rig) -> Vec<AuthCheckRequest> {
    rig.host
        .received
        .iter()
        .filter_map(|m| match m {
            Message::AuthCheckRequest(q) => Some(q.clone()),
            _ => None,
        })
        .collect()
}

// R-B11 (code 0): a protected reversal waits for the operator card and its PIN; the check
// carries card, function, terminal time and a PIN block only the session opens; on 0 the
// reversal runs as without protection.
#[test]
fn protected_reversal_runs_after_the_operator_card() {
    let mut rig = rig_with(&[AuthFunction::Reversal], &[AuthFunction::Reversal]);
    rig.amount(600);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let original = rig.last_record();
    let customer = rig.card().clone();
    rig.lift();
    rig.key(K::Reversal);
    assert_eq!(rig.timers_named(Timer::AuthStep), 1);
    authorise(&mut rig, OPERATOR_PIN);
    let sent = checks_sent(&rig);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].card_no, sent[0].function),
        (OPERATOR_CARD, AuthFunction::Reversal)
    );
    assert_eq!(sent[0].time, rig.term().wall());
    assert!(rig.screen().contains("请刷卡冲正"), "{}", rig.screen());
    assert_eq!(rig.timers_named(Timer::AuthReply), 0);
    rig.lift();
    rig.place(customer);
    let r = rig.last_record();
    assert_eq!(
        (r.kind, r.status, r.original_serial),
        (
            RecordKind::Reversal,
            RecordStatus::Written,
            Some(original.serial)
        )
    );
    assert_eq!(rig.balance(), 10_000);
    rig.settle();
    rig.check_invariants(10_000);
    rig.check_host_books();
}

// R-B11: without the operator card nothing is reversed: the customer's card tapped at
// 请刷授权卡 is taken as the operator card, which the host does not know (code 80).
#[test]
fn protected_reversal_refused_without_an_operator_card() {
    let mut rig = rig_with(&[AuthFunction::Reversal], &[AuthFunction::Reversal]);
    rig.amount(600);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let before = rig.records().len();
    let customer = rig.card().clone();
    rig.lift();
    rig.key(K::Reversal);
    assert_eq!(rig.screen(), "请刷授权卡");
    rig.place(customer);
    rig.type_digits("1234");
    rig.key(K::Enter);
    assert!(rig.saw_screen("错误：授权卡号不存在"), "{}", rig.screen());
    assert_eq!(
        rig.refused_codes().last(),
        Some(&Some(ReturnCode::AUTH_CARD_NOT_FOUND))
    );
    rig.retap();
    assert_eq!(rig.records().len(), before, "nothing reversed");
    assert_eq!(rig.balance(), 10_000 - 600);
}

// R-B11 (codes 80–89): every refusal the host answers is shown as the spec's text, with its
// code, and the function does not run.
#[test]
fn every_refusal_code_is_shown_and_stops_the_function() {
    for code in 80..=89u8 {
        let code = ReturnCode(code);
        let mut rig = rig_with(&[AuthFunction::Reversal], &[AuthFunction::Reversal]);
        let mut pin = OPERATOR_PIN;
        match code {
            ReturnCode::AUTH_CARD_NOT_FOUND => {
                rig.host.auth_cards.clear();
            }
            ReturnCode::AUTH_CARD_NO_PERMISSION => {
                let f = [AuthFunction::Statistics].into_iter().collect();
                rig.host
                    .auth_cards
                    .insert(OPERATOR_CARD, (OPERATOR_PIN.into(), f));
            }
            ReturnCode::AUTH_CARD_PASSWORD_WRONG => pin = "9999",
            _ => rig.host.auth_code = Some(code),
        }
        rig.key(K::Reversal);
        authorise(&mut rig, pin);
        assert!(
            rig.saw_screen(&code.screen_text()),
            "{code:?}: {}",
            rig.screen()
        );
        assert!(rig.events.contains(&Event::Refused {
            code: Some(code),
            text: code.screen_text(),
        }));
        assert!(!rig.saw_screen("请刷卡冲正"), "{code:?}");
        rig.advance(2_000);
        assert!(rig.screen().contains("请输入金额"), "{}", rig.screen());
    }
}

// R-B11: the other protected functions — statistics, work-mode change, clearing the offline
// time, manual sign-in — run only after the operator card; unprotected ones run at once.
#[test]
fn each_protected_function_waits_for_its_card() {
    let all: Vec<AuthFunction> = AuthFunction::ALL.to_vec();
    let mut rig = rig_with(&all, &all);
    rig.key(K::Stats);
    assert!(!rig.saw_screen("今日"));
    authorise(&mut rig, OPERATOR_PIN);
    assert!(rig.screen().starts_with("今日"), "{}", rig.screen());
    rig.advance(6_000);

    let mode = rig.term().storage().params.get().work_mode();
    rig.key(K::Mode);
    assert_eq!(rig.term().storage().params.get().work_mode(), mode);
    authorise(&mut rig, OPERATOR_PIN);
    assert_ne!(rig.term().storage().params.get().work_mode(), mode);
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::ModeChanged(_)))
    );
    rig.advance(2_000);

    rig.key(K::ResetOffline);
    assert!(!rig.saw_screen("脱机时间已清零"));
    authorise(&mut rig, OPERATOR_PIN);
    assert!(rig.saw_screen("脱机时间已清零"));
    rig.advance(2_000);

    let sign_ins = |rig: &Rig| {
        rig.events
            .iter()
            .filter(|e| matches!(e, Event::SignedIn { .. }))
            .count()
    };
    let before = sign_ins(&rig);
    rig.key(K::SignIn);
    assert_eq!(sign_ins(&rig), before);
    authorise(&mut rig, OPERATOR_PIN);
    assert_eq!(sign_ins(&rig), before + 1);

    let functions: Vec<AuthFunction> = checks_sent(&rig).iter().map(|q| q.function).collect();
    assert_eq!(
        functions,
        [
            AuthFunction::Statistics,
            AuthFunction::WorkModeChange,
            AuthFunction::ClearOfflineTime,
            AuthFunction::ManualSignIn,
        ]
    );
    // Each PIN block is bound to its own nonce.
    let nonces: std::collections::BTreeSet<u32> =
        checks_sent(&rig).iter().map(|q| q.nonce).collect();
    assert_eq!(nonces.len(), 4);

    // Not protected: statistics at once.
    let mut rig = rig_with(&[AuthFunction::Reversal], &all);
    rig.key(K::Stats);
    assert!(rig.screen().starts_with("今日"), "{}", rig.screen());
    assert!(checks_sent(&rig).is_empty());
}

// R-B11 (code 0 offline): without a session the operator card decides from what it carries:
// valid today, the function among its own, the PIN its verification data's.
#[test]
fn offline_the_card_authorises() {
    let mut rig = rig_with(&[AuthFunction::Statistics], &[]);
    rig.link_down();
    rig.key(K::Stats);
    authorise(&mut rig, OPERATOR_PIN);
    assert!(rig.screen().starts_with("今日"), "{}", rig.screen());
    assert!(checks_sent(&rig).is_empty());
}

// R-B11 (codes 80, 85, 86, 88, 89 offline): every refusal the card itself can tell, with the
// spec's text; the function does not run.
#[test]
fn offline_refusals_from_the_card() {
    let stats = [AuthFunction::Statistics];
    let cases: [(ReturnCode, Mf1Card, &str); 5] = [
        // A cardholder's card carries no operator data.
        (
            ReturnCode::AUTH_CARD_NOT_FOUND,
            card_with(CARD, UID, 10_000, 1),
            PIN,
        ),
        (
            ReturnCode::AUTH_CARD_NOT_EFFECTIVE,
            operator_card_for(&stats, day(2026, 3, 3), day(2030, 1, 1)),
            OPERATOR_PIN,
        ),
        // Until is exclusive: the rig's day is 2026-03-02.
        (
            ReturnCode::AUTH_CARD_EXPIRED,
            operator_card_for(&stats, day(2026, 1, 1), day(2026, 3, 2)),
            OPERATOR_PIN,
        ),
        (
            ReturnCode::AUTH_CARD_NO_PERMISSION,
            operator_card_for(&[AuthFunction::Reversal], day(2026, 1, 1), day(2030, 1, 1)),
            OPERATOR_PIN,
        ),
        (
            ReturnCode::AUTH_CARD_PASSWORD_WRONG,
            operator_card_for(&stats, day(2026, 1, 1), day(2030, 1, 1)),
            "999999",
        ),
    ];
    for (code, card, pin) in cases {
        let mut rig = rig_with(&stats, &stats);
        rig.link_down();
        assert_eq!(rig.term().wall().date(), day(2026, 3, 2));
        rig.key(K::Stats);
        rig.place(card);
        rig.type_digits(pin);
        rig.key(K::Enter);
        assert!(
            rig.events.contains(&Event::Refused {
                code: Some(code),
                text: code.screen_text(),
            }),
            "{code:?}: {}",
            rig.screen()
        );
        assert!(!rig.saw_screen("今日"), "{code:?}");
    }
}

// R-B11: a check in flight when the link drops is given up.
#[test]
fn a_check_in_flight_is_lost_with_the_link() {
    let mut rig = rig_with(&[AuthFunction::Statistics], &[AuthFunction::Statistics]);
    rig.host.auth_silent = true;
    rig.key(K::Stats);
    authorise(&mut rig, OPERATOR_PIN);
    assert_eq!(rig.screen(), "请稍候");
    rig.link_down();
    assert!(rig.saw_screen("联机失败"));
    assert!(!rig.saw_screen("今日"));
    assert_eq!(rig.timers_named(Timer::AuthReply), 0);
}

// R-B11: deadlines in the timer table: the host's answer (AUTH_REPLY_MS), the operator's
// card and PIN (AUTH_STEP_MS); 取消 ends the step.
#[test]
fn authorisation_deadlines_and_cancel() {
    let mut rig = rig_with(&[AuthFunction::Statistics], &[AuthFunction::Statistics]);
    rig.host.auth_silent = true;
    rig.key(K::Stats);
    authorise(&mut rig, OPERATOR_PIN);
    assert_eq!(rig.timers_named(Timer::AuthReply), 1);
    rig.advance(AUTH_REPLY_MS - 1);
    assert_eq!(rig.screen(), "请稍候");
    rig.advance(1);
    assert!(rig.saw_screen("联机失败"));
    assert!(!rig.saw_screen("今日"));

    rig.advance(2_000);
    rig.key(K::Stats);
    assert_eq!(rig.screen(), "请刷授权卡");
    rig.advance(AUTH_STEP_MS);
    assert!(rig.screen().contains("请输入金额"), "{}", rig.screen());
    assert_eq!(rig.timers_named(Timer::AuthStep), 0);

    rig.key(K::Stats);
    rig.place(operator_card());
    rig.type_digits("12");
    rig.key(K::Cancel);
    assert!(rig.screen().contains("请输入金额"), "{}", rig.screen());
    // A PIN of fewer than 4 digits is keyed again, not sent.
    rig.host.auth_silent = false;
    rig.key(K::Stats);
    rig.place(operator_card());
    rig.type_digits("12");
    rig.key(K::Enter);
    assert!(
        rig.screen().starts_with("请输入授权卡密码"),
        "{}",
        rig.screen()
    );
    assert!(checks_sent(&rig).len() == 1, "only the silent one was sent");
    rig.type_digits(OPERATOR_PIN);
    rig.key(K::Enter);
    assert!(rig.screen().starts_with("今日"), "{}", rig.screen());
}
