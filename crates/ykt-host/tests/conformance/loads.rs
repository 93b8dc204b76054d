//! Loads onto the card (docs/loads.md): top-ups, waiting loads, pick-ups, settlement, audit.
#![allow(dead_code)] // its helpers serve the property test (tests/loads_prop.rs) too

use ykt_host::domain::records::CpuLoad;
use ykt_host::domain::topup::{
    self, Authorised, LoadAuth, LoadServices, SimulatedBank, TopUpSetting,
};
use ykt_host::domain::{admin, journal::Actor, loads};
use ykt_host::repo_loads::{self, LoadState, WaitingSource, WaitingState};
use ykt_host::*;
use ykt_proto::{
    CardNo, CardType, CpuLoadInit, InfoCode, LoadCard, LoadPurpose, LoadRequest, PhysicalId,
    Record, RecordKind, RecordStatus, WaitingRequest,
};

use super::support::*;

/// A top-up device (充值机) of the world's merchant.
pub const TOPUP_DEVICE: PhysicalId = PhysicalId([0x05, 0, 0, 0x01]);
const TOPUP_TERMINAL: u32 = 21;

pub fn topup_origin() -> Origin {
    Origin {
        fep: FEP,
        device: TOPUP_DEVICE,
        terminal_no: TOPUP_TERMINAL,
    }
}

/// The world plus a top-up device whose cash an operator takes; returns the operator's id.
pub fn topup_world(s: &Store) -> i64 {
    world(s);
    s.execute(|tx| {
        add_device(tx, TOPUP_DEVICE, TOPUP_TERMINAL)?;
        let n = domain::operators::NewOperator {
            login: "clerk".into(),
            name: "出纳".into(),
            roles: ykt_host::access::Roles::of(&[ykt_host::access::Role::Clerk]),
            password_hash: "x".into(),
        };
        let op = domain::operators::add(tx, &Actor::system("test"), &n, now())?;
        let on = TopUpSetting::On {
            operator: Some(op.id),
        };
        topup::set_top_up(tx, TOPUP_DEVICE, &on, now())?;
        Ok(op.id)
    })
    .unwrap()
}

pub fn request(
    purpose: LoadPurpose,
    card: CardNo,
    serial: u32,
    counter: u32,
    before: i64,
    amount: i64,
) -> LoadRequest {
    LoadRequest {
        purpose,
        card_no: card,
        card: LoadCard::Mf1,
        card_counter: counter,
        balance_before: before,
        amount,
        subsidy_seq: 0,
        wallet_no: 1,
        serial,
        time: now(),
    }
}

pub fn authorize(s: &Store, origin: Origin, request: LoadRequest) -> Result<Authorised> {
    let keys = s.tac_verifier();
    s.execute(move |tx| {
        let services = LoadServices {
            bank: &SimulatedBank,
            keys: keys.as_deref(),
        };
        let auth = LoadAuth {
            origin,
            request: request.clone(),
        };
        topup::authorize(tx, &auth, services, now())
    })
}

