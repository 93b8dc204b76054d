//! The host's TAC check of CPU card records (R-C6.3 authenticity, docs/card-layout.md), from
//! the system key file. A terminal runs the purchase through its PSAM with terminal ID
//! `00 00 ‖ physical ID` and terminal sequence number = the record's serial, so every input
//! of the TAC is in the record: card serial (from the card number), amount + fee (what left
//! the purse), type 06, terminal ID, sequence, and the record's date and time.

use ykt_card::cpu::apdu::{bcd_date, bcd_time};
use ykt_card::cpu::app::serial_for;
use ykt_card::cpu::crypto::tx_type;
use ykt_card::cpu::psam::{
    LoadInit, PurchaseFacts, host_load_mac2, verify_load_tac, verify_purchase_tac,
};
use ykt_card::keys::SystemKeys;
use ykt_host::domain::records::CpuLoad;
use ykt_proto::{PhysicalId, Record, RecordKind};

/// The 6-byte PSAM terminal ID of a device.
pub fn terminal_id(device: PhysicalId) -> [u8; 6] {
    let d = device.0;
    [0, 0, d[0], d[1], d[2], d[3]]
}

/// The PSAM sequence number the card's TAC covers: the record's serial, except for a debit
/// found on the card after a blind cancel (`Collected` with `original_serial`, the terminal's
/// recovery): the purchase ran under the cancelled record's serial.
pub fn tac_serial(r: &Record) -> u32 {
    match (r.kind, r.original_serial) {
        (RecordKind::Collected, Some(original)) => original,
        _ => r.serial,
    }
}

/// The purchase a record describes, as the card computed its TAC over it.
pub fn purchase_facts(r: &Record) -> Option<PurchaseFacts> {
    let debited = r.amount.checked_add(r.fee)?;
    Some(PurchaseFacts {
        serial: serial_for(r.card_no),
        amount: u32::try_from(debited).ok()?,
        ty: tx_type::PURCHASE_EP,
        term_id: terminal_id(r.device),
        term_seq: tac_serial(r),
        date: bcd_date(r.time),
        time: bcd_time(r.time),
    })
}

/// `ykt_host::TacVerifier` over the system keys.
pub struct KeyFileTac(pub SystemKeys);

/// The INITIALIZE FOR LOAD answer a load's MAC2 and TAC cover (a purse load, 圈存 to the
/// electronic purse); `None` when an amount leaves the purse's 32 bits.
pub fn load_init(l: &CpuLoad) -> Option<LoadInit> {
    Some(LoadInit {
        serial: serial_for(l.card_no),
        balance: u32::try_from(l.balance_before).ok()?,
        online_seq: l.online_seq,
        random: l.random,
        mac1: l.mac1,
        amount: u32::try_from(l.amount).ok()?,
        ty: tx_type::LOAD_EP,
        term_id: l.terminal_id,
    })
}

impl ykt_host::TacVerifier for KeyFileTac {
    fn verify(&self, r: &Record) -> bool {
        purchase_facts(r).is_some_and(|f| verify_purchase_tac(&self.0, &f, &r.tac.to_be_bytes()))
    }

    fn load_mac2(&self, l: &CpuLoad) -> Option<[u8; 4]> {
        let init = load_init(l)?;
        host_load_mac2(&self.0, &init, &bcd_date(l.time), &bcd_time(l.time))
    }

