//! Authentication, replay protection, versioning and error responses (R-C6.3), and the
//! codes every response carries (R-C6.1, R-C6.2).
#![allow(clippy::unwrap_used)]

use ykt_proto::test_vectors::{self as tv, DEVICE, MASTER_KEY, NONCE, SESSION_KEY};
use ykt_proto::*;

fn master(suite: Suite) -> DeviceKey {
    DeviceKey {
        suite,
        key: MASTER_KEY,
    }
}

/// Signs in over the real message flow and returns (terminal, host) sessions.
fn sign_in(suite: Suite) -> (Session, Session, SignInResponse) {
    let m = master(suite);
    let mut req = Vec::new();
    seal_sign_in(DEVICE, &m, &tv::sign_in_request(suite), &mut req).unwrap();
    let device = RawFrame::parse(&req).unwrap().header.device;
    assert_eq!(device, DEVICE);
    let (_, got) = open_sign_in(&m, &req).unwrap();
    assert_eq!(got, tv::sign_in_request(suite));
    let mut resp = Vec::new();
    let host = seal_sign_in_response(
        DEVICE,
        &m,
        Some(&SESSION_KEY),
        tv::sign_in_response(),
        &mut resp,
    )
    .unwrap()
    .unwrap();
    let (r, term) = open_sign_in_response(DEVICE, &m, &NONCE, &resp).unwrap();
    (term.unwrap(), host, r)
}

fn debit() -> Message {
    Message::DebitRequest(tv::debit_request())
}

// R-C6.3, R-P5.1: sign-in under the master key delivers the session key (wrapped, with a
// KCV) and the R-P5.1 outputs; both sides then MAC under it, for both suites.
#[test]
fn sign_in_establishes_a_session() {
    for suite in [Suite::Aes128, Suite::Sm4] {
        let (mut term, mut host, resp) = sign_in(suite);
        assert_eq!(resp.merchant_no, 1001);
        assert_eq!(resp.merchant_name, "一食堂");
        assert_eq!(resp.online_check, OnlineCheck::Required);
        assert_eq!(resp.blacklist_version, 42);
        assert_eq!(resp.clock, tv::clock());
        assert_eq!(resp.params, Some(tv::params()));
        assert_ne!(resp.wrapped_key, SESSION_KEY.0);
        let mut f = Vec::new();
        let seq = term.seal(&debit(), 0, &mut f).unwrap();
        assert_eq!(host.open(&f).unwrap().message, debit());
        f.clear();
        host.seal(&Message::DebitResponse(tv::debit_response()), seq, &mut f)
            .unwrap();
        let opened = term.open(&f).unwrap();
        assert_eq!(opened.header.corr, seq);
        assert_eq!(
            opened.message.codes(),
            Some((ReturnCode::SUCCESS, InfoCode(4)))
        );
    }
}

// R-C6.3: a replayed frame and a stale (older) frame are refused with code 14.
#[test]
fn replay_and_stale_frames_are_refused() {
    let (mut term, mut host, _) = sign_in(Suite::Aes128);
    let (mut f1, mut f2) = (Vec::new(), Vec::new());
    term.seal(&debit(), 0, &mut f1).unwrap();
    term.seal(&debit(), 0, &mut f2).unwrap();
    host.open(&f2).unwrap();
    let stale = host.open(&f1).unwrap_err();
    assert_eq!(stale, ProtoError::Replay { got: 1, last: 2 });
    assert_eq!(stale.return_code(), ReturnCode::FEP_KEY_ERROR);
    assert_eq!(stale.reason(), ErrorReason::Replay);
    assert!(matches!(host.open(&f2), Err(ProtoError::Replay { .. })));
}