/// The record the terminal journals for a load request, with the outcome of the card write.
pub fn load_record(device: PhysicalId, l: &LoadRequest, status: RecordStatus) -> Record {
    Record {
        device,
        serial: l.serial,
        kind: match l.purpose {
            LoadPurpose::Pickup => RecordKind::Subsidy,
            _ => RecordKind::TopUp,
        },
        status,
        online: true,
        card_type: l.card.card_type(),
        card_no: l.card_no,
        card_counter: l.card_counter,
        wallet_no: l.wallet_no,
        balance_before: l.balance_before,
        amount: l.amount,
        fee: 0,
        balance_after: l.balance_before + l.amount,
        time: l.time,
        merchant_no: MERCHANT,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

pub fn upload_from(s: &Store, origin: Origin, record: Record) -> Result<Outcome> {
    let tac = s.tac_verifier();
    s.execute(move |tx| domain::records::upload(tx, &origin, &record, tac.as_deref(), now()))
        .and_then(wire_view)
}

pub fn load_state(s: &Store, device: PhysicalId, serial: u32) -> LoadState {
    s.execute(move |tx| repo_loads::load_lock(tx.conn, device, serial))
        .unwrap()
        .unwrap()
        .state
}

pub fn balance_of(s: &Store, account: &'static str) -> i64 {
    s.read(move |tx| repo::account_balance(tx.conn, account))
        .unwrap()
        .unwrap()
}

pub fn deposit(s: &Store, card: CardNo, amount: i64, receipt: &str) -> Card {
    let receipt = receipt.to_owned();
    s.execute(move |tx| {
        let actor = Actor::system("test");
        admin::deposit(
            tx,
            admin::Payer::system(&actor),
            card,
            amount,
            &receipt,
            now(),
        )
    })
    .unwrap()
}

pub fn waiting_query(
    s: &Store,
    card: &Card,
    seq: u16,
    counter: u32,
    balance: i64,
) -> Result<topup::Waiting> {
    let q = WaitingRequest {
        card_no: card.no,
        card_type: CardType::Mf1,
        subsidy_seq: seq,
        card_counter: counter,
        balance,
    };
    s.execute(move |tx| topup::waiting(tx, &origin(), &q, now()))
}

// R-B4: a cash top-up is pending until its record says the card was written: Success posts
// it (card account, the operator's cash tally), CardPulled voids it (money back to funding),
// Initiated keeps it pending; the books balance at every step.
pub fn top_up_posts_and_voids(f: &Fixture) {
    let s = &f.store;
    let operator = topup_world(s);
    let c = card(s, 1_000);
    let l = request(LoadPurpose::TopUpCash, c.no, 1, 0, 1_000, 5_000);
    let a = authorize(s, topup_origin(), l.clone()).unwrap();
    assert_eq!(
        (a.amount, a.balance_after, a.account_balance),
        (5_000, 6_000, 6_000)
    );
    assert!(!a.duplicate);
    assert_eq!(balance_of(s, "topup:pending"), 5_000);
    assert_eq!(card_now(s, c.no).loads_pending, 1);
    audit_clean(s);
    // The outcome is unknown: the load stays pending.
    upload_from(
        s,
        topup_origin(),
        load_record(TOPUP_DEVICE, &l, RecordStatus::Initiated),
    )
    .unwrap();
    assert_eq!(load_state(s, TOPUP_DEVICE, 1), LoadState::Pending);
    upload_from(
        s,
        topup_origin(),
        load_record(TOPUP_DEVICE, &l, RecordStatus::Success),
    )
    .unwrap();
    assert!(matches!(
        load_state(s, TOPUP_DEVICE, 1),
        LoadState::Posted { .. }
    ));
    let now_card = card_now(s, c.no);
    assert_eq!((now_card.balance, now_card.loads_pending), (6_000, 0));
    assert_eq!(balance_of(s, "topup:pending"), 0);
    let cash = s
        .execute(move |tx| domain::shifts::report(tx, operator, "clerk", now().date()))
        .unwrap();
    assert_eq!((cash.cash.count, cash.cash.amount), (1, 5_000));
    assert_eq!((cash.top_ups.count, cash.top_ups.amount), (1, 5_000));
    // The daily report shows it by terminal, purpose and operator.
    let day = s
        .execute(|tx| domain::report::daily(tx, now().date()))
        .unwrap();
    assert_eq!(
        day.loads,
        vec![topup::LoadLine {
            device: TOPUP_DEVICE.to_string(),
            purpose: "cash".into(),
            operator: Some("clerk".into()),
            count: 1,
            amount: 5_000,
        }]
    );
    audit_clean(s);
    // Uploaded again: acknowledged, nothing booked twice.
    let again = upload_from(
        s,
        topup_origin(),
        load_record(TOPUP_DEVICE, &l, RecordStatus::Success),
    )
    .unwrap();
    assert!(again.duplicate);
    assert_eq!(card_now(s, c.no).balance, 6_000);

    let funding = balance_of(s, "funding");
    let l2 = request(LoadPurpose::TopUpCash, c.no, 2, 1, 6_000, 2_000);
    authorize(s, topup_origin(), l2.clone()).unwrap();
    assert_eq!(balance_of(s, "funding"), funding - 2_000);
    upload_from(
        s,
        topup_origin(),
        load_record(TOPUP_DEVICE, &l2, RecordStatus::CardPulled),
    )
    .unwrap();
    assert!(matches!(
        load_state(s, TOPUP_DEVICE, 2),
        LoadState::Voided { .. }
    ));
    assert_eq!(balance_of(s, "funding"), funding);
    assert_eq!(card_now(s, c.no).balance, 6_000);
    // A voided load is not a cash take: the tally is unchanged.
    let cash = s
        .execute(move |tx| domain::shifts::report(tx, operator, "clerk", now().date()))
        .unwrap();
    assert_eq!(cash.cash.amount, 5_000);
    audit_clean(s);
}

// R-B4: a repeated authorisation with the same content gets the same answer and books
// nothing twice; changed content, or a repeat after the load settled, gets 30.
pub fn top_up_repeat_is_idempotent(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 0);
    let l = request(LoadPurpose::TopUpCash, c.no, 1, 0, 0, 3_000);
    let first = authorize(s, topup_origin(), l.clone()).unwrap();
    let again = authorize(s, topup_origin(), l.clone()).unwrap();
    assert!(again.duplicate);
    assert_eq!(
        Authorised {
            duplicate: false,
            ..again
        },
        first
    );
    assert_eq!(balance_of(s, "topup:pending"), 3_000);
    let changed = LoadRequest {
        amount: 3_001,
        ..l.clone()
    };
    assert_eq!(refused(authorize(s, topup_origin(), changed)), 30);
    upload_from(
        s,
        topup_origin(),
        load_record(TOPUP_DEVICE, &l, RecordStatus::Success),
    )
    .unwrap();
    assert_eq!(refused(authorize(s, topup_origin(), l)), 30);
    audit_clean(s);
}

// R-B4: code 90 for each limit (per top-up, per card per day, balance after), code 28 for a
// device without top-ups and for cash at a device no operator takes cash at; a bank top-up
// needs no operator (bank:sim).
pub fn top_up_limits_and_functions(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 1_000);
    let limits = topup::Limits {
        per_top_up: 10_000,
        per_card_per_day: 15_000,
        balance_after: 20_000,
    };
    s.execute(move |tx| topup::set_limits(tx, limits)).unwrap();
    assert_eq!(s.execute(topup::limits).unwrap(), limits);
    let req =
        |serial, before, amount| request(LoadPurpose::TopUpCash, c.no, serial, 0, before, amount);
    assert_eq!(
        refused(authorize(s, topup_origin(), req(1, 1_000, 10_001))),
        90
    );
    assert_eq!(
        refused(authorize(s, topup_origin(), req(1, 12_000, 9_000))),
        90
    );
    authorize(s, topup_origin(), req(1, 1_000, 10_000)).unwrap();
    // Counted per card and day: the card shows the first landed (counter 1, 11 000), and
    // 10 000 + 6 000 > 15 000.
    let next = request(LoadPurpose::TopUpCash, c.no, 2, 1, 11_000, 6_000);
    assert_eq!(refused(authorize(s, topup_origin(), next)), 90);
    // A POS has no top-up function.
    assert_eq!(refused(authorize(s, origin(), req(3, 1_000, 100))), 28);
    // No operator assigned: no cash, but the bank.
    s.execute(|tx| {
        topup::set_top_up(
            tx,
            TOPUP_DEVICE,
            &TopUpSetting::On { operator: None },
            now(),
        )
    })
    .unwrap();
    assert_eq!(
        refused(authorize(s, topup_origin(), req(4, 1_000, 100))),
        28
    );
    let bank = request(LoadPurpose::TopUpBank, c.no, 5, 0, 1_000, 100);
    authorize(s, topup_origin(), bank).unwrap();
    assert_eq!(balance_of(s, "bank:sim"), -100);
    audit_clean(s);
}

