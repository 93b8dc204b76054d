//! End to end, terminal features beside the sale itself: the daily cumulative password
//! (R-F4.12) and a reversal (冲正) counted by the terminal statistics (R-F4.22) and by the
//! host's daily report. Real `ykt serve --demo` and `ykt pos --headless` processes.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;

use serde_json::json;
use serve_support::Serve;
use support::{Pos, audit};

const DEVICE: &str = "10000001";

fn card(s: &Serve, no: u32) -> PathBuf {
    s.data().join("cards").join(format!("{no}.mf1"))
}

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

fn start(s: &Serve, name: &str) -> Pos {
    let mut pos = Pos::start(&s.data(), DEVICE, &s.dir.path().join(name));
    pos.signed_in();
    pos
}

fn stop_and_audit(s: Serve) {
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}

// R-F4.12: with a daily threshold of 5.00 元, a first debit of 3.00 goes through without the
// password; the second makes the day's total (this debit included) 6.00 ≥ 5.00, so the card
// password is asked: wrong → 错误：卡密码错误 and nothing debited, right → debited.
#[test]
fn daily_cumulative_password() {
    let s = Serve::start(None);
    s.cli(&[
        "device",
        "set-params",
        DEVICE,
        "--daily-password-threshold",
        "500",
    ]);
    let mut pos = start(&s, "j1");
    let before = host_balance(&s, 7);
    pos.amount(300);
    pos.place(&card(&s, 7));
    pos.wait_event(json!({"event":"record","status":"success","amount":300}));
    let asked = |pos: &Pos| {
        pos.seen
            .iter()
            .any(|l| l["screen"].to_string().contains("请输入卡密码"))
    };
    assert!(!asked(&pos), "below the threshold: no password");
    pos.remove();
    pos.advance(3_000);

    pos.amount(300);
    pos.place(&card(&s, 7));
    pos.wait_screen("请输入卡密码");
    pos.ok(json!({"cmd":"type","digits":"000000"}));
    pos.key("enter");
    pos.wait_screen("错误：卡密码错误");
    pos.remove();
    pos.advance(3_000);
    assert_eq!(host_balance(&s, 7), before - 300);

    pos.amount(300);
    pos.place(&card(&s, 7));
    pos.wait_screen("请输入卡密码");
    pos.ok(json!({"cmd":"type","digits":"123456"}));
    pos.key("enter");
    pos.wait_event(json!({"event":"record","status":"success","amount":300}));
    pos.remove();
    assert_eq!(host_balance(&s, 7), before - 600);
    pos.quit();
    stop_and_audit(s);
}

// R-F4.22: a debit reversed at the terminal (冲正): the card gets the money back, the terminal
// statistics count the debit and the reversal, the host gives it back to the card and its
// daily report shows one debit and one reversal with a net of zero.
#[test]
fn reversal_counted_by_statistics_and_daily_report() {
    let s = Serve::start(None);
    let mut pos = start(&s, "j1");
    let before = host_balance(&s, 8);
    pos.amount(200);
    pos.place(&card(&s, 8));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":200}));
    pos.remove();
    pos.advance(3_000);

    pos.key("reversal");
    pos.wait_screen("请刷卡冲正");
    pos.place(&card(&s, 8));
    pos.wait_event(json!({"event":"record","kind":"reversal","status":"written","amount":200}));
    pos.wait_screen("冲正成功");
    pos.remove();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, 8), before);
    pos.advance(3_000);

    pos.key("stats");
    pos.wait_screen("今日 消费1笔 2.00元 冲正1笔 2.00元");

    let report = s.cli_json(&["report", "daily"]);
    let t = &report["total"];
    assert_eq!(
        (t["debits"].as_u64(), t["debit_amount"].as_i64()),
        (Some(1), Some(200)),
        "{report}"
    );
    assert_eq!(
        (t["reversals"].as_u64(), t["reversal_amount"].as_i64()),
        (Some(1), Some(200)),
        "{report}"
    );
    assert_eq!(report["net_amount"], 0, "{report}");
    pos.quit();
    stop_and_audit(s);
}