// R-C6.3: a forged MAC, a wrong key and a reflected frame are refused with code 14.
#[test]
fn forged_or_reflected_frames_get_code_14() {
    let (mut term, mut host, _) = sign_in(Suite::Aes128);
    let mut f = Vec::new();
    term.seal(&debit(), 0, &mut f).unwrap();
    let mut forged = f.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let e = host.open(&forged).unwrap_err();
    assert_eq!(e, ProtoError::BadMac);
    assert_eq!(e.return_code().0, 14);
    // A third party with another key.
    let mut other = Session::new(Role::Terminal, DEVICE, Suite::Aes128, &Key([1; 16]));
    let mut g = Vec::new();
    other.seal(&debit(), 0, &mut g).unwrap();
    assert_eq!(host.open(&g).unwrap_err().return_code().0, 14);
    // The terminal's own frame sent back to it.
    let e = term.open(&f).unwrap_err();
    assert_eq!(e, ProtoError::WrongDirection);
    assert_eq!(e.return_code().0, 14);
    // The genuine frame still opens: failed attempts do not advance the window.
    host.open(&f).unwrap();
}

// R-C6.3: a frame for another device on this connection is refused with code 25.
#[test]
fn frame_for_another_device_is_refused() {
    let (_, mut host, _) = sign_in(Suite::Aes128);
    let mut other = Session::new(
        Role::Terminal,
        PhysicalId([9, 9, 9, 9]),
        Suite::Aes128,
        &SESSION_KEY,
    );
    let mut f = Vec::new();
    other.seal(&debit(), 0, &mut f).unwrap();
    assert_eq!(
        host.open(&f).unwrap_err().return_code(),
        ReturnCode::POS_TERMINAL_NO_ERROR
    );
}

// R-C6.3: a frame of an unknown version gets an error response (code 15, reason 3) that a
// peer of any version can read; the connection is not dropped.
#[test]
fn unknown_version_gets_a_readable_error_response() {
    let (mut term, mut host, _) = sign_in(Suite::Aes128);
    let mut f = Vec::new();
    term.seal(&debit(), 0, &mut f).unwrap();
    f[4] = 2;
    let e = host.open(&f).unwrap_err();
    assert_eq!(e, ProtoError::UnsupportedVersion(2));
    let corr = RawFrame::parse(&f).unwrap().header.seq;
    let mut reply = Vec::new();
    host.seal_error(&e, corr, &mut reply).unwrap();
    let opened = term.open(&reply).unwrap();
    let Message::Error(err) = opened.message else {
        panic!("not an error")
    };
    assert_eq!(err.code, ReturnCode::FEP_NO_SUCH_FUNCTION);
    assert_eq!(err.reason, ErrorReason::UnsupportedVersion);
    assert_eq!((err.min_version, err.max_version), (1, 1));
    assert_eq!(opened.header.corr, corr);
    // The session goes on.
    f.clear();
    term.seal(&debit(), 0, &mut f).unwrap();
    host.open(&f).unwrap();
}

// R-C6.3: an error without a valid MAC (host restarted, session lost) is reported as such.
#[test]
fn unauthenticated_error_is_recognised() {
    let (mut term, _, _) = sign_in(Suite::Aes128);
    let mut f = Vec::new();
    let err = ProtoError::BadMac;
    seal_unauthenticated_error(DEVICE, true, 5, &err.to_response(), &mut f).unwrap();
    assert_eq!(
        term.open(&f).unwrap_err(),
        ProtoError::UnauthenticatedError {
            code: ReturnCode::FEP_KEY_ERROR,
            reason: ErrorReason::BadMac
        }
    );
    assert_eq!(peek_error(&f).unwrap().code.0, 14);
    // Host-state errors a host sends without a session.
    f.clear();
    seal_unauthenticated_error(DEVICE, true, 0, &ErrorResponse::unknown_device(), &mut f).unwrap();
    let e = term.open(&f).unwrap_err();
    assert_eq!(
        peer_error_code(&e),
        Some((ReturnCode::POS_NOT_REGISTERED, ErrorReason::UnknownDevice))
    );
    f.clear();
    seal_unauthenticated_error(DEVICE, true, 0, &ErrorResponse::not_signed_in(), &mut f).unwrap();
    assert_eq!(peek_error(&f).unwrap().code, ReturnCode::POS_NOT_SIGNED_IN);
}

