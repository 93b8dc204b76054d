//! `ykt serve --log-format json` (#16): one JSON object a line, and every refusal logged
//! once with its device, serial, card and code.
#![allow(clippy::unwrap_used)]

mod serve_support;

use serde_json::Value;
use serve_support::*;
use ykt_proto::*;

/// A debit of a card the campus never issued: refused.
fn unknown_card_debit(serial: u32) -> DebitRequest {
    DebitRequest {
        card_no: CardNo::new(0x00ff_fff0).unwrap(),
        card_type: CardType::Mf1,
        card_counter: 0,
        balance_before: 10_000,
        amount: 150,
        fee: 0,
        wallet_no: 1,
        item_code: 0,
        serial,
        time: campus_now(),
    }
}

// #16 (logs): JSON lines for collectors; a refused debit is one line naming device, serial,
// card and code, equal to what the terminal was answered.
#[test]
fn json_log_names_each_refusal_once() {
    let s = Serve::start_with(None, &["--log-format", "json"]);
    let (mut t, resp) = Terminal::sign_in(s.terminal, &s.provisioning("10000001"));
    assert_eq!(resp.code, ReturnCode::SUCCESS);
    let device = t.device;
    let code = match t.request(Message::DebitRequest(unknown_card_debit(77))) {
        Message::DebitResponse(d) => d.code,
        other => panic!("debit answered with {other:?}"),
    };
    assert_ne!(code, ReturnCode::SUCCESS);
    drop(t);
    let log = s.log();
    s.stop();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["level"].is_string() && e["timestamp"].is_string())
    );
    let refusals: Vec<&Value> = events
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["serial"] == 77)
        .collect();
    assert_eq!(refusals.len(), 1, "{log}");
    let f = refusals[0];
    assert_eq!(f["message"], "refused");
    assert_eq!(f["what"], "debit");
    assert_eq!(f["device"], device.to_string());
    assert_eq!(f["card"], 0x00ff_fff0);
    assert_eq!(f["code"], u64::from(code.0));
}

// #16: the text format stays the default; an unknown format is refused by name.
#[test]
fn log_format_is_text_or_json() {
    let o = ykt()
        .args(["serve", "--log-format", "xml", "--data", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`xml` is not a log format"), "{err}");
}
