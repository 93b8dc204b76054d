//! End to end, the exception queue (R-B3, issue 10.6): a real `ykt serve --demo` and a real
//! `ykt pos --headless`; an offline debit of a card the host does not know is held, listed,
//! shown and resolved with `ykt exception`, and the audit passes.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serde_json::json;
use serve_support::{Serve, ykt};
use support::{Pos, audit};

const DEVICE: &str = "10000001";

// issue 10.6, R-B3: the terminal debits a card the host does not know while its network is
// down; its upload is answered 50, final: the terminal stops resending (upload_rejected),
// and the host holds the record. The card office lists and shows it, cannot book it to the
// merchant (no card account), books it to suspense; nothing is open any more, the suspense
// account holds the money, and the audit is clean.
#[test]
fn offline_debit_of_an_unknown_card_is_held_and_resolved() {
    let s = Serve::start(None);
    let ghost = s.dir.path().join("ghost.mf1");
    let keys = s.data().join("keys");
    let o = ykt()
        .args(["card", "new", "--type", "mf1", "--card-no", "4242"])
        .args(["--display-no", "2026999999", "--class", "1"])
        .args([
            "--expiry",
            "2030-01-01",
            "--balance",
            "5000",
            "--pin",
            "123456",
            "--keys",
        ])
        .arg(&keys)
        .arg("--out")
        .arg(&ghost)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut pos = Pos::start(&s.data(), DEVICE, &s.dir.path().join("j1"));
    pos.signed_in();
    pos.ok(json!({"cmd":"net","up":false}));
    pos.amount(300);
    pos.place(&ghost);
    let rec = pos.wait_event(json!({"event":"record","kind":"purchase","status":"written"}));
    pos.remove();
    pos.ok(json!({"cmd":"net","up":true}));
    pos.wait_event(json!({"event":"signed_in"}));
    pos.wait_event(json!({"event":"upload_rejected","code":50}));
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));
    let serial = rec["serial"].as_u64().unwrap().to_string();

    let list = s.cli_json(&["exception", "list"]);
    assert_eq!(list["open"], 1, "{list}");
    let e = &list["exceptions"][0];
    assert_eq!(
        (e["device"].as_str(), e["code"].as_u64()),
        (Some(DEVICE), Some(50))
    );
    assert_eq!(e["record"]["card_no"], 4242);
    assert_eq!(e["record"]["amount"], 300);
    let shown = s.cli(&["exception", "show", DEVICE, &serial]);
    assert!(shown.contains("卡号不存在"), "{shown}");

    let refused = s.cli_output(&["exception", "resolve", DEVICE, &serial, "--action", "book"]);
    assert!(!refused.status.success(), "no card account to book from");
    let done = s.cli_json(&[
        "exception",
        "resolve",
        DEVICE,
        &serial,
        "--action",
        "suspense",
        "--note",
        "外校卡",
    ]);
    assert_eq!(done["resolution"]["state"], "suspense", "{done}");
    assert_eq!(done["resolution"]["after"]["credited"], "suspense");
    assert_eq!(s.cli_json(&["exception", "list"])["open"], 0);
    let resolved = s.cli_json(&["exception", "list", "--state", "resolved"]);
    assert_eq!(resolved["exceptions"].as_array().unwrap().len(), 1);

    pos.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
