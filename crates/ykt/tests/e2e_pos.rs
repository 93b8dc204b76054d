//! End to end: a real `ykt serve --demo` and real `ykt pos --headless` processes, driven by
//! JSON-line scripts (`docs/pos-script.md`); every test ends with `ykt audit` passing.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;

use serde_json::json;
use serve_support::Serve;
use support::{Pos, audit};

const DEVICE_1: &str = "10000001";
const DEVICE_2: &str = "10000002";

fn card(s: &Serve, no: u32) -> PathBuf {
    s.data().join("cards").join(format!("{no}.mf1"))
}

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

fn journal(s: &Serve, name: &str) -> PathBuf {
    s.dir.path().join(name)
}

/// SIGTERM the server, then the books must pass the audit.
fn stop_and_audit(s: Serve) {
    let db = s.database.clone();
    let dir = s.stop();
    audit(&dir.path().join("data"), db.as_deref());
}

fn start(s: &Serve, device: &str, name: &str) -> Pos {
    let mut pos = Pos::start(&s.data(), device, &journal(s, name));
    pos.signed_in();
    pos
}

// R-F4.1, R-P5.1: sign-in at power-up; R-P5.2: an online debit booked by the host, the
// balance shown; R-F4.22: statistics for today, then for yesterday after a day change.
#[test]
fn online_purchase_and_statistics_across_a_day_change() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 1);
    pos.amount(150);
    pos.wait_screen("请刷卡");
    pos.place(&card(&s, 1));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":150}));
    pos.wait_screen(&format!(
        "余额：{}.{:02}元",
        (before - 150) / 100,
        (before - 150) % 100
    ));
    pos.remove();
    assert_eq!(host_balance(&s, 1), before - 150);
    assert!(pos.saw(&json!({"sent":"debit"})));
    assert!(pos.saw(&json!({"received":"debit_response"})));

    pos.key("stats");
    pos.wait_screen("今日 消费1笔 1.50元");
    // The next day: today's totals become yesterday's (R-F4.22).
    pos.advance(24 * 3_600_000);
    pos.key("stats");
    pos.wait_screen("昨日 消费1笔 1.50元");
    let screen = pos.status()["screen"].to_string();
    assert!(screen.contains("今日 消费0笔"), "{screen}");
    pos.quit();
    stop_and_audit(s);
}

// R-P5.4: the card leaves the field during the write; the terminal beeps and asks for it
// again; on re-tap the write is checked and completed once. R-P5.5: cancel is refused in the
// first 60 s of the prompt (virtual clock: no sleeping).
#[test]
fn card_removed_mid_write_then_retapped_and_cancel_rules() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 2);
    // A clean purchase tells how many card operations one takes.
    pos.amount(100);
    pos.place(&card(&s, 2));
    pos.wait_event(json!({"event":"record","status":"success","amount":100}));
    let ops = pos.status()["card_ops"].as_u64().unwrap();
    pos.remove();
    pos.advance(3_000);

    // The same purchase, the card pulled at its last operation.
    pos.amount(200);
    pos.ok(json!({"cmd":"place","file":card(&s, 2),"fault":{"op":ops - 1,"kind":"tear_old"}}));
    pos.wait_event(json!({"event":"write_failed"}));
    pos.wait_screen("请重新刷卡");
    assert!(pos.saw(&json!({"beep":"continuous"})));
    pos.key("cancel");
    pos.wait_screen("60秒内不能取消");
    assert!(pos.status()["in_flight"].is_u64());
    pos.remove();
    pos.place(&card(&s, 2));
    pos.wait_event(json!({"event":"record","status":"success","amount":200}));
    pos.wait_screen("余额：");
    assert!(pos.saw(&json!({"beep":"stop"})));
    pos.remove();
    assert_eq!(host_balance(&s, 2), before - 300);
    assert!(pos.status()["in_flight"].is_null());
    pos.quit();
    stop_and_audit(s);
}

