//! End to end, card-vs-account reconciliation (卡库不平, R-B10) filled by a collection order
//! (R-F4.17): real `ykt serve --demo` and two real `ykt pos --headless` processes sharing one
//! card image.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::{PgDb, Serve};
use support::{Pos, audit};

/// Terminal A: merchant 1002 in the demo; terminal B: merchant 1001.
const DEVICE_A: &str = "10000003";
const DEVICE_B: &str = "10000001";
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

/// The card's line of `ykt report reconcile`.
fn line(report: &Value, no: u32) -> Value {
    report["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["card_no"] == json!(no))
        .cloned()
        .unwrap_or_else(|| panic!("no card {no} in {report}"))
}

/// Waits (real time) until the terminal has received the host's collection order.
fn wait_for_order(pos: &mut Pos) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pos.saw(&json!({"received":"collect"})) {
        assert!(
            Instant::now() < deadline,
            "no collection order reached the POS"
        );
        std::thread::sleep(Duration::from_millis(100));
        pos.status();
    }
}

// R-B10, R-F4.17: terminal A debits the card offline and keeps its record (its network is
// down); terminal B debits it offline too and uploads. The host books B's record and has a
// hole at A's counter: `ykt report reconcile --run` shows the card with one missing record,
// the card 3.00 lower than its account, and a collection order sent to B, the terminal
// that last saw the card. The card taps on B (no sale): B collects A's record from the card
// and uploads it under A's identity. The next run shows the card explained (agree, resolved).
// A's own upload later is acknowledged and not booked twice; the audit is clean.
#[test]
fn reconciliation_finds_a_missing_record_and_collection_fills_it() {
    missing_record_filled_by_collection(Serve::start(None), None);
}

#[test]
fn reconciliation_finds_a_missing_record_and_collection_fills_it_postgres() {
    let Some(db) = PgDb::create() else { return };
    missing_record_filled_by_collection(Serve::start(Some(db.url())), Some(&db.url()));
}

fn missing_record_filled_by_collection(s: Serve, database: Option<&str>) {
    let mut a = start(&s, DEVICE_A, "ja");
    let mut b = start(&s, DEVICE_B, "jb");
    let before = host_balance(&s, CARD);

    a.ok(json!({"cmd":"net","up":false}));
    a.amount(300);
    a.place(&card(&s, CARD));
    a.wait_event(json!({"event":"record","kind":"purchase","status":"written","amount":300}));
    a.remove();
    a.advance(3_000);

    b.ok(json!({"cmd":"net","up":false}));
    b.amount(120);
    b.place(&card(&s, CARD));
    b.wait_event(json!({"event":"record","kind":"purchase","status":"written","amount":120}));
    b.remove();
    b.advance(3_000);
    b.ok(json!({"cmd":"net","up":true}));
    b.wait_event(json!({"event":"signed_in"}));
    b.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, CARD), before - 120);

    let report = s.cli_json(&["report", "reconcile", "--run"]);
    let c = line(&report, CARD);
    assert_eq!(c["state"], "missing", "{report}");
    assert_eq!(c["missing"], 1);
    assert_eq!(c["difference"], -300); // the card is 3.00 lower: A's debit
    assert_eq!(c["last_device"], DEVICE_B);
    assert!(c["collect_sent_at"].is_string(), "{c}");
    let orders = report["run"]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{report}");
    assert_eq!(
        (&orders[0]["device"], &orders[0]["sent"]),
        (&json!(DEVICE_B), &json!(true))
    );
    // The human table names the state.
    assert!(s.cli(&["report", "reconcile"]).contains("缺流水"));

    wait_for_order(&mut b);
    b.place(&card(&s, CARD));
    b.wait_event(json!({"event":"record","kind":"collected","amount":300}));
    b.remove();
    b.advance(3_000);
    b.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert!(!b.saw(&json!({"event":"upload_rejected"})));
    assert_eq!(host_balance(&s, CARD), before - 420);

    let report = s.cli_json(&["report", "reconcile", "--run", "--show", "all"]);
    assert_eq!(report["run"]["resolved"], 1, "{report}");
    let c = line(&report, CARD);
    assert_eq!(c["state"], "agree", "{c}");
    assert!(c["resolved_at"].is_string(), "{c}");
    assert_eq!(report["unexplained"], 0);
    let open = s.cli_json(&["report", "reconcile"]);
    assert!(open["cards"].as_array().unwrap().is_empty(), "{open}");

    a.ok(json!({"cmd":"net","up":true}));
    a.wait_event(json!({"event":"signed_in"}));
    a.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert!(!a.saw(&json!({"event":"upload_rejected"})));
    assert_eq!(host_balance(&s, CARD), before - 420, "not booked twice");
    a.quit();
    b.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), database);
}

/// `ykt card pin …` with the PINs on stdin.
fn pin_cli(s: &Serve, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = serve_support::ykt();
    cmd.args(args).arg("--data").arg(s.data());
    serve_support::with_stdin(cmd, stdin)
}

// R-B10, codes 60 and 54: the card office resets a card's PIN, a change with a wrong old PIN
// is refused with 60 until the last try allowed locks the card (54); the PIN never reaches
// the journal.
#[test]
fn pin_reset_and_wrong_tries_lock_the_card() {
    let s = Serve::start(None);
    let ok = pin_cli(&s, &["card", "pin", "reset", "6"], "246810\n");
    assert!(ok.status.success(), "{ok:?}");
    let changed = pin_cli(&s, &["card", "pin", "change", "6"], "246810\n135790\n");
    assert!(changed.status.success(), "{changed:?}");
    for expect in ["60", "60", "54"] {
        let o = pin_cli(&s, &["card", "pin", "change", "6"], "246810\n111111\n");
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{expect}: {err}"); // codes 60, 60, 54
    }
    let card = s.cli_json(&["card", "info", "6"]);
    assert_eq!(card["status"], "locked", "{card}");
    let journal = s.cli(&["journal", "--json"]);
    assert!(journal.contains("card.pin.change"), "{journal}");
    assert!(!journal.contains("246810") && !journal.contains("135790"));
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
