//! Property test of loads (docs/loads.md): random sequences of top-ups and pick-ups whose
//! answers are lost and repeated, whose card writes land or not, whose records are uploaded,
//! uploaded as unknown or never, interleaved with purchases, deposits and crashes of the host
//! (the store dropped and reopened from its files), keep the books balanced after every step
//! and put each landed load onto the card's account exactly once. SQLite (file-backed, so a
//! reopen is a real restart); the conformance suite runs every transition on both backends.
#![allow(clippy::unwrap_used)]

#[path = "conformance/loads.rs"]
mod loads;
#[path = "conformance/support.rs"]
mod support;

use proptest::prelude::*;
use ykt_host::*;
use ykt_proto::{CardNo, LoadPurpose, LoadRequest, RecordStatus};

use loads::*;
use support::*;

#[derive(Clone, Copy, Debug)]
enum Report {
    /// The outcome is uploaded.
    Uploaded,
    /// Power cut before the outcome was journalled: uploaded as `Initiated`.
    Unknown,
    /// Never uploaded (the terminal died): only the card tells.
    Never,
}

#[derive(Clone, Copy, Debug)]
struct LoadOp {
    pickup: bool,
    amount: i64,
    /// The answer was lost: the terminal asks again with the same serial.
    answer_lost: bool,
    landed: bool,
    report: Report,
}

#[derive(Clone, Debug)]
enum Op {
    Load(LoadOp),
    Purchase(i64),
    Deposit(i64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let report = prop_oneof![
        Just(Report::Uploaded),
        Just(Report::Unknown),
        Just(Report::Never)
    ];
    prop_oneof![
        4 => (any::<bool>(), 1i64..5_000, any::<bool>(), any::<bool>(), report).prop_map(
            |(pickup, amount, answer_lost, landed, report)| Op::Load(LoadOp {
                pickup,
                amount,
                answer_lost,
                landed,
                report,
            })
        ),
        2 => (1i64..2_000).prop_map(Op::Purchase),
        2 => (1i64..3_000).prop_map(Op::Deposit),
        1 => Just(Op::Reopen),
    ]
}

/// The card as it really is.
struct Sim {
    no: CardNo,
    counter: u32,
    balance: i64,
    seq: u16,
    serial: u32,
    landed: u32,
}

impl Sim {
    fn next_serial(&mut self) -> u32 {
        self.serial += 1;
        self.serial
    }
}

fn run_load(s: &Store, sim: &mut Sim, op: LoadOp) {
    let (purpose, device, origin, amount) = if op.pickup {
        let c = card_now(s, sim.no);
        let w = waiting_query(s, &c, sim.seq, sim.counter, sim.balance).unwrap();
        (LoadPurpose::Pickup, DEVICE, origin(), w.amount)
    } else {
        (
            LoadPurpose::TopUpCash,
            TOPUP_DEVICE,
            topup_origin(),
            op.amount,
        )
    };
    if amount == 0 || sim.balance + amount > 16_777_215 {
        return;
    }
    let l = LoadRequest {
        subsidy_seq: sim.seq,
        ..request(
            purpose,
            sim.no,
            sim.next_serial(),
            sim.counter,
            sim.balance,
            amount,
        )
    };
    let first = authorize(s, origin, l.clone()).unwrap();
    if op.answer_lost {
        let again = authorize(s, origin, l.clone()).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.balance_after, first.balance_after);
    }
    if op.landed {
        sim.counter += 1;
        sim.balance += amount;
        if op.pickup {
            sim.seq = sim.seq.wrapping_add(1);
        }
        sim.landed += 1;
    }
    let status = match (op.report, op.landed) {
        (Report::Never, _) => return,
        (Report::Unknown, _) => RecordStatus::Initiated,
        (Report::Uploaded, true) => RecordStatus::Success,
        (Report::Uploaded, false) => RecordStatus::CardPulled,
    };
    upload_from(s, origin, load_record(device, &l, status)).unwrap();
}

fn posted_loads(s: &Store, card: CardNo) -> u32 {
    s.read(move |tx| {
        tx.conn
            .query_one(
                "SELECT COUNT(*) FROM loads WHERE card_no = $1 AND state = 'posted'",
                &[card.get().into()],
            )?
            .int_as(0)
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    // R-B4 R-B5: whatever is lost, repeated or restarted, the books balance after every step
    // and every landed load posts exactly once.
    #[test]
    fn loads_keep_the_books(ops in proptest::collection::vec(op(), 1..14)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ykt.db");
        let open = || Store::open(config(Backend::Sqlite(path.clone()))).unwrap();
        let mut s = open();
        topup_world(&s);
        let c = card(&s, 1_000);
        let mut sim = Sim { no: c.no, counter: 0, balance: 1_000, seq: 0, serial: 0, landed: 0 };
        let mut receipt = 0;
        for op in &ops {
            match op {
                Op::Load(l) => run_load(&s, &mut sim, *l),
                // Strictly less: the card keeps a fen for the final record.
                Op::Purchase(amount) if *amount < sim.balance => {
                    let serial = sim.next_serial();
                    let r = offline(sim.no, serial, sim.counter, sim.balance, *amount);
                    upload(&s, r).unwrap();
                    sim.counter += 1;
                    sim.balance -= amount;
                }
                Op::Purchase(_) => {}
                Op::Deposit(amount) => {
                    receipt += 1;
                    let c = card_now(&s, sim.no);
                    if c.balance + c.waiting + amount <= 16_777_215 {
                        deposit(&s, sim.no, *amount, &format!("p{receipt}"));
                    }
                }
                Op::Reopen => {
                    drop(s);
                    s = open();
                }
            }
            audit_clean(&s);
        }
        // The card's next record settles whatever is still pending.
        let serial = sim.next_serial();
        upload(&s, offline(sim.no, serial, sim.counter, sim.balance, 1)).unwrap();
        let host = card_now(&s, sim.no);
        prop_assert_eq!(host.loads_pending, 0);
        prop_assert_eq!(host.balance, sim.balance - 1);
        prop_assert_eq!(posted_loads(&s, sim.no), sim.landed);
        audit_clean(&s);
    }
}
