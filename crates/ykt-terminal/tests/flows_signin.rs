#![allow(clippy::unwrap_used)]
//! Sign-in (R-F4.1, R-P5.1), host requests: clock (R-F4.19), status (R-F4.20), blacklist
//! download (R-F4.21), parameters (R-F4.4 remote change).

mod sim;
use sim::*;
use ykt_proto::messages::*;
use ykt_proto::*;
use ykt_terminal::{Event, Key as K};

// R-F4.1, R-P5.1: 待签到 at power-up; the request carries physical ID, clock and blacklist
// version; 签到成功; merchant number saved; clock taken from the host; parameters received.
#[test]
fn sign_in_on_power_up() {
    let mut rig = Rig::blank(params());
    assert_eq!(rig.screen(), "待签到");
    rig.link_up();
    assert!(rig.saw_screen("签到成功"));
    assert_eq!(rig.term().storage().params.get().merchant_no, 1001);
    assert_eq!(
        rig.term()
            .storage()
            .params
            .get()
            .params
            .as_ref()
            .unwrap()
            .version,
        3
    );
    assert_eq!(rig.term().wall(), at(2, 11, 30));
    assert!(rig.events.contains(&Event::SignedIn { merchant_no: 1001 }));
    rig.advance(1_600);
    assert!(rig.screen().contains("请输入金额"), "{}", rig.screen());
}

// R-P5.1: merchant number 0 → 请设置商户号 and no work.
#[test]
fn merchant_zero_refuses_work() {
    let mut rig = Rig::blank(params());
    rig.host.merchant_no = 0;
    rig.link_up();
    assert_eq!(rig.screen(), "请设置商户号");
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.records().is_empty());
    assert_eq!(rig.balance(), 10_000);
}

/// A manual sign-in the host refuses with code 24: 错误：POS 已停用 (R-P5.1).
fn refuse_sign_in(rig: &mut Rig) {
    rig.host.sign_in_code = ReturnCode::POS_DISABLED;
    rig.key(K::SignIn);
    assert!(
        rig.screen().contains("错误：POS 已停用"),
        "{}",
        rig.screen()
    );
}

// R-P5.1: an error code shows 错误：<text> and the saved merchant number becomes 0.
#[test]
fn sign_in_error_zeroes_merchant() {
    let mut rig = Rig::new(params());
    assert_eq!(rig.term().storage().params.get().merchant_no, 1001);
    refuse_sign_in(&mut rig);
    assert_eq!(rig.term().storage().params.get().merchant_no, 0);
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.records().iter().all(|r| r.kind != RecordKind::Purchase));
    // Manual sign-in when the host is fixed.
    rig.host.sign_in_code = ReturnCode::SUCCESS;
    rig.key(K::SignIn);
    assert_eq!(rig.term().storage().params.get().merchant_no, 1001);
}

// R-P5.1: a sign-in timeout (5 s) keeps the saved merchant number and the terminal works.
#[test]
fn sign_in_timeout_uses_saved_merchant() {
    let mut rig = Rig::new(params());
    rig.power_off();
    rig.power_up();
    rig.host.silent = true;
    rig.link_up();
    assert_eq!(rig.screen(), "待签到");
    rig.advance(4_999);
    assert_eq!(rig.screen(), "待签到");
    rig.advance(1);
    assert!(rig.events.contains(&Event::SignInFailed { code: None }));
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(rig.last_record().merchant_no, 1001);
    assert_eq!(rig.balance(), 9_900);
}

