#![allow(clippy::unwrap_used)]
//! Loads onto the CPU card (R-B4, R-B5): the split flow a terminal runs around its 0x08
//! request (INITIALIZE FOR LOAD, host MAC2, CREDIT FOR LOAD), checked against MACs and TACs
//! recomputed here with the `des` crate alone (not through `ykt_card`'s crypto module), the
//! pick-up's subsidy sequence, and every fault of the CREDIT settled by GET TRANSACTION PROVE.

mod common;
use common::*;

use chrono::{NaiveDate, NaiveDateTime};
use des::cipher::{Array, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2};
use ykt_card::cpu::CpuCard;
use ykt_card::cpu::apdu::{bcd_date, bcd_time};
use ykt_card::cpu::app::{CpuApp, CpuError, CpuLoad, issue_cpu, serial_for};
use ykt_card::cpu::psam::{host_load_mac2, verify_load_tac};
use ykt_card::{SimCard, SimulatedReader};
use ykt_proto::types::{CardNo, DisplayNo};

const TERM: [u8; 6] = [0x00, 0x00, 0x12, 0x34, 0x56, 0x78];

fn card_no() -> CardNo {
    CardNo::new(200_017).unwrap()
}

fn reader(balance: i64) -> SimulatedReader {
    let card: CpuCard = issue_cpu(
        &keys(),
        [4, 3, 2, 1],
        card_no(),
        DisplayNo::new(1_234_567).unwrap(),
        3,
        NaiveDate::from_ymd_opt(2030, 1, 31).unwrap(),
        balance,
        "1357",
        77,
    )
    .unwrap();
    let mut r = SimulatedReader::new(5);
    r.place(SimCard::Cpu(card));
    r
}

fn when() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(11, 45, 30)
        .unwrap()
}

// --- The PBOC computations, written out again on the raw ciphers. ---

fn tdes(key: &[u8; 16], block: [u8; 8]) -> [u8; 8] {
    let mut b = Array::from(block);
    TdesEde2::new(&Array::from(*key)).encrypt_block(&mut b);
    b.into()
}

/// DES-CBC-MAC, IV 0, ISO 9797-1 method 2 padding, first 4 bytes.
fn mac4(key: [u8; 8], data: &[u8]) -> [u8; 4] {
    let des = Des::new(&Array::from(key));
    let mut padded = data.to_vec();
    padded.push(0x80);
    while !padded.len().is_multiple_of(8) {
        padded.push(0);
    }
    let mut state = [0u8; 8];
    for chunk in padded.chunks(8) {
        let mut b = Array::from(std::array::from_fn::<u8, 8, _>(|i| state[i] ^ chunk[i]));
        des.encrypt_block(&mut b);
        state = b.into();
    }
    [state[0], state[1], state[2], state[3]]
}

/// The card's key: `3DES(MK, F) ‖ 3DES(MK, ~F)` for the application serial F.
fn diversified(master: &[u8; 16], serial: [u8; 8]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&tdes(master, serial));
    k[8..].copy_from_slice(&tdes(master, serial.map(|b| !b)));
    k
}

struct Independent {
    session: [u8; 8],
    tac_key: [u8; 8],
}

impl Independent {
    fn new(random: [u8; 4], online_seq: u16) -> Independent {
        let k = keys();
        let serial = serial_for(card_no());
        let dlk = diversified(&k.cpu_load, serial);
        let dtk = diversified(&k.cpu_tac, serial);
        let s = online_seq.to_be_bytes();
        let session = tdes(
            &dlk,
            [
                random[0], random[1], random[2], random[3], s[0], s[1], 0x80, 0x00,
            ],
        );
        Independent {
            session,
            tac_key: std::array::from_fn(|i| dtk[i] ^ dtk[i + 8]),
        }
    }

    fn mac1(&self, balance: u32, amount: u32) -> [u8; 4] {
        let mut m = balance.to_be_bytes().to_vec();
        m.extend_from_slice(&amount.to_be_bytes());
        m.push(0x02); // load to the electronic purse
        m.extend_from_slice(&TERM);
        mac4(self.session, &m)
    }

