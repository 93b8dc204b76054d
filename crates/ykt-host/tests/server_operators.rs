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