// R-P5.1, R-F4.21: a newer blacklist is downloaded while idle; the terminal stays usable.
#[test]
fn newer_blacklist_downloaded() {
    let mut rig = Rig::blank(params());
    for n in 1..=5 {
        rig.host.blacklist.push(BlacklistEntry {
            op: BlacklistOp::Add,
            card_no: CardNo::new(n * 1000).unwrap(),
        });
    }
    rig.link_up();
    assert_eq!(rig.term().storage().blacklist.version(), 5);
    assert!(
        rig.term()
            .storage()
            .blacklist
            .contains(CardNo::new(3000).unwrap())
    );
    // Later changes come with the heartbeat.
    rig.host.blacklist.push(BlacklistEntry {
        op: BlacklistOp::Remove,
        card_no: CardNo::new(3000).unwrap(),
    });
    rig.advance(61_000);
    assert_eq!(rig.term().storage().blacklist.version(), 6);
    assert!(
        !rig.term()
            .storage()
            .blacklist
            .contains(CardNo::new(3000).unwrap())
    );
}

// R-F4.19: the host sets the clock; the terminal answers with its new time; it survives
// power cycles (offset persisted).
#[test]
fn clock_set_by_host() {
    let mut rig = Rig::new(params());
    let t = at(3, 6, 0);
    rig.host_request(Message::ClockSetRequest(ClockSetRequest { clock: t }));
    assert_eq!(rig.term().wall(), t);
    assert!(
        rig.host
            .reports
            .iter()
            .any(|m| matches!(m, Message::ClockSetResponse(r) if r.clock == t))
    );
    rig.advance(10_000);
    rig.power_off();
    rig.power_up();
    assert_eq!(rig.term().wall(), t + chrono::TimeDelta::seconds(10));
}

// R-F4.20: the host reads pending records, clock and blacklist version.
#[test]
fn status_query() {
    let mut rig = Rig::new(TerminalParams {
        work_mode: WorkMode::Offline,
        ..params()
    });
    rig.host.drop_upload_acks = 1;
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.host_request(Message::StatusQuery(StatusQuery));
    let Some(Message::StatusReport(r)) = rig.host.reports.last() else {
        panic!()
    };
    assert_eq!(r.pending_records, 1);
    assert_eq!(r.clock, rig.term().wall());
    assert_eq!(r.blacklist_version, 0);
    assert_eq!(r.work_mode, WorkMode::Offline);
}

// R-F4.4: the wallet number is a parameter the host changes remotely; the terminal then
// reads and writes that wallet.
#[test]
fn wallet_number_changed_remotely() {
    let mut rig = Rig::new(params());
    let mut p = params();
    p.version = 4;
    p.wallet_no = 1;
    rig.host_request(Message::ParamsPushRequest(ParamsPushRequest { params: p }));
    assert!(rig.events.contains(&Event::ParamsUpdated { version: 4 }));
    rig.amount(100);
    rig.place(card_with(CARD, UID, 10_000, 1));
    let r = rig.last_record();
    assert_eq!(
        (r.wallet_no, r.balance_before, r.balance_after),
        (1, 500, 400)
    );
    assert_eq!(rig.balance(), 10_000, "wallet 0 untouched");
}

// R-P5.1: a parameter version change seen in the heartbeat is downloaded.
#[test]
fn params_downloaded_on_version_change() {
    let mut rig = Rig::new(params());
    rig.host.params.version = 9;
    rig.host.params.fixed_amount = 250;
    rig.host.params.consumption_mode = ConsumptionMode::FixedAmount;
    rig.advance(61_000);
    assert_eq!(
        rig.term()
            .storage()
            .params
            .get()
            .params
            .as_ref()
            .unwrap()
            .version,
        9
    );
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(rig.balance(), 9_750);
}

// R-C6.3: a stream that cannot be framed is dropped: the terminal asks for a new connection
// and signs in again on it.
#[test]
fn broken_stream_reconnects() {
    let mut rig = Rig::new(params());
    rig.feed(ykt_terminal::Input::FromHost(vec![0xFF; 64]));
    assert!(!rig.link, "the rig closed the connection on Reconnect");
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::ProtocolError(_)))
    );
    rig.link_up();
    assert!(rig.term().is_connected());
}

