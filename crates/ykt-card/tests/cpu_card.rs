#![allow(clippy::unwrap_used)]
//! The CPU card through a simulated reader: purchase with PSAM and TAC, load, torn purchases
//! resolved with GET TRANSACTION PROVE, lock flag, log, PIN, image round trip.

mod common;
use common::*;

use chrono::NaiveDate;
use ykt_card::cpu::CpuCard;
use ykt_card::cpu::apdu::{bcd_date, bcd_time};
use ykt_card::cpu::app::{CpuApp, CpuError, issue_cpu};
use ykt_card::cpu::crypto::tx_type;
use ykt_card::cpu::psam::{
    Psam, PurchaseFacts, host_load_mac2, verify_load_tac, verify_purchase_tac,
};
use ykt_card::{SimCard, SimulatedReader};
use ykt_proto::types::{CardNo, DisplayNo};

const TERM: [u8; 6] = [0, 0x11, 0x22, 0x33, 0x44, 0x55];

fn cpu_card(balance: i64) -> CpuCard {
    let keys = keys();
    issue_cpu(
        &keys,
        [9, 8, 7, 6],
        CardNo::new(123_456).unwrap(),
        DisplayNo::new(9_876_543_210).unwrap(),
        17,
        NaiveDate::from_ymd_opt(2029, 12, 31).unwrap(),
        balance,
        "2468",
        42,
    )
    .unwrap()
}

fn reader(balance: i64, seed: u64) -> SimulatedReader {
    let mut r = SimulatedReader::new(seed);
    r.place(SimCard::Cpu(cpu_card(balance)));
    r
}

fn cpu(r: &SimulatedReader) -> &CpuCard {
    match r.card().unwrap() {
        SimCard::Cpu(c) => c,
        _ => panic!("not a CPU card"),
    }
}

// R-T2.1, R-T2.2: card and display numbers live in the CPU card's public file.
#[test]
fn read_public_data() {
    let mut r = reader(5_000, 1);
    let c = CpuApp::read(&mut r).unwrap();
    assert_eq!(c.card_no.get(), 123_456);
    assert_eq!(c.display_no.get(), 9_876_543_210);
    assert_eq!((c.class, c.balance, c.locked), (17, 5_000, false));
    assert_eq!(c.expiry, NaiveDate::from_ymd_opt(2029, 12, 31).unwrap());
}

#[test]
fn purchase_with_psam_tac_verifiable_by_host_and_daily_figures() {
    let keys = keys();
    let mut r = reader(5_000, 1);
    let mut psam = Psam::new(&keys, TERM, 100);
    let c = CpuApp::read(&mut r).unwrap();
    let t = at(4, 12);
    let p = CpuApp::purchase(&mut r, &c, &mut psam, 1_200, t).unwrap();
    assert_eq!(
        (p.offline_seq, p.term_seq, p.balance_after),
        (0, 100, 3_800)
    );
    let facts = PurchaseFacts {
        serial: c.serial,
        amount: 1_200,
        ty: tx_type::PURCHASE_EP,
        term_id: TERM,
        term_seq: 100,
        date: bcd_date(t),
        time: bcd_time(t),
    };
    assert!(verify_purchase_tac(&keys, &facts, &p.tac));
    assert!(!verify_purchase_tac(
        &keys,
        &PurchaseFacts {
            amount: 1_201,
            ..facts
        },
        &p.tac
    ));
    CpuApp::purchase(&mut r, &c, &mut psam, 300, t).unwrap();
    let c = CpuApp::read(&mut r).unwrap();
    assert_eq!(c.balance, 3_500);
    // R-F4.7, R-F4.12: the card keeps the day's count and amount, restarting on a new day.
    assert_eq!(c.daily_on(t.date()), (2, 1_500));
    CpuApp::purchase(&mut r, &c, &mut psam, 1, at(5, 8)).unwrap();
    assert_eq!(
        CpuApp::read(&mut r).unwrap().daily_on(at(5, 8).date()),
        (1, 1)
    );
    assert_eq!(
        CpuApp::purchase(&mut r, &c, &mut psam, 10_000, t),
        Err(CpuError::InsufficientBalance)
    );
}

