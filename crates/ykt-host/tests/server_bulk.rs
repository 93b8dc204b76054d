//! Bulk provisioning routes (`/api/v1/bulk/*`) on SQLite and PostgreSQL: devices that can
//! sign in with the returned keys, cards with their opening balance, a range reported lost
//! reaching the bulk blacklist, and the merchant's books after a debit.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use serde_json::Value;
use support::*;
use ykt_proto::*;

async fn api(w: &World, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (s, b) = http(w.server.http_addr(), method, path, Some(TOKEN), body).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

async fn bulk(w: World) {
    // Bounds are checked before anything is written.
    for body in [
        r#"{"count":0,"merchant_no":100,"first_id":"50000001"}"#,
        r#"{"count":10001,"merchant_no":100,"first_id":"50000001"}"#,
        r#"{"count":2,"merchant_no":100,"first_id":"FFFFFFFF"}"#,
    ] {
        assert_eq!(
            api(&w, "POST", "/api/v1/bulk/devices", body).await.0,
            400,
            "{body}"
        );
    }
    let (s, v) = api(
        &w,
        "POST",
        "/api/v1/bulk/devices",
        r#"{"count":3,"merchant_no":100,"first_id":"50000001","first_terminal_no":40}"#,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let devs = v["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 3);
    assert_eq!(devs[2]["physical_id"], "50000003");
    assert_eq!(devs[2]["terminal_no"], 42);

    // R-H1, R-P5.1: a bulk device signs in with the key it was given.
    let last = &devs[2];
    let id: PhysicalId = last["physical_id"].as_str().unwrap().parse().unwrap();
    let key: [u8; 16] = hex::decode(last["master_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut t = TestTerminal::connect(w.server.terminal_addr(), id).await;
    let key = DeviceKey {
        suite: Suite::Aes128,
        key: Key(key),
    };
    let resp = t.sign_in_with(&key, rand::random()).await.unwrap();
    assert_eq!(resp.code, ReturnCode::SUCCESS);
    assert_eq!(resp.merchant_no, MERCHANT);

    // R-T2.1: numbers from the system sequence; R-H6: opening balances from funding.
    let (s, v) = api(
        &w,
        "POST",
        "/api/v1/bulk/cards",
        r#"{"count":2500,"balance":700,"expiry":"2099-12-31","display_base":9000000000}"#,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ranges = v["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "one writer: consecutive numbers");
    let (first, last) = (
        ranges[0][0].as_u64().unwrap() as u32,
        ranges[0][1].as_u64().unwrap() as u32,
    );
    assert_eq!(last - first + 1, 2500);
    let (s, c) = api(&w, "GET", &format!("/api/v1/cards/{last}"), "").await;
    assert_eq!((s, c["balance"].as_i64()), (200, Some(700)));
    assert_eq!(
        c["display_no"].as_u64(),
        Some(9_000_000_000 + u64::from(last))
    );
    let bad = r#"{"count":1,"balance":-1,"expiry":"2099-12-31","display_base":9000000000}"#;
    assert_eq!(api(&w, "POST", "/api/v1/bulk/cards", bad).await.0, 400);

    // R-H5, R-P5.2: a debit by the bulk device shows in its merchant's books.
    let card = CardNo::new(first).unwrap();
    let r = t.request(debit(card, 0, 700, 250, 1)).await.unwrap();
    assert!(
        matches!(r, Message::DebitResponse(ref d) if d.code == ReturnCode::SUCCESS),
        "{r:?}"
    );
    let (s, b) = api(&w, "GET", &format!("/api/v1/bulk/books/{MERCHANT}"), "").await;
    assert_eq!(s, 200);
    assert_eq!(b["booked_records"], 1);
    assert_eq!(b["booked_amount"], 250);
    assert_eq!(b["merchant_balance"], 250);

    // R-H4, R-F4.21: a range reported lost joins the blacklist; the bulk download has it.
    let body = format!(r#"{{"first":{first},"last":{last}}}"#);
    let (s, v) = api(&w, "POST", "/api/v1/bulk/lose", &body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["listed"], 2500);
    let r = t
        .request(Message::BlacklistBulkRequest(BlacklistBulkRequest {
            version: 0,
            segment: 0,
        }))
        .await
        .unwrap();
    let Message::BlacklistBulkResponse(r) = r else {
        panic!("{r:?}")
    };
    assert_eq!(r.version, v["blacklist_version"].as_u64().unwrap() as u32);
    let bitmap = r.bitmap.unwrap();
    assert!((first..=last).all(|c| bitmap.contains(c)));
    // Listing again skips every card: they are lost already.
    let (_, v) = api(&w, "POST", "/api/v1/bulk/lose", &body).await;
    assert_eq!(
        (v["listed"].as_u64(), v["skipped"].as_u64()),
        (Some(0), Some(2500))
    );

    // The bulk routes demand the admin token like every /api/v1 route.
    let (s, _) = http(
        w.server.http_addr(),
        "GET",
        "/api/v1/bulk/books/100",
        None,
        "",
    )
    .await;
    assert_eq!(s, 401);
    let report = w.store.read(|tx| ykt_host::ledger::audit(tx.conn)).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_routes_sqlite() {
    bulk(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_routes_postgres() {
    if let Some(w) = postgres().await {
        bulk(w).await;
    }
}
