//! Merchants and maintenance over the real listeners (R-B8, R-B9): type and commission
//! through the admin API, a payout above the threshold by two operators (财务), then the
//! reversal of a paid-out sale refused on the wire with 45 and held; maintenance mode (系统
//! 管理员 only) refuses online debits with 8. Both backends; a clean audit at the end.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ykt_proto::*;

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Value,
}

impl Reply {
    fn cookie(&self) -> Option<String> {
        self.head
            .lines()
            .find_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or_else(|| l.strip_prefix("Set-Cookie: "))
            })
            .map(|c| c.split(';').next().unwrap().to_owned())
    }
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked or not, the JSON is the one line that parses.
    let body = body
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Reply {
        status,
        head: head.to_owned(),
        body,
    }
}

async fn with_token(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> Reply {
    let auth = format!("Bearer {token}");
    call(addr, method, path, &[("Authorization", &auth)], body).await
}

/// A browser session: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn login(addr: SocketAddr, login: &str, password: &str) -> Result<Browser, Reply> {
        let r = call(
            addr,
            "POST",
            "/api/v1/login",
            &[],
            &json!({"login": login, "password": password}).to_string(),
        )
        .await;
        if r.status != 200 {
            return Err(r);
        }
        let cookie = r.cookie().unwrap();
        assert!(r.head.to_lowercase().contains("httponly"), "{}", r.head);
        assert!(r.head.contains("SameSite=Strict"), "{}", r.head);
        Ok(Browser {
            cookie,
            csrf: r.body["csrf_token"].as_str().unwrap().to_owned(),
        })
    }

    async fn send(&self, addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
        call(
            addr,
            method,
            path,
            &[("Cookie", &self.cookie), ("X-CSRF-Token", &self.csrf)],
            body,
        )
        .await
    }
}

