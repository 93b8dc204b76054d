//! Entry point of the fuzz target `cpu_transaction` (`fuzz/`) and its stable property test:
//! a CPU card used as a whole — read, PIN, purchases, loads, proofs, its log, raw commands and
//! faults in any order. The money must add up: no purchase beyond the balance, every purchase
//! and load that the card (or its proof after a fault) says happened is on the card exactly
//! once, a load with a MAC2 the host did not make is refused, and the log's newest record is
//! the last transaction.

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::types::{CardNo, DisplayNo, Fen};

use crate::cpu::apdu::{bcd_date, bcd_time};
use crate::cpu::app::{CpuApp, CpuError, CpuLoad, CpuRead, issue_cpu};
use crate::cpu::crypto::tx_type;
use crate::cpu::psam::{Psam, host_load_mac2};
use crate::keys::SystemKeys;
use crate::reader::{Fault, TearOutcome};
use crate::{SimCard, SimulatedReader};

const OPENING_BALANCE: Fen = 10_000;
const MAX_OPS: usize = 48;
const TERM_ID: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

/// The session's state: the card on its reader, the PSAM and the money the card must show.
struct Session {
    keys: SystemKeys,
    reader: SimulatedReader,
    psam: Psam,
    expected: Fen,
    time: NaiveDateTime,
}

/// Bytes as operations on an issued card; each operation is a byte and its arguments (see
/// the `match`). Panics only when the money or the log disagree with what happened; returns
/// the money the card holds at the end.
pub fn cpu_transaction(data: &[u8]) -> Fen {
    let Some(mut s) = Session::new() else {
        unreachable!("the fixed card issues");
    };
    let mut input = data.iter().copied();
    for _ in 0..MAX_OPS {
        let Some(op) = input.next() else { break };
        let mut arg = || input.next().unwrap_or(0);
        match op % 8 {
            0 => s.check_read(),
            1 => {
                let pin = format!("{:06}", u32::from(arg()) * 4099 % 1_000_000);
                let _ = CpuApp::verify_pin(&mut s.reader, &pin);
            }
            2 => s.purchase(Fen::from(u16::from_be_bytes([arg(), arg()]))),
            3 => s.load(
                Fen::from(u16::from_be_bytes([arg(), arg()])),
                CpuLoad::TopUp,
                None,
            ),
            4 => {
                let forged = [arg(), arg(), arg(), arg()];
                s.load(Fen::from(arg()) + 1, CpuLoad::PickUp, Some(forged));
            }
            5 => {
                let len = usize::from(arg() % 24);
                let apdu: Vec<u8> = (0..len).map(|_| arg()).collect();
                s.raw(&apdu);
            }
            6 => {
                let fault = match arg() % 5 {
                    0 => Fault::FailBefore,
                    1 => Fault::Tear(TearOutcome::Old),
                    2 => Fault::Tear(TearOutcome::New),
                    3 => Fault::RemovedAfter,
                    _ => Fault::AckLost,
                };
                let at = s.reader.op_count() + u64::from(arg() % 8);
                s.reader.inject(at, fault);
            }
            _ => s.reader.retap(),
        }
    }
    s.reader.clear_faults();
    s.reader.retap();
    s.check_read();
    s.expected
}

impl Session {
    fn new() -> Option<Session> {
        let keys = super::fuzzing::fuzz_keys();
        let card = issue_cpu(
            &keys,
            [0x55, 0x66, 0x77, 0x88],
            CardNo::new(4242)?,
            DisplayNo::new(2_026_004_242)?,
            1,
            NaiveDate::from_ymd_opt(2030, 6, 30)?,
            OPENING_BALANCE,
            "123456",
            7,
        )?;
        let mut reader = SimulatedReader::new(3);
        reader.place(SimCard::Cpu(card));
        let psam = Psam::new(&keys, TERM_ID, 1);
        Some(Session {
            keys,
            reader,
            psam,
            expected: OPENING_BALANCE,
            time: NaiveDate::from_ymd_opt(2027, 3, 1)?.and_hms_opt(12, 0, 0)?,
        })
    }

