//! Scale-out (issue 5, item 8): two `ykt serve` processes, FEPs 1 and 2, on one PostgreSQL
//! database. Real terminals (`ykt pos --headless`), one per host, debit the same cards in
//! turn, online and offline; loss reports go through both hosts' admin APIs at once; every
//! terminal receives the changes; then both hosts stop, `ykt audit` passes and the books
//! hold each record once. Two `ykt loadgen` runs, one per host, end it.
//!
//! PostgreSQL at 127.0.0.1:5432 is mandatory with `CI=true`; elsewhere the test is skipped
//! with a line saying so.
#![allow(clippy::unwrap_used)]

#[path = "support/hosts.rs"]
mod hosts;
mod serve_support;
mod support;

use std::collections::BTreeMap;

use hosts::{
    card, card_state, host_balance, move_device, pass_time, start_host, stop_all_and_audit,
};
use serde_json::{Value, json};
use serve_support::{PgDb, Serve, ykt};
use support::Pos;

const DEVICE_A: &str = "10000001";
const DEVICE_B: &str = "10000002";

/// Both hosts on one database: A (FEP 1) seeds the demo and registers + activates FEP 2
/// through its admin API (R-H7); B serves as FEP 2 with the same system key file. The card
/// images stay in A's data directory: one set of physical cards for both hosts' terminals.
fn two_hosts(db: &PgDb) -> (Serve, Serve) {
    let url = db.url();
    let a = start_host(Some(&url), 1, true, |_| {});
    a.cli(&["fep", "add", "--id", "2", "--name", "二号前置机"]);
    a.cli(&["fep", "activate", "2"]);
    let keys = a.data().join("keys");
    let b = start_host(Some(&url), 2, false, |data| {
        std::fs::copy(&keys, data.join("keys")).unwrap();
    });
    (a, b)
}

fn fep_status(host: &Serve) -> BTreeMap<u64, Value> {
    let list = host.cli_json(&["fep", "list"]);
    let items = list
        .as_array()
        .or_else(|| list["feps"].as_array())
        .unwrap_or_else(|| panic!("fep list: {list}"));
    items
        .iter()
        .map(|f| (f["id"].as_u64().unwrap(), f.clone()))
        .collect()
}

/// One purchase each on two terminals at the same time: both cards are placed before
/// either answer is awaited. Returns nothing: the caller checks the books.
fn tap_both(
    a: &mut Pos,
    card_a: &std::path::Path,
    b: &mut Pos,
    card_b: &std::path::Path,
    fen: u64,
    status: [&str; 2],
) {
    a.amount(fen);
    b.amount(fen + 1);
    a.place(card_a);
    b.place(card_b);
    a.wait_event(json!({"event":"record","kind":"purchase","status":status[0],"amount":fen}));
    b.wait_event(json!({"event":"record","kind":"purchase","status":status[1],"amount":fen + 1}));
    a.remove();
    b.remove();
    a.advance(3_000);
    b.advance(3_000);
}

fn lose_or_find(host: &Serve, action: &str, no: u32) -> u64 {
    host.cli_json(&["card", action, &no.to_string()])["blacklist_version"]
        .as_u64()
        .unwrap()
}

