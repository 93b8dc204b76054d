//! End to end on both backends: the real `ykt serve --demo` (SQLite, then a fresh PostgreSQL
//! database) and the real terminal core (`ykt pos --headless`): sign-in, online debit,
//! network cut → offline debit → upload, a repeated upload, a loss report reaching the
//! terminal, the black card locked and refused, then `ykt audit` passing (issue 5).
//!
//! PostgreSQL at 127.0.0.1:5432 is mandatory with `CI=true`; elsewhere the PostgreSQL run is
//! skipped with a line saying so.
#![allow(clippy::unwrap_used)]

#[path = "support/hosts.rs"]
mod hosts;
mod serve_support;
mod support;

use std::path::Path;

use hosts::{card, card_state, host_balance, pass_time, report_total, stop_all_and_audit};
use serde_json::json;
use serve_support::{PgDb, Serve};
use support::Pos;

const DEVICE_1: &str = "10000001";
const DEVICE_2: &str = "10000002";

/// A byte-for-byte copy of a terminal's flash directory (its journal and state).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn start_pos(s: &Serve, device: &str, journal: &Path) -> Pos {
    let mut pos = Pos::start(&s.data(), device, journal);
    // R-P5.1: sign-in at power-up over TCP.
    pos.signed_in();
    pos
}

fn wait_pending(pos: &mut Pos, n: u64) {
    pos.ok(json!({"cmd":"wait","for":"pending","count":n,"timeout_ms":15000}));
}

fn debits(s: &Serve) -> (i64, i64) {
    let t = report_total(s);
    (
        t["debits"].as_i64().unwrap(),
        t["debit_amount"].as_i64().unwrap(),
    )
}

fn scenario(database: Option<String>) {
    let s = Serve::start(database);
    let j1 = s.dir.path().join("j1");
    let mut pos = start_pos(&s, DEVICE_1, &j1);

    // R-P5.2: an online debit, authorised and booked by the host before the card is written.
    let before_1 = host_balance(&s, 1);
    pos.amount(150);
    pos.place(&card(&s, 1));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":150}));
    pos.wait_screen("余额：");
    pos.remove();
    assert!(pos.saw(&json!({"received":"debit_response"})));
    assert_eq!(host_balance(&s, 1), before_1 - 150);
    assert_eq!(card_state(&s, 1), (before_1 - 150, false));
    pos.advance(3_000);

    // R-P5.6: the network is cut; auto mode verifies the card itself and writes it; the
    // record waits, unbooked, with the "not uploaded" indicator on screen.
    let before_4 = host_balance(&s, 4);
    pos.ok(json!({"cmd":"net","up":false}));
    pos.amount(300);
    pos.place(&card(&s, 4));
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"written","amount":300}));
    pos.remove();
    pos.advance(3_000);
    pos.wait_screen("未上传流水：1笔");
    wait_pending(&mut pos, 1);
    assert_eq!(host_balance(&s, 4), before_4);
    assert_eq!(card_state(&s, 4).0, before_4 - 300);

    // The terminal's flash as it stands with the record still pending: restoring it after
    // the upload is a power cut between the host's commit and the terminal marking the
    // record uploaded, so the same record is uploaded a second time.
    pos.quit();
    let snapshot = s.dir.path().join("j1-pending");
    copy_dir(&j1, &snapshot);

    // R-P5.9: once the network is back, the pending record is uploaded and booked.
    let mut pos = start_pos(&s, DEVICE_1, &j1);
    let first = pos.wait_event(json!({"event":"uploaded"}));
    wait_pending(&mut pos, 0);
    assert_eq!(host_balance(&s, 4), before_4 - 300);
    assert_eq!(debits(&s), (2, 450));
    pos.quit();

    // R-P5.9, R-H2: the repeat of the same (device, serial) with the same content is
    // acknowledged again (code 0, the terminal marks it uploaded) and booked only once.
    std::fs::remove_dir_all(&j1).unwrap();
    copy_dir(&snapshot, &j1);
    let mut pos = start_pos(&s, DEVICE_1, &j1);
    let again = pos.wait_event(json!({"event":"uploaded"}));
    assert_eq!(again["serial"], first["serial"]);
    wait_pending(&mut pos, 0);
    assert!(!pos.saw(&json!({"event":"upload_rejected"})));
    assert_eq!(host_balance(&s, 4), before_4 - 300);
    assert_eq!(card_state(&s, 4).0, host_balance(&s, 4));
    assert_eq!(debits(&s), (2, 450));

    // R-H4 → R-F4.15: card 3 is reported lost while the terminal is connected; its next
    // heartbeat (60 s, virtual clock) sees the new version and downloads the change.
    let version = s.cli_json(&["card", "lose", "3"])["blacklist_version"]
        .as_u64()
        .unwrap();
    pass_time(&mut pos, 60_000);
    pos.wait_event(json!({"event":"blacklist_updated","version":version}));
    let before_3 = host_balance(&s, 3);
    pos.amount(100);
    pos.place(&card(&s, 3));
    pos.wait_event(json!({"event":"record","kind":"black_card"}));
    pos.wait_event(json!({"event":"card_locked","card_no":3}));
    pos.wait_event(json!({"event":"refused"}));
    pos.remove();
    wait_pending(&mut pos, 0);
    assert_eq!(card_state(&s, 3), (before_3, true));
    pos.quit();

    // R-F4.21: a terminal with an empty list receives the whole blacklist at sign-in.
    let mut fresh = start_pos(&s, DEVICE_2, &s.dir.path().join("j2"));
    fresh.wait_event(json!({"event":"blacklist_updated","version":version}));
    assert!(
        fresh.saw(&json!({"sent":"blacklist_delta"}))
            || fresh.saw(&json!({"sent":"blacklist_bulk"}))
    );
    // R-F4.15: the card's lock flag alone refuses it, even once found again on the host.
    s.cli(&["card", "found", "3"]);
    fresh.amount(100);
    fresh.place(&card(&s, 3));
    fresh.wait_event(json!({"event":"refused"}));
    fresh.wait_screen("错误：");
    fresh.remove();
    assert_eq!(host_balance(&s, 3), before_3);
    fresh.quit();

    // The black-card record is stored unbooked: the books still hold two debits.
    assert_eq!(debits(&s), (2, 450));
    // R-H6: the books balance (`ykt audit` exit 0 after SIGTERM).
    stop_all_and_audit(vec![s]);
}

// R-P5.1, R-P5.2, R-P5.6, R-P5.9, R-H2, R-H4, R-F4.15, R-F4.21, R-H6
#[test]
fn full_scenario_on_sqlite() {
    scenario(None);
}

// R-P5.1, R-P5.2, R-P5.6, R-P5.9, R-H2, R-H4, R-F4.15, R-F4.21, R-H6 on PostgreSQL.
#[test]
fn full_scenario_on_postgres() {
    let Some(db) = PgDb::create() else { return };
    scenario(Some(db.url()));
}
