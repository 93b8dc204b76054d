//! The stored form of `TerminalParams` in the `devices.params` BLOB column: parameters change
//! as a whole (their version increases), so one column beats thirty.
//!
//! A thin wrapper over the one binary encoding of the parameters, `ykt_proto::stored_params`:
//! a format byte (3) and the parameter block of the wire (`docs/protocol.md` §6.15). BLOBs of
//! format 2 (the block before its operator-card byte, R-B11: read as none) and of the host's
//! older format 1 (its own layout) are still read; every write is format 3.

use ykt_proto::{ClassSet, ConsumptionMode, TerminalParams, WorkMode, stored_params};

use crate::error::{HostError, Result};

/// Bounds the host accepts from an administrator (the wire's are 1,024 and 16).
pub const MAX_PRICE_ITEMS: usize = 1_000;
pub const MAX_WORKING_HOURS: usize = ykt_proto::MAX_WORKING_HOURS;

/// Checks the parameters the host accepts: everything the wire can carry to a terminal
/// (counts, whole-second times, money never negative, fee rates 0–100), at most
/// [`MAX_PRICE_ITEMS`] items, positive prices, and money at most 24 bits of fen.
pub fn validate(p: &TerminalParams) -> Result<()> {
    let bad = |m: &str| Err(HostError::Invalid(format!("terminal parameters: {m}")));
    if p.price_list.len() > MAX_PRICE_ITEMS {
        return bad("price list too long");
    }
    if p.price_list.iter().any(|i| i.price <= 0) {
        return bad("price must be positive");
    }
    // Money on a terminal is at most what a card's 24-bit wallet holds.
    let max = crate::domain::checks::MAX_CARD_BALANCE;
    for (field, v) in [
        ("fixed_amount", p.fixed_amount),
        ("max_balance", p.max_balance),
        ("min_balance", p.min_balance),
        ("single_password_threshold", p.single_password_threshold),
        ("daily_password_threshold", p.daily_password_threshold),
    ]
    .into_iter()
    .chain(p.price_list.iter().map(|i| ("price", i.price)))
    {
        if !(0..=max).contains(&v) {
            return bad(&format!("{field} is {v} fen; it is 0 to {max}"));
        }
    }
    if let Err(e) = ykt_proto::encode_params(p, &mut Vec::new()) {
        return bad(&e.to_string());
    }
    Ok(())
}

/// The BLOB for `p`; `HostError::Invalid` when `p` cannot be stored at all (more than
/// 1,024 price items, more than 16 working-hours windows, a time of day with a fraction of
/// a second). Parameters that passed [`validate`], [`default_params`] and every value
/// [`decode`] returns are storable.
pub fn encode(p: &TerminalParams) -> Result<Vec<u8>> {
    let mut b = Vec::with_capacity(400 + p.price_list.len() * 12);
    stored_params::encode(p, &mut b)
        .map_err(|e| HostError::Invalid(format!("terminal parameters cannot be stored: {e}")))?;
    Ok(b)
}

/// Reads a BLOB of format 3, 2 (no operator-card byte: none) or 1; anything else is `HostError::Corrupt`.
pub fn decode(bytes: &[u8]) -> Result<TerminalParams> {
    stored_params::decode(bytes)
        .map_err(|e| HostError::Corrupt(format!("terminal parameters: {e}")))
}

