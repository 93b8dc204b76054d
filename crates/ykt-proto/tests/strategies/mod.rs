//! Proptest strategies for every message (shared by the property tests).
#![allow(clippy::unwrap_used, dead_code)]

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use proptest::collection::vec;
use proptest::prelude::*;
use ykt_proto::*;

pub fn datetime() -> impl Strategy<Value = NaiveDateTime> {
    (
        1990i32..2100,
        1u32..=12,
        1u32..=31,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            let date = NaiveDate::from_ymd_opt(y, mo, d)
                .or_else(|| NaiveDate::from_ymd_opt(y, mo, 28))
                .unwrap();
            date.and_hms_opt(h, mi, s).unwrap()
        })
}

pub fn time() -> impl Strategy<Value = NaiveTime> {
    (0u32..24, 0u32..60, 0u32..60).prop_map(|(h, m, s)| NaiveTime::from_hms_opt(h, m, s).unwrap())
}

pub fn card_no() -> impl Strategy<Value = CardNo> {
    (1u32..=CardNo::MAX).prop_map(|n| CardNo::new(n).unwrap())
}

pub fn codes() -> impl Strategy<Value = (ReturnCode, InfoCode)> {
    (any::<u8>(), any::<u8>()).prop_map(|(r, i)| (ReturnCode(r), InfoCode(i)))
}

fn money() -> impl Strategy<Value = Fen> {
    prop_oneof![0i64..1_000_000, any::<i64>()]
}

fn limit() -> impl Strategy<Value = Fen> {
    0i64..=i64::MAX
}

pub fn work_mode() -> impl Strategy<Value = WorkMode> {
    prop_oneof![
        Just(WorkMode::FullOnline),
        Just(WorkMode::Auto),
        Just(WorkMode::Offline)
    ]
}

fn card_type() -> impl Strategy<Value = CardType> {
    prop_oneof![Just(CardType::Mf1), Just(CardType::Cpu)]
}

pub fn params() -> impl Strategy<Value = TerminalParams> {
    let modes = (
        any::<u32>(),
        work_mode(),
        prop_oneof![
            Just(ConsumptionMode::UnitPrice),
            Just(ConsumptionMode::FixedAmount),
            Just(ConsumptionMode::Coded)
        ],
        limit(),
        vec((any::<u16>(), limit(), any::<u16>()), 0..8),
        any::<[u8; 32]>(),
        vec(0u8..=100, 256),
    );
    let limits = (
        limit(),
        limit(),
        any::<u16>(),
        limit(),
        limit(),
        any::<u8>(),
        any::<u16>(),
        vec((time(), time()), 0..4),
    );
    (modes, limits, 0u8..=0x1F).prop_map(
        |((version, wm, cm, fixed, items, classes, rates), l, op)| {
            TerminalParams {
                version,
                work_mode: wm,
                consumption_mode: cm,
                fixed_amount: fixed,
                price_list: items
                    .into_iter()
                    .map(|(code, price, subject)| PriceItem {
                        code,
                        price,
                        subject,
                    })
                    .collect(),
                allowed_classes: ClassSet(classes),
                fee_rates: rates.try_into().unwrap(),
                max_balance: l.0,
                min_balance: l.1,
                max_daily_uses: l.2,
                single_password_threshold: l.3,
                daily_password_threshold: l.4,
                wallet_no: l.5,
                max_offline_hours: l.6,
                working_hours: l
                    .7
                    .into_iter()
                    .map(|(start, end)| WorkingHours { start, end })
                    .collect(),
                // R-B11: any set of operator-card functions.
                operator_card: ykt_proto::AuthFunctions::from_bits(op).unwrap(),
            }
        },
    )
}