// R-C6.3, R-P5.1: a sign-in under the wrong master key or suite is refused with code 14.
#[test]
fn sign_in_with_wrong_master_key_is_refused() {
    let mut req = Vec::new();
    let wrong = DeviceKey {
        suite: Suite::Aes128,
        key: Key([0xEE; 16]),
    };
    seal_sign_in(
        DEVICE,
        &wrong,
        &tv::sign_in_request(Suite::Aes128),
        &mut req,
    )
    .unwrap();
    assert_eq!(
        open_sign_in(&master(Suite::Aes128), &req)
            .unwrap_err()
            .return_code()
            .0,
        14
    );
    req.clear();
    seal_sign_in(
        DEVICE,
        &master(Suite::Aes128),
        &tv::sign_in_request(Suite::Sm4),
        &mut req,
    )
    .unwrap();
    assert_eq!(
        open_sign_in(&master(Suite::Aes128), &req).unwrap_err(),
        ProtoError::BadMac
    );
}

// R-C6.3: a replayed old sign-in response does not match the new nonce; a response whose
// key does not match its check value is refused.
#[test]
fn sign_in_response_replay_and_bad_kcv_are_refused() {
    let m = master(Suite::Aes128);
    let mut resp = Vec::new();
    seal_sign_in_response(
        DEVICE,
        &m,
        Some(&SESSION_KEY),
        tv::sign_in_response(),
        &mut resp,
    )
    .unwrap();
    let fresh_nonce = [0xFF; 8];
    assert_eq!(
        open_sign_in_response(DEVICE, &m, &fresh_nonce, &resp).unwrap_err(),
        ProtoError::NonceMismatch
    );
    // Re-MAC a response whose KCV is wrong (only the master-key holder could do this).
    let mut bad = tv::sign_in_response();
    bad.wrapped_key = ykt_proto::crypto::wrap_key(Suite::Aes128, &MASTER_KEY, &SESSION_KEY);
    bad.kcv = [0, 0, 0, 1];
    let mut f = Vec::new();
    encode_frame(
        &mut f,
        DEVICE,
        true,
        0,
        0,
        &Message::SignInResponse(bad),
        Some(&MacKey::new(Suite::Aes128, &MASTER_KEY)),
    )
    .unwrap();
    assert_eq!(
        open_sign_in_response(DEVICE, &m, &NONCE, &f).unwrap_err(),
        ProtoError::BadKeyCheck
    );
}

// R-P5.1, R-C6.1: a refused sign-in carries its return code, no key and no session.
#[test]
fn refused_sign_in_has_no_session() {
    let m = master(Suite::Sm4);
    let mut refused = tv::sign_in_response();
    refused.code = ReturnCode(23);
    refused.merchant_no = 0;
    refused.params = None;
    let mut f = Vec::new();
    assert!(
        seal_sign_in_response(DEVICE, &m, Some(&SESSION_KEY), refused, &mut f)
            .unwrap()
            .is_none()
    );
    let (resp, session) = open_sign_in_response(DEVICE, &m, &NONCE, &f).unwrap();
    assert!(session.is_none());
    assert_eq!(resp.code.text(), "POS 已停用");
    assert_eq!((resp.wrapped_key, resp.kcv), ([0; 16], [0; 4]));
}

// R-C6.3: sign-in messages are refused inside a session.
#[test]
fn sign_in_inside_a_session_is_unexpected() {
    let (mut term, mut host, _) = sign_in(Suite::Aes128);
    let mut f = Vec::new();
    term.seal(
        &Message::SignInRequest(tv::sign_in_request(Suite::Aes128)),
        0,
        &mut f,
    )
    .unwrap();
    assert_eq!(host.open(&f).unwrap_err(), ProtoError::Unexpected);
}

