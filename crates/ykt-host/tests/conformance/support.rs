//! Store factories for the conformance suite and a small world of entities to test against.
#![allow(dead_code)] // shared by several test crates; each uses a part

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{NaiveDate, NaiveDateTime};
use ykt_host::domain::admin;
use ykt_host::*;
use ykt_proto::{CardNo, CardType, DisplayNo, PhysicalId, Record, RecordKind, RecordStatus};

pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// A store and whatever must live as long as it (a temp dir, a database to drop).
pub struct Fixture {
    pub store: Store,
    /// Opens one more independent store (own writers, own connections) on the same data.
    pub reopen: Box<dyn Fn() -> Store>,
    /// The same with a single writer: its jobs run in submission order, batched.
    pub reopen_one_writer: Box<dyn Fn() -> Store>,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db
            && let Ok(mut c) = postgres::Client::connect(PG_ADMIN, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

pub fn config(backend: Backend) -> StoreConfig {
    let mut c = StoreConfig::new(backend);
    // Few connections per store: tests run in parallel against one server.
    c.writers = 2;
    c.readers = 1;
    c.tac = Some(std::sync::Arc::new(TestKeys));
    c
}

/// The test's stand-in for the key file: purchase TACs by [`expected_tac`], load MACs and
/// TACs by [`test_load_mac`] (any function of the load's content proves the hooks are
/// called and a wrong MAC or TAC is refused).
pub struct TestKeys;

/// The MAC of a CPU load: `part` 1 = MAC1 (the card's), 2 = MAC2 (the host's), 3 = the TAC.
pub fn test_load_mac(l: &domain::records::CpuLoad, part: u32) -> u32 {
    (l.card_no.get() ^ (l.amount as u32) ^ u32::from(l.online_seq) ^ (l.balance_before as u32))
        .wrapping_mul(2_654_435_761)
        .wrapping_add(part)
}

impl TacVerifier for TestKeys {
    fn verify(&self, r: &Record) -> bool {
        r.tac == expected_tac(r)
    }

    fn load_mac2(&self, l: &domain::records::CpuLoad) -> Option<[u8; 4]> {
        (u32::from_be_bytes(l.mac1) == test_load_mac(l, 1))
            .then(|| test_load_mac(l, 2).to_be_bytes())
    }

    fn verify_load_tac(&self, l: &domain::records::CpuLoad, tac: u32) -> bool {
        tac == test_load_mac(l, 3)
    }
}

/// The test's stand-in for the card crate's TAC: any function of the record's content works
/// for proving the hook is called and a wrong TAC is refused.
pub fn expected_tac(r: &Record) -> u32 {
    (r.card_no.get() ^ r.serial).wrapping_mul(2_654_435_761) ^ (r.amount as u32)
}

fn one_writer(backend: Backend) -> StoreConfig {
    let mut c = config(backend);
    c.writers = 1;
    c
}

pub fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ykt.db");
    let store = Store::open(config(Backend::Sqlite(path.clone()))).unwrap();
    let again = path.clone();
    Fixture {
        store,
        reopen: Box::new(move || Store::open(config(Backend::Sqlite(again.clone()))).unwrap()),
        reopen_one_writer: Box::new(move || {
            Store::open(one_writer(Backend::Sqlite(path.clone()))).unwrap()
        }),
        _dir: Some(dir),
        pg_db: None,
    }
}

/// Whether the PostgreSQL tests run: with `CI=true` they must, and an unreachable server
/// fails loudly; elsewhere they are skipped with a clear line.
pub fn pg_available() -> bool {
    match postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true: PostgreSQL at 127.0.0.1:5432 is mandatory but unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipped: PostgreSQL unreachable ({e})");
            false
        }
    }
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

