//! End to end, operator authorisation cards (R-B11): a real `ykt serve --demo`; the card
//! office issues a card with `ykt authcard issue`; a terminal's 0x0A check is answered 0 with
//! the PIN and 89 without it; after `ykt authcard lost` it is 81; `ykt authcard show` lists
//! the checks; the books are clean.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serve_support::{Serve, Terminal, campus_now};
use support::audit;
use ykt_proto::*;

fn check(t: &mut Terminal, no: u32, pin: &str, nonce: u32) -> AuthCheckResponse {
    let req = AuthCheckRequest {
        card_no: no,
        function: AuthFunction::Reversal,
        time: campus_now(),
        nonce,
        pin_block: t.pin_block(no, nonce, pin),
    };
    match t.request(Message::AuthCheckRequest(req)) {
        Message::AuthCheckResponse(r) => r,
        other => panic!("{other:?}"),
    }
}

// R-B11: the card office's CLI and a terminal's online check against the real server
// (code 0, code 89, code 81).
#[test]
fn authorisation_card_issued_checked_and_reported_lost() {
    let s = Serve::start(None);
    let ops = s.cli_json(&["operator", "list"]);
    let admin = ops[0]["id"].as_i64().unwrap().to_string();
    let card = s.cli_json(&[
        "authcard",
        "issue",
        "--operator",
        &admin,
        "--from",
        "2026-01-01",
        "--until",
        "2030-01-01",
        "--function",
        "reversal,statistics",
        "--pin",
        "246810",
    ]);
    let no = u32::try_from(card["no"].as_u64().unwrap()).unwrap();
    assert_eq!(card["state"], "normal");

    let (mut t, resp) = Terminal::sign_in(s.terminal, &s.provisioning("10000001"));
    assert_eq!(resp.code, ReturnCode::SUCCESS);
    let ok = check(&mut t, no, "246810", 1);
    assert_eq!(
        (ok.code, ok.operator.to_string()),
        (ReturnCode::SUCCESS, admin.clone())
    );
    let wrong = check(&mut t, no, "000000", 2);
    assert_eq!((wrong.code.0, wrong.tries_left), (89, 4));

    let lost = s.cli(&["authcard", "lost", &no.to_string()]);
    assert!(lost.contains("挂失"), "{lost}");
    assert_eq!(check(&mut t, no, "246810", 3).code.0, 81);
    let shown = s.cli_json(&["authcard", "show", &no.to_string()]);
    let codes: Vec<u64> = shown["uses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![81, 89, 0]);
    // A change that does not apply is a clear refusal.
    let o = s.cli_output(&["authcard", "unfreeze", &no.to_string()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot unfreeze"));
    drop(t);
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