// R-B4: a load record of a written card naming no load the host authorised is held in the
// exception queue with code 31 (never lost, never booked); one of a card not written is kept.
pub fn load_record_without_authorisation_is_held(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 0);
    let l = request(LoadPurpose::TopUpCash, c.no, 9, 0, 0, 1_000);
    let r = load_record(TOPUP_DEVICE, &l, RecordStatus::Success);
    assert_eq!(refused(upload_from(s, topup_origin(), r)), 31);
    let held = s
        .read(|tx| ykt_host::exception_rows::get(tx.conn, TOPUP_DEVICE, 9))
        .unwrap();
    assert!(held.is_some());
    assert_eq!(card_now(s, c.no).balance, 0);
    // Its serial belongs to the held record: a load authorisation under it is 30 (issue 18).
    assert_eq!(refused(authorize(s, topup_origin(), l.clone())), 30);
    // The terminal gave up on 0x08 (no answer): its `Failed` record is kept, nothing moved.
    let l = request(LoadPurpose::TopUpCash, c.no, 10, 0, 0, 1_000);
    let r = load_record(TOPUP_DEVICE, &l, RecordStatus::Failed);
    upload_from(s, topup_origin(), r.clone()).unwrap();
    let stored = s
        .read(|tx| repo::record_get(tx.conn, TOPUP_DEVICE, 10, false))
        .unwrap()
        .unwrap();
    assert_eq!((stored.record, stored.booked), (r, false));
    audit_clean(s);
}

