//! Cardholders over the real HTTP listener (R-B2): import of CSV and XLSX (per-line errors,
//! idempotent), search, show, masking for a role without `CardholderIdentity`, export round
//! trip, permissions.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ykt_host::access::{Role, Roles};
use ykt_host::domain::journal::Actor;
use ykt_host::domain::operators::{self, NewOperator};
use ykt_host::import::{self, Format, XLSX_MEDIA_TYPE};

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    assert!(!head.to_lowercase().contains("chunked"), "{head}");
    Reply {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        body: resp[split + 4..].to_vec(),
    }
}

async fn import_file(addr: SocketAddr, token: &str, content_type: &str, body: &[u8]) -> Reply {
    send(
        addr,
        "POST",
        "/api/v1/cardholders/import",
        token,
        content_type,
        body,
    )
    .await
}

async fn get(addr: SocketAddr, path: &str, token: &str) -> Reply {
    send(addr, "GET", path, token, "application/json", b"").await
}

/// An operator with `role` and a chosen password, and an API token of theirs.
fn token_for(w: &World, login: &str, role: Role) -> String {
    let login = login.to_owned();
    w.store
        .execute(move |tx| {
            let actor = Actor::system("test");
            let now = time();
            let n = NewOperator {
                login: login.clone(),
                name: login.clone(),
                roles: Roles::of(&[role]),
                password_hash: "h1".into(),
            };
            let o = operators::add(tx, &actor, &n, now)?;
            operators::change_own_password(tx, &actor, o.id, "h1", "h2", now)?;
            Ok(operators::token_create(tx, &actor, &login, "t", None, now)?.1)
        })
        .unwrap()
}

const CSV: &str = "\u{feff}学工号,姓名,类别,部门,身份证号,电话\n\
                   2021001,张三,学生,计算机学院,11010519491231002X,13800138000\n\
                   2021002,张三丰,教职工,后勤处,,\n";

fn xlsx() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["number", "name", "kind"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (c, v) in ["2021003", "李四", "temporary"].iter().enumerate() {
        sheet.write_string(1, c as u16, *v).unwrap();
    }
    book.save_to_buffer().unwrap()
}

// R-B2: import (CSV and XLSX, per-line errors, idempotent), search, show, masking, export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_search_mask_export() {
    let w = sqlite().await;
    let addr = w.server.http_addr();
    let auditor = token_for(&w, "shen.ji", Role::Auditor);
    let clerk = token_for(&w, "ka.wu", Role::Clerk);

    let bad = "学工号,姓名,类别\n2021001,张三,学生\n2021009,,学生\n2021010,王五,老板\n";
    let r = import_file(addr, &clerk, "text/csv", bad.as_bytes()).await;
    assert_eq!(r.status, 400);
    let lines: Vec<u64> = r.json()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4]);
    let r = get(addr, "/api/v1/cardholders", &clerk).await;
    assert_eq!(r.json()["cardholders"], json!([]), "nothing imported");

    let r = import_file(addr, &clerk, "text/csv", CSV.as_bytes()).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["added"], 2);
    let r = import_file(addr, &clerk, "text/csv; charset=utf-8", CSV.as_bytes()).await;
    assert_eq!(r.json()["unchanged"], 2);
    assert_eq!(r.json()["changed"], false);
    let r = import_file(addr, &clerk, XLSX_MEDIA_TYPE, &xlsx()).await;
    assert_eq!(r.json()["added"], 1, "{:?}", r.json());
    let r = import_file(addr, &clerk, "application/json", b"{}").await;
    assert_eq!(r.status, 400);
    let r = import_file(addr, &auditor, "text/csv", CSV.as_bytes()).await;
    assert_eq!(r.status, 403);

    let r = get(addr, "/api/v1/cardholders?q=%E5%BC%A0", &clerk).await; // 张
    let found = r.json()["cardholders"].as_array().unwrap().clone();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0]["id_number"], "11010519491231002X");
    let r = get(addr, "/api/v1/cardholders?q=2021001", &auditor).await;
    assert_eq!(
        r.json()["cardholders"][0]["id_number"],
        "110105********002X"
    );
    let r = get(addr, "/api/v1/cardholders/2021001", &auditor).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id_number"], "110105********002X");
    assert_eq!(r.json()["cards"], json!([]));
    assert_eq!(
        get(addr, "/api/v1/cardholders/nobody", &auditor)
            .await
            .status,
        404
    );

    for (format, fmt) in [("csv", Format::Csv), ("xlsx", Format::Xlsx)] {
        let r = get(
            addr,
            &format!("/api/v1/cardholders/export?format={format}"),
            &clerk,
        )
        .await;
        assert_eq!(r.status, 200);
        let rows = import::parse(fmt, &r.body).unwrap();
        assert_eq!(rows.len(), 3);
        let again = import_file(
            addr,
            &clerk,
            if fmt == Format::Csv {
                "text/csv"
            } else {
                XLSX_MEDIA_TYPE
            },
            &r.body,
        )
        .await;
        assert_eq!(again.json()["unchanged"], 3, "{format}: {:?}", again.json());
        let r = get(
            addr,
            &format!("/api/v1/cardholders/export?format={format}"),
            &auditor,
        )
        .await;
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(!text.contains("11010519491231002X") || fmt == Format::Xlsx);
        assert!(
            import::parse(fmt, &r.body).is_err(),
            "masked numbers do not import"
        );
    }

    let add =
        json!({"number": "2021004", "name": "赵六", "kind": "staff", "phone": "010-62751234"});
    let r = send(
        addr,
        "POST",
        "/api/v1/cardholders",
        &clerk,
        "application/json",
        add.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let upd = json!({"name": "赵六", "kind": "staff", "department": "图书馆"});
    let r = send(
        addr,
        "PUT",
        "/api/v1/cardholders/2021004",
        &clerk,
        "application/json",
        upd.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.json()["department"], "图书馆");
    let r = send(
        addr,
        "POST",
        "/api/v1/cardholders/2021004/status",
        &clerk,
        "application/json",
        br#"{"status": "left"}"#,
    )
    .await;
    assert_eq!(r.json()["status"], "left");
    let r = send(
        addr,
        "POST",
        "/api/v1/cardholders",
        &clerk,
        "application/json",
        br#"{"number": "x", "name": "y", "kind": "student", "age": 3}"#,
    )
    .await;
    assert_eq!(r.status, 400, "unknown fields refused");
}
