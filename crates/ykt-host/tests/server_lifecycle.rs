//! The lifecycle routes over the real HTTP listener (R-B6, R-B7): bad input is a clear 400,
//! the waiting period cannot be cut short by a time later than now, the settings hold their
//! bounds, and a replacement and a closure go through the API with the books clean.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use serde_json::{Value, json};
use support::*;

async fn call(w: &World, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = http(
        w.server.http_addr(),
        method,
        path,
        Some(TOKEN),
        &body.to_string(),
    )
    .await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

// R-B6, R-B7: every refusal is 400 with its reason; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_routes_refuse_bad_input() {
    let w = sqlite().await;
    let card = w.cards[0].get();
    let cases = [
        (
            "POST",
            format!("/api/v1/cards/{card}/replace"),
            json!({"display_no": 1}),
        ),
        (
            "POST",
            format!("/api/v1/cards/{card}/replace"),
            json!({"display_no": 99_999_999_999u64}),
        ),
        (
            "POST",
            format!("/api/v1/cards/{card}/replace"),
            json!({"display_no": 5, "fee": 100, "fee_method": "gold"}),
        ),
        (
            "POST",
            format!("/api/v1/cards/{card}/replace"),
            json!({"display_no": 5, "color": 1}),
        ),
        ("POST", format!("/api/v1/cards/{card}/repair"), json!({})),
        (
            "POST",
            format!("/api/v1/cards/{card}/close"),
            json!({"method": "cheque"}),
        ),
        (
            "POST",
            format!("/api/v1/cards/{card}/close"),
            json!({"method": "bank"}),
        ),
        (
            "POST",
            format!("/api/v1/cards/{card}/close"),
            json!({"method": "bank", "bank_account": "12ab"}),
        ),
        (
            "POST",
            format!("/api/v1/cards/{card}/close"),
            json!({"method": "cash", "bank_account": "62220202001122"}),
        ),
        (
            "POST",
            "/api/v1/cards/0/close".to_owned(),
            json!({"method": "cash"}),
        ),
        (
            "POST",
            "/api/v1/replacements/run".to_owned(),
            json!({"at": "tomorrow"}),
        ),
        // The waiting period is not cut short by a time later than now.
        (
            "POST",
            "/api/v1/replacements/run".to_owned(),
            json!({"at": "2099-01-01 00:00:00"}),
        ),
        (
            "POST",
            "/api/v1/closures/run".to_owned(),
            json!({"at": "2099-01-01 00:00:00"}),
        ),
        ("POST", format!("/api/v1/closures/{card}/pay"), json!({})),
        (
            "PUT",
            "/api/v1/settings".to_owned(),
            json!({"replacement_wait_days": 91}),
        ),
        (
            "PUT",
            "/api/v1/settings".to_owned(),
            json!({"replacement_wait_days": -1}),
        ),
        ("PUT", "/api/v1/settings".to_owned(), json!({})),
    ];
    for (method, path, body) in cases {
        let (status, b) = call(&w, method, &path, body.clone()).await;
        assert_eq!(status, 400, "{method} {path} {body}: {b}");
        assert!(b["error"].is_string(), "{b}");
    }
    // The card was never changed.
    let (_, c) = call(&w, "GET", &format!("/api/v1/cards/{card}"), json!({})).await;
    assert_eq!(c["status"], "normal");
    assert_audit_clean(&w.store).await;
}

// R-B6, R-B7: through the API: a lost card replaced (fee from its balance), a closure filed;
// the settings move the waiting period; the books stay clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_and_closure_over_the_api() {
    let w = sqlite().await;
    let (old, other) = (w.cards[0].get(), w.cards[1].get());
    let (s, b) = call(
        &w,
        "PUT",
        "/api/v1/settings",
        json!({"replacement_wait_days": 3}),
    )
    .await;
    assert_eq!((s, &b["replacement_wait_days"]), (200, &json!(3)), "{b}");
    assert_eq!(b["deposit_approval_threshold"], 100_000);
    let (s, _) = call(&w, "POST", &format!("/api/v1/cards/{old}/lose"), json!({})).await;
    assert_eq!(s, 200);
    let body = json!({"display_no": 3_100_000_001u64, "fee": 1000, "fee_method": "balance"});
    let (s, r) = call(&w, "POST", &format!("/api/v1/cards/{old}/replace"), body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["replacement"]["state"], "waiting");
    assert_eq!(r["new_card"]["balance"], 0);
    let (_, c) = call(&w, "GET", &format!("/api/v1/cards/{old}"), json!({})).await;
    assert_eq!(
        (c["status"].as_str(), c["balance"].as_i64()),
        (Some("cancelled"), Some(9_000))
    );
    let (s, rep) = call(
        &w,
        "GET",
        &format!("/api/v1/cards/{old}/replacement"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (requested, due) = (
        rep["requested_at"].as_str().unwrap(),
        rep["due_at"].as_str().unwrap(),
    );
    assert!(due > requested, "{rep}");
    // Nothing is due now.
    let (s, m) = call(&w, "POST", "/api/v1/replacements/run", json!({})).await;
    assert_eq!((s, m["moved"].as_array().unwrap().len()), (200, 0));
    let body = json!({"method": "bank", "bank_account": "6222020200112233"});
    let (s, cl) = call(&w, "POST", &format!("/api/v1/cards/{other}/close"), body).await;
    assert_eq!((s, cl["state"].as_str()), (200, Some("waiting")), "{cl}");
    let (s, shown) = call(
        &w,
        "GET",
        &format!("/api/v1/cards/{other}/closure"),
        json!({}),
    )
    .await;
    assert_eq!((s, shown["refundable"].as_i64()), (200, Some(10_000)));
    let (s, list) = call(&w, "GET", "/api/v1/closures", json!({})).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    assert_audit_clean(&w.store).await;
}
