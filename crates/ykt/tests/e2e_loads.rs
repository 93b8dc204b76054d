//! End to end, money onto the card (R-B4 top-ups, R-B5 waiting loads and subsidies): a real
//! `ykt serve --demo`, real `ykt pos --headless` processes (a top-up terminal by `--top-up`,
//! the device let to take top-ups by `ykt device topup`) and the `ykt` CLI; every test ends
//! with `ykt audit` passing.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use serve_support::{Serve, as_op, json as json_of, login, ok};
use support::{Pos, audit};

/// A demo POS, and the demo device made a top-up terminal here.
const POS_DEVICE: &str = "10000001";
const TOP_UP_DEVICE: &str = "10000004";
/// The demo's seeded top-up terminal (cash taken by admin).
const SEEDED_TOP_UP: &str = "10000005";
/// Demo cards 1–8 are MF1, 9 is a CPU card (10 is reported lost).
const CPU_CARD: u32 = 9;

fn card(s: &Serve, no: u32) -> PathBuf {
    let ext = if no == CPU_CARD { "cpu" } else { "mf1" };
    s.data().join("cards").join(format!("{no}.{ext}"))
}

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02} 元", fen / 100, fen % 100)
}

/// The balance the card image itself carries (`ykt card show`), as a line of its output.
fn on_card(s: &Serve, no: u32) -> String {
    let out = serve_support::succeeded(
        &serve_support::ykt()
            .args(["card", "show"])
            .arg(card(s, no))
            .arg("--keys")
            .arg(s.data().join("keys"))
            .output()
            .unwrap(),
    );
    out.lines()
        .find(|l| l.contains("卡余额"))
        .unwrap_or_else(|| panic!("no balance in {out}"))
        .to_owned()
}

fn assert_on_card(s: &Serve, no: u32, fen: i64) {
    let line = on_card(s, no);
    assert!(
        line.contains(&format!("卡余额 {}", yuan(fen)))
            || line.contains(&format!("(balance): {}", yuan(fen))),
        "card {no}: {line}, expected {}",
        yuan(fen)
    );
}

fn waiting(s: &Serve, no: u32) -> Value {
    s.cli_json(&["card", "waiting", &no.to_string()])
}

