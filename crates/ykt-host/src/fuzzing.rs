//! Entry point of the fuzz target `host_booking` (`fuzz/`) and its stable property test: the
//! host's booking of whatever terminals send — uploads of records, online debits, load
//! authorisations and what-waits queries with arbitrary fields, for cards and devices that
//! exist — on a real SQLite store. Whatever the input: no panic, no broken invariant
//! (`HostError::Invariant` or `Corrupt` is a bug), and the books audit clean afterwards.

use std::cell::RefCell;
use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::messages::{LoadCard, LoadPurpose, LoadRequest, WaitingRequest};
use ykt_proto::{CardNo, CardType, DisplayNo, Fen, PhysicalId, Record, RecordKind, RecordStatus};

use crate::domain::journal::Actor;
use crate::domain::{admin, records, topup};
use crate::model::{DeviceStatus, Functions, MacSuite, NewCard, NewDevice};
use crate::{Backend, DebitRequest, HostError, Origin, Store, StoreConfig, ledger};

const FEP: u32 = 1;
const MERCHANT: u32 = 100;
const DEVICES: [PhysicalId; 2] = [PhysicalId([1, 2, 3, 4]), PhysicalId([1, 2, 3, 5])];
const CARDS: usize = 4;
const OPENING_BALANCE: Fen = 10_000;
/// Inputs run on one store before it is made afresh (its tables stay small and quick).
const RUNS_PER_STORE: u32 = 1;
const MAX_OPS: usize = 96;

struct World {
    dir: PathBuf,
    store: Store,
    cards: Vec<CardNo>,
    runs: u32,
    /// Serials already used per device: a fresh one each time keeps most records new.
    next_serial: u32,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// How a batch went: requests the host accepted and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub accepted: u32,
    pub refused: u32,
}

/// Bytes as a batch of terminal requests (see the `match`); panics when the host breaks an
/// invariant or its books do not audit clean.
pub fn booking(data: &[u8]) -> Tally {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|w| w.runs >= RUNS_PER_STORE) {
            if let Some(old) = slot.take() {
                drop(old.store);
                let _ = std::fs::remove_dir_all(&old.dir);
            }
            *slot = Some(World::new());
        }
        let Some(w) = slot.as_mut() else {
            unreachable!("the world was just made")
        };
        w.runs += 1;
        w.run(data)
    })
}

fn at(day: u8, second: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 1 + u32::from(day % 28))
        .and_then(|d| d.and_hms_opt(8 + second / 3600 % 12, second / 60 % 60, second % 60))
        .unwrap_or_default()
}