fn loadgen(host: &Serve, merchant: &str) -> std::process::Child {
    ykt()
        .args([
            "loadgen",
            "--quiet",
            "--merchant",
            merchant,
            "--scenario",
            "mixed",
        ])
        .args(["--terminals", "3", "--cards", "9", "--requests", "150"])
        .arg("--server")
        .arg(format!("http://{}", host.http))
        .arg("--terminal")
        .arg(host.terminal.to_string())
        .arg("--data")
        .arg(host.data())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

// R-H7: two FEPs registered and activated serve one core at once; R-H2 + R-H6: records of
// both hosts are booked once each and the books balance; R-H4: loss reports through both
// hosts get strictly sequential blacklist versions, and reach every terminal.
#[test]
fn two_hosts_one_database() {
    let Some(db) = PgDb::create() else { return };
    let (a, b) = two_hosts(&db);

    // R-H7: both FEPs activated and signed in, each process knows which one it is.
    let feps = fep_status(&b);
    for id in [1, 2] {
        assert_eq!(feps[&id]["status"], "activated", "{feps:?}");
        assert!(!feps[&id]["signed_in_at"].is_null(), "{feps:?}");
    }
    assert_eq!(feps[&2]["this_process"], true);
    assert_eq!(fep_status(&a)[&1]["this_process"], true);

    move_device(&a, &b, DEVICE_B);
    let mut ta = Pos::start(&a.data(), DEVICE_A, &a.dir.path().join("ja"));
    let mut tb = Pos::start(&b.data(), DEVICE_B, &b.dir.path().join("jb"));
    ta.signed_in();
    tb.signed_in();

    let cards = [1u32, 2];
    let opening: Vec<i64> = cards.iter().map(|&c| host_balance(&a, c)).collect();
    let mut spent = [0i64; 2];
    let mut booked = 0i64;

    // Online, alternating: card 1 on A while card 2 on B, then the other way round.
    for round in 0..4u64 {
        let (x, y) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        let fen = 100 + 10 * round;
        tap_both(
            &mut ta,
            &card(&a, cards[x]),
            &mut tb,
            &card(&a, cards[y]),
            fen,
            ["success", "success"],
        );
        spent[x] += i64::try_from(fen).unwrap();
        spent[y] += i64::try_from(fen + 1).unwrap();
        booked += 2;
    }
    for i in 0..2 {
        assert_eq!(host_balance(&b, cards[i]), opening[i] - spent[i]);
    }

    // B's network is cut: B debits offline while A keeps debiting the same cards online, so
    // A's host sees the cards' counters jump past records it has not received yet.
    tb.ok(json!({"cmd":"net","up":false}));
    for round in 0..2u64 {
        let (x, y) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        let fen = 200 + 10 * round;
        tap_both(
            &mut ta,
            &card(&a, cards[x]),
            &mut tb,
            &card(&a, cards[y]),
            fen,
            ["success", "written"],
        );
        spent[x] += i64::try_from(fen).unwrap();
        spent[y] += i64::try_from(fen + 1).unwrap();
        booked += 2;
    }
    tb.ok(json!({"cmd":"net","up":true}));
    tb.wait_event(json!({"event":"signed_in"}));
    tb.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":15000}));
    ta.ok(json!({"cmd":"wait","for":"idle","timeout_ms":15000}));
    for i in 0..2 {
        let on_host = host_balance(&a, cards[i]);
        assert_eq!(on_host, opening[i] - spent[i], "card {}", cards[i]);
        assert_eq!(
            card_state(&a, cards[i]),
            (on_host, false),
            "card {}",
            cards[i]
        );
    }

    // R-H4: loss reports and a found report through both admin APIs at the same time.
    let v0 = a.cli_json(&["blacklist", "show"])["version"]
        .as_u64()
        .unwrap();
    let (from_a, from_b) = std::thread::scope(|s| {
        let ha = s.spawn(|| vec![lose_or_find(&a, "lose", 5), lose_or_find(&a, "lose", 7)]);
        let hb = s.spawn(|| vec![lose_or_find(&b, "lose", 6), lose_or_find(&b, "found", 10)]);
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let mut versions: Vec<u64> = from_a.iter().chain(&from_b).copied().collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (v0 + 1..=v0 + 4).collect::<Vec<_>>(),
        "A {from_a:?} B {from_b:?}"
    );
    for host in [&a, &b] {
        let list = host.cli_json(&["blacklist", "show"]);
        assert_eq!(list["version"], v0 + 4);
        let listed: Vec<u64> = list["cards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(listed, [5, 6, 7], "{list}");
    }

    // Each terminal learns the version at its next heartbeat and downloads the changes.
    for t in [&mut ta, &mut tb] {
        pass_time(t, 60_000);
        t.wait_event(json!({"event":"blacklist_updated","version":v0 + 4}));
    }
    // A card lost through A is locked on B's terminal and the other way round (R-F4.15).
    for (t, no) in [(&mut tb, 5u32), (&mut ta, 6)] {
        t.amount(100);
        t.place(&card(&a, no));
        t.wait_event(json!({"event":"card_locked","card_no":no}));
        t.remove();
        t.advance(3_000);
        t.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":15000}));
        assert!(card_state(&a, no).1);
    }
    ta.quit();
    tb.quit();

    // The books: each purchase once, whichever host got it (R-H2), and the day's report of
    // either host says the same.
    let total: i64 = spent.iter().sum();
    for host in [&a, &b] {
        let t = host.cli_json(&["report", "daily"])["total"].clone();
        assert_eq!(
            (
                t["debits"].as_i64().unwrap(),
                t["debit_amount"].as_i64().unwrap()
            ),
            (booked, total),
            "{t}"
        );
    }

    // Two load generators at once, one per host, on the same database.
    let runs = [loadgen(&a, "700001"), loadgen(&b, "700002")];
    for run in runs {
        let o = run.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "loadgen: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("verdict: books agree, audit clean"), "{out}");
    }

    // R-H6: both stopped, the audit of the shared database passes.
    stop_all_and_audit(vec![a, b]);
}
