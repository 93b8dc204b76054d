//! End to end, merchants and maintenance (R-B8, R-B9): real `ykt serve --demo`, real `ykt pos
//! --headless` and the `ykt` CLI. A sale paid out (解款) and then reversed at the POS is
//! refused with 45 and held; maintenance mode makes the POS fall back offline (R-P5.3) and
//! its record is booked once; a day-end (日终) during `ykt loadgen` leaves the frozen report
//! unchanged and books the later sales as late. Every test ends with `ykt audit` passing.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;

use serde_json::json;
use serve_support::Serve;
use support::{Pos, audit};

/// A demo POS of merchant 1001 (第一食堂).
const DEVICE: &str = "10000001";
const MERCHANT: &str = "1001";

fn card(s: &Serve, no: u32) -> PathBuf {
    s.data().join("cards").join(format!("{no}.mf1"))
}

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

fn merchant_balance(s: &Serve) -> i64 {
    s.cli_json(&["merchant", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["no"] == 1001)
        .unwrap()["balance"]
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

// R-B8, code 45: a sale, the merchant's payout (with a 5 % commission), then the sale's
// reversal at the POS: the card got its money back, the merchant has none to give: the host
// answers 45 and holds the reversal in the exception queue; the books stay clean.
#[test]
fn payout_then_reversal_refused_with_45() {
    let s = Serve::start(None);
    s.cli(&[
        "merchant",
        "terms",
        MERCHANT,
        "--kind",
        "canteen",
        "--commission-bp",
        "500",
    ]);
    let mut pos = start(&s, "j1");
    let before = merchant_balance(&s);
    pos.amount(400);
    pos.place(&card(&s, 8));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":400}));
    pos.remove();
    pos.advance(3_000);
    assert_eq!(merchant_balance(&s), before + 400);

    let p = s.cli_json(&["merchant", "payout", MERCHANT]);
    let gross = before + 400;
    assert_eq!(p["gross"].as_i64(), Some(gross), "{p}");
    assert_eq!(
        p["commission"].as_i64(),
        Some((gross * 500 + 5_000) / 10_000)
    );
    assert_eq!(merchant_balance(&s), 0);
    let list = s.cli_json(&["merchant", "payouts", MERCHANT]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    pos.key("reversal");
    pos.wait_screen("请刷卡冲正");
    pos.place(&card(&s, 8));
    pos.wait_event(json!({"event":"record","kind":"reversal","status":"written","amount":400}));
    pos.remove();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    let held = s.cli_json(&["exception", "list"]);
    assert_eq!(held["open"], 1, "{held}");
    assert_eq!(held["exceptions"][0]["code"], 45, "{held}"); // code 45
    assert_eq!(merchant_balance(&s), 0, "nothing taken from the merchant");
    pos.quit();
    stop_and_audit(s);
}

// R-B9, code 8, R-P5.3: with maintenance on, the POS's online debit gets 8, is retried once
// and completed offline; its record is booked (uploads are accepted during maintenance).
#[test]
fn maintenance_makes_the_pos_go_offline() {
    let s = Serve::start(None);
    let mut pos = start(&s, "j1");
    let before = host_balance(&s, 7);
    s.cli(&["maintenance", "on"]);
    assert_eq!(s.cli_json(&["maintenance", "show"])["maintenance"], "on");
    pos.amount(150);
    pos.place(&card(&s, 7));
    pos.advance(600);
    pos.advance(600);
    pos.wait_event(json!({"event":"record","status":"debited","amount":150}));
    pos.remove();
    // The upload goes out with the late answers to the two debit requests; a retry later.
    pos.advance(5_000);
    pos.advance(5_000);
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":20000}));
    assert_eq!(host_balance(&s, 7), before - 150);
    s.cli(&["maintenance", "off"]);
    // Back online: the next sale is authorised by the host.
    pos.amount(50);
    pos.place(&card(&s, 7));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":50}));
    pos.remove();
    pos.advance(3_000);
    assert_eq!(host_balance(&s, 7), before - 200);
    pos.quit();
    stop_and_audit(s);
}

fn report_of(s: &Serve, day: Option<&str>) -> serde_json::Value {
    match day {
        Some(d) => s.cli_json(&["report", "daily", "--date", d]),
        None => s.cli_json(&["report", "daily"]),
    }
}

fn late_amount(report: &serde_json::Value, day: &str) -> i64 {
    report["late"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["day"] == day)
        .map(|l| l["debit_amount"].as_i64().unwrap())
        .sum()
}

/// The date `hours` east of UTC now.
fn date_at(hours: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = i64::try_from(secs).unwrap() + hours * 3600;
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .date_naive()
        .to_string()
}

// R-B9: a day-end (日终) while `ykt loadgen` keeps selling on that day. The host keeps
// campus time UTC+14, loadgen's terminals UTC−14: their day is one the host may close (and
// `ykt serve`'s own schedule waits a minute before it looks). `ykt dayend run` closes it in
// the middle of the load: the frozen report, read again after the load, is identical to the
// one the close answered; the sales after the close are late, booked on the host's today
// and listed there under `late` with their day; loadgen's books agree and the audit is clean.
#[test]
fn day_end_during_load_keeps_the_report_frozen() {
    let s = Serve::start_with(None, &["--utc-offset-hours", "14"]);
    let day = date_at(-14);
    // One meal period over the whole day, so the close's meal totals hold every sale.
    let meals = s.cli_json(&["dayend", "meals", "--set", "全天=00:00-24:00"]);
    assert_eq!(meals["periods"][0]["end_minute"], 1440, "{meals}");
    let set = s.cli_json(&["dayend", "settings"]);
    assert_eq!(set["dayend_close_minute"], 0, "{set}");
    let load = serve_support::ykt()
        .args(["loadgen", "--quiet", "--scenario", "online", "--server"])
        .arg(format!("http://{}", s.http))
        .arg("--terminal")
        .arg(s.terminal.to_string())
        .arg("--data")
        .arg(s.data())
        .args(["--terminals", "3", "--cards", "30", "--duration", "8s"])
        .args(["--utc-offset-hours", "-14"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while report_of(&s, Some(&day))["total"]["debits"]
        .as_u64()
        .unwrap()
        == 0
    {
        assert!(started.elapsed().as_secs() < 60, "no sales on {day}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let closed = s.cli_json(&["dayend", "run", &day]);
    let o = load.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("verdict: books agree, audit clean"),
        "loadgen: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(closed["audit_clean"], true, "{}", s.log());
    assert!(closed["report"]["total"]["debits"].as_u64().unwrap() > 0);
    let meal_debits: i64 = closed["meals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["debits"].as_i64().unwrap())
        .sum();
    assert_eq!(
        Some(meal_debits),
        closed["report"]["total"]["debits"].as_i64(),
        "{closed}"
    );
    let shown = s.cli_json(&["dayend", "show", &day]);
    assert_eq!(shown, closed, "the frozen report never changes");
    let live = report_of(&s, Some(&day));
    let today = report_of(&s, Some(&date_at(14)));
    assert_eq!(
        live["total"], closed["report"]["total"],
        "the closed day's report does not move: {today}"
    );
    assert!(late_amount(&today, &day) > 0, "late sales: {today}");
    stop_and_audit(s);
}
