//! End to end, the terminal parameters an operator sets with `ykt device set-params`: every
//! downloadable field is set and shown back (issue 10.4), and a terminal really receives the
//! allowed card classes (R-F4.5, "设备支持下传权限代码"). Real `ykt serve --demo` and
//! `ykt pos --headless` processes.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serde_json::json;
use serve_support::Serve;
use support::{Pos, audit};

const DEVICE: &str = "10000001";

fn params(s: &Serve) -> serde_json::Value {
    s.cli_json(&["device", "show", DEVICE])["params"].clone()
}

// issue 10.4, R-F4.5, R-F4.13: every parameter the host downloads, set through the CLI
// against a real server, comes back from `ykt device show` as it was set.
#[test]
fn set_params_sets_every_field() {
    let s = Serve::start(None);
    s.cli(&[
        "device",
        "set-params",
        DEVICE,
        "--work-mode",
        "offline",
        "--consumption-mode",
        "coded",
        "--fixed-amount",
        "350",
        "--max-balance",
        "90000",
        "--min-balance",
        "100",
        "--max-daily-uses",
        "6",
        "--single-password-threshold",
        "2000",
        "--daily-password-threshold",
        "5000",
        "--wallet-no",
        "2",
        "--max-offline-hours",
        "48",
        "--fee-rate",
        "3=5",
        "--fee-rate",
        "255=100",
        "--classes",
        "0,3,200-202",
        "--hours",
        "22:00-06:30",
        "--price",
        "4=600:2",
        "--operator-card",
        "reversal,statistics",
    ]);
    let mut p = params(&s);
    p.as_object_mut().unwrap().remove("version");
    assert_eq!(
        p,
        json!({
            "work_mode": "offline",
            "consumption_mode": "coded",
            "fixed_amount": 350,
            "max_balance": 90000,
            "min_balance": 100,
            "max_daily_uses": 6,
            "single_password_threshold": 2000,
            "daily_password_threshold": 5000,
            "wallet_no": 2,
            "max_offline_hours": 48,
            "fee_rates": {"3": 5, "255": 100},
            "allowed_classes": [0, 3, 200, 201, 202],
            "working_hours": [{"start": "22:00:00", "end": "06:30:00"}],
            "price_list": [{"code": 4, "price": 600, "subject": 2}],
            // R-B11: the functions that need an operator card.
            "operator_card": ["reversal", "statistics"],
        })
    );
    let shown = s.cli(&["device", "show", DEVICE]);
    assert!(shown.contains("allowed_classes: 0,3,200-202"), "{shown}");
    // A bad value is the host's 400, shown by the CLI; nothing changes.
    let o = s.cli_output(&["device", "set-params", DEVICE, "--max-balance", "16777216"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("max_balance"));
    s.cli(&[
        "device",
        "set-params",
        DEVICE,
        "--classes",
        "all",
        "--clear-hours",
    ]);
    let p = params(&s);
    assert_eq!(p["allowed_classes"].as_array().unwrap().len(), 256);
    assert_eq!(p["working_hours"], json!([]));
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}

// R-F4.5, issue 10.4: the class set reaches the terminal. Offline, so the terminal's own
// check decides: a class-1 card on a terminal allowing classes 2–5 is refused with 59
// (卡无此权限); once the host allows every class again, the same card is debited. Each set
// is pushed to the connected terminal at once.
#[test]
fn terminal_receives_class_set() {
    let s = Serve::start(None);
    let mut pos = Pos::start(&s.data(), DEVICE, &s.dir.path().join("j1"));
    pos.signed_in();
    let push = |args: &[&str]| {
        let mut a = vec!["device", "set-params", DEVICE];
        a.extend_from_slice(args);
        let r = s.cli_json(&a);
        assert_eq!(r["pushed"], true, "{r}");
        r["device"]["params"]["version"].as_u64().unwrap()
    };
    let v = push(&["--work-mode", "offline", "--classes", "2-5"]);
    pos.wait_event(json!({"event":"params_updated","version":v}));
    // Past the 签到成功 message.
    pos.advance(3_000);
    let card = s.data().join("cards").join("7.mf1");
    pos.amount(100);
    pos.place(&card);
    pos.wait_event(json!({"event":"refused","code":59}));
    pos.remove();
    pos.advance(3_000);

    let v = push(&["--classes", "all"]);
    pos.wait_event(json!({"event":"params_updated","version":v}));
    pos.amount(100);
    pos.place(&card);
    pos.wait_event(json!({"event":"record","kind":"purchase","amount":100}));
    pos.remove();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    pos.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