    fn verify_load_tac(&self, l: &CpuLoad, tac: u32) -> bool {
        load_init(l).is_some_and(|init| {
            let (date, time) = (bcd_date(l.time), bcd_time(l.time));
            verify_load_tac(&self.0, &init, &date, &time, &tac.to_be_bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::NaiveDate;
    use ykt_card::cpu::app::{CpuApp, issue_cpu};
    use ykt_card::cpu::psam::Psam;
    use ykt_card::{SimCard, SimulatedReader};
    use ykt_host::TacVerifier;
    use ykt_proto::{CardNo, CardType, DisplayNo, RecordStatus};

    const DEVICE: PhysicalId = PhysicalId([0x10, 0, 0, 0x09]);

    /// A real purchase on a simulated CPU card through a PSAM, and its record.
    fn purchase(keys: &SystemKeys, serial: u32, amount: i64, fee: i64) -> Record {
        let no = CardNo::new(42).unwrap();
        let card = issue_cpu(
            keys,
            [1, 2, 3, 4],
            no,
            DisplayNo::new(2_026_000_042).unwrap(),
            1,
            NaiveDate::from_ymd_opt(2030, 7, 31).unwrap(),
            10_000,
            "123456",
            7,
        )
        .unwrap();
        let mut reader = SimulatedReader::new(1);
        reader.place(SimCard::Cpu(card));
        let read = CpuApp::read(&mut reader).unwrap();
        let mut psam = Psam::new(keys, terminal_id(DEVICE), serial);
        let time = NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(11, 45, 30)
            .unwrap();
        let p = CpuApp::purchase(&mut reader, &read, &mut psam, amount + fee, time).unwrap();
        Record {
            device: DEVICE,
            serial,
            kind: RecordKind::Purchase,
            status: RecordStatus::Written,
            online: false,
            card_type: CardType::Cpu,
            card_no: no,
            card_counter: 0,
            wallet_no: 1,
            balance_before: 10_000,
            amount,
            fee,
            balance_after: p.balance_after,
            time,
            merchant_no: 1001,
            original_serial: None,
            item_code: 0,
            tac: u32::from_be_bytes(p.tac),
        }
    }

    fn keys() -> SystemKeys {
        SystemKeys::from_material(1, &[0x5A; 112])
    }

    // R-B4: a real load (圈存) on a simulated CPU card: the host's MAC2 from the key file is
    // accepted by the card, the card's TAC over the load verifies, a forged MAC1 gets no MAC2.
    #[test]
    fn load_mac2_and_tac_from_the_key_file() {
        let keys = keys();
        let v = KeyFileTac(keys.clone());
        let no = CardNo::new(42).unwrap();
        let expiry = NaiveDate::from_ymd_opt(2030, 7, 31).unwrap();
        let card = issue_cpu(
            &keys,
            [1, 2, 3, 4],
            no,
            DisplayNo::new(2_026_000_042).unwrap(),
            1,
            expiry,
            500,
            "123456",
            7,
        )
        .unwrap();
        let mut reader = SimulatedReader::new(1);
        reader.place(SimCard::Cpu(card));
        let read = CpuApp::read(&mut reader).unwrap();
        let time = NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let mut seen = None;
        let tac = CpuApp::load(
            &mut reader,
            &read,
            terminal_id(DEVICE),
            2_000,
            time,
            |init, _, _| {
                let l = CpuLoad {
                    card_no: no,
                    balance_before: i64::from(init.balance),
                    amount: i64::from(init.amount),
                    online_seq: init.online_seq,
                    random: init.random,
                    mac1: init.mac1,
                    terminal_id: init.term_id,
                    time,
                };
                seen = Some(l);
                assert!(v.load_mac2(&CpuLoad { mac1: [0; 4], ..l }).is_none());
                v.load_mac2(&l)
            },
        )
        .unwrap();
        assert_eq!(CpuApp::read(&mut reader).unwrap().balance, 2_500);
        let l = seen.unwrap();
        assert!(v.verify_load_tac(&l, u32::from_be_bytes(tac)));
        assert!(!v.verify_load_tac(&CpuLoad { amount: 2_001, ..l }, u32::from_be_bytes(tac)));
    }

    #[test]
    fn genuine_tac_verifies_forgeries_do_not() {
        let keys = keys();
        let v = KeyFileTac(keys.clone());
        let r = purchase(&keys, 77, 1_200, 60);
        assert!(v.verify(&r));
        // Any field the TAC covers, changed, or the TAC itself: refused.
        for forged in [
            Record {
                tac: r.tac ^ 1,
                ..r.clone()
            },
            Record {
                amount: r.amount + 1,
                ..r.clone()
            },
            Record {
                fee: r.fee - 1,
                ..r.clone()
            },
            Record {
                serial: r.serial + 1,
                ..r.clone()
            },
            Record {
                device: PhysicalId([0x10, 0, 0, 0x0A]),
                ..r.clone()
            },
            Record {
                time: r.time + chrono::Duration::seconds(1),
                ..r.clone()
            },
            Record {
                card_no: CardNo::new(43).unwrap(),
                ..r.clone()
            },
        ] {
            assert!(!v.verify(&forged), "{forged:?}");
        }
        // Other keys (another campus) refuse it too. (Not the bitwise complement of these
        // keys: DES's complementation property gives the same TAC key.)
        let mut other = [0u8; 112];
        for (i, b) in other.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        assert!(!KeyFileTac(SystemKeys::from_material(1, &other)).verify(&r));
    }

    // R-P5.5, R-F4.17: a CPU debit found on the card after a blind cancel is journalled as
    // `Collected` under a new serial with `original_serial` = the cancelled record, whose
    // serial the PSAM used: its TAC verifies over that original serial, and only over it.
    #[test]
    fn recovered_debit_verifies_over_original_serial() {
        let keys = keys();
        let v = KeyFileTac(keys.clone());
        let cancelled = purchase(&keys, 77, 1_200, 60);
        let found = Record {
            kind: RecordKind::Collected,
            serial: 79,
            original_serial: Some(77),
            ..cancelled.clone()
        };
        assert!(v.verify(&found));
        assert!(!v.verify(&Record {
            original_serial: Some(78),
            ..found.clone()
        }));
        // Only a collected record takes the original serial: a reversal does not.
        assert!(!v.verify(&Record {
            kind: RecordKind::Reversal,
            ..found.clone()
        }));
        assert!(!v.verify(&Record {
            original_serial: None,
            ..found
        }));
    }

    #[test]
    fn impossible_amounts_are_refused_not_panicking() {
        let v = KeyFileTac(keys());
        let r = purchase(&keys(), 1, 100, 0);
        assert!(!v.verify(&Record {
            amount: i64::MAX,
            fee: 1,
            ..r.clone()
        }));
        assert!(!v.verify(&Record { amount: -5, ..r }));
    }
}
