//! `ykt loadgen` against the real `ykt serve --demo` process (SQLite, and PostgreSQL when
//! reachable): every scenario runs, provisions through the bulk routes, and ends with the
//! books check passing (exit 0); a wrong token is a clear failure.
#![allow(clippy::unwrap_used)]

#[path = "serve_support/mod.rs"]
mod serve_support;

use serve_support::*;

fn loadgen(s: &Serve, args: &[&str]) -> std::process::Output {
    ykt()
        .args(["loadgen", "--quiet", "--server"])
        .arg(format!("http://{}", s.http))
        .arg("--terminal")
        .arg(s.terminal.to_string())
        .arg("--data")
        .arg(s.data())
        .args(args)
        .output()
        .unwrap()
}

fn ok(s: &Serve, args: &[&str]) -> String {
    let o = loadgen(s, args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "loadgen {args:?}: {out}{}\nserver log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        s.log()
    );
    assert!(out.contains("verdict: books agree, audit clean"), "{out}");
    assert!(out.contains("errors: 0"), "{out}");
    out
}

fn scenarios(s: &Serve) {
    // R-P5.2: online debits acknowledged and booked exactly once (R-H6).
    let out = ok(
        s,
        &["--terminals", "4", "--cards", "8", "--requests", "200"],
    );
    assert!(out.contains("200 records booked"), "{out}");
    // R-P5.6, R-P5.9: offline records, one per upload and in batches of 64.
    ok(
        s,
        &[
            "--scenario",
            "offline",
            "--terminals",
            "3",
            "--cards",
            "6",
            "--requests",
            "60",
        ],
    );
    let out = ok(
        s,
        &[
            "--scenario",
            "upload",
            "--terminals",
            "2",
            "--cards",
            "20",
            "--requests",
            "4",
        ],
    );
    assert!(out.contains("256 records booked"), "{out}");
    ok(
        s,
        &[
            "--scenario",
            "mixed",
            "--terminals",
            "3",
            "--cards",
            "9",
            "--requests",
            "90",
        ],
    );
    // R-P5.1: a storm of sign-ins, all answered with code 0.
    let out = ok(s, &["--scenario", "signin-storm", "--terminals", "50"]);
    assert!(out.contains("50 of 50 terminals signed in"), "{out}");
    // R-F4.21: a fresh terminal's bulk download holds every lost card.
    let out = ok(
        s,
        &[
            "--scenario",
            "blacklist-init",
            "--terminals",
            "1",
            "--cards",
            "3000",
        ],
    );
    assert!(out.contains("3000 of 3000 cards listed"), "{out}");
}

fn top_ups(s: &Serve) {
    // R-B4: cash top-ups at top-up terminals, some torn (voided, or settled by the card's
    // next record): every one posted or voided once, its cash tallied, nothing pending.
    let out = ok(
        s,
        &[
            "--scenario",
            "topup",
            "--terminals",
            "3",
            "--cards",
            "6",
            "--requests",
            "90",
            "--tear-rate",
            "0.3",
            "--json",
        ],
    );
    assert!(out.contains("load authorisation (0x08): p50"), "{out}");
    assert!(out.contains("\"books_ok\":true"), "{out}");
    assert!(!out.contains(" 0 top-ups ("), "{out}");
}

fn pick_ups(s: &Serve) {
    // R-B5: money waiting for each card is picked up at its next debit; nothing claimed
    // is left pending and the waiting account holds what is left.
    let out = ok(
        s,
        &[
            "--scenario",
            "pickup",
            "--terminals",
            "2",
            "--cards",
            "4",
            "--requests",
            "40",
        ],
    );
    assert!(out.contains("4 pick-ups ("), "{out}");
}

fn on_both_backends(run: fn(&Serve)) {
    let s = Serve::start(None);
    run(&s);
    s.stop();
    if let Some(db) = PgDb::create() {
        let s = Serve::start(Some(db.url()));
        run(&s);
        s.stop();
    }
}

// R-B4
#[test]
fn top_up_scenario_books_agree() {
    on_both_backends(top_ups);
}

// R-B5
#[test]
fn pick_up_scenario_books_agree() {
    on_both_backends(pick_ups);
}

#[test]
fn every_scenario_on_sqlite() {
    let s = Serve::start(None);
    scenarios(&s);
    s.stop();
}

#[test]
fn every_scenario_on_postgres() {
    let Some(db) = PgDb::create() else { return };
    let s = Serve::start(Some(db.url()));
    scenarios(&s);
    s.stop();
}

#[test]
fn a_wrong_token_fails_clearly() {
    let s = Serve::start(None);
    let o = loadgen(&s, &["--token", "wrong", "--requests", "1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("401"), "{err}");
}