// R-B4: a load left pending (its outcome lost) is settled by the card's next record from
// any terminal: counter + 1 with the load's balance after → posted; the same counter → voided;
// counter + 1 with another balance → the record is held (67), the load stays pending.
pub fn settlement_by_next_record(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    // Landed.
    let c = card(s, 1_000);
    let l = request(LoadPurpose::TopUpCash, c.no, 1, 0, 1_000, 4_000);
    authorize(s, topup_origin(), l.clone()).unwrap();
    debit(s, &c, purchase(c.no, 1, 1, 5_000, 100)).unwrap();
    assert!(matches!(
        load_state(s, TOPUP_DEVICE, 1),
        LoadState::Posted { .. }
    ));
    assert_eq!(card_now(s, c.no).balance, 4_900);
    // The terminal's own Initiated upload afterwards is acknowledged.
    upload_from(
        s,
        topup_origin(),
        load_record(TOPUP_DEVICE, &l, RecordStatus::Initiated),
    )
    .unwrap();
    audit_clean(s);
    // Not landed: the next record carries the load's counter.
    let c2 = card(s, 1_000);
    let l2 = request(LoadPurpose::TopUpCash, c2.no, 2, 0, 1_000, 4_000);
    authorize(s, topup_origin(), l2).unwrap();
    upload(s, offline(c2.no, 2, 0, 1_000, 100)).unwrap();
    assert!(matches!(
        load_state(s, TOPUP_DEVICE, 2),
        LoadState::Voided { .. }
    ));
    assert_eq!(card_now(s, c2.no).balance, 900);
    audit_clean(s);
    // Inconsistent: held, the load stays pending.
    let c3 = card(s, 1_000);
    let l3 = request(LoadPurpose::TopUpCash, c3.no, 3, 0, 1_000, 4_000);
    authorize(s, topup_origin(), l3).unwrap();
    assert_eq!(refused(upload(s, offline(c3.no, 3, 1, 3_000, 100))), 67);
    assert_eq!(load_state(s, TOPUP_DEVICE, 3), LoadState::Pending);
    audit_clean(s);
}

