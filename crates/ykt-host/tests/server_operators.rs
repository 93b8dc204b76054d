//! Operators over the real HTTP listener (R-B1): every route declares its access, 401
//! without credentials, 403 outside one's role, first-login password change, CSRF on
//! browser sessions, lockout, and the legacy admin token as the first administrator.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ykt_host::access::{Access, Role};

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

fn concrete(path: &str) -> String {
    path.replace("{id}", "01020304")
        .replace("{no}", "1")
        .replace("{login}", "nobody")
        .replace("{number}", "nobody")
        .replace("{action}", "freeze")
        .replace("{merchant}", "100")
}

// R-B1: every route declares its access; without credentials each non-public route is 401;
// with a role's token a route outside the role is 403 naming the missing permission, one
// inside it is neither 401 nor 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_declares_access_and_is_checked() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let table = ykt_host::server::access_table();
    assert!(table.routes().len() > 30, "{}", table.routes().len());
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((
            role,
            operator_token(addr, &format!("r.{}", role.as_str()), &[role.as_str()]).await,
        ));
    }
    for r in table.routes() {
        assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
        let path = concrete(&r.path);
        let method = r.method.as_str();
        let anon = call(addr, method, &path, &[], "{}").await;
        if r.access == Access::Public {
            assert_ne!(anon.status, 401, "{method} {path}");
            continue;
        }
        assert_eq!(anon.status, 401, "{method} {path}: {:?}", anon.body);
        assert!(anon.body["error"].is_string());
        let bad = with_token(addr, method, &path, "ykt_0000000000000000_00", "{}").await;
        assert_eq!(bad.status, 401, "{method} {path}");
        for (role, token) in &tokens {
            if r.path.ends_with("/logout") || r.path.contains("/me/tokens") && method == "DELETE" {
                continue; // would end the session or token the test relies on
            }
            let reply = with_token(addr, method, &path, token, "{}").await;
            match r.access {
                Access::Needs(p) if !role.grants(p) => {
                    assert_eq!(
                        reply.status, 403,
                        "{role:?} {method} {path}: {:?}",
                        reply.body
                    );
                    assert_eq!(reply.body["missing_permission"], p.as_str());
                }
                _ => assert!(
                    reply.status != 401 && reply.status != 403,
                    "{role:?} {method} {path}: {} {:?}",
                    reply.status,
                    reply.body
                ),
            }
        }
    }
}

// R-B1: the first administrator must change the initial password before doing anything
// else; a browser session's state-changing requests need the CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_and_csrf() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    // Server::start created `admin` with a password nobody saw: the admin token resets it.
    let r = with_token(
        addr,
        "POST",
        "/api/v1/operators/admin/password",
        TOKEN,
        r#"{"password": "initial-pass-1"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["must_change_password"], true);
    assert!(r.body.get("initial_password").is_none(), "not generated");

    let wrong = Browser::login(addr, "admin", "initial-pass-2")
        .await
        .err()
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["error"], "用户名或密码错误");
    let unknown = Browser::login(addr, "nobody", "initial-pass-1")
        .await
        .err()
        .unwrap();
    assert_eq!(
        (unknown.status, &unknown.body),
        (401, &wrong.body),
        "no probing of logins"
    );

    let b = Browser::login(addr, "admin", "initial-pass-1")
        .await
        .unwrap();
    let me = b.send(addr, "GET", "/api/v1/me", "").await;
    assert_eq!(me.body["must_change_password"], true);
    let cards = b.send(addr, "GET", "/api/v1/cards", "").await;
    assert_eq!(cards.status, 403);
    assert_eq!(cards.body["must_change_password"], true);

    let change =
        json!({"old_password": "initial-pass-1", "new_password": "canteen-2026"}).to_string();
    let no_csrf = call(
        addr,
        "POST",
        "/api/v1/me/password",
        &[("Cookie", &b.cookie)],
        &change,
    )
    .await;
    assert_eq!(no_csrf.status, 403, "{:?}", no_csrf.body);
    assert!(no_csrf.body["error"].as_str().unwrap().contains("CSRF"));
    let forged = call(
        addr,
        "POST",
        "/api/v1/me/password",
        &[("Cookie", &b.cookie), ("X-CSRF-Token", "0")],
        &change,
    )
    .await;
    assert_eq!(forged.status, 403);
    let weak = b
        .send(
            addr,
            "POST",
            "/api/v1/me/password",
            &json!({"old_password": "initial-pass-1", "new_password": "1234"}).to_string(),
        )
        .await;
    assert_eq!(weak.status, 400);
    let ok = b.send(addr, "POST", "/api/v1/me/password", &change).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(b.send(addr, "GET", "/api/v1/cards", "").await.status, 200);

    let out = b.send(addr, "POST", "/api/v1/logout", "").await;
    assert_eq!(out.status, 200);
    assert_eq!(
        b.send(addr, "GET", "/api/v1/me", "").await.status,
        401,
        "session ended"
    );

    let journal = with_token(
        addr,
        "GET",
        "/api/v1/journal?target=operator:admin",
        TOKEN,
        "",
    )
    .await;
    let ops: Vec<&str> = journal.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "operator.logout",
            "operator.password-change",
            "operator.login",
            "operator.login-failed",
            "operator.password-reset",
            "operator.add"
        ]
    );
}

