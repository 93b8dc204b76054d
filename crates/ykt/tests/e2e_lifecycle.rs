//! End to end, the card office's lifecycle of a card's money (R-B6, R-B7): a real
//! `ykt serve --demo` (with `YKT_TEST_SWEEP_CLOCK=1`, so the sweep can run as of a later
//! time instead of waiting two days), real `ykt pos --headless` processes and the `ykt` CLI;
//! every test ends with `ykt audit` passing.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;

use chrono::Duration;
use serde_json::{Value, json};
use serve_support::{Serve, campus_now};
use support::{Pos, audit};

const POS_A: &str = "10000001";
const POS_B: &str = "10000002";
/// The demo's top-up terminal (the card office's writer).
const TOP_UP: &str = "10000005";

fn serve() -> Serve {
    Serve::start_with_env(None, &[], &[("YKT_TEST_SWEEP_CLOCK", "1")])
}

fn card(s: &Serve, no: u32) -> PathBuf {
    s.data().join("cards").join(format!("{no}.mf1"))
}

fn info(s: &Serve, no: u32) -> Value {
    s.cli_json(&["card", "info", &no.to_string()])
}

fn balance(s: &Serve, no: u32) -> i64 {
    info(s, no)["balance"].as_i64().unwrap()
}

fn stop_and_audit(s: Serve) {
    let db = s.database.clone();
    let dir = s.stop();
    audit(&dir.path().join("data"), db.as_deref());
}

/// A POS of the demo on its own journal, signed in.
fn pos(s: &Serve, device: &str, journal: &str) -> Pos {
    let mut p = Pos::start(&s.data(), device, &s.dir.path().join(journal));
    p.signed_in();
    p
}

/// An offline purchase of `fen` with the card image `file`: journalled and written to the
/// card, not uploaded (the terminal's network is cut).
fn offline_purchase(p: &mut Pos, file: &std::path::Path, fen: u64) {
    p.ok(json!({"cmd":"net","up":false}));
    p.amount(fen);
    p.place(file);
    p.wait_event(json!({"event":"record","kind":"purchase","status":"written","amount":fen}));
    p.remove();
    p.advance(3_000);
}

/// The network back: the terminal signs in and uploads what it holds.
fn upload(p: &mut Pos) {
    p.ok(json!({"cmd":"net","up":true}));
    p.wait_event(json!({"event":"signed_in"}));
    p.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":20000}));
}