// R-P5.5: after 60 s of the re-tap prompt cancel is accepted; the cancellation record
// (serial + 1) reaches the host, which reverses the online debit.
#[test]
fn cancel_after_sixty_seconds_reverses_the_online_debit() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 3);
    pos.amount(100);
    pos.place(&card(&s, 3));
    pos.wait_event(json!({"event":"record","status":"success"}));
    let ops = pos.status()["card_ops"].as_u64().unwrap();
    pos.remove();
    pos.advance(3_000);
    pos.amount(250);
    // Fail the very write of the wallet: nothing lands on the card.
    pos.ok(json!({"cmd":"place","file":card(&s, 3),"fault":{"op":ops - 1,"kind":"fail_before"}}));
    pos.wait_event(json!({"event":"write_failed"}));
    pos.remove();
    pos.advance(61_000);
    pos.key("cancel");
    pos.wait_event(json!({"event":"record","kind":"cancellation"}));
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    // The card kept 1.00 of debits; so do the books once the cancellation is in.
    let on_card = pos.status();
    assert!(on_card["in_flight"].is_null());
    pos.quit();
    assert_eq!(host_balance(&s, 3), before - 100);
    stop_and_audit(s);
}

// R-P5.6, R-P5.9: the network is cut: auto mode debits offline, the pending indicator stays;
// once the network is back the record is uploaded, and booked once.
#[test]
fn network_cut_offline_debit_then_uploaded_once() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 4);
    pos.ok(json!({"cmd":"net","up":false}));
    assert_eq!(pos.status()["link"], false);
    pos.amount(300);
    pos.place(&card(&s, 4));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"written","amount":300}));
    pos.remove();
    pos.advance(3_000);
    pos.wait_screen("未上传流水：1笔");
    assert_eq!(host_balance(&s, 4), before);
    pos.ok(json!({"cmd":"net","up":true}));
    pos.wait_event(json!({"event":"signed_in"}));
    pos.wait_event(json!({"event":"uploaded"}));
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, 4), before - 300);
    // A power cycle re-signs in; nothing is uploaded twice.
    pos.ok(json!({"cmd":"power_off"}));
    pos.ok(json!({"cmd":"power_on"}));
    pos.signed_in();
    assert_eq!(host_balance(&s, 4), before - 300);
    pos.quit();
    stop_and_audit(s);
}

// R-P5.3: the host stops answering mid-flow (SIGSTOP): 500 ms, one retry, then auto mode
// debits offline (扣款成功) and uploads once the host is back.
#[test]
fn host_stopped_mid_flow_auto_mode_goes_offline() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 5);
    let pid = s.child.id().to_string();
    pos.amount(120);
    signal(&pid, "STOP");
    pos.place(&card(&s, 5));
    pos.advance(600);
    pos.advance(600);
    pos.wait_event(json!({"event":"record","status":"debited","amount":120}));
    pos.remove();
    signal(&pid, "CONT");
    pos.advance(5_000);
    pos.advance(5_000);
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":20000}));
    assert_eq!(host_balance(&s, 5), before - 120);
    pos.quit();
    stop_and_audit(s);
}

// R-P5.3, R-F4.18: in full-online mode a host that does not answer means refusal.
#[test]
fn host_stopped_full_online_mode_refuses() {
    let s = Serve::start(None);
    s.cli(&[
        "device",
        "set-params",
        DEVICE_1,
        "--work-mode",
        "full-online",
    ]);
    let mut pos = start(&s, DEVICE_1, "j1");
    assert_eq!(pos.status()["mode"], "full_online");
    let before = host_balance(&s, 6);
    let pid = s.child.id().to_string();
    pos.amount(120);
    signal(&pid, "STOP");
    pos.place(&card(&s, 6));
    pos.advance(600);
    pos.advance(600);
    pos.wait_screen("错误：网络故障");
    assert!(pos.saw(&json!({"event":"record","status":"failed","amount":120})));
    pos.remove();
    signal(&pid, "CONT");
    // The failed record is uploaded in the background once the host answers again (R-P5.9).
    let mut uploaded = false;
    for _ in 0..8 {
        pos.advance(5_000);
        let r = pos.send(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":2000}));
        if r["ok"] == true {
            uploaded = true;
            break;
        }
    }
    assert!(uploaded, "the failed record was never uploaded");
    assert_eq!(host_balance(&s, 6), before);
    pos.quit();
    stop_and_audit(s);
}

fn signal(pid: &str, sig: &str) {
    assert!(
        std::process::Command::new("kill")
            .args([&format!("-{sig}"), pid])
            .status()
            .unwrap()
            .success()
    );
}

// Power-up resume: a terminal killed (SIGKILL) in the re-tap prompt comes back in it from
// its journal and completes the transaction exactly once (R-P5.4, R-P5.9).
#[test]
fn terminal_killed_mid_transaction_and_restarted() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 7);
    pos.amount(100);
    pos.place(&card(&s, 7));
    pos.wait_event(json!({"event":"record","status":"success"}));
    let ops = pos.status()["card_ops"].as_u64().unwrap();
    pos.remove();
    pos.advance(3_000);
    pos.amount(80);
    pos.ok(json!({"cmd":"place","file":card(&s, 7),"fault":{"op":ops - 1,"kind":"tear_new"}}));
    pos.wait_event(json!({"event":"write_failed"}));
    let mut pos = pos.kill_and_restart();
    pos.wait_screen("请重新刷卡");
    pos.place(&card(&s, 7));
    pos.ok(json!({"cmd":"wait","for":"idle","timeout_ms":20000}));
    pos.remove();
    let on_host = host_balance(&s, 7);
    // The interrupted online debit is either completed or voided, never booked twice.
    assert!(
        on_host == before - 180 || on_host == before - 100,
        "{before} → {on_host}"
    );
    pos.quit();
    stop_and_audit(s);
}