impl World {
    fn new() -> World {
        // tmpfs where there is one: the store syncs every commit.
        let base = ["/dev/shm", "/tmp"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "ykt-fuzz-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("fuzz store dir: {e}"));
        let mut config = StoreConfig::new(Backend::Sqlite(dir.join("ykt.db")));
        config.readers = 1;
        let store = Store::open(config).unwrap_or_else(|e| panic!("fuzz store: {e}"));
        let cards = store
            .execute(|tx| {
                admin::register_fep(tx, FEP, "fep")?;
                admin::activate_fep(tx, FEP)?;
                admin::sign_in_fep(tx, FEP, at(0, 0))?;
                admin::create_merchant(tx, MERCHANT, "食堂")?;
                for (i, id) in DEVICES.into_iter().enumerate() {
                    admin::register_device(
                        tx,
                        NewDevice {
                            id,
                            terminal_no: 7 + i as u32,
                            merchant_no: Some(MERCHANT),
                            mac_suite: MacSuite::Aes128Cmac,
                            functions: Functions::ALL,
                            max_amount: 50_000,
                            params: crate::params_codec::default_params(),
                        },
                    )?;
                    admin::set_device_status(tx, id, DeviceStatus::Enabled)?;
                    admin::set_device_key(tx, id, [0x11; 16])?;
                }
                topup::set_top_up(
                    tx,
                    DEVICES[1],
                    &topup::TopUpSetting::On { operator: None },
                    at(0, 0),
                )?;
                let actor = Actor::system("fuzz");
                let mut cards = Vec::new();
                for i in 0..CARDS {
                    let display = DisplayNo::new(2_000_000_001 + i as u64)
                        .ok_or_else(|| HostError::Invalid("display".into()))?;
                    let card = admin::issue_card(
                        tx,
                        NewCard {
                            display_no: display,
                            class: 1,
                            expiry: NaiveDate::from_ymd_opt(2030, 6, 30).unwrap_or_default(),
                            counter: 0,
                        },
                    )?;
                    let receipt = format!("issue-{}", card.no.get());
                    let card = admin::pay_opening_balance(
                        tx,
                        admin::Payer::system(&actor),
                        card,
                        OPENING_BALANCE,
                        &receipt,
                        at(0, 0),
                    )?;
                    cards.push(card.no);
                }
                Ok(cards)
            })
            .unwrap_or_else(|e| panic!("fuzz world: {e}"));
        World {
            dir,
            store,
            cards,
            runs: 0,
            next_serial: 1,
        }
    }

    fn run(&mut self, data: &[u8]) -> Tally {
        let mut tally = Tally::default();
        let mut input = data.iter().copied();
        for _ in 0..MAX_OPS {
            let Some(op) = input.next() else { break };
            let mut b = || input.next().unwrap_or(0);
            let device = DEVICES[usize::from(b() % 2)];
            let origin = Origin {
                fep: FEP,
                device,
                terminal_no: if device == DEVICES[0] { 7 } else { 8 },
            };
            let card = self.cards[usize::from(b()) % CARDS];
            let serial = match b() % 4 {
                // Mostly new serials; sometimes one used before (repeats, conflicts: 30).
                0 => self.next_serial.saturating_sub(u32::from(b() % 4) + 1),
                _ => self.next_serial,
            };
            self.next_serial += 1;
            let counter = u32::from(b() % 8);
            let balance = money(b(), b());
            let amount = money(b(), b());
            let time = at(b(), u32::from(b()) * 97);
            match op % 4 {
                0 | 1 => {
                    let record = Record {
                        device,
                        serial,
                        kind: RecordKind::ALL[usize::from(b()) % RecordKind::ALL.len()],
                        status: RecordStatus::ALL[usize::from(b()) % RecordStatus::ALL.len()],
                        online: b() % 2 == 0,
                        card_type: CardType::Mf1,
                        card_no: card,
                        card_counter: counter,
                        wallet_no: 1,
                        balance_before: balance,
                        amount,
                        fee: Fen::from(b() % 3),
                        balance_after: balance.saturating_sub(amount),
                        time,
                        merchant_no: MERCHANT,
                        original_serial: (b() % 3 == 1).then(|| serial.saturating_sub(1)),
                        item_code: 0,
                        tac: 0,
                    };
                    if op % 4 == 0 {
                        tally.count(self.store.execute(move |tx| {
                            records::upload(tx, &origin, &record, None, time).map(|_| ())
                        }));
                    } else {
                        let req = DebitRequest {
                            origin,
                            record,
                            card_view: None,
                        };
                        tally.count(
                            self.store
                                .execute(move |tx| records::authorize(tx, &req, time).map(|_| ())),
                        );
                    }
                }
                2 => {
                    let request = LoadRequest {
                        purpose: PURPOSES[usize::from(b()) % PURPOSES.len()],
                        card_no: card,
                        card: LoadCard::Mf1,
                        card_counter: counter,
                        balance_before: balance,
                        amount,
                        subsidy_seq: u16::from(b() % 3),
                        wallet_no: 1,
                        serial,
                        time,
                    };
                    let req = topup::LoadAuth { origin, request };
                    tally.count(self.store.execute(move |tx| {
                        let services = topup::LoadServices {
                            bank: &topup::SimulatedBank,
                            keys: None,
                        };
                        topup::authorize(tx, &req, services, time).map(|_| ())
                    }));
                }
                _ => {
                    let q = WaitingRequest {
                        card_no: card,
                        card_type: CardType::Mf1,
                        subsidy_seq: u16::from(b() % 3),
                        card_counter: counter,
                        balance,
                    };
                    tally.count(
                        self.store
                            .execute(move |tx| topup::waiting(tx, &origin, &q, time).map(|_| ())),
                    );
                }
            }
        }
        let report = self
            .store
            .read(|tx| ledger::audit(tx.conn))
            .unwrap_or_else(|e| panic!("audit failed: {e}"));
        assert!(
            report.is_clean(),
            "the books do not audit clean: {report:?}"
        );
        tally
    }
}

impl Tally {
    /// A refusal is the host's right; a broken invariant or corrupt data is a bug.
    fn count(&mut self, r: crate::Result<()>) {
        match r {
            Ok(()) => self.accepted += 1,
            Err(e @ (HostError::Invariant(_) | HostError::Corrupt(_))) => {
                panic!("the host broke an invariant: {e}")
            }
            Err(_) => self.refused += 1,
        }
    }
}

const PURPOSES: [LoadPurpose; 3] = [
    LoadPurpose::TopUpCash,
    LoadPurpose::TopUpBank,
    LoadPurpose::Pickup,
];

/// Money from two bytes: mostly small amounts, sometimes the edges of the card's 24 bits
/// and of i64.
fn money(hi: u8, lo: u8) -> Fen {
    match hi {
        0xFF => i64::MAX - Fen::from(lo),
        0xFE => i64::MIN + Fen::from(lo),
        0xFD => (1 << 24) - Fen::from(lo),
        0xFC => -Fen::from(lo),
        _ => Fen::from(u16::from_be_bytes([hi, lo]) % 20_000),
    }
}
