//! The fixed inputs behind the hex test vectors of `docs/protocol.md` §9, and the function
//! that re-derives every vector. A test checks the document against it; terminal and host
//! tests may reuse the values.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::crypto::{Key, Suite};
use crate::error::EncodeError;
use crate::frame::encode_frame;
use crate::messages::*;
use crate::session::{DeviceKey, Role, Session, seal_sign_in, seal_sign_in_response};
use crate::types::*;
use crate::{InfoCode, ProtoError, ReturnCode};

pub const DEVICE: PhysicalId = PhysicalId([0x12, 0x34, 0x56, 0x78]);
/// Master key 00 01 02 … 0F.
pub const MASTER_KEY: Key = Key([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
/// Session key A0 A1 … AF (a host draws it at random; fixed here).
pub const SESSION_KEY: Key = Key([
    0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
]);
/// The terminal's sign-in nonce (random in real use).
pub const NONCE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];

fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 2)
        .and_then(|d| d.and_hms_opt(h, m, s))
        .unwrap_or_default()
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

/// 2026-03-02 11:45:30, the clock of every vector.
pub fn clock() -> NaiveDateTime {
    at(11, 45, 30)
}

pub fn card() -> CardNo {
    CardNo::new(100_001).unwrap_or(CardNo::new(1).unwrap_or_else(|| unreachable!()))
}

/// A small but complete parameter block.
pub fn params() -> TerminalParams {
    let mut classes = ClassSet::NONE;
    classes.insert(1);
    classes.insert(2);
    let mut fee_rates = [0u8; 256];
    fee_rates[2] = 10;
    TerminalParams {
        version: 7,
        work_mode: WorkMode::Auto,
        consumption_mode: ConsumptionMode::Coded,
        fixed_amount: 0,
        price_list: vec![
            PriceItem {
                code: 1,
                price: 350,
                subject: 0,
            },
            PriceItem {
                code: 2,
                price: 1200,
                subject: 3,
            },
        ],
        allowed_classes: classes,
        fee_rates,
        max_balance: 100_000,
        min_balance: 0,
        max_daily_uses: 20,
        single_password_threshold: 5_000,
        daily_password_threshold: 20_000,
        wallet_no: 1,
        max_offline_hours: 24,
        working_hours: vec![WorkingHours {
            start: hm(6, 30),
            end: hm(21, 0),
        }],
        operator_card: AuthFunctions::NONE.with(AuthFunction::Reversal),
    }
}

pub fn sign_in_request(suite: Suite) -> SignInRequest {
    SignInRequest {
        suite,
        clock: at(11, 45, 28),
        blacklist_version: 41,
        params_version: 6,
        nonce: NONCE,
    }
}

/// The response before the key fields are filled in by `seal_sign_in_response`.
pub fn sign_in_response() -> SignInResponse {
    SignInResponse {
        code: ReturnCode::SUCCESS,
        info: InfoCode::NONE,
        nonce: NONCE,
        merchant_no: 1001,
        merchant_name: "一食堂".to_owned(),
        online_check: OnlineCheck::Required,
        blacklist_version: 42,
        clock: clock(),
        wrapped_key: [0; 16],
        kcv: [0; 4],
        params: Some(params()),
    }
}

pub fn debit_request() -> DebitRequest {
    DebitRequest {
        card_no: card(),
        card_type: CardType::Mf1,
        card_counter: 57,
        balance_before: 12_345,
        amount: 350,
        fee: 0,
        wallet_no: 1,
        item_code: 1,
        serial: 1024,
        time: clock(),
    }
}

pub fn debit_response() -> DebitResponse {
    DebitResponse {
        code: ReturnCode::SUCCESS,
        info: InfoCode(4),
        serial: 1024,
        card_no: card(),
        amount: 350,
        fee: 0,
        balance: 11_995,
        collect_last: 3,
    }
}

pub fn record() -> Record {
    Record {
        device: DEVICE,
        serial: 1023,
        kind: RecordKind::Purchase,
        status: RecordStatus::Written,
        online: false,
        card_type: CardType::Mf1,
        card_no: card(),
        card_counter: 56,
        wallet_no: 1,
        balance_before: 12_695,
        amount: 350,
        fee: 0,
        balance_after: 12_345,
        time: at(11, 40, 2),
        merchant_no: 1001,
        original_serial: None,
        item_code: 1,
        tac: 0,
    }
}

