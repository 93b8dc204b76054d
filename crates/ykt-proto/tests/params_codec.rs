//! The one binary encoding of `TerminalParams` (`docs/protocol.md` §6.15): the wire's
//! parameter block, and the stored form the host and the terminal keep (`stored_params`).
#![allow(clippy::unwrap_used)]

mod strategies;

use chrono::NaiveTime;
use proptest::prelude::*;
use strategies::params;
use ykt_proto::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // R-C6.3: the parameter block round-trips, is exactly the body of the parameter push
    // (0x44), and its stored form is a format byte and the same block.
    #[test]
    fn params_block_round_trip(p in params()) {
        let mut block = vec![0xAA];
        encode_params(&p, &mut block).unwrap();
        let block = &block[1..];
        prop_assert!(block.len() <= MAX_PARAMS_LEN);
        prop_assert_eq!(decode_params(block).unwrap(), p.clone());

        let mut body = Vec::new();
        Message::ParamsPushRequest(ParamsPushRequest { params: p.clone() })
            .encode_body(&mut body)
            .unwrap();
        prop_assert_eq!(&body[..], block);

        let mut stored = Vec::new();
        stored_params::encode(&p, &mut stored).unwrap();
        prop_assert_eq!(stored[0], stored_params::FORMAT);
        prop_assert_eq!(&stored[1..], block);
        prop_assert!(stored.len() <= stored_params::MAX_STORED_LEN);
        prop_assert_eq!(stored_params::decode(&stored).unwrap(), p);
    }

    // A store keeps the values it was given: out-of-policy money and fee rates survive the
    // stored form, while the wire's block refuses them both ways.
    #[test]
    fn stored_form_keeps_out_of_policy_values(mut p in params(), money in i64::MIN..0, rate in 101u8..) {
        p.single_password_threshold = money;
        p.fee_rates[9] = rate;
        prop_assert!(encode_params(&p, &mut Vec::new()).is_err());
        let mut stored = Vec::new();
        stored_params::encode(&p, &mut stored).unwrap();
        prop_assert!(decode_params(&stored[1..]).is_err());
        prop_assert_eq!(stored_params::decode(&stored).unwrap(), p);
    }

    // Arbitrary bytes never panic any decoder of the parameters (current or legacy).
    #[test]
    fn params_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_params(&bytes);
        let _ = stored_params::decode(&bytes);
        let _ = stored_params::decode_flash_v1(&bytes);
    }

    // Every truncation and every extra byte of a block is an error, never a shorter value.
    #[test]
    fn truncated_or_extended_blocks_are_errors(p in params(), cut in any::<prop::sample::Index>()) {
        let mut stored = Vec::new();
        stored_params::encode(&p, &mut stored).unwrap();
        let n = cut.index(stored.len());
        prop_assert!(decode_params(&stored[1..n.max(1)]).is_err());
        prop_assert!(stored_params::decode(&stored[..n]).is_err());
        stored.push(0);
        prop_assert!(decode_params(&stored[1..]).is_err());
        prop_assert!(stored_params::decode(&stored).is_err());
    }
}

// The block holds times as `hh mm ss`: a fraction of a second (or a leap second) is refused,
// not silently dropped, and a failed encode leaves the buffer as it was.
#[test]
fn sub_second_times_are_refused() {
    let mut p = test_vectors::params();
    p.working_hours = vec![WorkingHours {
        start: NaiveTime::from_hms_milli_opt(6, 0, 0, 1).unwrap(),
        end: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
    }];
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        encode_params(&p, &mut out),
        Err(EncodeError::BadValue {
            field: "working_hours",
            ..
        })
    ));
    assert!(stored_params::encode(&p, &mut out).is_err());
    assert_eq!(out, [1, 2, 3]);
    p.working_hours[0].start = NaiveTime::from_hms_milli_opt(23, 59, 59, 1_500).unwrap();
    assert!(encode_params(&p, &mut out).is_err());
}

// The limits hold on both sides: 16 windows and 1,024 items encode, one more does not, and a
// count above the limit is refused before anything is allocated for it.
#[test]
fn counts_are_bounded() {
    let mut p = test_vectors::params();
    let t = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
    p.working_hours = vec![WorkingHours { start: t, end: t }; MAX_WORKING_HOURS];
    p.price_list = vec![
        PriceItem {
            code: 1,
            price: 1,
            subject: 0
        };
        MAX_PRICE_ITEMS
    ];
    let mut block = Vec::new();
    encode_params(&p, &mut block).unwrap();
    assert_eq!(block.len(), MAX_PARAMS_LEN);
    assert_eq!(decode_params(&block).unwrap(), p);

    let mut more = p.clone();
    more.working_hours.push(WorkingHours { start: t, end: t });
    assert!(encode_params(&more, &mut Vec::new()).is_err());
    let mut more = p.clone();
    more.price_list.push(more.price_list[0].clone());
    assert!(stored_params::encode(&more, &mut Vec::new()).is_err());

    // Window count at offset 339, item count after the windows.
    let mut bad = block.clone();
    bad[339] = 17;
    assert!(matches!(
        decode_params(&bad),
        Err(DecodeError::TooMany {
            field: "working_hours",
            ..
        })
    ));
    let mut bad = block;
    let k = 340 + 6 * MAX_WORKING_HOURS;
    bad[k..k + 2].copy_from_slice(&1025u16.to_be_bytes());
    assert!(matches!(
        decode_params(&bad),
        Err(DecodeError::TooMany {
            field: "price_list",
            ..
        })
    ));
}

// The stored form refuses formats it does not know.
#[test]
fn unknown_stored_formats_are_errors() {
    let mut stored = Vec::new();
    stored_params::encode(&test_vectors::params(), &mut stored).unwrap();
    for format in [0u8, 4, 0xFF] {
        stored[0] = format;
        assert!(stored_params::decode(&stored).is_err(), "{format}");
    }
}

// R-B11: a block stored before the operator-card byte (format 2) reads as "no function needs
// an operator card"; format 3 keeps the set; a bit that names no function is malformed.
#[test]
fn format_2_reads_as_no_operator_card() {
    let p = test_vectors::params();
    assert_ne!(p.operator_card, AuthFunctions::NONE);
    let mut stored = Vec::new();
    stored_params::encode(&p, &mut stored).unwrap();
    assert_eq!(stored[0], stored_params::FORMAT);
    assert_eq!(stored_params::decode(&stored).unwrap(), p);
    let mut old = stored.clone();
    old[0] = stored_params::FORMAT_V2;
    old.pop();
    let back = stored_params::decode(&old).unwrap();
    assert_eq!(back.operator_card, AuthFunctions::NONE);
    assert_eq!(
        TerminalParams {
            operator_card: p.operator_card,
            ..back
        },
        p
    );
    let mut bad = stored;
    *bad.last_mut().unwrap() = 0x20;
    assert!(stored_params::decode(&bad).is_err());
}
