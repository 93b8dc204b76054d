#![allow(dead_code, clippy::unwrap_used)]
//! Shared fixtures: system keys, an issued card on a simulated reader, requests.

use chrono::{NaiveDate, NaiveDateTime};
use ykt_card::app::issue::{IssueParams, issue};
use ykt_card::app::{TxKind, TxRequest};
use ykt_card::keys::SystemKeys;
use ykt_card::mf1::Mf1Card;
use ykt_card::{Fault, SimCard, SimulatedReader, TearOutcome};
use ykt_proto::types::{CardNo, DisplayNo, PhysicalId};

pub const UID: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
pub const DEVICE: PhysicalId = PhysicalId([0xA1, 0xB2, 0xC3, 0xD4]);

pub fn keys() -> SystemKeys {
    let mut m = [0u8; 112];
    for (i, b) in m.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    SystemKeys::from_material(1, &m)
}

pub fn params(balance: i64) -> IssueParams {
    IssueParams {
        card_no: CardNo::new(16_777_215).unwrap(),
        display_no: DisplayNo::new(2_024_000_123).unwrap(),
        class: 200,
        expiry: NaiveDate::from_ymd_opt(2030, 6, 30).unwrap(),
        balances: vec![balance, 500],
        pin: "123456".into(),
    }
}

pub fn card(balance: i64) -> Mf1Card {
    issue(&keys(), UID, &params(balance)).unwrap()
}

pub fn reader_with(card: Mf1Card, seed: u64) -> SimulatedReader {
    let mut r = SimulatedReader::new(seed);
    r.place(SimCard::Mf1(card));
    r
}

pub fn at(d: u32, h: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, d)
        .unwrap()
        .and_hms_opt(h, 30, 0)
        .unwrap()
}

pub fn purchase(amount: i64, fee: i64, serial: u32, time: NaiveDateTime) -> TxRequest {
    TxRequest {
        kind: TxKind::Purchase,
        amount,
        fee,
        time,
        device: DEVICE,
        serial,
    }
}

pub fn mf1(r: &SimulatedReader) -> &Mf1Card {
    match r.card().unwrap() {
        SimCard::Mf1(c) => c,
        _ => panic!("not MF1"),
    }
}

/// Every fault a card operation can meet.
pub fn faults() -> Vec<Fault> {
    vec![
        Fault::FailBefore,
        Fault::Tear(TearOutcome::Old),
        Fault::Tear(TearOutcome::New),
        Fault::Tear(TearOutcome::Garbage),
        Fault::RemovedAfter,
        Fault::AckLost,
    ]
}
