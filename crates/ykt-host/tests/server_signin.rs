//! Sign-in over TCP: forged sign-ins are refused on the connection with the spec's codes and
//! never cost the store's writer a job; a genuine sign-in still works. Both backends.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use ykt_host::HostError;
use ykt_host::domain::signin;
use ykt_proto::*;

/// Forged sign-ins of each kind sent in a flood.
const FLOOD: usize = 40;

async fn refused_with(t: &mut TestTerminal, key: &DeviceKey, nonce: [u8; 8]) -> (u8, ErrorReason) {
    let err = t.sign_in_with(key, nonce).await.unwrap_err();
    let (code, reason) = peer_error_code(&err).unwrap();
    (code.0, reason)
}

// issue 10.8, R-P5.1, R-H1, protocol §4.5
async fn forged_sign_ins_never_reach_the_writer(w: World) {
    let addr = w.server.terminal_addr();
    // A genuine sign-in whose nonce the replays below reuse.
    let mut first = TestTerminal::connect(addr, DEVICE).await;
    assert_eq!(
        first.sign_in_with(&master(), [7; 8]).await.unwrap().code,
        ReturnCode::SUCCESS
    );
    drop(first); // unanswered host requests: no status report is written

    let before = w.store.writer_stats();
    let wrong = DeviceKey {
        suite: Suite::Aes128,
        key: Key([0x22; 16]),
    };
    let mut unknown = TestTerminal::connect(addr, PhysicalId([9, 9, 9, 9])).await;
    let mut forged = TestTerminal::connect(addr, DEVICE).await;
    let mut replay = TestTerminal::connect(addr, DEVICE).await;
    for i in 0..FLOOD {
        let nonce = [i as u8; 8];
        assert_eq!(
            refused_with(&mut unknown, &master(), nonce).await,
            (ReturnCode::POS_NOT_REGISTERED.0, ErrorReason::UnknownDevice)
        );
        assert_eq!(
            refused_with(&mut forged, &wrong, nonce).await,
            (ReturnCode::FEP_KEY_ERROR.0, ErrorReason::BadMac)
        );
        assert_eq!(
            refused_with(&mut replay, &master(), [7; 8]).await,
            (ReturnCode::FEP_KEY_ERROR.0, ErrorReason::Replay)
        );
    }
    // Jobs and batches: a batch taken before `before` may still add its busy time.
    let after = w.store.writer_stats();
    assert_eq!(
        (after.jobs, after.batches),
        (before.jobs, before.batches),
        "forged sign-ins cost the writer jobs"
    );

    // A genuine sign-in still works, costs the writer one job, and its session serves.
    let mut t = TestTerminal::connect(addr, DEVICE).await;
    assert_eq!(t.sign_in().await.code, ReturnCode::SUCCESS);
    assert_eq!(w.store.writer_stats().jobs, before.jobs + 1);
    let hb = Message::HeartbeatRequest(HeartbeatRequest {
        clock: time(),
        blacklist_version: 0,
        params_version: 1,
        pending_records: 0,
    });
    assert!(matches!(
        t.request(hb).await.unwrap(),
        Message::HeartbeatResponse(h) if h.code == ReturnCode::SUCCESS
    ));
    w.server.shutdown().await;
}

/// The writer refuses a sign-in verified under a key that was replaced in the meantime.
// issue 10.8, R-P5.1
async fn key_replaced_after_verification_is_refused(w: World) {
    let store = w.store.clone();
    tokio::task::spawn_blocking(move || {
        store
            .execute(|tx| signin::key_still_current(tx, DEVICE, &KEY))
            .unwrap();
        store
            .execute(|tx| ykt_host::domain::admin::set_device_key(tx, DEVICE, [0x33; 16]))
            .unwrap();
        assert!(matches!(
            store.execute(|tx| signin::key_still_current(tx, DEVICE, &KEY)),
            Err(HostError::Refused(ReturnCode::FEP_KEY_ERROR))
        ));
    })
    .await
    .unwrap();
    w.server.shutdown().await;
}

/// Each scenario as one test per backend (PostgreSQL skipped with a line when unreachable).
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() { super::$scenario(super::sqlite().await).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                if let Some(w) = super::postgres().await { super::$scenario(w).await; }
            })*
        }
    };
}

on_both_backends!(
    // issue 10.8, R-P5.1, R-H1, protocol §4.5
    forged_sign_ins_never_reach_the_writer,
    // issue 10.8, R-P5.1
    key_replaced_after_verification_is_refused,
);