pub fn record() -> impl Strategy<Value = Record> {
    let kinds = prop_oneof![
        Just(RecordKind::Purchase),
        Just(RecordKind::Cancellation),
        Just(RecordKind::Reversal),
        Just(RecordKind::BlackCard),
        Just(RecordKind::Collected),
        Just(RecordKind::TopUp),
        Just(RecordKind::Subsidy)
    ];
    let statuses = prop_oneof![
        Just(RecordStatus::Initiated),
        Just(RecordStatus::NotWritten),
        Just(RecordStatus::Success),
        Just(RecordStatus::Debited),
        Just(RecordStatus::Written),
        Just(RecordStatus::CardPulled),
        Just(RecordStatus::Failed)
    ];
    (
        (
            any::<[u8; 4]>(),
            any::<u32>(),
            kinds,
            statuses,
            any::<bool>(),
            card_type(),
            card_no(),
            any::<u32>(),
        ),
        (any::<u8>(), money(), money(), money(), money(), datetime()),
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            any::<u16>(),
            any::<u32>(),
        ),
    )
        .prop_map(|(a, b, c)| Record {
            device: PhysicalId(a.0),
            serial: a.1,
            kind: a.2,
            status: a.3,
            online: a.4,
            card_type: a.5,
            card_no: a.6,
            card_counter: a.7,
            wallet_no: b.0,
            balance_before: b.1,
            amount: b.2,
            fee: b.3,
            balance_after: b.4,
            time: b.5,
            merchant_no: c.0,
            original_serial: c.1,
            item_code: c.2,
            tac: c.3,
        })
}

fn segment() -> impl Strategy<Value = Option<Segment>> {
    proptest::option::of(vec(0u32..CARDS_PER_SEGMENT, 0..32).prop_map(|bits| {
        let mut s = Segment::empty();
        bits.into_iter().for_each(|b| s.insert(b));
        s
    }))
}

fn requests() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            prop_oneof![Just(Suite::Aes128), Just(Suite::Sm4)],
            datetime(),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 8]>()
        )
            .prop_map(|(suite, clock, b, p, nonce)| Message::SignInRequest(
                SignInRequest {
                    suite,
                    clock,
                    blacklist_version: b,
                    params_version: p,
                    nonce
                }
            )),
        (datetime(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(clock, b, p, n)| {
            Message::HeartbeatRequest(HeartbeatRequest {
                clock,
                blacklist_version: b,
                params_version: p,
                pending_records: n,
            })
        }),
        (
            (
                card_no(),
                card_type(),
                any::<u32>(),
                money(),
                money(),
                money()
            ),
            (any::<u8>(), any::<u16>(), any::<u32>(), datetime())
        )
            .prop_map(|(a, b)| Message::DebitRequest(DebitRequest {
                card_no: a.0,
                card_type: a.1,
                card_counter: a.2,
                balance_before: a.3,
                amount: a.4,
                fee: a.5,
                wallet_no: b.0,
                item_code: b.1,
                serial: b.2,
                time: b.3,
            })),
        vec(record(), 0..=MAX_UPLOAD_BATCH)
            .prop_map(|records| Message::UploadRequest(UploadRequest { records })),
        (any::<u32>(), any::<u16>()).prop_map(|(since, max_entries)| {
            Message::BlacklistDeltaRequest(BlacklistDeltaRequest { since, max_entries })
        }),
        (any::<u32>(), any::<u16>()).prop_map(|(version, segment)| Message::BlacklistBulkRequest(
            BlacklistBulkRequest { version, segment }
        )),
        any::<u32>().prop_map(|version| Message::ParamsRequest(ParamsRequest { version })),
        datetime().prop_map(|clock| Message::ClockSetRequest(ClockSetRequest { clock })),
        Just(Message::StatusQuery(StatusQuery)),
        (card_no(), any::<u8>()).prop_map(|(card_no, count)| Message::CollectRequest(
            CollectRequest { card_no, count }
        )),
        params().prop_map(|params| Message::ParamsPushRequest(ParamsPushRequest { params })),
    ]
}