// R-B5: a card-office deposit waits for the card (info code 2 on a debit), 0x09 tells what
// waits, a pick-up claims it, its record posts it (subsidy sequence + 1); 63 on a sequence
// the host cannot explain, a pending pick-up that landed explains card = host + 1.
pub fn deposit_waits_and_is_picked_up(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 1_000);
    let before = card_now(s, c.no).balance;
    let after_deposit = deposit(s, c.no, 3_000, "r1");
    assert_eq!(
        (after_deposit.balance, after_deposit.waiting),
        (before, 3_000)
    );
    let no = c.no;
    s.execute(move |tx| admin::add_subsidy(tx, no, 2_000, 7, now()))
        .unwrap();
    let out = debit(s, &c, purchase(c.no, 1, 0, 1_000, 100)).unwrap();
    assert!(out.notices.contains(InfoCode::SUBSIDY_WAITING), "{out:?}");
    let w = waiting_query(s, &c, 0, 1, 900).unwrap();
    assert_eq!((w.amount, w.loads, w.subsidy_seq_after), (5_000, 2, 1));
    assert_eq!(refused(waiting_query(s, &c, 3, 1, 900)), 63);
    // The amount must be what waits.
    let wrong = request(LoadPurpose::Pickup, c.no, 2, 1, 900, 4_999);
    assert_eq!(refused(authorize(s, origin(), wrong)), 34);
    let l = request(LoadPurpose::Pickup, c.no, 2, 1, 900, 5_000);
    let a = authorize(s, origin(), l.clone()).unwrap();
    assert_eq!((a.balance_after, a.subsidy_seq_after), (5_900, 1));
    assert_eq!(card_now(s, c.no).waiting, 0);
    audit_clean(s);
    upload(s, load_record(DEVICE, &l, RecordStatus::Success)).unwrap();
    let done = card_now(s, c.no);
    assert_eq!(
        (done.balance, done.subsidy_seq, done.waiting),
        (5_900, 1, 0)
    );
    let states = s
        .execute(move |tx| repo_loads::waiting_all_of_card(tx.conn, no, 10))
        .unwrap();
    assert!(
        states
            .iter()
            .all(|w| matches!(w.state, WaitingState::Posted { .. }))
    );
    assert_eq!((balance_of(s, "waiting"), balance_of(s, "subsidy")), (0, 0));
    audit_clean(s);

    // A pending pick-up whose outcome was lost: the card shows sequence host + 1.
    deposit(s, c.no, 1_000, "r2");
    let l2 = request(LoadPurpose::Pickup, c.no, 3, 2, 5_900, 1_000);
    let l2 = LoadRequest {
        subsidy_seq: 1,
        ..l2
    };
    authorize(s, origin(), l2).unwrap();
    // Counter 5: the records in between are missing, the counter settles nothing.
    let w = waiting_query(s, &c, 2, 5, 6_500).unwrap();
    assert_eq!(w.amount, 0);
    assert_eq!(card_now(s, c.no).subsidy_seq, 2);
    assert!(matches!(load_state(s, DEVICE, 3), LoadState::Posted { .. }));
    audit_clean(s);
}

// R-B5: a voided pick-up's loads wait again; a waiting load revoked goes back to the account
// named; a claimed one cannot be revoked.
pub fn pickup_void_and_revoke(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 0);
    let id = {
        let no = c.no;
        let source = WaitingSource::Subsidy {
            batch: 3,
            expires: None,
        };
        s.execute(move |tx| loads::add_waiting(tx, no, 700, source, "funding", "sub:x", now()))
            .unwrap()
    };
    let l = request(LoadPurpose::Pickup, c.no, 1, 0, 0, 700);
    authorize(s, origin(), l.clone()).unwrap();
    let r = s.execute(move |tx| loads::revoke_waiting(tx, id, "funding", "rev:x", now()));
    assert!(matches!(r, Err(HostError::Invalid(_))), "{r:?}");
    upload(s, load_record(DEVICE, &l, RecordStatus::CardPulled)).unwrap();
    assert_eq!(card_now(s, c.no).waiting, 700);
    let w = s
        .execute(move |tx| loads::revoke_waiting(tx, id, "funding", "rev:x", now()))
        .unwrap();
    assert!(matches!(w.state, WaitingState::Revoked { .. }));
    assert_eq!(card_now(s, c.no).waiting, 0);
    assert_eq!(balance_of(s, "subsidy"), 0);
    audit_clean(s);
}

// R-B5: a purchase is not reversed (37) once a pick-up posted onto the card after it.
pub fn reversal_after_pickup_is_refused(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 1_000);
    upload(s, offline(c.no, 1, 0, 1_000, 100)).unwrap();
    deposit(s, c.no, 500, "r");
    let l = request(LoadPurpose::Pickup, c.no, 2, 1, 900, 500);
    authorize(s, origin(), l.clone()).unwrap();
    upload(s, load_record(DEVICE, &l, RecordStatus::Success)).unwrap();
    let rev = Record {
        kind: RecordKind::Reversal,
        original_serial: Some(1),
        balance_after: 1_500,
        ..offline(c.no, 3, 2, 1_400, 100)
    };
    assert_eq!(refused(upload(s, rev)), 37);
    audit_clean(s);
}