#[test]
fn a_psam_with_other_keys_is_refused() {
    let mut other = keys();
    other.cpu_purchase[3] ^= 0x80; // DES ignores the parity bit 0
    let mut r = reader(5_000, 1);
    let c = CpuApp::read(&mut r).unwrap();
    let mut psam = Psam::new(&other, TERM, 1);
    assert_eq!(
        CpuApp::purchase(&mut r, &c, &mut psam, 100, at(1, 8)),
        Err(CpuError::Status(0x9302))
    );
    assert_eq!(CpuApp::read(&mut r).unwrap().balance, 5_000);
}

#[test]
fn load_with_host_mac2_and_tac() {
    let keys = keys();
    let mut r = reader(0, 1);
    let c = CpuApp::read(&mut r).unwrap();
    let t = at(2, 10);
    let mut seen = None;
    let tac = CpuApp::load(&mut r, &c, TERM, 10_000, t, |init, d, tm| {
        seen = Some(*init);
        host_load_mac2(&keys, init, d, tm)
    })
    .unwrap();
    assert!(verify_load_tac(
        &keys,
        &seen.unwrap(),
        &bcd_date(t),
        &bcd_time(t),
        &tac
    ));
    assert_eq!(CpuApp::read(&mut r).unwrap().balance, 10_000);
    // A host with other keys cannot produce a MAC2 the card accepts.
    let mut other = keys.clone();
    other.cpu_load[0] ^= 0x80;
    let res = CpuApp::load(&mut r, &c, TERM, 1, t, |init, d, tm| {
        host_load_mac2(&other, init, d, tm)
    });
    assert_eq!(res, Err(CpuError::Status(0x9302)));
}

// R-P5.4, R-P5.7 on CPU cards: whatever happens to DEBIT FOR PURCHASE, GET TRANSACTION PROVE
// on the re-tap says exactly whether the card debited.
#[test]
fn torn_purchase_is_resolved_by_prove() {
    let keys = keys();
    for k in 0..3 {
        for fault in faults() {
            let mut r = reader(5_000, 1);
            let mut psam = Psam::new(&keys, TERM, 7);
            let c = CpuApp::read(&mut r).unwrap();
            r.inject(r.op_count() + k, fault);
            let res = CpuApp::purchase(&mut r, &c, &mut psam, 700, at(3, 12));
            r.clear_faults();
            r.retap();
            let after = CpuApp::read(&mut r).unwrap();
            let proof = CpuApp::prove(&mut r, 0).unwrap();
            match proof {
                Some(proof) => {
                    let tac = proof.tac;
                    assert_eq!(after.balance, 4_300, "k={k} {fault:?}");
                    if let Ok(p) = res {
                        assert_eq!(p.tac, tac);
                    }
                }
                None => {
                    assert!(res.is_err());
                    assert_eq!(after.balance, 5_000, "k={k} {fault:?}");
                }
            }
        }
    }
}

// R-F4.15 on CPU cards: the lock flag, set with the maintenance key; purchases are refused.
#[test]
fn lock_flag_blocks_the_application() {
    let keys = keys();
    let mut r = reader(5_000, 1);
    let c = CpuApp::read(&mut r).unwrap();
    let mut other = keys.clone();
    other.cpu_maintenance[0] ^= 0x80;
    assert_eq!(
        CpuApp::set_lock(&mut r, &other, &c, true),
        Err(CpuError::Status(0x6982))
    );
    CpuApp::set_lock(&mut r, &keys, &c, true).unwrap();
    let c = CpuApp::read(&mut r).unwrap();
    assert!(c.locked);
    let mut psam = Psam::new(&keys, TERM, 1);
    assert_eq!(
        CpuApp::purchase(&mut r, &c, &mut psam, 1, at(1, 8)),
        Err(CpuError::Locked)
    );
    CpuApp::set_lock(&mut r, &keys, &c, false).unwrap();
    assert!(!CpuApp::read(&mut r).unwrap().locked);
}

