//! The admin API's input rules through the real router (issue 10): money at the boundary is
//! checked (extreme values refused with 400, never wrapped, the books stay clean), a card
//! never opens with a negative balance, unknown fields and every other malformed request
//! are refused with JSON, and every downloadable terminal parameter is settable and shown.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a card's 24-bit wallet holds: every money field's upper bound.
const MAX: i64 = 0xFF_FFFF;

async fn api(w: &World, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (s, b) = http(w.server.http_addr(), method, path, Some(TOKEN), &body).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

async fn audit_clean(w: &World) {
    let (s, v) = api(w, "GET", "/api/v1/audit", &Value::Null).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["clean"], true, "{v}");
}

/// Extreme and ordinary money values: the bounds ± 1, 0, −1, i64's ends, anything.
fn money() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
        Just(i64::MAX - 1),
        Just(-1i64),
        Just(0i64),
        Just(1i64),
        Just(MAX - 1),
        Just(MAX),
        Just(MAX + 1),
        Just(1i64 << 40),
        any::<i64>(),
        0..=MAX,
    ]
}

/// The money-taking admin routes.
#[derive(Clone, Copy, Debug)]
enum Route {
    Deposit,
    IssueWithBalance,
    BulkIssue,
    Param(&'static str),
    Price,
    DeviceLimit,
    FeeRate,
}

fn route() -> impl Strategy<Value = Route> {
    prop_oneof![
        Just(Route::Deposit),
        Just(Route::IssueWithBalance),
        Just(Route::BulkIssue),
        Just(Route::Param("fixed_amount")),
        Just(Route::Param("max_balance")),
        Just(Route::Param("min_balance")),
        Just(Route::Param("single_password_threshold")),
        Just(Route::Param("daily_password_threshold")),
        Just(Route::Price),
        Just(Route::DeviceLimit),
        Just(Route::FeeRate),
    ]
}

static NEXT: AtomicU64 = AtomicU64::new(1);

fn next() -> u64 {
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Sends `v` to `route`; checks the answer is 200 exactly when `v` is in range and 400
/// otherwise (never 500, never a wrapped balance).
async fn throw(w: &World, route: Route, v: i64) -> Result<(), TestCaseError> {
    let dev = DEVICE.to_string();
    let (status, body, ok) = match route {
        Route::Deposit => {
            let card = w.cards[0].get();
            let (_, before) = api(w, "GET", &format!("/api/v1/cards/{card}"), &Value::Null).await;
            // A deposit waits for the card (docs/loads.md): what the card would hold once it
            // is picked up is its balance plus what waits.
            let before = before["balance"].as_i64().unwrap() + before["waiting"].as_i64().unwrap();
            let id = format!("prop-{}", next());
            let (s, b) = api(
                w,
                "POST",
                &format!("/api/v1/cards/{card}/deposit"),
                &json!({"amount": v, "id": id}),
            )
            .await;
            let fits = (1..=MAX).contains(&v) && before.checked_add(v).is_some_and(|t| t <= MAX);
            if s == 200 {
                let after = b["balance"].as_i64().unwrap() + b["waiting"].as_i64().unwrap();
                prop_assert_eq!(after, before + v);
            }
            (s, b, fits)
        }
        Route::IssueWithBalance => {
            let (s, b) = api(
                w,
                "POST",
                "/api/v1/cards",
                &json!({"display_no": 7_000_000_000u64 + next(), "class": 1,
                        "expiry": "2030-01-01", "balance": v}),
            )
            .await;
            if s == 200 {
                prop_assert_eq!(b["balance"].as_i64(), Some(v));
            }
            (s, b, (0..=MAX).contains(&v))
        }
        Route::BulkIssue => {
            let (s, b) = api(
                w,
                "POST",
                "/api/v1/bulk/cards",
                &json!({"count": 1, "balance": v, "expiry": "2030-01-01",
                        "display_base": 8_000_000_000u64}),
            )
            .await;
            (s, b, (0..=MAX).contains(&v))
        }
        Route::Param(field) => {
            let (s, b) = api(
                w,
                "PUT",
                &format!("/api/v1/devices/{dev}/params"),
                &json!({ field: v }),
            )
            .await;
            if s == 200 {
                prop_assert_eq!(b["device"]["params"][field].as_i64(), Some(v));
            }
            (s, b, (0..=MAX).contains(&v))
        }
        Route::Price => {
            let (s, b) = api(
                w,
                "PUT",
                &format!("/api/v1/devices/{dev}/params"),
                &json!({"price_list": [{"code": 1, "price": v}]}),
            )
            .await;
            (s, b, (1..=MAX).contains(&v))
        }
        Route::DeviceLimit => {
            let n = next();
            let id = format!("{:08X}", 0x6000_0000 + n);
            let (s, b) = api(
                w,
                "POST",
                "/api/v1/devices",
                &json!({"id": id, "terminal_no": 1000 + n, "merchant_no": MERCHANT, "max_amount": v}),
            )
            .await;
            if s == 200 {
                prop_assert_eq!(b["device"]["max_amount"].as_i64(), Some(v));
            }
            (s, b, (0..=MAX).contains(&v))
        }
        Route::FeeRate => {
            let (s, b) = api(
                w,
                "PUT",
                &format!("/api/v1/devices/{dev}/params"),
                &json!({"fee_rates": {"7": v}}),
            )
            .await;
            (s, b, (0..=100).contains(&v))
        }
    };
    prop_assert!(
        status == 200 || status == 400,
        "{:?} {}: {} {}",
        route,
        v,
        status,
        body
    );
    prop_assert_eq!(status == 200, ok, "{:?} {}: {} {}", route, v, status, body);
    if status == 400 {
        prop_assert!(body["error"].is_string(), "{}", body);
    }
    Ok(())
}

/// Throws `cases` random (route, value) pairs at a server, then requires a clean audit.
fn throw_many(world: impl std::future::Future<Output = Option<World>>, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(w) = rt.block_on(world) else { return };
    // Deposits of any size are booked at once here: the two-person rule has its own tests.
    let (st, b) = rt.block_on(api(
        &w,
        "PUT",
        "/api/v1/settings",
        &json!({"deposit_approval_threshold": 0}),
    ));
    assert_eq!(st, 200, "{b}");
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    runner
        .run(&(route(), money()), |(r, v)| rt.block_on(throw(&w, r, v)))
        .unwrap();
    rt.block_on(audit_clean(&w));
}

// issue 10.1: every money-taking admin route refuses what is out of range (i64's ends, −1,
// the 24-bit limit + 1) with 400 and takes what is in range; afterwards the books are clean.
#[test]
fn money_routes_refuse_extremes_books_stay_clean_sqlite() {
    throw_many(async { Some(sqlite().await) }, 160);
}

// issue 10.1: the same on PostgreSQL.
#[test]
fn money_routes_refuse_extremes_books_stay_clean_postgres() {
    throw_many(postgres(), 40);
}

// issue 10.1: the observed case: a deposit of i64::MAX fen is refused, the balance is
// untouched, and the audit still answers (clean) through the API.
async fn huge_deposit(w: World) {
    let card = w.cards[0].get();
    let path = format!("/api/v1/cards/{card}/deposit");
    let (s, b) = api(
        &w,
        "POST",
        &path,
        &json!({"amount": i64::MAX, "id": "huge"}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("1 to 16777215"),
        "{b}"
    );
    let (s, b) = api(
        &w,
        "POST",
        &path,
        &json!({"amount": MAX - 10_000 + 1, "id": "over"}),
    )
    .await;
    assert_eq!(s, 400, "the card holds 10000 fen: {b}");
    let (_, c) = api(&w, "GET", &format!("/api/v1/cards/{card}"), &Value::Null).await;
    assert_eq!(c["balance"], 10_000);
    audit_clean(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_deposit_refused_sqlite() {
    huge_deposit(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_deposit_refused_postgres() {
    if let Some(w) = postgres().await {
        huge_deposit(w).await;
    }
}

// issue 10.2: a negative opening balance is refused on both issuing routes; no card is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_opening_balance_refused() {
    let w = sqlite().await;
    let count = |v: Value| v["cards"].as_array().unwrap().len();
    let (_, before) = api(&w, "GET", "/api/v1/cards", &Value::Null).await;
    let (s, b) = api(
        &w,
        "POST",
        "/api/v1/cards",
        &json!({"display_no": 555, "class": 1, "expiry": "2030-01-01", "balance": -5000}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"], "balance is 0 to 16777215 fen");
    let (s, b2) = api(
        &w,
        "POST",
        "/api/v1/bulk/cards",
        &json!({"count": 1, "balance": -5000, "expiry": "2030-01-01", "display_base": 0}),
    )
    .await;
    assert_eq!((s, &b2), (400, &b), "one rule, one message");
    let (_, after) = api(&w, "GET", "/api/v1/cards", &Value::Null).await;
    assert_eq!(count(after), count(before));
    audit_clean(&w).await;
}

/// A raw HTTP/1.1 request (any headers); returns (status, body).
async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{head}\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer and close before it read a large body.
    let _ = s.write_all(body).await;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    response(&resp)
}

/// Every route that takes a body, with a valid body for it.
fn body_routes() -> Vec<(&'static str, String, Value)> {
    let dev = DEVICE.to_string();
    vec![
        (
            "POST",
            "/api/v1/merchants".into(),
            json!({"no": 901, "name": "m"}),
        ),
        (
            "POST",
            "/api/v1/devices".into(),
            json!({"id": "70000001", "terminal_no": 1, "merchant_no": MERCHANT}),
        ),
        (
            "PUT",
            format!("/api/v1/devices/{dev}/params"),
            json!({"max_daily_uses": 3}),
        ),
        (
            "PUT",
            format!("/api/v1/devices/{dev}/params"),
            json!({"price_list": [{"code": 1, "price": 100}]}),
        ),
        (
            "PUT",
            format!("/api/v1/devices/{dev}/params"),
            json!({"working_hours": [{"start": "06:00", "end": "09:00"}]}),
        ),
        (
            "POST",
            format!("/api/v1/devices/{dev}/collect"),
            json!({"card_no": 1, "count": 1}),
        ),
        (
            "POST",
            "/api/v1/cards".into(),
            json!({"display_no": 902, "class": 1, "expiry": "2030-01-01"}),
        ),
        (
            "POST",
            "/api/v1/cards/1/deposit".into(),
            json!({"amount": 1, "id": "walk"}),
        ),
        (
            "POST",
            "/api/v1/feps".into(),
            json!({"id": 903, "name": "f"}),
        ),
        (
            "POST",
            "/api/v1/bulk/devices".into(),
            json!({"count": 1, "merchant_no": MERCHANT, "first_id": "70000100"}),
        ),
        (
            "POST",
            "/api/v1/bulk/cards".into(),
            json!({"count": 1, "expiry": "2030-01-01", "display_base": 100_000_000}),
        ),
        (
            "POST",
            "/api/v1/bulk/lose".into(),
            json!({"first": 3, "last": 3}),
        ),
    ]
}

/// Adds a misspelt field at the deepest object of `v` (inside a list item when there is one).
fn misspelt(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    if let Some(inner) = o
        .values_mut()
        .find_map(|x| x.as_array_mut().and_then(|a| a.first_mut()))
    {
        inner
            .as_object_mut()
            .unwrap()
            .insert("pricee".into(), json!(1));
    } else {
        o.insert("max_dialy_uses".into(), json!(1));
    }
    v
}

// issue 10.3: every JSON body refuses an unknown field with 400 {"error"}, changing nothing;
// the same body without it is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_refused_on_every_body_route() {
    let w = sqlite().await;
    for (method, path, body) in body_routes() {
        let (s, b) = api(&w, method, &path, &misspelt(&body)).await;
        assert_eq!(s, 400, "{method} {path}: {b}");
        assert!(
            b["error"].as_str().unwrap().contains("unknown field"),
            "{method} {path}: {b}"
        );
        let (s, b) = api(&w, method, &path, &body).await;
        assert_eq!(s, 200, "{method} {path} {body}: {b}");
    }
    // The params were changed only by the valid bodies: version 1 + 3.
    let (_, d) = api(
        &w,
        "GET",
        &format!("/api/v1/devices/{DEVICE}"),
        &Value::Null,
    )
    .await;
    assert_eq!(d["params"]["version"], 4, "{d}");
    // Query strings too.
    let (s, b) = api(&w, "GET", "/api/v1/cards?limti=5", &Value::Null).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("unknown field"),
        "{b}"
    );
}

// issue 10.3: malformed JSON, a wrong type, a body too large, a missing or wrong
// Content-Type, a bad path segment or query: each is 400 with a JSON error; an unknown route
// and a wrong method under /api/v1 are 404 and 405 with a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_json() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let json_ct = "Content-Type: application/json";
    let big = format!(r#"{{"no": 1, "name": "{}"}}"#, "x".repeat(300 * 1024));
    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        (
            format!("POST /api/v1/merchants HTTP/1.1\r\n{json_ct}"),
            b"{\"no\": 1,".to_vec(),
            400,
        ),
        (
            format!("POST /api/v1/merchants HTTP/1.1\r\n{json_ct}"),
            br#"{"no": "one", "name": "m"}"#.to_vec(),
            400,
        ),
        (
            format!("POST /api/v1/merchants HTTP/1.1\r\n{json_ct}"),
            big.into_bytes(),
            400,
        ),
        (
            "POST /api/v1/merchants HTTP/1.1".into(),
            br#"{"no": 1, "name": "m"}"#.to_vec(),
            400,
        ),
        (
            "POST /api/v1/merchants HTTP/1.1\r\nContent-Type: text/plain".into(),
            br#"{"no": 1, "name": "m"}"#.to_vec(),
            400,
        ),
        ("GET /api/v1/cards/abc HTTP/1.1".into(), Vec::new(), 400),
        (
            "GET /api/v1/cards?limit=many HTTP/1.1".into(),
            Vec::new(),
            400,
        ),
        ("GET /api/v1/nothing-here HTTP/1.1".into(), Vec::new(), 404),
        ("DELETE /api/v1/merchants HTTP/1.1".into(), Vec::new(), 405),
        (
            "PUT /api/v1/cards/1/deposit HTTP/1.1".into(),
            Vec::new(),
            405,
        ),
    ];
    for (head, body, want) in cases {
        let (s, b) = raw(addr, &head, &body).await;
        assert_eq!(s, want, "{head}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap_or_else(|e| panic!("{head}: {e}: {b}"));
        assert!(v["error"].is_string(), "{head}: {b}");
    }
    // The server still serves.
    let (s, _) = api(&w, "GET", "/api/v1/merchants", &Value::Null).await;
    assert_eq!(s, 200);
}

// issue 10.4, R-F4.5, R-F4.13: every downloadable parameter set through the API comes back
// from GET /devices/{id} as it was set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_param_set_and_shown() {
    let w = sqlite().await;
    let set = json!({
        "work_mode": "offline",
        "consumption_mode": "coded",
        "fixed_amount": 350,
        "max_balance": 90_000,
        "min_balance": 100,
        "max_daily_uses": 6,
        "single_password_threshold": 2_000,
        "daily_password_threshold": 5_000,
        "wallet_no": 2,
        "max_offline_hours": 48,
        "fee_rates": {"3": 5, "255": 100},
        "allowed_classes": [0, 3, 200, 255],
        "working_hours": [{"start": "22:00:00", "end": "06:30:15"}],
        "price_list": [{"code": 4, "price": 600, "subject": 2}],
        // R-B11: the functions that need an operator card, by name.
        "operator_card": ["manual-sign-in", "clear-offline-time"],
    });
    let path = format!("/api/v1/devices/{DEVICE}");
    let (s, b) = api(&w, "PUT", &format!("{path}/params"), &set).await;
    assert_eq!(s, 200, "{b}");
    let (_, d) = api(&w, "GET", &path, &Value::Null).await;
    let mut shown = d["params"].clone();
    assert_eq!(shown["version"], 2);
    shown.as_object_mut().unwrap().remove("version");
    assert_eq!(shown, set);
}
