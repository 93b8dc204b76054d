//! End to end, keyboard-coded mode (R-F4.10) with subjects (R-F4.14): the operator sets the
//! mode and a price list with `ykt device set-params`, the connected terminal gets them
//! pushed, the cashier keys an item code and the card pays the item's price. Real
//! `ykt serve --demo` and `ykt pos --headless` processes.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serde_json::json;
use serve_support::Serve;
use support::{Pos, audit};

const DEVICE: &str = "10000001";

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

// R-F4.10, R-F4.14: a bad price list is refused by the CLI with the API's message; a good
// one is pushed to the connected terminal; code 12 debits its 12.00 元 with subject 3, which
// the host books and reports; an unknown code is refused with 无此编码 and debits nothing.
#[test]
fn coded_mode_price_list_from_cli_to_debit() {
    let s = Serve::start(None);
    let mut pos = Pos::start(&s.data(), DEVICE, &s.dir.path().join("j1"));
    pos.signed_in();

    let bad = s.cli_output(&[
        "device",
        "set-params",
        DEVICE,
        "--price",
        "12=1200",
        "--price",
        "12=900",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("item code 12 appears twice"), "{err}");

    let r = s.cli_json(&[
        "device",
        "set-params",
        DEVICE,
        "--consumption-mode",
        "coded",
        "--price",
        "12=1200:3",
        "--price",
        "7=350",
    ]);
    assert_eq!(r["pushed"], true, "{r}");
    assert_eq!(
        r["device"]["params"]["price_list"],
        json!([{"code":12,"price":1200,"subject":3},{"code":7,"price":350,"subject":0}])
    );
    pos.wait_event(json!({"event":"params_updated"}));
    // Past the 签到成功 message.
    pos.advance(3_000);
    pos.wait_screen("请输入编码");

    let before = host_balance(&s, 7);
    pos.ok(json!({"cmd":"type","digits":"99"}));
    pos.key("enter");
    pos.wait_screen("无此编码");
    pos.advance(3_000);

    pos.ok(json!({"cmd":"type","digits":"12"}));
    pos.key("enter");
    pos.place(&s.data().join("cards").join("7.mf1"));
    pos.wait_event(json!({"event":"record","status":"success","amount":1200,"subject":3}));
    pos.remove();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, 7), before - 1200);
    let report = s.cli_json(&["report", "daily"]);
    assert_eq!(
        (
            report["total"]["debits"].as_u64(),
            report["total"]["debit_amount"].as_i64()
        ),
        (Some(1), Some(1200)),
        "{report}"
    );

    let cleared = s.cli_output(&["device", "set-params", DEVICE, "--clear-prices"]);
    let err = String::from_utf8_lossy(&cleared.stderr);
    assert!(err.contains("coded needs a price_list"), "{err}");
    pos.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