/// A CPU card's top-up of 50.00 yuan with cash (its INITIALIZE FOR LOAD answer inside).
pub fn load_request() -> LoadRequest {
    LoadRequest {
        purpose: LoadPurpose::TopUpCash,
        card_no: card(),
        card: LoadCard::Cpu(CpuLoadInit {
            online_seq: 3,
            random: [0x11, 0x22, 0x33, 0x44],
            mac1: [0xA1, 0xB2, 0xC3, 0xD4],
            terminal_id: [0x00, 0x00, 0x12, 0x34, 0x56, 0x78],
        }),
        card_counter: 57,
        balance_before: 12_345,
        amount: 5_000,
        subsidy_seq: 2,
        wallet_no: 1,
        serial: 1025,
        time: clock(),
    }
}

pub fn load_response() -> LoadResponse {
    LoadResponse {
        code: ReturnCode::SUCCESS,
        info: InfoCode::NONE,
        serial: 1025,
        card_no: card(),
        amount: 5_000,
        balance_after: 17_345,
        subsidy_seq_after: 2,
        mac2: [0x5E, 0x6F, 0x70, 0x81],
        account_balance: 17_345,
    }
}

pub fn waiting_request() -> WaitingRequest {
    WaitingRequest {
        card_no: card(),
        card_type: CardType::Mf1,
        subsidy_seq: 2,
        card_counter: 58,
        balance: 11_995,
    }
}

/// Two loads wait: 200.00 yuan in all.
pub fn waiting_response() -> WaitingResponse {
    WaitingResponse {
        code: ReturnCode::SUCCESS,
        info: InfoCode::NONE,
        card_no: card(),
        amount: 20_000,
        loads: 2,
        subsidy_seq_after: 3,
    }
}

/// The operator card of the vectors, its PIN and the request's nonce.
pub const AUTH_CARD: u32 = 900_001;
pub const AUTH_PIN: &str = "246810";
pub const AUTH_NONCE: u32 = 1;

/// A reversal authorised by operator card 900001 with PIN 246810, its block sealed under the
/// vectors' session key in `suite`.
pub fn auth_check_request_in(suite: Suite) -> AuthCheckRequest {
    let session = Session::new(Role::Terminal, DEVICE, suite, &SESSION_KEY);
    let pin = crate::crypto::Pin::new(AUTH_PIN).unwrap_or_else(|| unreachable!());
    AuthCheckRequest {
        card_no: AUTH_CARD,
        function: AuthFunction::Reversal,
        time: clock(),
        nonce: AUTH_NONCE,
        pin_block: session.seal_pin(AUTH_CARD, AUTH_NONCE, &pin),
    }
}

/// [`auth_check_request_in`] for AES-128.
pub fn auth_check_request() -> AuthCheckRequest {
    auth_check_request_in(Suite::Aes128)
}

/// Operator 3 may; five PIN attempts are left.
pub fn auth_check_response() -> AuthCheckResponse {
    AuthCheckResponse {
        code: ReturnCode::SUCCESS,
        info: InfoCode::NONE,
        card_no: AUTH_CARD,
        function: AuthFunction::Reversal,
        operator: 3,
        tries_left: 5,
    }
}

fn ok() -> (ReturnCode, InfoCode) {
    (ReturnCode::SUCCESS, InfoCode::NONE)
}