// R-B1: after five failed logins in a row the operator is locked, even with the right
// password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_failed_logins() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let r = with_token(
        addr,
        "POST",
        "/api/v1/operators",
        TOKEN,
        r#"{"login": "clerk", "name": "王老师", "roles": ["clerk"], "password": "clerk-pass-1"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for _ in 0..4 {
        assert_eq!(
            Browser::login(addr, "clerk", "guess-guess")
                .await
                .err()
                .unwrap()
                .status,
            401
        );
    }
    let locked = Browser::login(addr, "clerk", "guess-guess")
        .await
        .err()
        .unwrap();
    assert_eq!(locked.status, 403);
    assert!(locked.body["locked_until"].is_string(), "{:?}", locked.body);
    let still = Browser::login(addr, "clerk", "clerk-pass-1")
        .await
        .err()
        .unwrap();
    assert_eq!(still.status, 403, "locked even with the right password");
    // The administrator lifts the lock by resetting the password.
    let r = with_token(
        addr,
        "POST",
        "/api/v1/operators/clerk/password",
        TOKEN,
        "{}",
    )
    .await;
    let fresh = r.body["initial_password"].as_str().unwrap();
    assert!(Browser::login(addr, "clerk", fresh).await.is_ok());
}

// R-B1: an auditor reads the journal and cannot change anything; a clerk cannot manage
// operators; a disabled operator's token stops working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_operators_do() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let auditor = operator_token(addr, "shen.ji", &["auditor"]).await;
    let clerk = operator_token(addr, "ka.wu", &["clerk"]).await;
    let journal = with_token(addr, "GET", "/api/v1/journal?limit=5", &auditor, "").await;
    assert_eq!(journal.status, 200);
    assert_eq!(journal.body["entries"].as_array().unwrap().len(), 5);
    let card = w.cards[0].get();
    let deposit = json!({"amount": 100, "id": "r-1"}).to_string();
    let r = with_token(
        addr,
        "POST",
        &format!("/api/v1/cards/{card}/deposit"),
        &auditor,
        &deposit,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["missing_permission"], "deposit");
    let r = with_token(
        addr,
        "POST",
        "/api/v1/operators",
        &clerk,
        r#"{"login": "x", "name": "x", "roles": ["admin"]}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["missing_permission"], "operator-write");
    let r = with_token(addr, "GET", "/api/v1/journal", &clerk, "").await;
    assert_eq!(r.status, 403);

    let r = with_token(addr, "POST", "/api/v1/operators/ka.wu/disable", TOKEN, "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        with_token(addr, "GET", "/api/v1/me", &clerk, "")
            .await
            .status,
        401
    );
    let r = with_token(addr, "GET", "/api/v1/operators/ka.wu", &auditor, "").await;
    assert_eq!(r.body["status"], "disabled");
    assert!(!r.body.to_string().contains("argon2"), "no hash shown");
}

async fn audit_clean(addr: SocketAddr) {
    let r = with_token(addr, "GET", "/api/v1/audit", TOKEN, "").await;
    assert_eq!(r.body["clean"], true, "{:?}", r.body);
}