// R-F4.21: when the host cannot give a delta, the whole list comes in bulk bitmap pages; the
// terminal keeps working meanwhile and switches to the new list atomically at the end.
#[test]
fn bulk_blacklist_initialisation() {
    let mut rig = Rig::blank(params());
    rig.host.refuse_delta = true;
    for n in [1u32, 262_144, 9_000_000, CardNo::MAX] {
        rig.host.blacklist.push(BlacklistEntry {
            op: BlacklistOp::Add,
            card_no: CardNo::new(n).unwrap(),
        });
    }
    rig.link_up();
    let bulk = rig
        .host
        .received
        .iter()
        .filter(|m| matches!(m, Message::BlacklistBulkRequest(_)))
        .count();
    assert_eq!(bulk, usize::from(MAX_SEGMENTS));
    let bl = &rig.term().storage().blacklist;
    assert_eq!(bl.version(), 4);
    for n in [1u32, 262_144, 9_000_000, CardNo::MAX] {
        assert!(bl.contains(CardNo::new(n).unwrap()), "{n}");
    }
    assert!(!bl.contains(CardNo::new(2).unwrap()));
    assert!(rig.events.contains(&Event::BlacklistUpdated { version: 4 }));
}

// issue 10.11, R-P5.1: after a sign-in refused with an error code the terminal refuses to
// work: keys are answered with the reason, no amount is taken, a card is refused (beep, no
// record), and nothing keyed then is charged at the next successful sign-in.
#[test]
fn refused_sign_in_takes_no_amount() {
    let mut rig = Rig::new(params());
    refuse_sign_in(&mut rig);
    let refusals = rig.refused_codes().len();
    rig.amount(100);
    assert!(!rig.saw_screen("金额："), "{}", rig.screen());
    assert!(
        rig.screen().contains("错误：POS 已停用"),
        "{}",
        rig.screen()
    );
    assert!(
        rig.refused_codes().len() > refusals,
        "keys answered with the reason"
    );
    let refusals = rig.refused_codes().len();
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert_eq!(
        rig.refused_codes()[refusals..],
        [Some(ReturnCode::POS_DISABLED)],
        "the card is refused with the reason"
    );
    assert_eq!(rig.beeps.last(), Some(&ykt_terminal::Beep::Error));
    rig.lift();
    rig.host.sign_in_code = ReturnCode::SUCCESS;
    rig.key(K::SignIn);
    rig.advance(1_600);
    assert!(rig.screen().contains("请输入金额"), "{}", rig.screen());
    rig.retap();
    assert!(rig.records().iter().all(|r| r.kind != RecordKind::Purchase));
    assert_eq!(rig.balance(), 10_000);
}

// issue 10.11, R-P5.1: an amount keyed before the refusal does not survive it.
#[test]
fn refused_sign_in_drops_the_keyed_amount() {
    let mut rig = Rig::new(params());
    rig.amount(100);
    assert!(rig.screen().contains("金额：1.00元"), "{}", rig.screen());
    refuse_sign_in(&mut rig);
    rig.host.sign_in_code = ReturnCode::SUCCESS;
    rig.key(K::SignIn);
    rig.advance(1_600);
    assert!(rig.screen().contains("请输入金额"), "{}", rig.screen());
    rig.place(card_with(CARD, UID, 10_000, 1));
    assert!(rig.records().iter().all(|r| r.kind != RecordKind::Purchase));
    assert_eq!(rig.balance(), 10_000);
}

// issue 10.11, R-P5.1: after a refusal the saved merchant number is 0; when the next
// automatic sign-in times out the screen says 请设置商户号 (the error text does not stay).
#[test]
fn refused_then_timed_out_sign_in_asks_for_merchant() {
    let mut rig = Rig::new(params());
    refuse_sign_in(&mut rig);
    rig.host.silent = true;
    let sign_ins = rig.events.len();
    rig.advance(30_000 + 5_000);
    assert!(
        rig.events[sign_ins..].contains(&Event::SignInFailed { code: None }),
        "the retry timed out"
    );
    assert_eq!(rig.screen(), "请设置商户号");
    rig.amount(100);
    assert!(!rig.saw_screen("金额："));
}