/// The states of a card's load authorisations, newest first as the host lists them.
fn load_states(s: &Serve, no: u32) -> Vec<(String, String, i64)> {
    waiting(s, no)["loads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["purpose"].as_str().unwrap().to_owned(),
                l["state"].as_str().unwrap().to_owned(),
                l["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The top-ups in the admin's cash report today: (count, fen).
fn cash_top_ups(s: &Serve) -> (u64, i64) {
    let r = s.cli_json(&["report", "cash", "--operator", "admin"]);
    sum(&r, "top_ups")
}

fn stop_and_audit(s: Serve) {
    let db = s.database.clone();
    let dir = s.stop();
    audit(&dir.path().join("data"), db.as_deref());
}

fn journal(s: &Serve, name: &str) -> PathBuf {
    s.dir.path().join(name)
}

/// The demo's fourth device as a top-up terminal whose cash the admin takes.
fn top_up_terminal(s: &Serve, name: &str) -> Pos {
    let out = s.cli(&["device", "topup", TOP_UP_DEVICE, "--operator", "admin"]);
    assert!(out.contains("充值机"), "{out}");
    let mut pos = Pos::start_with(&s.data(), TOP_UP_DEVICE, &journal(s, name), &["--top-up"]);
    pos.signed_in();
    assert_eq!(pos.status()["role"], "top_up");
    pos
}

/// The demo's own top-up terminal: seeded so, its provisioning file says `"role": "top_up"`.
fn seeded_top_up_terminal(s: &Serve, name: &str) -> Pos {
    assert_eq!(s.provisioning(SEEDED_TOP_UP)["role"], "top_up");
    let mut pos = Pos::start(&s.data(), SEEDED_TOP_UP, &journal(s, name));
    pos.signed_in();
    assert_eq!(pos.status()["role"], "top_up");
    pos
}

fn pos_terminal(s: &Serve, name: &str) -> Pos {
    let mut pos = Pos::start(&s.data(), POS_DEVICE, &journal(s, name));
    pos.signed_in();
    pos
}

/// A clean top-up of `fen` onto card `no`; the number of card operations it took.
fn top_up(pos: &mut Pos, s: &Serve, no: u32, fen: u64) -> u64 {
    pos.amount(fen);
    pos.wait_screen("请刷卡");
    pos.place(&card(s, no));
    pos.wait_event(json!({"event":"record","kind":"top_up","status":"success","amount":fen}));
    pos.wait_screen("充值成功");
    let ops = pos.status()["card_ops"].as_u64().unwrap();
    pos.remove();
    pos.advance(3_000);
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    ops
}

// R-B4: cash top-ups on a top-up terminal, an MF1 card and a CPU card: the card image
// carries the new balance, the host's account and the operator's cash report show it, the
// loads are posted.
#[test]
fn cash_top_up_of_mf1_and_cpu_cards() {
    let s = Serve::start(None);
    let mut pos = top_up_terminal(&s, "t1");
    let (mf1, cpu) = (host_balance(&s, 1), host_balance(&s, CPU_CARD));
    assert_on_card(&s, 1, mf1);
    assert_on_card(&s, CPU_CARD, cpu);
    top_up(&mut pos, &s, 1, 5_000);
    top_up(&mut pos, &s, CPU_CARD, 2_550);
    assert_eq!(host_balance(&s, 1), mf1 + 5_000);
    assert_eq!(host_balance(&s, CPU_CARD), cpu + 2_550);
    assert_on_card(&s, 1, mf1 + 5_000);
    assert_on_card(&s, CPU_CARD, cpu + 2_550);
    assert_eq!(
        load_states(&s, 1),
        [("cash".into(), "posted".into(), 5_000)]
    );
    assert_eq!(
        load_states(&s, CPU_CARD),
        [("cash".into(), "posted".into(), 2_550)]
    );
    assert_eq!(waiting(&s, 1)["loads_pending"], 0);
    assert_eq!(cash_top_ups(&s), (2, 7_550));
    pos.quit();
    stop_and_audit(s);
}

/// A top-up of card `no` torn at its last card operation, then the terminal's power cut
/// (SIGKILL) before it could tell what the card holds; the terminal before the kill.
fn torn_top_up_then_power_cut(s: &Serve, no: u32, fen: u64) -> Pos {
    let mut pos = top_up_terminal(s, "t1");
    // A clean top-up tells how many card operations one takes.
    let ops = top_up(&mut pos, s, no, 100);
    pos.amount(fen);
    pos.ok(json!({"cmd":"place","file":card(s, no),"fault":{"op":ops - 1,"kind":"tear_new"}}));
    pos.wait_event(json!({"event":"write_failed"}));
    pos
}

/// Exactly once: the card image and the host's account agree, the torn load of `fen` is
/// settled (posted when the credit landed, voided when not) and the cash report counts what
/// was posted; `clean` is the sum of the clean top-ups of the card around it.
fn settled_exactly_once(s: &Serve, no: u32, before: i64, fen: i64, clean: (u64, i64)) {
    let host = host_balance(s, no);
    assert_on_card(s, no, host);
    let loads = load_states(s, no);
    let torn: Vec<_> = loads.iter().filter(|(_, _, a)| *a == fen).collect();
    assert_eq!(torn.len(), 1, "{loads:?}");
    match torn[0].1.as_str() {
        "posted" => {
            assert_eq!(host, before + clean.1 + fen);
            assert_eq!(cash_top_ups(s), (clean.0 + 1, clean.1 + fen));
        }
        "voided" => {
            assert_eq!(host, before + clean.1);
            assert_eq!(cash_top_ups(s), clean);
        }
        other => panic!("load left {other}"),
    }
    assert_eq!(waiting(s, no)["loads_pending"], 0);
}

// R-B4: the card pulled mid-credit, the terminal's power cut before it journalled the
// outcome; powered up on its flash it uploads the record as unknown (发起交易), the load stays
// pending; the card's next top-up on the same terminal settles it: debited once, credited once.
#[test]
fn torn_top_up_and_power_cut_settled_on_the_same_terminal() {
    let s = Serve::start(None);
    let before = host_balance(&s, 2);
    let pos = torn_top_up_then_power_cut(&s, 2, 3_000);
    let mut pos = pos.kill_and_restart();
    pos.signed_in();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":20000}));
    assert_eq!(waiting(&s, 2)["loads_pending"], 1);
    top_up(&mut pos, &s, 2, 200);
    settled_exactly_once(&s, 2, before, 3_000, (2, 300));
    pos.quit();
    stop_and_audit(s);
}

// R-B4: the same, but the card goes to a POS before the top-up terminal is powered up
// again: the debit, the card's next record, settles the load on the host; the top-up
// terminal's own record uploaded later changes nothing.
#[test]
fn torn_top_up_and_power_cut_settled_by_a_pos_debit() {
    let s = Serve::start(None);
    let before = host_balance(&s, 3);
    let pos = torn_top_up_then_power_cut(&s, 3, 4_000);
    let flash = pos.journal.clone();
    drop(pos);
    assert_eq!(waiting(&s, 3)["loads_pending"], 1);
    let mut sale = pos_terminal(&s, "p1");
    sale.amount(150);
    sale.place(&card(&s, 3));
    sale.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":150}));
    sale.remove();
    sale.quit();
    assert_eq!(waiting(&s, 3)["loads_pending"], 0);
    settled_exactly_once(&s, 3, before - 150, 4_000, (1, 100));
    let mut again = Pos::start_with(&s.data(), TOP_UP_DEVICE, &flash, &["--top-up"]);
    again.signed_in();
    again.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":20000}));
    settled_exactly_once(&s, 3, before - 150, 4_000, (1, 100));
    again.quit();
    stop_and_audit(s);
}

/// A debit of 1.00 on the POS: answered 卡有补助未领 (information code 2), the terminal
/// asks what waits and picks it up (领取补助) while the card is on the reader.
fn debit_and_pick_up(pos: &mut Pos, s: &Serve, no: u32, waiting_fen: u64) {
    pos.amount(100);
    pos.place(&card(s, no));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":100}));
    pos.ok(json!({"cmd":"wait","for":"line","match":{"received":"waiting_response"},"timeout_ms":10000}));
    pos.wait_screen(&format!(
        "领取补助：{}.{:02}元",
        waiting_fen / 100,
        waiting_fen % 100
    ));
    pos.wait_event(
        json!({"event":"record","kind":"subsidy","status":"success","amount":waiting_fen}),
    );
    pos.wait_screen("领取成功");
    pos.remove();
    pos.advance(3_000);
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
}

// R-B5: a card-office deposit waits for the card (not on its account); the next debit is
// answered with information code 2, the POS picks it up, the load is posted.
#[test]
fn card_office_deposit_waits_and_is_picked_up_on_a_pos() {
    let s = Serve::start(None);
    let before = host_balance(&s, 4);
    let d = s.cli_json(&[
        "card",
        "deposit",
        "4",
        "--amount",
        "2000",
        "--id",
        "receipt-1",
    ]);
    assert_eq!(d["waiting"], 2000, "{d}");
    assert_eq!(host_balance(&s, 4), before);
    let mut pos = pos_terminal(&s, "p1");
    debit_and_pick_up(&mut pos, &s, 4, 2_000);
    assert!(pos.saw(&json!({"sent":"waiting"})));
    assert!(pos.saw(&json!({"sent":"load_auth"})));
    assert_eq!(host_balance(&s, 4), before - 100 + 2_000);
    assert_on_card(&s, 4, before - 100 + 2_000);
    let w = waiting(&s, 4);
    assert_eq!(
        (w["waiting"].as_i64(), w["subsidy_seq"].as_i64()),
        (Some(0), Some(1)),
        "{w}"
    );
    assert_eq!(w["waiting_loads"][0]["state"], "posted", "{w}");
    assert_eq!(
        load_states(&s, 4),
        [("pickup".into(), "posted".into(), 2_000)]
    );
    pos.quit();
    stop_and_audit(s);
}

/// A subsidy list as an XLSX file: card numbers and amounts in 元, as numbers.
fn write_list(path: &Path, rows: &[(u32, f64)]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["学工号", "卡号", "金额", "备注"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (r, (card, amount)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, "").unwrap();
        sheet.write_number(r, 1, f64::from(*card)).unwrap();
        sheet.write_number(r, 2, *amount).unwrap();
        sheet.write_string(r, 3, "伙食").unwrap();
    }
    book.save(path).unwrap();
}

fn sum(v: &Value, key: &str) -> (u64, i64) {
    (
        v[key]["count"].as_u64().unwrap(),
        v[key]["amount"].as_i64().unwrap(),
    )
}

// R-B5: a subsidy batch from XLSX, checked and approved by two finance officers, issued,
// picked up on a POS, in the subsidy and daily reports; a second batch revoked before its
// pick-up: the money back with funding, nothing waits for the card.
#[test]
fn subsidy_batch_issued_picked_up_and_another_revoked() {
    let s = Serve::start(None);
    let tmp = s.dir.path();
    let initial = std::fs::read_to_string(s.data().join("admin-password")).unwrap();
    let admin = tmp.join("admin");
    login(&s, &admin, "admin", initial.trim(), "campus-admin-1");
    let mut who = Vec::new();
    for (name, roles) in [
        ("wang.li", "clerk"),
        ("zhao.cw", "finance"),
        ("qian.cw", "finance"),
    ] {
        let v = json_of(as_op(
            &s,
            &admin,
            &[
                "operator", "add", "--login", name, "--name", name, "--roles", roles, "--json",
            ],
            "",
        ));
        let dir = tmp.join(name);
        login(
            &s,
            &dir,
            name,
            v["initial_password"].as_str().unwrap(),
            &format!("{name}-pass-1"),
        );
        who.push(dir);
    }
    let (clerk, checker, approver) = (&who[0], &who[1], &who[2]);
    let expires = (serve_support::campus_now().date() + chrono::Duration::days(30)).to_string();
    let batch = |no: &str, card_no: u32, amount: f64| {
        let list = tmp.join(format!("{no}.xlsx"));
        write_list(&list, &[(card_no, amount)]);
        let args = [
            "subsidy",
            "import",
            list.to_str().unwrap(),
            "--batch",
            no,
            "--name",
            "伙食补助",
            "--expires",
            &expires,
            "--json",
        ];
        assert_eq!(json_of(as_op(&s, clerk, &args, ""))["state"], "imported");
        ok(as_op(&s, checker, &["subsidy", "check", no], ""));
        ok(as_op(&s, approver, &["subsidy", "approve", no], ""));
        let out = ok(as_op(&s, clerk, &["subsidy", "issue", no], ""));
        assert!(out.contains("已发放"), "{out}");
    };
    let before = host_balance(&s, 5);
    batch("202612", 5, 12.5);
    assert_eq!(waiting(&s, 5)["waiting"], 1_250);
    let mut pos = pos_terminal(&s, "p1");
    debit_and_pick_up(&mut pos, &s, 5, 1_250);
    assert_eq!(host_balance(&s, 5), before - 100 + 1_250);
    assert_on_card(&s, 5, before - 100 + 1_250);
    let w = waiting(&s, 5);
    assert_eq!(w["waiting_loads"][0]["state"], "posted", "{w}");
    assert_eq!(w["waiting_loads"][0]["batch"], 202612, "{w}");

    // The second batch is revoked before the card comes by.
    batch("202701", 6, 20.0);
    assert_eq!(waiting(&s, 6)["waiting"], 2_000);
    let revoked = json_of(as_op(
        &s,
        approver,
        &["subsidy", "revoke", "202701", "--json"],
        "",
    ));
    assert_eq!(revoked["revoked"], 1, "{revoked}");
    assert_eq!(waiting(&s, 6)["waiting"], 0);
    let before6 = host_balance(&s, 6);
    pos.amount(100);
    pos.place(&card(&s, 6));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":100}));
    pos.remove();
    pos.advance(3_000);
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(waiting(&s, 6)["subsidy_seq"], 0);
    assert_eq!(host_balance(&s, 6), before6 - 100);

    let r = json_of(as_op(&s, approver, &["report", "subsidies", "--json"], ""));
    let of = |no: u64| {
        r["batches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["no"].as_u64() == Some(no))
            .unwrap()
            .clone()
    };
    assert_eq!(sum(&of(202612), "picked_up"), (1, 1_250), "{r}");
    assert_eq!(sum(&of(202612), "waiting"), (0, 0), "{r}");
    assert_eq!(sum(&of(202701), "revoked"), (1, 2_000), "{r}");
    let text = ok(as_op(&s, approver, &["report", "subsidies"], ""));
    assert!(
        text.contains("202612") && text.contains("1 / 12.50"),
        "{text}"
    );
    let day = json_of(as_op(&s, approver, &["report", "daily", "--json"], ""));
    assert_eq!(sum(&day["subsidies"], "issued"), (2, 3_250), "{day}");
    assert_eq!(sum(&day["subsidies"], "picked_up"), (1, 1_250), "{day}");
    assert_eq!(sum(&day["subsidies"], "revoked"), (1, 2_000), "{day}");
    pos.quit();
    stop_and_audit(s);
}

// R-B4: a top-up over the limit per top-up is refused 90: the terminal shows
// 充值已达到限额, nothing is written on the card, no money moves; under it, it goes through.
#[test]
fn top_up_over_the_limit_is_refused_90() {
    let s = Serve::start(None);
    let out = s.cli(&["topup", "limits", "--per-top-up", "10000"]);
    assert!(out.contains("per top-up: 100.00 元"), "{out}");
    assert_eq!(s.cli_json(&["topup", "limits"])["per_top_up"], 10_000);
    let mut pos = seeded_top_up_terminal(&s, "t1");
    let before = host_balance(&s, 7);
    pos.amount(20_000);
    pos.place(&card(&s, 7));
    pos.wait_event(json!({"event":"refused","code":90}));
    pos.wait_screen("充值已达到限额");
    pos.remove();
    pos.advance(3_000);
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, 7), before);
    assert_on_card(&s, 7, before);
    assert_eq!(cash_top_ups(&s), (0, 0));
    assert_eq!(load_states(&s, 7), [], "a refused top-up leaves no load");
    top_up(&mut pos, &s, 7, 10_000);
    assert_eq!(host_balance(&s, 7), before + 10_000);
    pos.quit();
    stop_and_audit(s);
}