    /// A read that succeeds shows exactly the money the session expects.
    fn check_read(&mut self) {
        if let Ok(card) = CpuApp::read(&mut self.reader) {
            assert_eq!(card.balance, self.expected, "the card shows other money");
        }
    }

    fn read(&mut self) -> Option<CpuRead> {
        self.reader.retap();
        CpuApp::read(&mut self.reader).ok()
    }

    fn purchase(&mut self, amount: Fen) {
        let Some(card) = self.read() else { return };
        let Ok(session) = CpuApp::init_purchase(&mut self.reader, amount, self.psam.term_id())
        else {
            return;
        };
        assert_eq!(
            session.balance, self.expected,
            "INITIALIZE showed other money"
        );
        match CpuApp::debit_purchase(&mut self.reader, &card, &mut self.psam, &session, self.time) {
            Ok(_) => self.debited(amount),
            Err(CpuError::InsufficientBalance) => {
                assert!(
                    amount > self.expected,
                    "a purchase within the balance refused"
                )
            }
            Err(_) => {
                // Did it land? The card says, by its proof of the offline sequence number.
                self.reader.clear_faults();
                if self.read().is_some()
                    && let Ok(Some(_)) = CpuApp::prove(&mut self.reader, session.offline_seq)
                {
                    self.debited(amount);
                }
            }
        }
    }

    fn debited(&mut self, amount: Fen) {
        assert!(amount <= self.expected, "a purchase beyond the balance");
        self.expected -= amount;
        self.check_log(tx_type::PURCHASE_EP, amount);
    }

    /// A load whose MAC2 is the host's, or `forged`: a forged one may only land when it
    /// happens to be the host's.
    fn load(&mut self, amount: Fen, kind: CpuLoad, forged: Option<[u8; 4]>) {
        let Some(card) = self.read() else { return };
        let Ok(init) = CpuApp::init_load(&mut self.reader, &card, TERM_ID, amount) else {
            return;
        };
        assert_eq!(
            Fen::from(init.balance),
            self.expected,
            "INITIALIZE FOR LOAD showed other money"
        );
        let (date, tm) = (bcd_date(self.time), bcd_time(self.time));
        let Some(genuine) = host_load_mac2(&self.keys, &init, &date, &tm) else {
            panic!("the host refused the card's own MAC1");
        };
        let mac2 = forged.unwrap_or(genuine);
        let landed = match CpuApp::credit_load(&mut self.reader, kind, self.time, &mac2) {
            Ok(_) => true,
            Err(_) => {
                self.reader.clear_faults();
                self.read().is_some()
                    && matches!(
                        CpuApp::prove_load(&mut self.reader, init.online_seq),
                        Ok(Some(_))
                    )
            }
        };
        if landed {
            assert_eq!(
                mac2, genuine,
                "a load landed with a MAC2 the host did not make"
            );
            self.expected += amount;
            self.check_log(tx_type::LOAD_EP, amount);
        }
    }

    /// The newest log record is the transaction just done (type, amount).
    fn check_log(&mut self, ty: u8, amount: Fen) {
        if self.read().is_none() {
            return;
        }
        if let Ok(records) = CpuApp::records(&mut self.reader, 1)
            && let Some(r) = records.first()
        {
            let logged = u32::from_be_bytes([r[5], r[6], r[7], r[8]]);
            assert_eq!(r[9], ty, "the log's newest record has another type");
            assert_eq!(
                Fen::from(logged),
                amount,
                "the log's newest record has another amount"
            );
        }
    }

    /// Any command: never a panic. A raw command may complete a purchase or a load the fuzzer
    /// learned the MACs of, so the session takes the card's balance as the truth afterwards.
    fn raw(&mut self, apdu: &[u8]) {
        use crate::reader::Reader;
        let _ = self.reader.transceive(apdu);
        self.reader.clear_faults();
        if let Some(card) = self.read() {
            self.expected = card.balance;
        }
    }
}