/// Every vector of the document, named as there, for one suite: the sign-in exchange, then
/// the terminal's requests with the host's responses, then the host's requests with the
/// terminal's responses, in this order (sequence numbers depend on it).
pub fn all(suite: Suite) -> Result<Vec<(&'static str, Vec<u8>)>, EncodeError> {
    let master = DeviceKey {
        suite,
        key: MASTER_KEY,
    };
    let mut v = Vec::new();
    let mut push = |name: &'static str, bytes: Vec<u8>| v.push((name, bytes));

    let mut buf = Vec::new();
    seal_sign_in(DEVICE, &master, &sign_in_request(suite), &mut buf)?;
    push("sign-in-request", std::mem::take(&mut buf));
    seal_sign_in_response(
        DEVICE,
        &master,
        Some(&SESSION_KEY),
        sign_in_response(),
        &mut buf,
    )?;
    push("sign-in-response", std::mem::take(&mut buf));

    let mut term = Session::new(Role::Terminal, DEVICE, suite, &SESSION_KEY);
    let mut host = Session::new(Role::Host, DEVICE, suite, &SESSION_KEY);
    let (code, info) = ok();

    let exchanges: Vec<(&'static str, Message, &'static str, Message)> = vec![
        (
            "heartbeat-request",
            Message::HeartbeatRequest(HeartbeatRequest {
                clock: clock(),
                blacklist_version: 42,
                params_version: 7,
                pending_records: 2,
            }),
            "heartbeat-response",
            Message::HeartbeatResponse(HeartbeatResponse {
                code,
                info,
                blacklist_version: 43,
                params_version: 7,
                clock: clock(),
            }),
        ),
        (
            "debit-request",
            Message::DebitRequest(debit_request()),
            "debit-response",
            Message::DebitResponse(debit_response()),
        ),
        (
            "upload-request",
            Message::UploadRequest(UploadRequest {
                records: vec![record()],
            }),
            "upload-response",
            Message::UploadResponse(UploadResponse {
                code,
                info,
                results: vec![RecordResult {
                    serial: 1023,
                    code: ReturnCode::SUCCESS,
                }],
            }),
        ),
        (
            "blacklist-delta-request",
            Message::BlacklistDeltaRequest(BlacklistDeltaRequest {
                since: 42,
                max_entries: 8192,
            }),
            "blacklist-delta-response",
            Message::BlacklistDeltaResponse(BlacklistDeltaResponse {
                code,
                info,
                from: 42,
                to: 43,
                more: false,
                entries: vec![
                    BlacklistEntry {
                        op: BlacklistOp::Add,
                        card_no: CardNo::new(0x0186A5).unwrap_or(card()),
                    },
                    BlacklistEntry {
                        op: BlacklistOp::Remove,
                        card_no: card(),
                    },
                ],
            }),
        ),
        (
            "blacklist-bulk-request",
            Message::BlacklistBulkRequest(BlacklistBulkRequest {
                version: 43,
                segment: 1,
            }),
            "blacklist-bulk-response",
            Message::BlacklistBulkResponse(BlacklistBulkResponse {
                code,
                info,
                version: 43,
                segment: 1,
                segments: 4,
                bitmap: None,
            }),
        ),
        (
            "params-request",
            Message::ParamsRequest(ParamsRequest { version: 6 }),
            "params-response",
            Message::ParamsResponse(ParamsResponse {
                code,
                info,
                params: Some(params()),
            }),
        ),
        (
            "load-request",
            Message::LoadRequest(load_request()),
            "load-response",
            Message::LoadResponse(load_response()),
        ),
        (
            "waiting-request",
            Message::WaitingRequest(waiting_request()),
            "waiting-response",
            Message::WaitingResponse(waiting_response()),
        ),
        (
            "auth-check-request",
            Message::AuthCheckRequest(auth_check_request_in(suite)),
            "auth-check-response",
            Message::AuthCheckResponse(auth_check_response()),
        ),
    ];
    for (qn, q, rn, r) in exchanges {
        let seq = term.seal(&q, 0, &mut buf)?;
        push(qn, std::mem::take(&mut buf));
        host.seal(&r, seq, &mut buf)?;
        push(rn, std::mem::take(&mut buf));
    }

    let host_exchanges: Vec<(&'static str, Message, &'static str, Message)> = vec![
        (
            "clock-set-request",
            Message::ClockSetRequest(ClockSetRequest {
                clock: at(12, 0, 0),
            }),
            "clock-set-response",
            Message::ClockSetResponse(ClockSetResponse {
                code,
                info,
                clock: at(12, 0, 0),
            }),
        ),
        (
            "status-query",
            Message::StatusQuery(StatusQuery),
            "status-report",
            Message::StatusReport(StatusReport {
                code,
                info,
                pending_records: 2,
                clock: at(12, 0, 1),
                blacklist_version: 43,
                params_version: 7,
                work_mode: WorkMode::Auto,
                offline_minutes: 0,
            }),
        ),
        (
            "collect-request",
            Message::CollectRequest(CollectRequest {
                card_no: card(),
                count: 3,
            }),
            "collect-response",
            Message::CollectResponse(CollectResponse { code, info }),
        ),
        (
            "params-push-request",
            Message::ParamsPushRequest(ParamsPushRequest { params: params() }),
            "params-push-response",
            Message::ParamsPushResponse(ParamsPushResponse {
                code,
                info,
                version: 7,
            }),
        ),
    ];
    for (qn, q, rn, r) in host_exchanges {
        let seq = host.seal(&q, 0, &mut buf)?;
        push(qn, std::mem::take(&mut buf));
        term.seal(&r, seq, &mut buf)?;
        push(rn, std::mem::take(&mut buf));
    }

    // The host's answer to a frame of version 2, before any session: no MAC.
    let err = ProtoError::UnsupportedVersion(2);
    encode_frame(
        &mut buf,
        DEVICE,
        true,
        0,
        0,
        &Message::Error(err.to_response()),
        None,
    )?;
    push("error-response", std::mem::take(&mut buf));
    Ok(v)
}