/// Adds an operator with `roles`, logs in, changes the initial password, and returns an
/// API token of theirs.
async fn operator_token(addr: SocketAddr, login: &str, roles: &[&str]) -> String {
    let r = with_token(
        addr,
        "POST",
        "/api/v1/operators",
        TOKEN,
        &json!({"login": login, "name": login, "roles": roles}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let initial = r.body["initial_password"].as_str().unwrap().to_owned();
    let b = Browser::login(addr, login, &initial)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    let r = b
        .send(
            addr,
            "POST",
            "/api/v1/me/password",
            &json!({"old_password": initial, "new_password": "canteen-2026"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = b
        .send(addr, "POST", "/api/v1/me/tokens", r#"{"label": "test"}"#)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

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

async fn debit_code(t: &mut TestTerminal, m: Message) -> ReturnCode {
    let Message::DebitResponse(d) = t.request(m).await.unwrap() else {
        panic!("not a debit response")
    };
    d.code
}

async fn merchants_and_maintenance(w: World) {
    let addr = w.server.http_addr();
    let card = w.cards[0];
    let zhang = operator_token(addr, "zhang", &["finance"]).await;
    let li = operator_token(addr, "li", &["finance"]).await;
    // R-B8: type and commission; an unknown type is a 400.
    let terms = format!("/api/v1/merchants/{MERCHANT}/terms");
    let r = with_token(
        addr,
        "PUT",
        &terms,
        &zhang,
        r#"{"kind":"canteen","commission_bp":1000}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["kind"].as_str(), r.body["commission_bp"].as_u64()),
        (Some("canteen"), Some(1000))
    );
    let r = with_token(addr, "PUT", &terms, &zhang, r#"{"kind":"bakery"}"#).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let status = format!("/api/v1/merchants/{MERCHANT}/status");
    let r = with_token(addr, "PUT", &status, &zhang, r#"{"status":"abnormal"}"#).await;
    assert_eq!(r.body["status"], "abnormal", "{:?}", r.body);
    let r = with_token(addr, "PUT", &status, &zhang, r#"{"status":"normal"}"#).await;
    assert_eq!(r.body["status"], "normal", "{:?}", r.body);
    let r = with_token(addr, "PUT", &status, &zhang, r#"{"status":"gone"}"#).await;
    assert_eq!(r.status, 400);
    let r = with_token(addr, "PUT", &terms, &zhang, r#"{"colour":"red"}"#).await;
    assert_eq!(r.status, 400, "unknown fields are refused");

    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    let sale = offline_record(card, 0, 10_000, 800, 1);
    let codes = upload(&mut t, vec![sale, offline_record(card, 1, 9_200, 700, 2)]).await;
    assert_eq!(codes, vec![ReturnCode::SUCCESS; 2]);

    // Two-person rule (R-B1) above the payout threshold.
    w.store
        .execute(|tx| {
            tx.conn
                .exec(
                    "UPDATE meta SET value = 1000 WHERE name = 'payout_approval_threshold'",
                    &[],
                )
                .map(drop)
        })
        .unwrap();
    let pay = format!("/api/v1/merchants/{MERCHANT}/payout");
    let r = with_token(addr, "POST", &pay, &zhang, "").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["approval"]["id"].as_i64().unwrap();
    let approve = format!("/api/v1/approvals/{id}/approve");
    assert_eq!(
        with_token(addr, "POST", &approve, &zhang, "").await.status,
        403
    );
    let r = with_token(addr, "POST", &approve, &li, "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = with_token(
        addr,
        "GET",
        &format!("/api/v1/merchants/{MERCHANT}/payouts"),
        &li,
        "",
    )
    .await;
    let p = &list.body[0];
    // 1 500 gross, 10 % commission.
    assert_eq!(
        (
            p["gross"].as_i64(),
            p["commission"].as_i64(),
            p["net"].as_i64()
        ),
        (Some(1_500), Some(150), Some(1_350))
    );
    assert_eq!(p["paid_by"], "li");
    let r = with_token(addr, "POST", &pay, &zhang, "").await;
    assert_eq!(r.status, 400, "nothing left to pay: {:?}", r.body);

    // R-B8, code 45: the reversal of a paid-out sale, on the wire; held, answered again.
    let mut rev = offline_record(card, 2, 8_500, 800, 3);
    rev.kind = RecordKind::Reversal;
    rev.original_serial = Some(1);
    rev.balance_after = 9_300;
    for _ in 0..2 {
        let codes = upload(&mut t, vec![rev.clone()]).await;
        assert_eq!(codes, vec![ReturnCode::MERCHANT_INSUFFICIENT_BALANCE]); // code 45
    }
    let (status, q) = http(addr, "GET", "/api/v1/exceptions", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    let q: Value = serde_json::from_str(&q).unwrap();
    assert_eq!(q["open"], 1, "{q}");

    // R-B9, code 8: maintenance is the administrator's; finance may not set it.
    let on = r#"{"maintenance":"on"}"#;
    assert_eq!(
        with_token(addr, "PUT", "/api/v1/maintenance", &zhang, on)
            .await
            .status,
        403
    );
    let r = with_token(addr, "PUT", "/api/v1/maintenance", TOKEN, on).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = with_token(addr, "GET", "/api/v1/maintenance", &zhang, "").await;
    assert_eq!(r.body["maintenance"], "on");
    assert_eq!(
        debit_code(&mut t, debit(card, 2, 8_500, 100, 4)).await,
        ReturnCode::SYSTEM_MAINTENANCE
    );
    let r = with_token(
        addr,
        "PUT",
        "/api/v1/maintenance",
        TOKEN,
        r#"{"maintenance":"off"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        debit_code(&mut t, debit(card, 2, 8_500, 100, 5)).await,
        ReturnCode::SUCCESS
    );
    let j = with_token(addr, "GET", "/api/v1/journal?target=system", TOKEN, "").await;
    assert!(
        j.body.to_string().contains("system.maintenance"),
        "{:?}",
        j.body
    );
    // R-B9: day-end of the records' day through the API; a late record of that day books,
    // the frozen report stays as it was (the live one moves).
    let day = time().date().to_string();
    let path = format!("/api/v1/dayend/{day}");
    let closed = with_token(addr, "POST", &path, &zhang, "").await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["audit_clean"], true);
    assert_eq!(closed.body["report"]["total"]["debit_amount"], 1_600);
    assert_eq!(
        with_token(addr, "POST", &path, &zhang, "").await.status,
        400,
        "once"
    );
    let codes = upload(&mut t, vec![offline_record(card, 3, 8_400, 10, 6)]).await;
    assert_eq!(codes, vec![ReturnCode::SUCCESS]);
    let frozen = with_token(addr, "GET", &path, &li, "").await;
    assert_eq!(frozen.body, closed.body, "a frozen report never changes");
    let live = with_token(
        addr,
        "GET",
        &format!("/api/v1/reports/daily?date={day}"),
        TOKEN,
        "",
    )
    .await;
    // The record arrived after the close: late, booked on the day it arrived (today, R-B9).
    let today = with_token(addr, "GET", "/api/v1/reports/daily", TOKEN, "").await;
    let late = today.body["late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["debit_amount"].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(late, 10, "{:?}", today.body);
    assert_eq!(
        live.body["total"]["debit_amount"].as_i64().unwrap() + late,
        1_610,
        "{:?} {:?}",
        live.body,
        today.body
    );
    let list = with_token(addr, "GET", "/api/v1/dayend", &li, "").await;
    assert_eq!(list.body[0]["day"], day.as_str());
    // R-B9: the day-end settings and the meal periods (系统管理员), checked and journalled.
    let r = with_token(addr, "GET", "/api/v1/settings/dayend", &li, "").await;
    assert_eq!(r.body["dayend_close_minute"], 0, "{:?}", r.body);
    for bad in [
        r#"{"dayend_close_minute":1440}"#,
        r#"{"payout_approval_threshold":-1}"#,
    ] {
        let r = with_token(addr, "PUT", "/api/v1/settings/dayend", TOKEN, bad).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    let set = r#"{"dayend_close_minute":30}"#;
    assert_eq!(
        with_token(addr, "PUT", "/api/v1/settings/dayend", &zhang, set)
            .await
            .status,
        403
    );
    let r = with_token(addr, "PUT", "/api/v1/settings/dayend", TOKEN, set).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["dayend_close_minute"], 30);
    assert_eq!(r.body["payout_approval_threshold"], 1_000, "unchanged");
    let overlap = r#"{"periods":[{"name":"早餐","start_minute":360,"end_minute":600},
        {"name":"午餐","start_minute":590,"end_minute":800}]}"#;
    let r = with_token(addr, "PUT", "/api/v1/settings/meal-periods", TOKEN, overlap).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let ok = r#"{"periods":[{"name":"午餐","start_minute":600,"end_minute":800},
        {"name":"早餐","start_minute":360,"end_minute":600}]}"#;
    let r = with_token(addr, "PUT", "/api/v1/settings/meal-periods", TOKEN, ok).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = with_token(addr, "GET", "/api/v1/settings/meal-periods", &li, "").await;
    assert_eq!(r.body["periods"][0]["name"], "早餐", "{:?}", r.body);
    assert_eq!(r.body["periods"].as_array().unwrap().len(), 2);
    let j = with_token(
        addr,
        "GET",
        "/api/v1/journal?target=meal_periods",
        TOKEN,
        "",
    )
    .await;
    assert!(
        j.body.to_string().contains("meal_periods.set"),
        "{:?}",
        j.body
    );
    assert_audit_clean(&w.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_and_maintenance_sqlite() {
    merchants_and_maintenance(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_and_maintenance_postgres() {
    if let Some(w) = postgres().await {
        merchants_and_maintenance(w).await;
    }
}

// R-B9: `ykt serve`'s schedule closes the latest day whose close time has passed by itself,
// once, journalled as `system` (here checking every 50 ms instead of every minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_closes_the_day() {
    use ykt_host::domain::{dayend, journal};
    let dir = tempfile::tempdir().unwrap();
    let store = ykt_host::Store::open(ykt_host::StoreConfig::new(ykt_host::Backend::Sqlite(
        dir.path().join("ykt.db"),
    )))
    .unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = ykt_host::server::ServerConfig::new(any, any, TOKEN.into());
    config.dayend_check = std::time::Duration::from_millis(50);
    let clock = config.clock;
    let server = ykt_host::server::Server::start(config, store.clone())
        .await
        .unwrap();
    let mut closed = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = clock.now();
        let st = store.clone();
        let found = tokio::task::spawn_blocking(move || {
            st.read(move |tx| {
                let day = dayend::due_day(tx, now)?;
                dayend::get(tx, day)
            })
        })
        .await
        .unwrap()
        .unwrap();
        if found.is_some() {
            closed = found;
            break;
        }
    }
    let d = closed.expect("the schedule closed yesterday");
    assert_eq!(d.closed_by, "system");
    assert!(d.audit_clean);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let st = store.clone();
    let (days, entries) = tokio::task::spawn_blocking(move || {
        st.read(|tx| {
            let days = dayend::list(tx, 10)?.len();
            let q = journal::Filter {
                operator: None,
                target: None,
                operation: Some("dayend.close".into()),
                from: None,
                to: None,
                before_seq: None,
                limit: 100,
            };
            Ok((days, journal::list(tx, &q)?.len()))
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((days, entries), (1, 1), "once, journalled");
    server.shutdown().await;
}