fn after_wait() -> String {
    (campus_now() + Duration::days(2) + Duration::minutes(5))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

// R-B6: a lost card is replaced by a new card number (new UID and keys, same holder); one
// offline record of the old card arrives inside the waiting period and is booked to it; the
// balance moves after the waiting period; a second offline record of the old card arrives
// after the move and is corrected from the money waiting for the new card (a recorded
// transfer); the new card picks the rest up at its first tap. The card fee is cash income.
#[test]
fn lost_card_replaced_balance_moved_after_the_wait_with_late_records() {
    let s = serve();
    let old = 1u32;
    let start = balance(&s, old);
    // Two terminals debit the card offline before it is reported lost.
    let mut a = pos(&s, POS_A, "ja");
    offline_purchase(&mut a, &card(&s, old), 300);
    let mut b = pos(&s, POS_B, "jb");
    offline_purchase(&mut b, &card(&s, old), 200);
    assert_eq!(balance(&s, old), start);
    s.cli(&["card", "lose", &old.to_string()]);
    let new_image = s.dir.path().join("new.mf1");
    let r = s.cli_json(&[
        "card",
        "replace",
        &old.to_string(),
        "--display-no",
        "3100000001",
        "--fee",
        "1000",
        "--fee-method",
        "cash",
        "--pin",
        "123456",
        "--out",
        new_image.to_str().unwrap(),
    ]);
    let new = u32::try_from(r["new_card"]["card_no"].as_u64().unwrap()).unwrap();
    assert_ne!(new, old);
    assert_eq!(r["replacement"]["state"], "waiting");
    assert_eq!(info(&s, old)["status"], "cancelled");
    // Inside the waiting period: the first late record books to the old card.
    upload(&mut a);
    assert_eq!(balance(&s, old), start - 300);
    // Not due: a sweep as of now moves nothing.
    let now = campus_now().format("%Y-%m-%d %H:%M:%S").to_string();
    let none = s.cli_json(&["card", "moves", "run", "--at", &now]);
    assert_eq!(none["moved"].as_array().unwrap().len(), 0);
    // After the waiting period the balance moves: money waiting for the new card.
    let moved = s.cli_json(&["card", "moves", "run", "--at", &after_wait()]);
    assert_eq!(moved["moved"][0]["amount"], start - 300);
    assert_eq!(balance(&s, old), 0);
    assert_eq!(info(&s, new)["waiting"], start - 300);
    // After the move: the second late record books to the old card, corrected from the
    // money still waiting for the new card.
    upload(&mut b);
    assert_eq!(balance(&s, old), 0);
    assert_eq!(info(&s, new)["waiting"], start - 500);
    let rep = s.cli_json(&["card", "moves", "list"]);
    assert_eq!(rep[0]["corrected"], 200);
    assert_eq!(rep[0]["corrections"], 1);
    // The new card's first tap, on the card office's writer (a top-up terminal, nothing
    // keyed): it picks up what waits for it.
    let mut w = pos(&s, TOP_UP, "jw");
    w.place(&new_image);
    w.wait_event(
        json!({"event":"record","kind":"subsidy","status":"success","amount":start - 500}),
    );
    w.wait_screen("领取成功");
    w.remove();
    w.advance(3_000);
    w.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(balance(&s, new), start - 500);
    assert_eq!(info(&s, new)["waiting"], 0);
    // Then it pays at a POS like any card.
    a.amount(100);
    a.place(&new_image);
    a.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":100}));
    a.remove();
    assert_eq!(balance(&s, new), start - 600);
    // The fee is cash in the admin's shift.
    let cash = s.cli_json(&["report", "cash", "--operator", "admin"]);
    assert_eq!(cash["cash"]["amount"], 1000);
    a.quit();
    b.quit();
    w.quit();
    stop_and_audit(s);
}

// R-B7: a closure blocks the card at once (57 online) and its refund is paid in cash after
// the waiting period; the cash report shows the payout; a sweep pays the bank refund of
// another card; the audit checks the refund accounts.
#[test]
fn closure_with_refund() {
    let s = serve();
    let (cash_card, bank_card) = (2u32, 3u32);
    let (c_before, b_before) = (balance(&s, cash_card), balance(&s, bank_card));
    let c = s.cli_json(&["card", "close", &cash_card.to_string(), "--method", "cash"]);
    assert_eq!(c["state"], "waiting");
    s.cli(&[
        "card",
        "close",
        &bank_card.to_string(),
        "--method",
        "bank",
        "--bank-account",
        "6222020200112233",
    ]);
    // Blocked at once: the closure put the card on the blacklist; a POS refuses it (57,
    // 卡已注销, online, or 卡已锁定 from its downloaded blacklist) and locks it (R-F4.15).
    let mut p = pos(&s, POS_A, "jp");
    p.amount(100);
    p.place(&card(&s, cash_card));
    p.wait_event(json!({"event":"card_locked","card_no":cash_card}));
    p.remove();
    assert!(!p.saw(&json!({"event":"record","kind":"purchase","status":"success"})));
    assert_eq!(balance(&s, cash_card), c_before);
    // Not due yet: the refund is refused.
    let o = s.cli_output(&["card", "refund", &cash_card.to_string()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("退款须等到"));
    let paid = s.cli_json(&["card", "closures", "run", "--at", &after_wait()]);
    assert_eq!(paid["paid"][0]["amount"], b_before);
    assert_eq!(balance(&s, bank_card), 0);
    let shown = s.cli_json(&["card", "closure", &cash_card.to_string()]);
    assert_eq!(shown["refundable"], c_before);
    // The finance office pays the cash refund at the counter once due.
    let r = s.cli_json(&[
        "card",
        "refund",
        &cash_card.to_string(),
        "--at",
        &after_wait(),
    ]);
    assert_eq!(
        (r["state"].as_str(), r["amount"].as_i64()),
        (Some("paid"), Some(c_before))
    );
    assert_eq!(balance(&s, cash_card), 0);
    let day = after_wait()[..10].to_owned();
    let cash = s.cli_json(&["report", "cash", "--operator", "admin", "--date", &day]);
    assert_eq!(cash["paid_out"]["amount"], c_before);
    // Paid twice: never.
    assert!(
        !s.cli_output(&[
            "card",
            "refund",
            &cash_card.to_string(),
            "--at",
            &after_wait()
        ])
        .status
        .success()
    );
    p.quit();
    stop_and_audit(s);
}
