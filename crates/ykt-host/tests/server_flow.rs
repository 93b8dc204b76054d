//! The FEP end to end over TCP on SQLite and PostgreSQL: sign-in, host-initiated requests,
//! online debits, uploads repeated, blacklist changes reaching the terminal, parameter
//! pushes, the admin API, and a clean audit at the end.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use ykt_proto::*;

async fn flow(w: World) {
    let addr = w.server.terminal_addr();
    let card = w.cards[0];
    let mut t = TestTerminal::connect(addr, DEVICE).await;

    // R-P5.1: sign-in answers with merchant, parameters, blacklist version and clock.
    let resp = t.sign_in().await;
    assert_eq!(resp.code, ReturnCode::SUCCESS);
    assert_eq!(resp.merchant_no, MERCHANT);
    assert_eq!(resp.merchant_name, "第一食堂");
    assert!(resp.params.is_some());
    // R-F4.19: the host sets the terminal's clock at connect; R-F4.20: it asks for status.
    let first = t.next_host_request().await;
    assert!(matches!(first, Message::ClockSetRequest(_)), "{first:?}");
    let second = t.next_host_request().await;
    assert!(matches!(second, Message::StatusQuery(_)), "{second:?}");

    // R-P5.2: an online debit is authorised and booked; R-C6.3 every frame is MAC'd.
    let Message::DebitResponse(d) = t.request(debit(card, 0, 10_000, 350, 1)).await.unwrap() else {
        panic!("not a debit response")
    };
    assert_eq!(d.code, ReturnCode::SUCCESS);
    assert_eq!(d.balance, 9_650);
    assert_eq!(d.collect_last, 0);
    // The same serial again (a retry, R-H2) is acknowledged, not booked twice.
    let Message::DebitResponse(d) = t.request(debit(card, 0, 10_000, 350, 1)).await.unwrap() else {
        panic!()
    };
    assert_eq!((d.code, d.balance), (ReturnCode::SUCCESS, 9_650));

    // R-F4.17: a gap in the card's counter asks the terminal to collect the card's records.
    let Message::DebitResponse(d) = t.request(debit(card, 5, 9_650, 100, 2)).await.unwrap() else {
        panic!()
    };
    assert_eq!(d.code, ReturnCode::SUCCESS);
    assert!(
        d.collect_last > 0,
        "a counter gap asks for collection: {d:?}"
    );
    assert_eq!(d.info, InfoCode::RECORDS_MISSING);

    // R-P5.9: offline records uploaded twice are booked once; both answers are 0.
    let batch = UploadRequest {
        records: vec![
            offline_record(w.cards[1], 0, 10_000, 500, 3),
            offline_record(w.cards[1], 1, 9_500, 200, 4),
        ],
    };
    for _ in 0..2 {
        let Message::UploadResponse(u) = t
            .request(Message::UploadRequest(batch.clone()))
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            u.results.iter().map(|r| r.code).collect::<Vec<_>>(),
            vec![ReturnCode::SUCCESS; 2]
        );
    }
    // A record claiming another terminal's physical ID is refused with 25.
    let mut foreign = offline_record(w.cards[1], 2, 9_300, 1, 5);
    foreign.device = DISABLED;
    let Message::UploadResponse(u) = t
        .request(Message::UploadRequest(UploadRequest {
            records: vec![foreign],
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(u.results[0].code, ReturnCode::POS_TERMINAL_NO_ERROR);

    // The admin API refuses a request without the token.
    let http = w.server.http_addr();
    assert_eq!(
        support::http(http, "GET", "/api/v1/devices", None, "")
            .await
            .0,
        401
    );
    assert_eq!(
        support::http(http, "GET", "/api/v1/devices", Some("wrong"), "")
            .await
            .0,
        401
    );
    assert_eq!(
        support::http(http, "GET", "/healthz", None, "").await.0,
        200
    );

    // R-H4 / R-F4.21: a loss report changes the blacklist; the terminal sees the new
    // version in its heartbeat and fetches the change, and the bulk segment holds it.
    let lost = w.cards[2];
    let (status, body) = support::http(
        http,
        "POST",
        &format!("/api/v1/cards/{}/lose", lost.get()),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hb = Message::HeartbeatRequest(HeartbeatRequest {
        clock: time(),
        blacklist_version: 0,
        params_version: 1,
        pending_records: 0,
    });
    let Message::HeartbeatResponse(h) = t.request(hb).await.unwrap() else {
        panic!()
    };
    assert_eq!(h.blacklist_version, 1);
    let delta = BlacklistDeltaRequest {
        since: 0,
        max_entries: 0,
    };
    let Message::BlacklistDeltaResponse(d) = t
        .request(Message::BlacklistDeltaRequest(delta))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((d.from, d.to, d.more), (0, 1, false));
    assert_eq!(
        d.entries,
        vec![BlacklistEntry {
            op: BlacklistOp::Add,
            card_no: lost
        }]
    );
    let bulk = BlacklistBulkRequest {
        version: 0,
        segment: 0,
    };
    let Message::BlacklistBulkResponse(b) = t
        .request(Message::BlacklistBulkRequest(bulk))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((b.version, b.segments), (1, 1));
    let seg = b.bitmap.unwrap();
    assert!(seg.contains(lost.get()) && !seg.contains(card.get()));
    // A lost card is refused online with 51 (R-P5.2: the terminal locks it).
    let Message::DebitResponse(d) = t.request(debit(lost, 0, 10_000, 100, 6)).await.unwrap() else {
        panic!()
    };
    assert_eq!(d.code, ReturnCode::CARD_LOST);

    // An operator's parameter change is pushed to the connected terminal.
    let (status, body) = support::http(
        http,
        "PUT",
        &format!("/api/v1/devices/{DEVICE}/params"),
        Some(TOKEN),
        r#"{"max_daily_uses": 5, "work_mode": "full-online"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""pushed":true"#), "{body}");
    let push = t.next_host_request().await;
    let Message::ParamsPushRequest(p) = push else {
        panic!("{push:?}")
    };
    assert_eq!((p.params.max_daily_uses, p.params.version), (5, 2));
    let Message::ParamsResponse(p) = t
        .request(Message::ParamsRequest(ParamsRequest { version: 1 }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.params.unwrap().work_mode, WorkMode::FullOnline);

    // Metrics count requests by type and code.
    let (status, metrics) = support::http(http, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("ykt_requests_total"), "{metrics}");

    drop(t);
    w.server.shutdown().await;
    assert_audit_clean(&w.store).await;
}

// R-P5.1, R-P5.2, R-P5.9, R-F4.17, R-F4.19, R-F4.20, R-F4.21, R-C6.3, R-H1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_sqlite() {
    flow(sqlite().await).await;
}

// R-P5.1, R-P5.2, R-P5.9, R-F4.17, R-F4.19, R-F4.20, R-F4.21, R-C6.3, R-H1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_postgres() {
    let Some(w) = postgres().await else { return };
    flow(w).await;
}