// R-F4.17 on CPU cards: the cyclic log keeps the last 10 transactions, newest first.
#[test]
fn cyclic_log() {
    let keys = keys();
    let mut r = reader(100_000, 1);
    let mut psam = Psam::new(&keys, TERM, 1);
    let c = CpuApp::read(&mut r).unwrap();
    for amount in 1..=12 {
        CpuApp::purchase(&mut r, &c, &mut psam, amount, at(1, 8)).unwrap();
    }
    let recs = CpuApp::records(&mut r, 20).unwrap();
    assert_eq!(recs.len(), 10);
    assert_eq!(
        u32::from_be_bytes([recs[0][5], recs[0][6], recs[0][7], recs[0][8]]),
        12
    );
    assert_eq!(u16::from_be_bytes([recs[0][0], recs[0][1]]), 11);
    assert_eq!(recs[0][9], tx_type::PURCHASE_EP);
    assert_eq!(&recs[0][10..16], &TERM);
}

#[test]
fn pin_tries_and_blocking() {
    let mut r = reader(1, 1);
    CpuApp::read(&mut r).unwrap();
    assert!(CpuApp::verify_pin(&mut r, "2468").unwrap());
    assert!(!CpuApp::verify_pin(&mut r, "1111").unwrap());
    assert_eq!(cpu(&r).pin_tries, 2);
    assert!(CpuApp::verify_pin(&mut r, "2468").unwrap());
    for _ in 0..3 {
        assert!(!CpuApp::verify_pin(&mut r, "1111").unwrap());
    }
    assert!(!CpuApp::verify_pin(&mut r, "2468").unwrap());
    assert!(!cpu(&r).to_image().contains("2468"));
}

#[test]
fn image_round_trip_and_errors() {
    let keys = keys();
    let mut r = reader(5_000, 1);
    let mut psam = Psam::new(&keys, TERM, 1);
    let c = CpuApp::read(&mut r).unwrap();
    CpuApp::purchase(&mut r, &c, &mut psam, 10, at(1, 8)).unwrap();
    let mut card = cpu(&r).clone();
    card.power_cycle();
    let text = card.to_image();
    assert_eq!(CpuCard::from_image(&text), Ok(card));
    assert!(CpuCard::from_image(&text.replace("format = ykt-cpu-card-1", "")).is_err());
    assert!(CpuCard::from_image(&text.replace("balance = 4990", "balance = x")).is_err());
    assert!(CpuCard::from_image(&format!("{text}colour = red\n")).is_err());
}

// issue 18.2: every hex field of the image is two hex digits per byte; a `+` is refused, not
// read as a zero digit.
#[test]
fn image_hex_fields_refuse_a_sign() {
    let keys = keys();
    let mut r = reader(5_000, 1);
    let mut psam = Psam::new(&keys, TERM, 1);
    let c = CpuApp::read(&mut r).unwrap();
    CpuApp::purchase(&mut r, &c, &mut psam, 10, at(1, 8)).unwrap();
    let text = cpu(&r).to_image();
    for name in ["uid", "serial", "dpk", "ef15", "ef17", "log"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap();
        let at = line.len() - 2;
        let signed = format!("{}+{}", &line[..at], &line[at + 1..]);
        assert!(
            CpuCard::from_image(&text.replace(line, &signed)).is_err(),
            "{signed:?} accepted"
        );
    }
    let proof = text.lines().find(|l| l.starts_with("proof = ")).unwrap();
    let mut fields: Vec<String> = proof["proof = ".len()..]
        .split(' ')
        .map(str::to_owned)
        .collect();
    fields[1] = format!("+{}", &fields[1][1..]);
    let signed = format!("proof = {}", fields.join(" "));
    assert!(
        CpuCard::from_image(&text.replace(proof, &signed)).is_err(),
        "{signed:?} accepted"
    );
}