/// Parameters a new device starts with: everything allowed, no fee, auto mode.
pub fn default_params() -> TerminalParams {
    TerminalParams {
        version: 1,
        work_mode: WorkMode::Auto,
        consumption_mode: ConsumptionMode::UnitPrice,
        fixed_amount: 0,
        price_list: Vec::new(),
        allowed_classes: ClassSet::ALL,
        fee_rates: [0; 256],
        max_balance: 0xFF_FFFF,
        min_balance: 0,
        max_daily_uses: 0,
        single_password_threshold: 0,
        daily_password_threshold: 0,
        wallet_no: 0,
        max_offline_hours: 24,
        working_hours: Vec::new(),
        operator_card: ykt_proto::AuthFunctions::NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;
    use proptest::prelude::*;
    use ykt_proto::{PriceItem, WorkingHours};

    fn arb_params() -> impl Strategy<Value = TerminalParams> {
        (
            any::<u32>(),
            0..3u8,
            proptest::collection::vec((any::<u16>(), 1..100_000i64, any::<u16>()), 0..20),
            proptest::collection::vec((0..86_400u32, 0..86_400u32), 0..5),
            any::<[u8; 32]>(),
            0..=100u8,
            0..=0x1Fu8,
        )
            .prop_map(|(version, mode, items, hours, classes, rate, op)| {
                let mut p = default_params();
                // R-B11: the operator-card functions are stored too.
                p.operator_card = ykt_proto::AuthFunctions::from_bits(op).unwrap();
                p.version = version;
                p.work_mode =
                    [WorkMode::FullOnline, WorkMode::Auto, WorkMode::Offline][usize::from(mode)];
                p.price_list = items
                    .into_iter()
                    .map(|(code, price, subject)| PriceItem {
                        code,
                        price,
                        subject,
                    })
                    .collect();
                p.working_hours = hours
                    .into_iter()
                    .map(|(s, e)| WorkingHours {
                        start: NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap(),
                        end: NaiveTime::from_num_seconds_from_midnight_opt(e, 0).unwrap(),
                    })
                    .collect();
                p.allowed_classes = ClassSet(classes);
                p.fee_rates[7] = rate;
                p
            })
    }

    /// A BLOB written by the host's own codec (format 1) before the codecs were unified.
    const HOST_V1_BLOB: &str = concat!(
        "01000000090002000000000000012c0002000100000000000004b000070002000000000000015e0000ff0fffffffffff",
        "ffffffffffffffffffffffffffffffffffffffffffffffffff0000000a00000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000ffff",
        "ff00000000000000000003fffffffffffffffb0000000000004e200200300100005b6800007ecb",
    );

    fn host_v1_params() -> TerminalParams {
        let mut p = default_params();
        p.version = 9;
        p.work_mode = WorkMode::FullOnline;
        p.consumption_mode = ConsumptionMode::Coded;
        p.fixed_amount = 300;
        p.price_list = vec![
            PriceItem {
                code: 1,
                price: 1200,
                subject: 7,
            },
            PriceItem {
                code: 2,
                price: 350,
                subject: 0,
            },
        ];
        p.allowed_classes.0[1] = 0x0F;
        p.fee_rates[3] = 10;
        p.max_daily_uses = 3;
        // Format 1 stored what it was given; the admin API did not refuse this then.
        p.single_password_threshold = -5;
        p.daily_password_threshold = 20_000;
        p.wallet_no = 2;
        p.max_offline_hours = 48;
        p.working_hours = vec![WorkingHours {
            start: NaiveTime::from_hms_opt(6, 30, 0).unwrap(),
            end: NaiveTime::from_hms_opt(9, 0, 59).unwrap(),
        }];
        p
    }

    proptest! {
        // R-H1: a device's parameters survive storage exactly.
        #[test]
        fn params_round_trip(p in arb_params()) {
            let blob = encode(&p).unwrap();
            prop_assert_eq!(blob[0], stored_params::FORMAT);
            prop_assert_eq!(decode(&blob).unwrap(), p);
        }

        // Stored bytes never panic the decoder.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }
    }

    // R-H1: a BLOB of the old host format still reads as the same parameters, and is
    // rewritten in the unified format 2 (the wire's parameter block) on the next write.
    #[test]
    fn old_format_1_blob_still_decodes() {
        let blob = hex::decode(HOST_V1_BLOB).unwrap();
        assert_eq!(blob[0], stored_params::HOST_FORMAT_V1);
        let p = decode(&blob).unwrap();
        assert_eq!(p, host_v1_params());
        let rewritten = encode(&p).unwrap();
        assert_eq!(rewritten[0], stored_params::FORMAT);
        assert_eq!(decode(&rewritten).unwrap(), p);
        // Format 2 is the wire's block after the format byte.
        let mut p = p;
        p.single_password_threshold = 0;
        let mut wire = Vec::new();
        ykt_proto::encode_params(&p, &mut wire).unwrap();
        assert_eq!(encode(&p).unwrap()[1..], wire[..]);
    }

    #[test]
    fn truncation_is_an_error() {
        let mut p = host_v1_params();
        p.single_password_threshold = 0;
        for bytes in [encode(&p).unwrap(), hex::decode(HOST_V1_BLOB).unwrap()] {
            for n in 0..bytes.len() {
                assert!(decode(&bytes[..n]).is_err(), "{n}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(decode(&long).is_err());
        }
        assert!(decode(&[3]).is_err());
    }

    // Unstorable parameters are an error, never a panic.
    #[test]
    fn unstorable_params_are_an_error() {
        let mut p = default_params();
        p.working_hours = vec![
            WorkingHours {
                start: NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
            };
            17
        ];
        assert!(matches!(encode(&p), Err(HostError::Invalid(_))));
    }

    // Parameters the wire cannot carry to a terminal are refused when they are set.
    #[test]
    fn validate_refuses_what_the_wire_cannot_carry() {
        assert!(validate(&default_params()).is_ok());
        assert!(validate(&host_v1_params()).is_err(), "negative threshold");
        let mut p = default_params();
        p.working_hours = vec![WorkingHours {
            start: NaiveTime::from_hms_milli_opt(6, 0, 0, 500).unwrap(),
            end: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        }];
        assert!(validate(&p).is_err(), "fraction of a second");
        let mut p = default_params();
        p.fee_rates[0] = 101;
        assert!(validate(&p).is_err());
        let mut p = default_params();
        p.price_list = vec![
            PriceItem {
                code: 1,
                price: 1,
                subject: 0
            };
            MAX_PRICE_ITEMS + 1
        ];
        assert!(validate(&p).is_err());
    }
}