fn responses() -> impl Strategy<Value = Message> {
    let name =
        "[a-z一二三食堂 ]{0,21}".prop_filter("fits", |s: &String| s.len() <= MAX_MERCHANT_NAME);
    prop_oneof![
        (
            codes(),
            any::<[u8; 8]>(),
            any::<u32>(),
            name,
            any::<bool>(),
            any::<u32>(),
            datetime(),
            (
                any::<[u8; 16]>(),
                any::<[u8; 4]>(),
                proptest::option::of(params())
            )
        )
            .prop_map(
                |((code, info), nonce, m, name, oc, b, clock, (wk, kcv, params))| {
                    Message::SignInResponse(SignInResponse {
                        code,
                        info,
                        nonce,
                        merchant_no: m,
                        merchant_name: name,
                        online_check: if oc {
                            OnlineCheck::Required
                        } else {
                            OnlineCheck::NotRequired
                        },
                        blacklist_version: b,
                        clock,
                        wrapped_key: wk,
                        kcv,
                        params,
                    })
                }
            ),
        (codes(), any::<u32>(), any::<u32>(), datetime()).prop_map(
            |((code, info), b, p, clock)| {
                Message::HeartbeatResponse(HeartbeatResponse {
                    code,
                    info,
                    blacklist_version: b,
                    params_version: p,
                    clock,
                })
            }
        ),
        (
            codes(),
            any::<u32>(),
            card_no(),
            money(),
            money(),
            money(),
            any::<u8>()
        )
            .prop_map(|((code, info), serial, card_no, amount, fee, balance, n)| {
                Message::DebitResponse(DebitResponse {
                    code,
                    info,
                    serial,
                    card_no,
                    amount,
                    fee,
                    balance,
                    collect_last: n,
                })
            }),
        (
            codes(),
            vec((any::<u32>(), any::<u8>()), 0..=MAX_UPLOAD_BATCH)
        )
            .prop_map(|((code, info), rs)| {
                Message::UploadResponse(UploadResponse {
                    code,
                    info,
                    results: rs
                        .into_iter()
                        .map(|(serial, c)| RecordResult {
                            serial,
                            code: ReturnCode(c),
                        })
                        .collect(),
                })
            }),
        (
            codes(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            vec((any::<bool>(), card_no()), 0..64)
        )
            .prop_map(|((code, info), from, to, more, es)| {
                Message::BlacklistDeltaResponse(BlacklistDeltaResponse {
                    code,
                    info,
                    from,
                    to,
                    more,
                    entries: es
                        .into_iter()
                        .map(|(add, card_no)| BlacklistEntry {
                            op: if add {
                                BlacklistOp::Add
                            } else {
                                BlacklistOp::Remove
                            },
                            card_no,
                        })
                        .collect(),
                })
            }),
        (
            codes(),
            any::<u32>(),
            1u16..=MAX_SEGMENTS,
            any::<u16>(),
            segment()
        )
            .prop_map(|((code, info), version, segments, seg, bitmap)| {
                Message::BlacklistBulkResponse(BlacklistBulkResponse {
                    code,
                    info,
                    version,
                    segment: seg % segments,
                    segments,
                    bitmap,
                })
            }),
        (codes(), proptest::option::of(params())).prop_map(|((code, info), params)| {
            Message::ParamsResponse(ParamsResponse { code, info, params })
        }),
        (codes(), datetime()).prop_map(|((code, info), clock)| Message::ClockSetResponse(
            ClockSetResponse { code, info, clock }
        )),
        (
            codes(),
            any::<u32>(),
            datetime(),
            any::<u32>(),
            any::<u32>(),
            work_mode(),
            any::<u32>()
        )
            .prop_map(|((code, info), n, clock, b, p, wm, off)| {
                Message::StatusReport(StatusReport {
                    code,
                    info,
                    pending_records: n,
                    clock,
                    blacklist_version: b,
                    params_version: p,
                    work_mode: wm,
                    offline_minutes: off,
                })
            }),
        codes().prop_map(|(code, info)| Message::CollectResponse(CollectResponse { code, info })),
        (codes(), any::<u32>()).prop_map(|((code, info), version)| Message::ParamsPushResponse(
            ParamsPushResponse {
                code,
                info,
                version
            }
        )),
        (codes(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(
            |((code, info), reason, lo, hi)| {
                Message::Error(ErrorResponse {
                    code,
                    info,
                    reason: ErrorReason::from_wire(reason),
                    min_version: lo,
                    max_version: hi,
                })
            }
        ),
    ]
}

fn load_card() -> impl Strategy<Value = LoadCard> {
    prop_oneof![
        Just(LoadCard::Mf1),
        (
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 6]>()
        )
            .prop_map(|(online_seq, random, mac1, terminal_id)| LoadCard::Cpu(
                CpuLoadInit {
                    online_seq,
                    random,
                    mac1,
                    terminal_id
                }
            ))
    ]
}

/// The load messages (0x08, 0x09, `docs/loads.md`).
fn loads() -> impl Strategy<Value = Message> {
    let purpose = prop_oneof![
        Just(LoadPurpose::TopUpCash),
        Just(LoadPurpose::TopUpBank),
        Just(LoadPurpose::Pickup)
    ];
    prop_oneof![
        (
            (
                purpose,
                card_no(),
                load_card(),
                any::<u32>(),
                money(),
                money()
            ),
            (any::<u16>(), any::<u8>(), any::<u32>(), datetime())
        )
            .prop_map(|(a, b)| Message::LoadRequest(LoadRequest {
                purpose: a.0,
                card_no: a.1,
                card: a.2,
                card_counter: a.3,
                balance_before: a.4,
                amount: a.5,
                subsidy_seq: b.0,
                wallet_no: b.1,
                serial: b.2,
                time: b.3,
            })),
        (
            (codes(), any::<u32>(), card_no(), money(), money()),
            (any::<u16>(), any::<[u8; 4]>(), money())
        )
            .prop_map(|(a, b)| Message::LoadResponse(LoadResponse {
                code: a.0.0,
                info: a.0.1,
                serial: a.1,
                card_no: a.2,
                amount: a.3,
                balance_after: a.4,
                subsidy_seq_after: b.0,
                mac2: b.1,
                account_balance: b.2,
            })),
        (card_no(), card_type(), any::<u16>(), any::<u32>(), money()).prop_map(
            |(card_no, card_type, subsidy_seq, card_counter, balance)| {
                Message::WaitingRequest(WaitingRequest {
                    card_no,
                    card_type,
                    subsidy_seq,
                    card_counter,
                    balance,
                })
            }
        ),
        (codes(), card_no(), money(), any::<u16>(), any::<u16>()).prop_map(
            |((code, info), card_no, amount, loads, subsidy_seq_after)| {
                Message::WaitingResponse(WaitingResponse {
                    code,
                    info,
                    card_no,
                    amount,
                    loads,
                    subsidy_seq_after,
                })
            }
        ),
    ]
}

fn auth_function() -> impl Strategy<Value = AuthFunction> {
    proptest::sample::select(AuthFunction::ALL.to_vec())
}

/// The operator authorisation check (0x0A, R-B11).
fn auth_checks() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            1u32..,
            auth_function(),
            datetime(),
            any::<u32>(),
            any::<[u8; 16]>()
        )
            .prop_map(|(card_no, function, time, nonce, pin_block)| {
                Message::AuthCheckRequest(AuthCheckRequest {
                    card_no,
                    function,
                    time,
                    nonce,
                    pin_block,
                })
            }),
        (codes(), 1u32.., auth_function(), any::<u32>(), any::<u8>()).prop_map(
            |((code, info), card_no, function, operator, tries_left)| {
                Message::AuthCheckResponse(AuthCheckResponse {
                    code,
                    info,
                    card_no,
                    function,
                    operator,
                    tries_left,
                })
            }
        ),
    ]
}

/// Any message of the protocol.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![requests(), responses(), loads(), auth_checks()]
}