// R-B1: a deposit at or above the threshold waits for a second operator; the requester
// cannot approve their own request; the approval books it as the requester's, in their
// shift, and both steps are journalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_person_rule_for_large_deposits() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let card = w.cards[0].get();
    let both = operator_token(addr, "zhang", &["clerk", "finance"]).await;
    let finance = operator_token(addr, "cai.wu", &["finance"]).await;
    let r = with_token(addr, "GET", "/api/v1/settings", &both, "").await;
    assert_eq!(r.body["deposit_approval_threshold"], 100_000);

    let path = format!("/api/v1/cards/{card}/deposit");
    let big = json!({"amount": 150_000, "id": "r-big", "method": "cash"}).to_string();
    let r = with_token(addr, "POST", &path, &both, &big).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["approval"]["id"].as_i64().unwrap();
    let balance = |r: &Reply| r.body["balance"].as_i64().unwrap();
    let c = with_token(addr, "GET", &format!("/api/v1/cards/{card}"), &both, "").await;
    assert_eq!(balance(&c), 10_000, "nothing booked while waiting");
    let over = json!({"amount": 16_777_000, "id": "r-over"}).to_string();
    assert_eq!(
        with_token(addr, "POST", &path, &both, &over).await.status,
        400,
        "checked when filed"
    );

    let own = with_token(
        addr,
        "POST",
        &format!("/api/v1/approvals/{id}/approve"),
        &both,
        "",
    )
    .await;
    assert_eq!(own.status, 403, "{:?}", own.body);
    assert_eq!(own.body["error"], "不能审批自己提交的申请");
    let pending = with_token(addr, "GET", "/api/v1/approvals", &finance, "").await;
    assert_eq!(pending.body.as_array().unwrap().len(), 1);

    let ok = with_token(
        addr,
        "POST",
        &format!("/api/v1/approvals/{id}/approve"),
        &finance,
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["status"], "approved");
    // R-B4: the approved deposit waits for the card's pick-up (docs/loads.md).
    let c = with_token(addr, "GET", &format!("/api/v1/cards/{card}"), &both, "").await;
    assert_eq!(balance(&c), 10_000);
    assert_eq!(c.body["waiting"], 150_000);
    let again = with_token(
        addr,
        "POST",
        &format!("/api/v1/approvals/{id}/approve"),
        &finance,
        "",
    )
    .await;
    assert_eq!(again.status, 400, "decided once");

    let j = with_token(
        addr,
        "GET",
        &format!("/api/v1/journal?target=card:{card}"),
        TOKEN,
        "",
    )
    .await;
    let e = j.body["entries"].as_array().unwrap();
    let who: Vec<(&str, &str)> = e
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap(),
                e["login"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who[..3],
        [
            ("approval.approve", "cai.wu"),
            ("card.deposit", "zhang"),
            ("approval.request", "zhang")
        ]
    );

    // Rejected: nothing booked.
    let r = with_token(
        addr,
        "POST",
        &path,
        &both,
        &json!({"amount": 120_000, "id": "r-2"}).to_string(),
    )
    .await;
    let id = r.body["approval"]["id"].as_i64().unwrap();
    let no = with_token(
        addr,
        "POST",
        &format!("/api/v1/approvals/{id}/reject"),
        &finance,
        r#"{"note": "金额有误"}"#,
    )
    .await;
    assert_eq!(no.body["status"], "rejected");
    // Only the approved deposit waits for the card.
    let c = with_token(addr, "GET", &format!("/api/v1/cards/{card}"), &both, "").await;
    assert_eq!(balance(&c), 10_000);
    assert_eq!(c.body["waiting"], 150_000);

    let shift = with_token(addr, "GET", "/api/v1/me/shift", &both, "").await;
    assert_eq!(
        shift.body["cash"],
        json!({"count": 1, "amount": 150_000}),
        "{:?}",
        shift.body
    );
    audit_clean(addr).await;
}