// R-C6.3: the decoder refuses an oversized length prefix before buffering the body, and
// stays failed (the stream cannot be resynchronised).
#[test]
fn oversized_frame_is_refused_before_buffering() {
    let mut d = FrameDecoder::new(1024);
    let mut input: &[u8] = &[0x04, 0x00, b'Y', b'K', 0, 0, 0];
    assert_eq!(d.decode(&mut input), Err(FrameError::BadLength(1026)));
    assert!(d.buffered() <= 4);
    let mut more: &[u8] = &[0; 64];
    assert!(d.decode(&mut more).is_err());
    let mut bad_magic: &[u8] = &[0x00, 0x20, b'X', b'X'];
    assert_eq!(
        FrameDecoder::new(1024).decode(&mut bad_magic),
        Err(FrameError::BadMagic(0x5858))
    );
    let mut tiny: &[u8] = &[0x00, 0x01, b'Y', b'K'];
    assert!(FrameDecoder::new(1024).decode(&mut tiny).is_err());
}

// R-C6.3: encoding refuses values the layout cannot hold instead of writing a bad frame.
#[test]
fn encoding_checks_limits() {
    let mut p = tv::params();
    p.fee_rates[3] = 101;
    let mut out = Vec::new();
    let push = Message::ParamsPushRequest(ParamsPushRequest { params: p });
    assert!(matches!(
        push.encode_body(&mut out),
        Err(EncodeError::BadValue {
            field: "fee_rate",
            ..
        })
    ));
    let records = vec![tv::record(); MAX_UPLOAD_BATCH + 1];
    let up = Message::UploadRequest(UploadRequest { records });
    let mut term = Session::new(Role::Terminal, DEVICE, Suite::Aes128, &SESSION_KEY);
    out.clear();
    assert!(matches!(
        term.seal(&up, 0, &mut out),
        Err(EncodeError::TooMany { .. })
    ));
    assert!(out.is_empty());
    let mut name = tv::sign_in_response();
    name.merchant_name = "食".repeat(22);
    assert!(Message::SignInResponse(name).encode_body(&mut out).is_err());
}

// R-C6.1, R-C6.2: every response body starts with the return code and the information code.
#[test]
fn every_response_carries_return_and_info_code() {
    let v = tv::all(Suite::Aes128).unwrap();
    let mut responses = 0;
    for (name, frame) in &v {
        let raw = RawFrame::parse(frame).unwrap();
        let msg = raw.message().unwrap();
        if raw.header.is_response() {
            responses += 1;
            let (code, info) = msg.codes().unwrap_or_else(|| panic!("{name} has no codes"));
            assert_eq!((raw.body[0], raw.body[1]), (code.0, info.0), "{name}");
        } else {
            assert!(msg.codes().is_none(), "{name}");
        }
    }
    // One response per request type plus the error response.
    assert_eq!(responses, MsgType::ALL.len());
}

// R-F4.21: the bulk bitmap moves 1,000,000 cards in at most 64 frames of 32 KiB.
#[test]
fn bulk_blacklist_of_a_million_cards_fits_64_frames() {
    let mut segments: Vec<Segment> = (0..MAX_SEGMENTS).map(|_| Segment::empty()).collect();
    for i in 0..1_000_000u32 {
        let card = (i * 16 + 1) % CardNo::MAX;
        segments[(card / CARDS_PER_SEGMENT) as usize].insert(card % CARDS_PER_SEGMENT);
    }
    let (mut term, mut host, _) = sign_in(Suite::Aes128);
    let mut total = 0;
    let mut count = 0u32;
    for (i, seg) in segments.into_iter().enumerate() {
        let msg = Message::BlacklistBulkResponse(BlacklistBulkResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            version: 1,
            segment: i as u16,
            segments: MAX_SEGMENTS,
            bitmap: Some(seg),
        });
        let mut f = Vec::new();
        host.seal(&msg, 0, &mut f).unwrap();
        total += f.len();
        let Message::BlacklistBulkResponse(r) = term.open(&f).unwrap().message else {
            panic!()
        };
        let bm = r.bitmap.unwrap();
        count += bm.0.iter().map(|b| b.count_ones()).sum::<u32>();
    }
    assert_eq!(count, 1_000_000);
    assert!(total < 64 * 33 * 1024, "{total} bytes");
}

