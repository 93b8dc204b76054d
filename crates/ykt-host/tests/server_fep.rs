//! Front-end processors over the running server (R-H7): a second host process serving FEP 2
//! on the same store. Its terminals get 10 until the FEP is registered, 11 until it is
//! activated, and are served as soon as the admin API activates it (no restart); a
//! deregistered FEP gets 13. FEP 1 keeps serving meanwhile (several FEPs, one core).
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use std::net::SocketAddr;

use serde_json::Value;
use support::*;
use ykt_host::server::{Server, ServerConfig};
use ykt_proto::*;

async fn sign_in_code(addr: SocketAddr) -> ReturnCode {
    let mut t = TestTerminal::connect(addr, DEVICE).await;
    t.sign_in_with(&master(), rand::random())
        .await
        .unwrap()
        .code
}

async fn fep_lifecycle(w: World) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = ServerConfig::new(any, any, TOKEN.into());
    config.fep_id = 2;
    let second = Server::start(config, w.store.clone()).await.unwrap();
    let (t2, h2) = (second.terminal_addr(), second.http_addr());
    let api = |method: &'static str, path: &'static str, body: &'static str| async move {
        let (status, text) = http(h2, method, path, Some(TOKEN), body).await;
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
        )
    };

    // R-H7: FEP 2 is not registered: 10; FEP 1 serves the same device meanwhile.
    assert_eq!(sign_in_code(t2).await, ReturnCode::FEP_NOT_REGISTERED);
    assert_eq!(
        sign_in_code(w.server.terminal_addr()).await,
        ReturnCode::SUCCESS
    );

    // Registered, not activated: 11.
    let (status, f) = api("POST", "/api/v1/feps", r#"{"id":2,"name":"二号前置机"}"#).await;
    assert_eq!((status, f["status"].as_str()), (200, Some("registered")));
    assert_eq!(sign_in_code(t2).await, ReturnCode::FEP_NOT_ACTIVATED);

    // Activated through this process's API: signed in at once, terminals served.
    let (status, f) = api("POST", "/api/v1/feps/2/activate", "").await;
    assert_eq!(status, 200);
    assert_eq!(f["status"], "activated");
    assert!(f["signed_in_at"].is_string());
    assert_eq!(f["this_process"], true);
    assert_eq!(sign_in_code(t2).await, ReturnCode::SUCCESS);
    let (_, list) = api("GET", "/api/v1/feps", "").await;
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);

    // Deregistered: 13, and it cannot be activated again.
    let (status, _) = api("POST", "/api/v1/feps/2/deregister", "").await;
    assert_eq!(status, 200);
    assert_eq!(sign_in_code(t2).await, ReturnCode::FEP_DEREGISTERED);
    let (status, f) = api("POST", "/api/v1/feps/2/activate", "").await;
    assert_eq!(status, 400, "{f}");
    assert_eq!(
        sign_in_code(w.server.terminal_addr()).await,
        ReturnCode::SUCCESS
    );

    // Unknown actions and FEPs are invalid requests, not crashes.
    assert_eq!(api("POST", "/api/v1/feps/2/explode", "").await.0, 400);
    assert_eq!(api("POST", "/api/v1/feps/99/activate", "").await.0, 400);
    second.shutdown().await;
}

#[tokio::test]
async fn fep_lifecycle_sqlite() {
    fep_lifecycle(sqlite().await).await;
}

#[tokio::test]
async fn fep_lifecycle_postgres() {
    let Some(w) = postgres().await else { return };
    fep_lifecycle(w).await;
}
