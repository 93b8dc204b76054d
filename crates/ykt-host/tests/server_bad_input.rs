//! Bad input over TCP: each is refused or dropped with the right code, and the server keeps
//! serving a well-behaved terminal throughout.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use ykt_proto::*;

/// A well-behaved terminal still gets its heartbeat answered.
async fn still_serving(t: &mut TestTerminal) {
    let hb = Message::HeartbeatRequest(HeartbeatRequest {
        clock: time(),
        blacklist_version: 0,
        params_version: 1,
        pending_records: 0,
    });
    let Message::HeartbeatResponse(h) = t.request(hb).await.unwrap() else {
        panic!()
    };
    assert_eq!(h.code, ReturnCode::SUCCESS);
}

fn error_of(r: Result<Message, ProtoError>) -> (ReturnCode, ErrorReason) {
    match r {
        Ok(Message::Error(e)) => (e.code, e.reason),
        Err(e) => peer_error_code(&e).unwrap(),
        Ok(other) => panic!("expected an error response, got {other:?}"),
    }
}

// R-H1, R-C6.3, R-P5.1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_others_are_served() {
    let w = sqlite().await;
    let addr = w.server.terminal_addr();
    let mut good = TestTerminal::connect(addr, DEVICE).await;
    assert_eq!(good.sign_in().await.code, ReturnCode::SUCCESS);

    // R-H1: an unknown physical ID gets 20 (unauthenticated error, reason 9), never a crash.
    let mut unknown = TestTerminal::connect(addr, PhysicalId([9, 9, 9, 9])).await;
    let err = unknown.sign_in_with(&master(), [1; 8]).await.unwrap_err();
    assert_eq!(
        peer_error_code(&err),
        Some((ReturnCode::POS_NOT_REGISTERED, ErrorReason::UnknownDevice))
    );

    // R-H1: a disabled device signs in to a response with code 23 and no session.
    let mut disabled = TestTerminal::connect(addr, DISABLED).await;
    let resp = disabled.sign_in_with(&master(), [2; 8]).await.unwrap();
    assert_eq!(resp.code, ReturnCode::POS_DISABLED);
    assert!(disabled.session.is_none());

    // A sign-in under the wrong master key: code 14.
    let mut forged = TestTerminal::connect(addr, DEVICE).await;
    let wrong = DeviceKey {
        suite: Suite::Aes128,
        key: Key([0x22; 16]),
    };
    let err = forged.sign_in_with(&wrong, [3; 8]).await.unwrap_err();
    assert_eq!(
        peer_error_code(&err).map(|c| c.0),
        Some(ReturnCode::FEP_KEY_ERROR)
    );

    // A replayed sign-in request (same nonce) is refused with 14, reason 5 (§4.5).
    let mut first = TestTerminal::connect(addr, DEVICE).await;
    first.sign_in_with(&master(), [4; 8]).await.unwrap();
    let mut replay = TestTerminal::connect(addr, DEVICE).await;
    let err = replay.sign_in_with(&master(), [4; 8]).await.unwrap_err();
    assert_eq!(
        peer_error_code(&err),
        Some((ReturnCode::FEP_KEY_ERROR, ErrorReason::Replay))
    );

    // Inside a session: a wrong MAC gets 14 (reason 4), a replayed frame 14 (reason 5).
    let mut t = TestTerminal::connect(addr, DEVICE).await;
    t.sign_in().await;
    let hb = Message::HeartbeatRequest(HeartbeatRequest {
        clock: time(),
        blacklist_version: 0,
        params_version: 1,
        pending_records: 0,
    });
    let mut frame = Vec::new();
    let seq = t
        .session
        .as_mut()
        .unwrap()
        .seal(&hb, 0, &mut frame)
        .unwrap();
    t.send_raw(&frame).await;
    assert!(matches!(
        t.response_to(seq).await.unwrap(),
        Message::HeartbeatResponse(_)
    ));
    t.send_raw(&frame).await; // the very same bytes again
    // The host holds the session: its error is MAC'd under it.
    assert_eq!(
        error_of(t.response_to(seq).await),
        (ReturnCode::FEP_KEY_ERROR, ErrorReason::Replay)
    );
    let mut tampered = Vec::new();
    let seq = t
        .session
        .as_mut()
        .unwrap()
        .seal(&hb, 0, &mut tampered)
        .unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    t.send_raw(&tampered).await;
    assert_eq!(
        error_of(t.response_to(seq).await),
        (ReturnCode::FEP_KEY_ERROR, ErrorReason::BadMac)
    );
    // The session survives both: the next honest frame is served.
    still_serving(&mut t).await;

    // A frame before sign-in: 21.
    let mut early = TcpStream::connect(addr).await.unwrap();
    let mut f = Vec::new();
    encode_frame(
        &mut f,
        DEVICE,
        false,
        1,
        0,
        &hb,
        Some(&MacKey::new(Suite::Aes128, &Key(KEY))),
    )
    .unwrap();
    early.write_all(&f).await.unwrap();
    let answer = read_frame(&mut early).await.unwrap();
    assert_eq!(
        peek_error(&answer).unwrap().code,
        ReturnCode::POS_NOT_SIGNED_IN
    );

    // An oversized frame (declared length beyond the server's 4096-byte limit): error 99, then closed.
    let mut big = TcpStream::connect(addr).await.unwrap();
    big.write_all(&[0x20, 0x00, b'Y', b'K']).await.unwrap();
    let answer = read_frame(&mut big).await.unwrap();
    assert_eq!(peek_error(&answer).unwrap().code, ReturnCode::OTHER_ERROR);
    assert!(closed(&mut big).await);

    // Garbage bytes: error 99, then closed.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let answer = read_frame(&mut junk).await.unwrap();
    assert_eq!(peek_error(&answer).unwrap().code, ReturnCode::OTHER_ERROR);
    assert!(closed(&mut junk).await);

    // A slow client that starts a frame and never finishes it is dropped (slow-loris).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(&f[..10]).await.unwrap();
    assert!(closed(&mut slow).await);

    still_serving(&mut good).await;
    w.server.shutdown().await;
}