// R-B4: a CPU card's load: MAC2 only for a genuine MAC1 (99 otherwise), and its record posts
// only with a genuine load TAC.
pub fn cpu_load_mac_and_tac(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 0);
    let facts = |mac1: [u8; 4]| CpuLoad {
        card_no: c.no,
        balance_before: 0,
        amount: 2_000,
        online_seq: 4,
        random: [1, 2, 3, 4],
        mac1,
        terminal_id: [0, 0, 5, 0, 0, 1],
        time: now(),
    };
    let mac1 = test_load_mac(&facts([0; 4]), 1).to_be_bytes();
    let cpu = |mac1| LoadRequest {
        card: LoadCard::Cpu(CpuLoadInit {
            online_seq: 4,
            random: [1, 2, 3, 4],
            mac1,
            terminal_id: [0, 0, 5, 0, 0, 1],
        }),
        // A CPU load's counter is the purse's online sequence (protocol.md §6.16).
        ..request(LoadPurpose::TopUpBank, c.no, 1, 4, 0, 2_000)
    };
    assert_eq!(refused(authorize(s, topup_origin(), cpu([9; 4]))), 99);
    let a = authorize(s, topup_origin(), cpu(mac1)).unwrap();
    assert_eq!(a.mac2, test_load_mac(&facts(mac1), 2).to_be_bytes());
    let mut r = load_record(TOPUP_DEVICE, &cpu(mac1), RecordStatus::Success);
    r.tac = 1;
    assert_eq!(refused(upload_from(s, topup_origin(), r.clone())), 99);
    // Held: the terminal stops resending; the load stays pending.
    assert_eq!(load_state(s, TOPUP_DEVICE, 1), LoadState::Pending);
    // A CPU card's 0x09 carries no counter (0): it settles nothing.
    let q = WaitingRequest {
        card_no: c.no,
        card_type: CardType::Cpu,
        subsidy_seq: 0,
        card_counter: 0,
        balance: 2_000,
    };
    s.execute(move |tx| topup::waiting(tx, &origin(), &q, now()))
        .unwrap();
    assert_eq!(load_state(s, TOPUP_DEVICE, 1), LoadState::Pending);
    // The card's next load (online sequence 5): a load whose record is held is left to the
    // card office; the next one, never uploaded, is settled by the load after it.
    let next = |serial, seq: u16, before| {
        let facts = CpuLoad {
            balance_before: before,
            amount: 100,
            online_seq: seq,
            ..facts([0; 4])
        };
        let init = CpuLoadInit {
            online_seq: seq,
            random: [1, 2, 3, 4],
            mac1: test_load_mac(&facts, 1).to_be_bytes(),
            terminal_id: [0, 0, 5, 0, 0, 1],
        };
        LoadRequest {
            card: LoadCard::Cpu(init),
            ..request(
                LoadPurpose::TopUpBank,
                c.no,
                serial,
                u32::from(seq),
                before,
                100,
            )
        }
    };
    authorize(s, topup_origin(), next(2, 5, 2_000)).unwrap();
    assert_eq!(load_state(s, TOPUP_DEVICE, 1), LoadState::Pending);
    authorize(s, topup_origin(), next(3, 6, 2_100)).unwrap();
    assert!(matches!(
        load_state(s, TOPUP_DEVICE, 2),
        LoadState::Posted { .. }
    ));
    assert_eq!(card_now(s, c.no).balance, 100);
    audit_clean(s);
}

// R-B4 R-B5: the audit checks `topup:pending`, `waiting` and `subsidy` against their rows and
// each card's counted columns against its loads.
pub fn audit_catches_tampered_loads(f: &Fixture) {
    let s = &f.store;
    topup_world(s);
    let c = card(s, 0);
    authorize(
        s,
        topup_origin(),
        request(LoadPurpose::TopUpCash, c.no, 1, 0, 0, 800),
    )
    .unwrap();
    deposit(s, c.no, 300, "r");
    audit_clean(s);
    s.execute(|tx| {
        tx.conn.exec("UPDATE loads SET amount = amount + 1", &[])?;
        Ok(())
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(
        report.load_mismatches,
        vec!["account:topup:pending".to_owned()]
    );
    s.execute(|tx| {
        tx.conn.exec("UPDATE loads SET amount = amount - 1", &[])?;
        tx.conn
            .exec("UPDATE cards SET waiting = waiting + 5", &[])?;
        Ok(())
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(
        report.load_mismatches,
        vec![format!("card:{}:waiting", c.no.get())]
    );
}