// R-C6.3: the record layout is the documented 75 bytes and reads back unchanged.
#[test]
fn record_layout_is_75_bytes() {
    let mut out = Vec::new();
    ykt_proto::write_record(&mut out, &tv::record()).unwrap();
    assert_eq!(out.len(), RECORD_LEN);
    assert_eq!(RECORD_LEN, 75);
    assert_eq!(ykt_proto::read_record(&out).unwrap(), tv::record());
    assert!(ykt_proto::read_record(&out[..74]).is_err());
}

// R-C6.3: date-times are packed BCD; non-BCD nibbles and impossible dates are malformed.
#[test]
fn bcd_datetimes_are_validated() {
    let body = |clock: [u8; 7]| {
        let mut b = clock.to_vec();
        b.extend_from_slice(&[0; 12]);
        Message::decode(MsgType::Heartbeat, false, &b)
    };
    assert!(body([0x20, 0x26, 0x03, 0x02, 0x11, 0x45, 0x30]).is_ok());
    assert_eq!(
        body([0x20, 0x26, 0x03, 0x02, 0x11, 0x4A, 0x30]),
        Err(DecodeError::BadBcd(0x4A))
    );
    assert_eq!(
        body([0x20, 0x26, 0x02, 0x30, 0x11, 0x45, 0x30]),
        Err(DecodeError::BadDate)
    );
    assert_eq!(
        body([0x20, 0x26, 0x03, 0x02, 0x24, 0x00, 0x00]),
        Err(DecodeError::BadDate)
    );
    assert_eq!(
        body([0x20, 0x26, 0x13, 0x02, 0x11, 0x45, 0x30]),
        Err(DecodeError::BadDate)
    );
}

// R-F4.17, R-F4.19, R-F4.20, R-P5.2: the host's requests and the debit authorisation carry
// what the flows need, host → terminal and back, over an authenticated session.
#[test]
fn host_initiated_requests_and_debit_authorisation() {
    let (mut term, mut host, _) = sign_in(Suite::Sm4);
    let mut exchange = |req: Message, resp: Message| {
        let mut f = Vec::new();
        let seq = host.seal(&req, 0, &mut f).unwrap();
        let got = term.open(&f).unwrap();
        assert!(got.header.from_host() && !got.header.is_response());
        assert_eq!(got.message, req);
        f.clear();
        term.seal(&resp, got.header.seq, &mut f).unwrap();
        let back = host.open(&f).unwrap();
        assert_eq!((back.header.corr, back.message), (seq, resp));
    };
    let noon = tv::clock();
    exchange(
        Message::ClockSetRequest(ClockSetRequest { clock: noon }),
        Message::ClockSetResponse(ClockSetResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            clock: noon,
        }),
    );
    exchange(
        Message::StatusQuery(StatusQuery),
        Message::StatusReport(StatusReport {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            pending_records: 12,
            clock: noon,
            blacklist_version: 40,
            params_version: 7,
            work_mode: WorkMode::Offline,
            offline_minutes: 95,
        }),
    );
    exchange(
        Message::CollectRequest(CollectRequest {
            card_no: tv::card(),
            count: 5,
        }),
        Message::CollectResponse(CollectResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
        }),
    );
    // The debit response asks for the card's last 3 records while it is on the reader.
    let mut f = Vec::new();
    let seq = term.seal(&debit(), 0, &mut f).unwrap();
    host.open(&f).unwrap();
    f.clear();
    let mut refused = tv::debit_response();
    refused.code = ReturnCode(51);
    host.seal(&Message::DebitResponse(refused), seq, &mut f)
        .unwrap();
    let Message::DebitResponse(r) = term.open(&f).unwrap().message else {
        panic!()
    };
    assert!(r.code.is_card_status_error());
    assert_eq!(r.collect_last, 3);
    assert_eq!(r.info.screen_text().as_deref(), Some("提示：卡有记录缺失"));
}
