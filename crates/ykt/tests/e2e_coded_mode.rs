//! End to end, keyboard-coded mode (R-F4.10) with subjects (R-F4.14): the operator sets the
//! mode and a price list with `ykt device set-params`, the connected terminal gets them
//! pushed, the cashier keys an item code and the card pays the item's price. Real
//! `ykt serve --demo` and `ykt pos --headless` processes.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serde_json::{Value, json};
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
    // R-F4.14: the report groups the debit under its subject and its item code.
    let line = |key: &str, value: u64| {
        let mut l = json!({"debits":1,"debit_amount":1200,"debit_fee":0,"reversals":0,
            "reversal_amount":0,"reversal_fee":0});
        l[key] = json!(value);
        Value::Array(vec![l])
    };
    assert_eq!(report["subjects"], line("subject", 3), "{report}");
    assert_eq!(report["items"], line("item_code", 12), "{report}");
    let text = s.cli_output(&["report", "daily"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    let rows = |head: &str| -> Vec<String> {
        text.split("\n\n")
            .find(|t| t.trim_start().starts_with(head))
            .unwrap_or_else(|| panic!("no {head} table in {text}"))
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        rows("subject"),
        ["3 1 12.00 0.00 0 0.00 0.00 12.00"],
        "{text}"
    );
    assert_eq!(
        rows("item code"),
        ["12 1 12.00 0.00 0 0.00 0.00 12.00"],
        "{text}"
    );

    let cleared = s.cli_output(&["device", "set-params", DEVICE, "--clear-prices"]);
    let err = String::from_utf8_lossy(&cleared.stderr);
    assert!(err.contains("coded needs a price_list"), "{err}");
    pos.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