// R-B1: cash per operator and shift: each deposit is tallied in the clerk's open shift by
// method; closing the shift freezes it; the cash report gives the day's shifts and totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_per_operator_and_shift() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let clerk = operator_token(addr, "li.ka", &["clerk"]).await;
    let finance = operator_token(addr, "qian", &["finance"]).await;
    let (a, b) = (w.cards[0].get(), w.cards[1].get());
    for (card, amount, id, method) in [
        (a, 5_000, "c-1", "cash"),
        (b, 2_500, "c-2", "cash"),
        (a, 800, "c-3", "bank-card"),
    ] {
        let body = json!({"amount": amount, "id": id, "method": method}).to_string();
        let r = with_token(
            addr,
            "POST",
            &format!("/api/v1/cards/{card}/deposit"),
            &clerk,
            &body,
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let bad = json!({"amount": 100, "id": "c-4", "method": "cheque"}).to_string();
    assert_eq!(
        with_token(
            addr,
            "POST",
            &format!("/api/v1/cards/{a}/deposit"),
            &clerk,
            &bad
        )
        .await
        .status,
        400
    );

    let closed = with_token(addr, "POST", "/api/v1/me/shift/close", &clerk, "").await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["cash"], json!({"count": 2, "amount": 7_500}));
    assert_eq!(closed.body["bank_card"], json!({"count": 1, "amount": 800}));
    assert!(closed.body["closed_at"].is_string());
    assert_eq!(
        with_token(addr, "POST", "/api/v1/me/shift/close", &clerk, "")
            .await
            .status,
        400,
        "none open"
    );
    // A new shift opens with the next deposit.
    let body = json!({"amount": 1_000, "id": "c-5"}).to_string();
    with_token(
        addr,
        "POST",
        &format!("/api/v1/cards/{b}/deposit"),
        &clerk,
        &body,
    )
    .await;

    let report = with_token(
        addr,
        "GET",
        "/api/v1/reports/cash?operator=li.ka",
        &finance,
        "",
    )
    .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    assert_eq!(report.body["shifts"].as_array().unwrap().len(), 2);
    assert_eq!(report.body["cash"], json!({"count": 3, "amount": 8_500}));
    assert_eq!(
        with_token(
            addr,
            "GET",
            "/api/v1/reports/cash?operator=li.ka",
            &clerk,
            ""
        )
        .await
        .status,
        403,
        "the clerk sees only their own"
    );
    audit_clean(addr).await;
}

// R-B1: state changes through the API each append one journal entry naming the operator,
// the role used and the values before and after; no secret is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_journalled() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let tech = operator_token(addr, "she.bei", &["technician"]).await;
    let count = || async {
        with_token(addr, "GET", "/api/v1/journal?limit=1000", TOKEN, "")
            .await
            .body["entries"]
            .as_array()
            .unwrap()
            .len()
    };
    let n0 = count().await;
    let r = with_token(
        addr,
        "PUT",
        "/api/v1/devices/01020304/params",
        &tech,
        r#"{"max_offline_hours": 48}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = with_token(addr, "POST", "/api/v1/devices/01020304/disable", &tech, "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = with_token(
        addr,
        "POST",
        "/api/v1/devices",
        &tech,
        r#"{"id": "0A0B0C0D", "terminal_no": 9, "merchant_no": 100}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let key = r.body["provisioning"]["master_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(count().await, n0 + 3);
    let j = with_token(
        addr,
        "GET",
        "/api/v1/journal?operator=she.bei&limit=10",
        TOKEN,
        "",
    )
    .await;
    let e = &j.body["entries"];
    assert_eq!(e[0]["operation"], "device.add");
    assert_eq!(e[0]["role"], "technician");
    assert_eq!(e[1]["operation"], "device.status");
    assert_eq!(e[1]["before"]["status"], "enabled");
    assert_eq!(e[2]["operation"], "device.params");
    assert_eq!(e[2]["after"]["max_offline_hours"], 48);
    assert!(!j.body.to_string().contains(&key), "no key in the journal");
    audit_clean(addr).await;
}

/// The line `docs/admin-api.md` gives a route in its permission table.
fn doc_line(r: &ykt_host::server::RouteAccess) -> String {
    let access = match r.access {
        Access::Public => "public".to_owned(),
        Access::SignedIn => "signed in".to_owned(),
        Access::Own => "own".to_owned(),
        Access::Needs(p) => format!("`{}`", p.as_str()),
    };
    format!("| `{} {}` | {access} |", r.method, r.path)
}

// R-B1: docs/admin-api.md gives every route with the permission it declares.
#[test]
fn every_route_documented_with_its_permission() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/admin-api.md"
    ))
    .unwrap();
    let missing: Vec<String> = ykt_host::server::access_table()
        .routes()
        .iter()
        .map(doc_line)
        .filter(|l| !doc.contains(l.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "add to docs/admin-api.md:\n{}",
        missing.join("\n")
    );
}
