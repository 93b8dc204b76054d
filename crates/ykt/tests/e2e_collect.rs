//! End to end, collection of on-card records across terminals (R-F4.17, R-H5, R-H2): real
//! `ykt serve --demo` and two real `ykt pos --headless` processes sharing one card image.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use serve_support::Serve;
use support::{Pos, audit};

/// Terminal A: merchant 1002 (第二食堂) in the demo.
const DEVICE_A: &str = "10000003";
const MERCHANT_A: u64 = 1002;
/// Terminal B: merchant 1001 (第一食堂).
const DEVICE_B: &str = "10000001";
const MERCHANT_B: u64 = 1001;
const CARD: u32 = 5;

fn card(s: &Serve, no: u32) -> PathBuf {
    s.data().join("cards").join(format!("{no}.mf1"))
}

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

fn start(s: &Serve, device: &str, name: &str) -> Pos {
    let mut pos = Pos::start(&s.data(), device, &s.dir.path().join(name));
    pos.signed_in();
    pos
}

/// The report line of `key` = `value` in `list` of today's daily report.
fn line(report: &Value, list: &str, key: &str, value: Value) -> Value {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l[key] == value)
        .cloned()
        .unwrap_or_else(|| panic!("no {key} {value} in {report}"))
}

// R-F4.17, R-H5, R-H2, R-P5.9: a card is debited offline on terminal A whose network is down
// (the record stays pending on A), then online on terminal B: the host sees the counter gap,
// answers with info code 4 and a collection order; B reads the card's ring and uploads A's
// transaction under A's identity; the host books it once, to A's merchant. When A's network
// is back, A's own upload is the same transaction: acknowledged, not booked twice, never
// refused. The card account shows both debits once, the daily report one debit per merchant,
// and the audit passes.
#[test]
fn record_pending_on_one_terminal_is_collected_by_another_and_booked_once() {
    let s = Serve::start(None);
    let mut a = start(&s, DEVICE_A, "ja");
    let mut b = start(&s, DEVICE_B, "jb");
    let before = host_balance(&s, CARD);

    a.ok(json!({"cmd":"net","up":false}));
    a.amount(300);
    a.place(&card(&s, CARD));
    a.wait_event(json!({"event":"record","kind":"purchase","status":"written","amount":300}));
    a.remove();
    a.advance(3_000);
    a.wait_screen("未上传流水：1笔");
    assert_eq!(
        host_balance(&s, CARD),
        before,
        "A's record is still pending"
    );

    b.amount(120);
    b.place(&card(&s, CARD));
    b.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":120}));
    // Info code 4 (R-C6.2), and the debit answer ordered the collection while the card is
    // on the reader (R-F4.17).
    b.wait_screen("提示：卡有记录缺失");
    b.wait_event(json!({"event":"record","kind":"collected","amount":300}));
    b.remove();
    b.advance(3_000);
    b.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert!(
        !b.saw(&json!({"event":"upload_rejected"})),
        "B's uploads all acknowledged"
    );
    assert_eq!(host_balance(&s, CARD), before - 420);

    a.ok(json!({"cmd":"net","up":true}));
    a.wait_event(json!({"event":"signed_in"}));
    a.wait_event(json!({"event":"uploaded"}));
    a.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert!(
        !a.saw(&json!({"event":"upload_rejected"})),
        "A's upload acknowledged"
    );
    assert_eq!(host_balance(&s, CARD), before - 420, "not booked twice");

    let report = s.cli_json(&["report", "daily"]);
    let ma = line(&report, "merchants", "merchant_no", json!(MERCHANT_A));
    assert_eq!(
        (ma["debits"].as_u64(), ma["debit_amount"].as_i64()),
        (Some(1), Some(300))
    );
    let mb = line(&report, "merchants", "merchant_no", json!(MERCHANT_B));
    assert_eq!(
        (mb["debits"].as_u64(), mb["debit_amount"].as_i64()),
        (Some(1), Some(120))
    );
    // The collected record keeps its maker's identity: it is A's debit, not B's.
    let da = line(&report, "devices", "device", json!(DEVICE_A));
    assert_eq!(da["debit_amount"].as_i64(), Some(300));
    assert_eq!(report["total"]["debits"].as_u64(), Some(2), "{report}");
    a.quit();
    b.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
