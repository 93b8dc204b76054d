//! Operator authorisation cards at the wire and on the admin API (R-B11): a card issued over
//! the API, checked by a terminal with 0x0A (its PIN in a block under the session's PIN key,
//! verified against the Argon2id hash), refused as its state says, every step journalled.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use serde_json::Value;
use support::*;
use ykt_proto::*;

async fn check(
    t: &mut TestTerminal,
    no: u32,
    f: AuthFunction,
    pin: &str,
    nonce: u32,
) -> AuthCheckResponse {
    let block = t
        .session
        .as_ref()
        .unwrap()
        .seal_pin(no, nonce, &Pin::new(pin).unwrap());
    let req = AuthCheckRequest {
        card_no: no,
        function: f,
        time: time(),
        nonce,
        pin_block: block,
    };
    let Message::AuthCheckResponse(r) = t.request(Message::AuthCheckRequest(req)).await.unwrap()
    else {
        panic!("not an auth check response")
    };
    r
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

// R-B11: issue over the API, then 0x0A answers 0 (code 0), 89 (wrong PIN; a block sealed for
// another card is one too), 88 (function not granted), 81 after the card office reports it
// lost (code 81), 80 for an unknown card (code 80); the card shows its checks; the journal
// names every change and never the PIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorisation_card_over_the_wire() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let (_, ops) = http(addr, "GET", "/api/v1/operators", Some(TOKEN), "").await;
    let admin_id = json(&ops)[0]["id"].as_i64().unwrap();
    // Bad input is a clear 400.
    for body in [
        r#"{"operator_id":1,"valid_from":"2026-03-01","valid_until":"2027-03-01","functions":["reversal"],"pin":"2468","x":1}"#,
        r#"{"operator_id":1,"valid_from":"2026-03-01","valid_until":"2027-03-01","functions":["fly"],"pin":"2468"}"#,
        r#"{"operator_id":1,"valid_from":"2026-03-01","valid_until":"2027-03-01","functions":["reversal"],"pin":"12"}"#,
        r#"{"operator_id":1,"valid_from":"2026-03-01","valid_until":"yesterday","functions":["reversal"],"pin":"2468"}"#,
    ] {
        let (status, b) = http(addr, "POST", "/api/v1/authcards", Some(TOKEN), body).await;
        assert_eq!(status, 400, "{body}: {b}");
        assert!(json(&b)["error"].is_string());
    }
    let body = format!(
        r#"{{"operator_id":{admin_id},"valid_from":"2026-03-01","valid_until":"2027-03-01","functions":["reversal","statistics"],"pin":"246810"}}"#
    );
    let (status, b) = http(addr, "POST", "/api/v1/authcards", Some(TOKEN), &body).await;
    assert_eq!(status, 200, "{b}");
    let card = json(&b);
    let no = u32::try_from(card["no"].as_u64().unwrap()).unwrap();
    assert_eq!(card["state"], "normal");
    assert!(!b.contains("argon2"), "no hash in the answer");

    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    let ok = check(&mut t, no, AuthFunction::Reversal, "246810", 1).await;
    assert_eq!(
        (ok.code, i64::from(ok.operator), ok.tries_left),
        (ReturnCode::SUCCESS, admin_id, 5)
    );
    let wrong = check(&mut t, no, AuthFunction::Reversal, "135790", 2).await;
    assert_eq!((wrong.code.0, wrong.operator, wrong.tries_left), (89, 0, 4));
    // A block sealed for another card number does not open for this one: a wrong PIN.
    let session = t.session.clone().unwrap();
    let block = session.seal_pin(no + 1, 3, &Pin::new("246810").unwrap());
    let req = AuthCheckRequest {
        card_no: no,
        function: AuthFunction::Reversal,
        time: time(),
        nonce: 3,
        pin_block: block,
    };
    let Message::AuthCheckResponse(r) = t.request(Message::AuthCheckRequest(req)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(r.code.0, 89);
    assert_eq!(
        check(&mut t, no, AuthFunction::ManualSignIn, "246810", 4)
            .await
            .code
            .0,
        88
    );
    assert_eq!(
        check(&mut t, 4_000_000, AuthFunction::Reversal, "246810", 5)
            .await
            .code
            .0,
        80
    );
    // The right PIN clears the count.
    assert_eq!(
        check(&mut t, no, AuthFunction::Statistics, "246810", 6)
            .await
            .tries_left,
        5
    );

    let path = format!("/api/v1/authcards/{no}/state");
    let (status, b) = http(addr, "POST", &path, Some(TOKEN), r#"{"action":"unfreeze"}"#).await;
    assert_eq!(status, 400, "{b}");
    let (status, b) = http(addr, "POST", &path, Some(TOKEN), r#"{"action":"lost"}"#).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        check(&mut t, no, AuthFunction::Reversal, "246810", 7)
            .await
            .code
            .0,
        81
    );

    let (status, b) = http(
        addr,
        "GET",
        &format!("/api/v1/authcards/{no}"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let shown = json(&b);
    assert_eq!(shown["state"], "lost");
    let codes: Vec<u64> = shown["uses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_u64().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec![81, 0, 88, 89, 89, 0],
        "newest first; the unknown card is its own"
    );

    let (_, j) = http(addr, "GET", "/api/v1/journal?limit=100", Some(TOKEN), "").await;
    assert!(
        j.contains("authcard.issue") && j.contains("authcard.lost"),
        "{j}"
    );
    assert!(
        !j.contains("246810") && !j.contains("argon2"),
        "no PIN in the journal"
    );
    assert_audit_clean(&w.store).await;
}
