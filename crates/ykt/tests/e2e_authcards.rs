//! End to end, operator authorisation cards (R-B11): a real `ykt serve --demo`; the card
//! office issues a card with `ykt authcard issue`; a terminal's 0x0A check is answered 0 with
//! the PIN and 89 without it; after `ykt authcard lost` it is 81; `ykt authcard show` lists
//! the checks; the books are clean. And on a real POS (`ykt pos --headless`) whose device
//! parameters protect the reversal: refused without the operator card, run with it.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::PathBuf;

use serde_json::json;
use serve_support::{Serve, Terminal, campus_now, ykt};
use support::{Pos, audit};
use ykt_proto::*;

const DEVICE: &str = "10000001";
const OPERATOR_PIN: &str = "246810";

fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

/// The operator card's image (`ykt card new --operator`, `docs/card-layout.md`): its card
/// number is the authorisation card's; the operator data let a POS check it offline.
fn operator_card_image(s: &Serve, no: u32, operator: &str) -> PathBuf {
    let out = s.dir.path().join("operator.mf1");
    let o = ykt()
        .args(["card", "new", "--type", "mf1", "--card-no", &no.to_string()])
        .args(["--display-no", &no.to_string(), "--class", "0"])
        .args([
            "--expiry",
            "2030-01-01",
            "--balance",
            "0",
            "--pin",
            OPERATOR_PIN,
        ])
        .args(["--operator", operator, "--valid-from", "2026-01-01"])
        .args(["--valid-until", "2030-01-01", "--functions", "reversal"])
        .arg("--keys")
        .arg(s.data().join("keys"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn uses(s: &Serve, no: u32) -> Vec<u64> {
    s.cli_json(&["authcard", "show", &no.to_string()])["uses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_u64().unwrap())
        .collect()
}

// R-B11 (code 80, code 89, code 0): a reversal on a POS whose device parameters protect it is
// refused without an operator card (the customer's own card at 请刷授权卡 is unknown, 80; the
// operator card with a wrong PIN, 89) and runs with the operator card and its PIN; the money
// comes back to the card and the host; offline the card itself refuses a wrong PIN (89); the
// books are clean.
#[test]
fn reversal_on_a_pos_refused_without_an_operator_card_and_accepted_with_one() {
    let s = Serve::start(None);
    let admin = s.cli_json(&["operator", "list"])[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
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
        "reversal",
        "--pin",
        OPERATOR_PIN,
    ]);
    let no = u32::try_from(card["no"].as_u64().unwrap()).unwrap();
    let operator_card = operator_card_image(&s, no, &admin);
    let shown = s.cli(&[
        "device",
        "set-params",
        DEVICE,
        "--operator-card",
        "reversal",
    ]);
    assert!(shown.contains("operator_card: [\"reversal\"]"), "{shown}");

    let customer = s.data().join("cards").join("8.mf1");
    let before = host_balance(&s, 8);
    let mut pos = Pos::start(&s.data(), DEVICE, &s.dir.path().join("j1"));
    pos.signed_in();
    pos.amount(200);
    pos.place(&customer);
    pos.wait_event(json!({"event":"record","kind":"purchase","status":"success","amount":200}));
    pos.remove();
    pos.advance(3_000);

    // Without the operator card: the customer's card is not one (80) …
    pos.key("reversal");
    pos.wait_screen("请刷授权卡");
    pos.ok(json!({"cmd":"authorise","file":customer,"pin":"1234"}));
    pos.wait_event(json!({"event":"refused","code":80,"text":"错误：授权卡号不存在"}));
    pos.advance(3_000);
    // … and the customer's card tapped now reverses nothing.
    pos.place(&customer);
    pos.remove();
    // The operator card with a wrong PIN: 89.
    pos.key("reversal");
    pos.wait_screen("请刷授权卡");
    pos.ok(json!({"cmd":"authorise","file":operator_card,"pin":"000000"}));
    pos.wait_event(json!({"event":"refused","code":89,"text":"错误：授权卡密码错误"}));
    pos.advance(3_000);
    assert!(!pos.saw(&json!({"event":"record","kind":"reversal"})));
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, 8), before - 200);

    // With the operator card and its PIN: the reversal runs.
    pos.key("reversal");
    pos.wait_screen("请刷授权卡");
    pos.ok(json!({"cmd":"authorise","file":operator_card,"pin":OPERATOR_PIN}));
    pos.wait_screen("请刷卡冲正");
    pos.place(&customer);
    pos.wait_event(json!({"event":"record","kind":"reversal","status":"written","amount":200}));
    pos.wait_screen("冲正成功");
    pos.remove();
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    assert_eq!(host_balance(&s, 8), before);
    assert_eq!(uses(&s, no), vec![0, 89]);

    // Offline the card decides from what it carries: a wrong PIN is 89 without the host.
    pos.advance(3_000);
    pos.ok(json!({"cmd":"net","up":false}));
    pos.ok(json!({"cmd":"wait","for":"link","up":false,"timeout_ms":10000}));
    pos.key("reversal");
    pos.wait_screen("请刷授权卡");
    pos.ok(json!({"cmd":"authorise","file":operator_card,"pin":"000000"}));
    pos.wait_event(json!({"event":"refused","code":89,"text":"错误：授权卡密码错误"}));
    assert_eq!(
        uses(&s, no),
        vec![0, 89],
        "the host never saw the offline check"
    );
    pos.ok(json!({"cmd":"net","up":true}));
    pos.wait_event(json!({"event":"signed_in"}));
    pos.quit();
    let db = s.database.clone();
    let dir = s.stop();
    audit(&dir.path().join("data"), db.as_deref());
}

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
