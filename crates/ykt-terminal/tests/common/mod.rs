//! Helpers shared by the storage tests.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::{CardNo, CardType, PhysicalId, Record, RecordKind, RecordStatus};

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

pub fn at(d: u32, h: u32) -> NaiveDateTime {
    day(d).and_hms_opt(h, 30, 0).unwrap()
}

/// A consumption record as a flow would journal it before writing the card.
pub fn purchase(card: u32, amount: i64, time: NaiveDateTime) -> Record {
    Record {
        device: PhysicalId([0x12, 0x34, 0x56, 0x78]),
        serial: 0,
        kind: RecordKind::Purchase,
        status: RecordStatus::NotWritten,
        online: false,
        card_type: CardType::Mf1,
        card_no: CardNo::new(card).unwrap(),
        card_counter: 7,
        wallet_no: 1,
        balance_before: 10_000,
        amount,
        fee: amount / 10,
        balance_after: 10_000 - amount - amount / 10,
        time,
        merchant_no: 42,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

pub fn reversal(card: u32, amount: i64, time: NaiveDateTime, original: u32) -> Record {
    Record {
        kind: RecordKind::Reversal,
        original_serial: Some(original),
        fee: 0,
        ..purchase(card, amount, time)
    }
}

/// A params region written by the terminal's own format 1 codec (little-endian layout, times
/// with nanoseconds) before the codecs were unified: one slot, generation 1, in slot 1.
pub const FLASH_V1_SLOT: &str = concat!(
    "594b503101000000000000009f010000231b656501e903000009e4b880e9a39fe5a08201010700000002022003000000",
    "00000002000100b0040000000000000700ffff00000000000000000000a6000000000000000000000000000000000000",
    "000000000000000000000000800005000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000064a0860100000000003200000000000000050088",
    "13000000000000204e000000000000011800026035010000000000201c000000000000c7a1000080b2e60ed0b6000000",
    "000000",
);