    fn mac2(&self, amount: u32, t: NaiveDateTime) -> [u8; 4] {
        let mut m = amount.to_be_bytes().to_vec();
        m.push(0x02);
        m.extend_from_slice(&TERM);
        m.extend_from_slice(&date_time(t));
        mac4(self.session, &m)
    }

    fn tac(&self, new_balance: u32, online_seq: u16, amount: u32, t: NaiveDateTime) -> [u8; 4] {
        let mut m = new_balance.to_be_bytes().to_vec();
        m.extend_from_slice(&online_seq.to_be_bytes());
        m.extend_from_slice(&amount.to_be_bytes());
        m.push(0x02);
        m.extend_from_slice(&TERM);
        m.extend_from_slice(&date_time(t));
        mac4(self.tac_key, &m)
    }
}

/// `YYYYMMDD hhmmss` in BCD, written out by hand.
fn date_time(t: NaiveDateTime) -> Vec<u8> {
    let digits = t.format("%Y%m%d%H%M%S").to_string().into_bytes();
    digits
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
        .collect()
}

// R-B4: a top-up in the terminal's order: INITIALIZE FOR LOAD (nothing changes), the host's
// MAC2 (host_load_mac2 equals the independent computation), CREDIT FOR LOAD; MAC1, MAC2 and
// TAC are the independently computed ones, the balance moves, the subsidy sequence does not.
#[test]
fn top_up_matches_independent_macs_and_tac() {
    let keys = keys();
    let mut r = reader(12_345);
    let c = CpuApp::read(&mut r).unwrap();
    assert_eq!(c.subsidy_seq, 0);
    let init = CpuApp::init_load(&mut r, &c, TERM, 5_000).unwrap();
    assert_eq!(
        (init.balance, init.amount, init.online_seq),
        (12_345, 5_000, 0)
    );
    assert_eq!(CpuApp::read(&mut r).unwrap().balance, 12_345);
    // A read re-selects: the load session is gone; open it again.
    let init = CpuApp::init_load(&mut r, &c, TERM, 5_000).unwrap();
    let ind = Independent::new(init.random, init.online_seq);
    assert_eq!(init.mac1, ind.mac1(12_345, 5_000));
    let t = when();
    let mac2 = host_load_mac2(&keys, &init, &bcd_date(t), &bcd_time(t)).unwrap();
    assert_eq!(mac2, ind.mac2(5_000, t));
    let tac = CpuApp::credit_load(&mut r, CpuLoad::TopUp, t, &mac2).unwrap();
    assert_eq!(tac, ind.tac(17_345, 0, 5_000, t));
    assert!(verify_load_tac(
        &keys,
        &init,
        &bcd_date(t),
        &bcd_time(t),
        &tac
    ));
    let after = CpuApp::read(&mut r).unwrap();
    assert_eq!((after.balance, after.subsidy_seq), (17_345, 0));
    // The wrapper `load` runs the same flow.
    let tac = CpuApp::load(&mut r, &after, TERM, 100, t, |i, d, tm| {
        host_load_mac2(&keys, i, d, tm)
    })
    .unwrap();
    assert_eq!(CpuApp::read(&mut r).unwrap().balance, 17_445);
    assert_eq!(
        CpuApp::prove_load(&mut r, 1).unwrap().map(|p| p.tac),
        Some(tac)
    );
}

