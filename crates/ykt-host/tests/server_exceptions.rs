//! Over the wire and the admin API: a refused offline debit is held in the exception queue
//! (issue 10.6, R-B3) and resolved by the card office; a broken invariant reaches the
//! terminal as a retryable code (issue 10.7). Both backends; a clean audit at the end.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use serde_json::Value;
use support::*;
use ykt_host::ledger::{FUNDING_ACCOUNT, SUSPENSE_ACCOUNT, Transfer, record_transfer_id};
use ykt_proto::*;

async fn upload(t: &mut TestTerminal, records: Vec<Record>) -> Vec<ReturnCode> {
    let Message::UploadResponse(u) = t
        .request(Message::UploadRequest(UploadRequest { records }))
        .await
        .unwrap()
    else {
        panic!("not an upload response")
    };
    assert_eq!(u.code, ReturnCode::SUCCESS);
    u.results.iter().map(|r| r.code).collect()
}

async fn api(w: &World, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = http(w.server.http_addr(), method, path, Some(TOKEN), body).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn open_gauge(w: &World) -> String {
    let (_, metrics) = http(w.server.http_addr(), "GET", "/metrics", None, "").await;
    metrics
        .lines()
        .find(|l| l.starts_with("ykt_exceptions_open"))
        .unwrap_or("")
        .to_owned()
}

async fn queue(w: World) {
    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    let ghost = offline_record(CardNo::new(0x00AB_CDEF).unwrap(), 0, 500, 120, 1);
    let good = offline_record(w.cards[0], 0, 10_000, 100, 2);
    // issue 10.6, R-B3: the unknown card's debit is held and answered 50 (final: the
    // terminal stops resending); the other record books. Again: the same answers.
    for _ in 0..2 {
        let codes = upload(&mut t, vec![ghost.clone(), good.clone()]).await;
        assert_eq!(codes, vec![ReturnCode::CARD_NOT_FOUND, ReturnCode::SUCCESS]);
    }
    let (status, list) = api(&w, "GET", "/api/v1/exceptions", "").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["open"], 1);
    let e = &list["exceptions"][0];
    assert_eq!(
        (e["device"].as_str(), e["serial"].as_u64()),
        (Some("01020304"), Some(1))
    );
    assert_eq!(
        (e["code"].as_u64(), e["reason"].as_str()),
        (Some(50), Some("卡号不存在"))
    );
    assert_eq!(e["record"]["amount"], 120);
    assert_eq!(e["resolution"]["state"], "open");
    assert_eq!(open_gauge(&w).await, "ykt_exceptions_open 1");
    let (status, shown) = api(&w, "GET", "/api/v1/exceptions/01020304/1", "").await;
    assert_eq!((status, &shown["code"]), (200, &Value::from(50)));

    // Bad requests: unknown fields, unknown actions, a card the host does not know booked
    // to a merchant, an exception that does not exist.
    let resolve = "/api/v1/exceptions/01020304/1/resolve";
    let (status, _) = api(&w, "POST", resolve, r#"{"action":"book","x":1}"#).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = api(&w, "POST", resolve, r#"{"action":"pay"}"#).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, body) = api(&w, "POST", resolve, r#"{"action":"book"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("suspense"),
        "{body}"
    );
    let (status, _) = api(&w, "GET", "/api/v1/exceptions/01020304/9", "").await;
    assert_eq!(status, 400);
    let (status, _) = api(&w, "GET", "/api/v1/exceptions?state=maybe", "").await;
    assert_eq!(status, 400);

    let (status, done) = api(
        &w,
        "POST",
        resolve,
        r#"{"action":"suspense","note":"外校卡"}"#,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["resolution"]["state"], "suspense");
    assert_eq!(done["resolution"]["resolved_by"], "admin");
    assert_eq!(done["resolution"]["note"], "外校卡");
    assert_eq!(done["resolution"]["after"]["credited"], "suspense");
    let (status, _) = api(&w, "POST", resolve, r#"{"action":"reject"}"#).await;
    assert_eq!(status, 400, "resolved once");
    let (_, list) = api(&w, "GET", "/api/v1/exceptions?state=resolved", "").await;
    assert_eq!(list["exceptions"].as_array().unwrap().len(), 1);
    assert_eq!(open_gauge(&w).await, "ykt_exceptions_open 0");

    // issue 10.7, R-B3: a broken invariant (the record's transfer id exists) is answered 1
    // (retry), nothing of it committed; the other record of the upload books.
    let id = record_transfer_id(DEVICE, 3, "amount");
    let store = w.store.clone();
    tokio::task::spawn_blocking(move || {
        store.execute(move |tx| {
            tx.post(Transfer {
                id: id.clone(),
                from: FUNDING_ACCOUNT.into(),
                to: SUSPENSE_ACCOUNT.into(),
                amount: 1,
                kind: "injected",
                record: None,
                time: time(),
            })
        })
    })
    .await
    .unwrap()
    .unwrap();
    let broken = offline_record(w.cards[1], 0, 10_000, 100, 3);
    let fine = offline_record(w.cards[2], 0, 10_000, 100, 4);
    let codes = upload(&mut t, vec![broken, fine]).await;
    assert_eq!(codes, vec![ReturnCode::SYSTEM_FAILURE, ReturnCode::SUCCESS]);
    let (_, card) = api(
        &w,
        "GET",
        &format!("/api/v1/cards/{}", w.cards[1].get()),
        "",
    )
    .await;
    assert_eq!(card["balance"], 10_000, "nothing committed: {card}");
    let (_, list) = api(&w, "GET", "/api/v1/exceptions?state=all", "").await;
    assert_eq!(list["exceptions"].as_array().unwrap().len(), 1, "not held");

    assert_audit_clean(&w.store).await;
}

// issue 10.6, issue 10.7, R-B3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_sqlite() {
    queue(sqlite().await).await;
}

// issue 10.6, issue 10.7, R-B3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_postgres() {
    let Some(w) = postgres().await else { return };
    queue(w).await;
}