pub fn postgres() -> Option<Fixture> {
    if !pg_available() {
        return None;
    }
    let db = format!(
        "ykt_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = postgres::Client::connect(PG_ADMIN, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = format!("host=127.0.0.1 port=5432 user=postgres dbname={db}");
    let store = Store::open(config(Backend::Postgres(url.clone()))).unwrap();
    let again = url.clone();
    Some(Fixture {
        store,
        reopen: Box::new(move || Store::open(config(Backend::Postgres(again.clone()))).unwrap()),
        reopen_one_writer: Box::new(move || {
            Store::open(one_writer(Backend::Postgres(url.clone()))).unwrap()
        }),
        _dir: None,
        pg_db: Some(db),
    })
}

// ---- a world to test in -------------------------------------------------------------------

pub const FEP: u32 = 1;
pub const MERCHANT: u32 = 100;
pub const TERMINAL_NO: u32 = 7;
pub const DEVICE: PhysicalId = PhysicalId([0x01, 0x02, 0x03, 0x04]);
pub const KEY: [u8; 16] = [0x11; 16];

pub fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

pub fn now() -> NaiveDateTime {
    at("2026-03-02 12:00:00")
}

pub fn origin() -> Origin {
    Origin {
        fep: FEP,
        device: DEVICE,
        terminal_no: TERMINAL_NO,
    }
}

/// An activated, signed-in FEP; a merchant; an enabled, authorised device.
pub fn world(store: &Store) {
    store
        .execute(|tx| {
            admin::register_fep(tx, FEP, "fep-1")?;
            admin::activate_fep(tx, FEP)?;
            admin::sign_in_fep(tx, FEP, now())?;
            admin::create_merchant(tx, MERCHANT, "一食堂")?;
            add_device(tx, DEVICE, TERMINAL_NO)
        })
        .unwrap();
}

pub fn add_device(tx: &mut Tx<'_>, id: PhysicalId, terminal_no: u32) -> Result<()> {
    admin::register_device(
        tx,
        NewDevice {
            id,
            terminal_no,
            merchant_no: Some(MERCHANT),
            mac_suite: MacSuite::Aes128Cmac,
            functions: Functions::ALL,
            max_amount: 50_000,
            params: ykt_host::params_codec::default_params(),
        },
    )?;
    admin::set_device_status(tx, id, DeviceStatus::Enabled)?;
    admin::set_device_key(tx, id, KEY)?;
    Ok(())
}

static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(1);

/// A normal card of class 1 expiring in 2027 with `balance` deposited; counter at 0.
pub fn card(store: &Store, balance: i64) -> Card {
    let display =
        DisplayNo::new(u64::from(NEXT_DISPLAY.fetch_add(1, Ordering::SeqCst)) + 2_000_000_000)
            .unwrap();
    store
        .execute(move |tx| {
            let c = admin::issue_card(
                tx,
                NewCard {
                    display_no: display,
                    class: 1,
                    expiry: NaiveDate::from_ymd_opt(2027, 6, 30).unwrap(),
                    counter: 0,
                },
            )?;
            // The opening balance, written on the card at issue (a deposit would wait).
            let receipt = format!("issue-{}", c.no.get());
            let actor = ykt_host::domain::journal::Actor::system("test");
            let payer = admin::Payer::system(&actor);
            admin::pay_opening_balance(tx, payer, c, balance, &receipt, now())
        })
        .unwrap()
}

pub fn view(card: &Card) -> CardView {
    CardView {
        display_no: card.display_no,
        class: card.class,
        expiry: card.expiry,
    }
}

/// A purchase record of `amount` on `card` at counter `counter`, balance as the card shows.
pub fn purchase(card: CardNo, serial: u32, counter: u32, before: i64, amount: i64) -> Record {
    Record {
        device: DEVICE,
        serial,
        kind: RecordKind::Purchase,
        status: RecordStatus::Initiated,
        online: true,
        card_type: CardType::Mf1,
        card_no: card,
        card_counter: counter,
        wallet_no: 1,
        balance_before: before,
        amount,
        fee: 0,
        balance_after: before - amount,
        time: now(),
        merchant_no: MERCHANT,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

/// The same purchase as an offline record already written to the card.
pub fn offline(card: CardNo, serial: u32, counter: u32, before: i64, amount: i64) -> Record {
    Record {
        status: RecordStatus::Written,
        online: false,
        ..purchase(card, serial, counter, before, amount)
    }
}

pub fn debit(store: &Store, card: &Card, record: Record) -> Result<Outcome> {
    let req = DebitRequest {
        origin: origin(),
        record,
        card_view: Some(view(card)),
    };
    store.execute(move |tx| domain::records::authorize(tx, &req, now()))
}

/// Uploads as the terminal sees it: a record held in the exception queue (R-B3) is the
/// refusal with its code.
pub fn upload(store: &Store, record: Record) -> Result<Outcome> {
    let tac = store.tac_verifier();
    store
        .execute(move |tx| domain::records::upload(tx, &origin(), &record, tac.as_deref(), now()))
        .and_then(wire_view)
}

/// The terminal's view of an upload: 0 with the outcome, or the code of a held record.
pub fn wire_view(u: Uploaded) -> Result<Outcome> {
    match u {
        Uploaded::Stored(o) => Ok(o),
        Uploaded::Held(code) => Err(HostError::Refused(code)),
    }
}

pub fn refused(r: Result<impl std::fmt::Debug>) -> u8 {
    match r {
        Err(HostError::Refused(code)) => code.0,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub fn audit_clean(store: &Store) {
    let report = store.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(report.is_clean(), "audit: {report:?}");
}

pub fn card_now(store: &Store, no: CardNo) -> Card {
    store.execute(move |tx| admin::card(tx, no)).unwrap()
}