// R-F4.15, R-F4.3: a card reported lost is tapped: the lock flag is written on the card, the
// black-card record uploaded; another terminal refuses the card from its flag alone.
#[test]
fn blacklisted_card_is_locked_and_refused_everywhere() {
    let s = Serve::start(None);
    s.cli(&["card", "lose", "8"]);
    let mut pos = start(&s, DEVICE_1, "j1");
    pos.wait_event(json!({"event":"blacklist_updated"}));
    pos.amount(100);
    pos.place(&card(&s, 8));
    pos.wait_event(json!({"event":"record","kind":"black_card"}));
    pos.wait_event(json!({"event":"card_locked","card_no":8}));
    pos.remove();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    pos.quit();
    // Found again on the host; the card still carries its lock flag.
    s.cli(&["card", "found", "8"]);
    let mut other = start(&s, DEVICE_2, "j2");
    other.amount(100);
    other.place(&card(&s, 8));
    other.wait_event(json!({"event":"refused"}));
    other.wait_screen("错误：");
    other.remove();
    other.quit();
    stop_and_audit(s);
}

// R-F4.10: fixed-amount mode charges the preset amount on every tap; R-F4.11: at or above
// the single-transaction threshold the card password is asked: wrong → 60, right → debit.
#[test]
fn fixed_amount_mode_and_password_prompt() {
    let s = Serve::start(None);
    s.cli(&[
        "device",
        "set-params",
        DEVICE_1,
        "--consumption-mode",
        "fixed-amount",
        "--fixed-amount",
        "300",
    ]);
    let mut pos = start(&s, DEVICE_1, "j1");
    let before = host_balance(&s, 1);
    pos.place(&card(&s, 1));
    pos.wait_event(json!({"event":"record","status":"success","amount":300}));
    pos.remove();
    pos.advance(3_000);
    assert_eq!(host_balance(&s, 1), before - 300);

    s.cli(&[
        "device",
        "set-params",
        DEVICE_1,
        "--consumption-mode",
        "unit-price",
        "--single-password-threshold",
        "1000",
    ]);
    pos.wait_event(json!({"event":"params_updated"}));
    pos.amount(1500);
    pos.place(&card(&s, 1));
    pos.wait_screen("请输入卡密码");
    pos.ok(json!({"cmd":"type","digits":"654321"}));
    pos.key("enter");
    pos.wait_screen("错误：");
    pos.remove();
    pos.advance(3_000);
    pos.amount(1500);
    pos.place(&card(&s, 1));
    pos.wait_screen("请输入卡密码");
    pos.ok(json!({"cmd":"type","digits":"123456"}));
    pos.key("enter");
    pos.wait_event(json!({"event":"record","status":"success","amount":1500}));
    pos.remove();
    assert_eq!(host_balance(&s, 1), before - 1800);
    pos.quit();
    stop_and_audit(s);
}

// The script language refuses bad commands with a clear error and keeps going.
#[test]
fn bad_commands_get_errors_not_crashes() {
    let s = Serve::start(None);
    let mut pos = start(&s, DEVICE_1, "j1");
    for bad in [
        json!({"cmd":"fly"}),
        json!({"cmd":"key","key":"x"}),
        json!({"cmd":"place","file":"/nonexistent.mf1"}),
        json!({"cmd":"wait","for":"screen","text":"永远不会出现","timeout_ms":50}),
    ] {
        let r = pos.send(bad.clone());
        assert!(r["error"].is_string(), "{bad} → {r}");
    }
    assert_eq!(pos.status()["powered"], true);
    pos.quit();
    stop_and_audit(s);
}