// R-B5: a pick-up steps the subsidy sequence in the same CREDIT FOR LOAD; a MAC2 for other
// content is refused and changes neither balance nor sequence.
#[test]
fn pick_up_steps_the_subsidy_sequence_with_the_credit() {
    let keys = keys();
    let mut r = reader(100);
    let c = CpuApp::read(&mut r).unwrap();
    let t = when();
    let init = CpuApp::init_load(&mut r, &c, TERM, 20_000).unwrap();
    let ind = Independent::new(init.random, init.online_seq);
    let wrong = ind.mac2(20_001, t);
    assert_eq!(
        CpuApp::credit_load(&mut r, CpuLoad::PickUp, t, &wrong),
        Err(CpuError::Status(0x9302))
    );
    let c = CpuApp::read(&mut r).unwrap();
    assert_eq!((c.balance, c.subsidy_seq), (100, 0));
    let init = CpuApp::init_load(&mut r, &c, TERM, 20_000).unwrap();
    let ind = Independent::new(init.random, init.online_seq);
    let tac = CpuApp::credit_load(&mut r, CpuLoad::PickUp, t, &ind.mac2(20_000, t)).unwrap();
    assert_eq!(tac, ind.tac(20_100, 0, 20_000, t));
    let after = CpuApp::read(&mut r).unwrap();
    assert_eq!((after.balance, after.subsidy_seq), (20_100, 1));
    let init = CpuApp::init_load(&mut r, &after, TERM, 1).unwrap();
    let mac2 = host_load_mac2(&keys, &init, &bcd_date(t), &bcd_time(t)).unwrap();
    CpuApp::credit_load(&mut r, CpuLoad::PickUp, t, &mac2).unwrap();
    let after = CpuApp::read(&mut r).unwrap();
    assert_eq!((after.balance, after.subsidy_seq), (20_101, 2));
}

// R-B5: the last sequence number cannot step: the card refuses the pick-up whole.
#[test]
fn exhausted_subsidy_sequence_refuses_the_pick_up() {
    let keys = keys();
    let mut r = reader(0);
    if let Some(SimCard::Cpu(card)) = r.card_mut() {
        card.ef17[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
    }
    let c = CpuApp::read(&mut r).unwrap();
    assert_eq!(c.subsidy_seq, u16::MAX);
    let t = when();
    let init = CpuApp::init_load(&mut r, &c, TERM, 500).unwrap();
    let mac2 = host_load_mac2(&keys, &init, &bcd_date(t), &bcd_time(t)).unwrap();
    assert_eq!(
        CpuApp::credit_load(&mut r, CpuLoad::PickUp, t, &mac2),
        Err(CpuError::Status(0x6985))
    );
    let after = CpuApp::read(&mut r).unwrap();
    assert_eq!((after.balance, after.subsidy_seq), (0, u16::MAX));
}

// R-B4, R-B5: every fault of every operation of a pick-up (INITIALIZE FOR LOAD, CREDIT FOR
// LOAD): after the re-tap, GET TRANSACTION PROVE on the online sequence says whether the
// card credited, and balance and subsidy sequence agree with it (old and old, or new and new).
#[test]
fn torn_pick_up_is_settled_by_prove() {
    let keys = keys();
    let t = when();
    for k in 0..2 {
        for fault in faults() {
            let mut r = reader(1_000);
            let c = CpuApp::read(&mut r).unwrap();
            r.inject(r.op_count() + k, fault);
            let res = CpuApp::init_load(&mut r, &c, TERM, 700).and_then(|init| {
                let mac2 = host_load_mac2(&keys, &init, &bcd_date(t), &bcd_time(t)).unwrap();
                CpuApp::credit_load(&mut r, CpuLoad::PickUp, t, &mac2)
            });
            r.clear_faults();
            r.retap();
            let after = CpuApp::read(&mut r).unwrap();
            match CpuApp::prove_load(&mut r, 0).unwrap() {
                Some(proof) => {
                    assert_eq!(
                        (after.balance, after.subsidy_seq),
                        (1_700, 1),
                        "k={k} {fault:?}"
                    );
                    if let Ok(tac) = res {
                        assert_eq!(tac, proof.tac);
                    }
                }
                None => {
                    assert!(res.is_err(), "k={k} {fault:?}");
                    assert_eq!(
                        (after.balance, after.subsidy_seq),
                        (1_000, 0),
                        "k={k} {fault:?}"
                    );
                }
            }
        }
    }
}
