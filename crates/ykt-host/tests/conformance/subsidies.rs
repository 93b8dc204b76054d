//! Conformance tests of subsidy batches (R-B5) on both backends: import with per-line
//! errors and caps, the two-person rule, issue into waiting loads, revoke and expiry back to
//! the funding account, journalled, the audit clean after each step and catching tampering.

use chrono::NaiveDate;
use ykt_host::access::Role;
use ykt_host::domain::cardholders as ch;
use ykt_host::domain::journal::{self, Actor, Filter};
use ykt_host::domain::loads;
use ykt_host::domain::subsidies::{self as sub, BatchState, NewBatch};
use ykt_host::domain::topup::{self, LoadAuth, LoadServices, SimulatedBank};
use ykt_host::domain::{admin, approvals};
use ykt_host::import::{Format, LineError};
use ykt_host::import_subsidies;
use ykt_host::repo_holders::{HolderFields, HolderKind};
use ykt_host::*;
use ykt_proto::{LoadCard, LoadPurpose, LoadRequest, Record, RecordKind, RecordStatus};

use super::people::{add, admin_actor};
use super::support::*;

/// The card office: a clerk imports, two finance officers check and approve.
struct Office {
    clerk: Actor,
    checker: Actor,
    approver: Actor,
}

fn office(s: &Store) -> Office {
    let admin = admin_actor(s);
    let actor = |login: &str, role: Role| {
        let o = add(s, &admin, login, &[role]);
        Actor::operator(o.id, login, Some(role), "127.0.0.1")
    };
    Office {
        clerk: actor("wang.li", Role::Clerk),
        checker: actor("zhao.cw", Role::Finance),
        approver: actor("qian.cw", Role::Finance),
    }
}

/// A cardholder `number` holding a new normal card.
fn holder_with_card(s: &Store, number: &str) -> Card {
    let c = card(s, 0);
    let (n, no) = (number.to_owned(), c.no);
    s.execute(move |tx| {
        let f = HolderFields {
            name: "学生".into(),
            kind: HolderKind::Student,
            department: String::new(),
            id_number: None,
            phone: None,
        };
        ch::add(tx, &Actor::system("test"), &n, &f, now())?;
        ch::attach_card(tx, &Actor::system("test"), &n, no, now())
    })
    .unwrap();
    c
}

fn batch(no: u32) -> NewBatch {
    NewBatch {
        no,
        name: format!("伙食补助 {no}"),
        note: String::new(),
        funding: "funding".into(),
        expires_on: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        batch_cap: None,
        card_cap: None,
    }
}

fn import(
    s: &Store,
    who: &Actor,
    n: NewBatch,
    csv: &str,
) -> Result<std::result::Result<sub::Batch, Vec<LineError>>> {
    let list = import_subsidies::parse(Format::Csv, csv.as_bytes(), n.no)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let who = who.clone();
    s.execute(move |tx| sub::import(tx, &who, &n, &list, "sha", now()))
}

type Step = fn(&mut Tx<'_>, &Actor, u32, chrono::NaiveDateTime) -> Result<sub::Batch>;

fn step(s: &Store, who: &Actor, no: u32, f: Step) -> Result<sub::Batch> {
    step_at(s, who, no, f, now())
}

fn step_at(
    s: &Store,
    who: &Actor,
    no: u32,
    f: Step,
    at: chrono::NaiveDateTime,
) -> Result<sub::Batch> {
    let who = who.clone();
    s.execute(move |tx| f(tx, &who, no, at))
}

fn balance(s: &Store, account: &str) -> i64 {
    let a = account.to_owned();
    s.read(move |tx| repo::account_balance(tx.conn, &a))
        .unwrap()
        .unwrap()
}

/// The journal's newest entries of one operation.
fn entries(s: &Store, operation: &str) -> Vec<journal::Entry> {
    let f = Filter {
        operation: Some(operation.to_owned()),
        limit: 10,
        ..Filter::default()
    };
    s.read(move |tx| journal::list(tx, &f)).unwrap()
}

fn forbidden(r: Result<sub::Batch>) -> String {
    match r {
        Err(HostError::Forbidden(m)) => m,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

/// Imported, checked and approved by three different operators.
fn approved(s: &Store, o: &Office, n: NewBatch, csv: &str) -> u32 {
    let no = n.no;
    import(s, &o.clerk, n, csv).unwrap().unwrap();
    step(s, &o.checker, no, sub::check).unwrap();
    step(s, &o.approver, no, sub::approve).unwrap();
    no
}

// R-B5: every refused line with its number — unknown student, card not active, a card twice,
// over the card cap — and nothing imported; the batch cap; a taken batch number.
pub fn subsidy_import_errors_per_line(f: &Fixture) {
    let s = &f.store;
    let o = office(s);
    let a = holder_with_card(s, "2026001");
    let lost = card(s, 0);
    let lost_no = lost.no;
    s.execute(move |tx| admin::report_loss(tx, lost_no))
        .unwrap();
    let csv = format!(
        "学工号,卡号,金额,备注\n\
         2026001,,100.00,ok\n\
         2026999,,10,unknown\n\
         ,{lost},10,lost card\n\
         ,{a},5,same card again\n\
         ,{cap},2000.01,over the card cap\n\
         2026001,,1.001,three decimals\n",
        lost = lost.no.get(),
        a = a.no.get(),
        cap = card(s, 0).no.get(),
    );
    let lines = import(s, &o.clerk, batch(1), &csv).unwrap().unwrap_err();
    let at: Vec<u64> = lines.iter().map(|l| l.line).collect();
    assert_eq!(at, [3, 4, 5, 6, 7], "{lines:?}");
    assert!(lines[0].error.contains("无此学工号"), "{lines:?}");
    assert!(lines[1].error.contains("不能发放"), "{lines:?}");
    assert!(lines[2].error.contains("重复"), "{lines:?}");
    assert!(lines[3].error.contains("每卡上限"), "{lines:?}");
    assert!(lines[4].error.contains("两位小数"), "{lines:?}");
    assert!(s.read(|tx| sub::get(tx, 1)).unwrap().is_none());

    let b = holder_with_card(s, "2026002");
    let two = format!("卡号,金额\n{},600\n{},600\n", a.no.get(), b.no.get());
    let capped = NewBatch {
        batch_cap: Some(100_000),
        ..batch(1)
    };
    let lines = import(s, &o.clerk, capped, &two).unwrap().unwrap_err();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].error.contains("每批上限"), "{lines:?}");
    let over_system = NewBatch {
        card_cap: Some(10_000_000),
        ..batch(1)
    };
    assert!(matches!(
        import(s, &o.clerk, over_system, &two),
        Err(HostError::Invalid(_))
    ));

    // The system's caps bound every batch: lowered, the same list is over the card cap.
    let change = s
        .execute(|tx| sub::set_caps(tx, 100_000_000, 50_000))
        .unwrap();
    assert_eq!(change.operation, "subsidy.caps");
    let lines = import(s, &o.clerk, batch(1), &two).unwrap().unwrap_err();
    assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), [2, 3]);
    assert!(s.execute(|tx| sub::set_caps(tx, 1, 0)).is_err());
    s.execute(|tx| sub::set_caps(tx, 100_000_000, 200_000))
        .unwrap();
    let ok = import(s, &o.clerk, batch(1), &two).unwrap().unwrap();
    assert_eq!(
        (ok.lines, ok.total, ok.state),
        (2, 120_000, BatchState::Imported)
    );
    assert!(
        matches!(import(s, &o.clerk, batch(1), &two), Err(HostError::Invalid(m)) if m.contains("已存在"))
    );
    audit_clean(s);
}

// R-B5, R-B1: one operator checks, a second approves; neither the checker nor the importer
// may approve; nothing is issued before approval; a rejected check can be redone.
pub fn subsidy_two_person_rule(f: &Fixture) {
    let s = &f.store;
    let o = office(s);
    let a = holder_with_card(s, "2026001");
    let csv = format!("卡号,金额\n{},50\n", a.no.get());
    import(s, &o.clerk, batch(7), &csv).unwrap().unwrap();
    assert!(
        step(s, &o.approver, 7, sub::approve).is_err(),
        "not checked"
    );
    assert!(step(s, &o.clerk, 7, sub::issue).is_err(), "not approved");
    let checked = step(s, &o.checker, 7, sub::check).unwrap();
    assert_eq!(checked.state, BatchState::Checked);
    assert!(step(s, &o.checker, 7, sub::check).is_err(), "checked once");
    let m = forbidden(step(s, &o.checker, 7, sub::approve));
    assert!(m.contains("自己"), "{m}");
    let m = forbidden(step(s, &o.clerk, 7, sub::approve));
    assert_eq!(m, sub::OWN_IMPORT);

    // A rejection sends the batch back to be checked again.
    let id = checked.approval.unwrap();
    let approver = o.approver.clone();
    s.execute(move |tx| {
        approvals::decide(
            tx,
            &approver,
            id,
            approvals::Decision::Reject {
                note: "金额有误".into(),
            },
            now(),
            |_, _| Err(HostError::Invariant("not run".into())),
        )
    })
    .unwrap();
    assert!(step(s, &o.approver, 7, sub::approve).is_err(), "rejected");
    let again = step(s, &o.checker, 7, sub::check).unwrap();
    assert_ne!(again.approval, Some(id));
    let done = step(s, &o.approver, 7, sub::approve).unwrap();
    assert_eq!(done.state, BatchState::Approved);
    assert_eq!(done.approved.unwrap().by, o.approver.operator.unwrap());
    let log = s
        .read(|tx| {
            journal::list(
                tx,
                &Filter {
                    target: Some("subsidy:7".into()),
                    limit: 100,
                    ..Filter::default()
                },
            )
        })
        .unwrap();
    let ops: Vec<&str> = log.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(
        ops,
        [
            "approval.approve",
            "subsidy.check",
            "approval.request",
            "approval.reject",
            "subsidy.check",
            "approval.request",
            "subsidy.import"
        ]
    );
    assert_eq!(log[0].login, "qian.cw");
    audit_clean(s);
}

// R-B5: issuing moves the batch's total from its funding account into `subsidy` as waiting
// loads, in one journalled transaction; a revoke gives back what waits; the books balance.
pub fn subsidy_issue_and_revoke(f: &Fixture) {
    let s = &f.store;
    let o = office(s);
    let (a, b) = (
        holder_with_card(s, "2026001"),
        holder_with_card(s, "2026002"),
    );
    let csv = "学工号,金额,备注\n2026001,100.50,一月\n2026002,20,一月\n";
    let fund = NewBatch {
        funding: "fund:zhuxuejin".into(),
        ..batch(3)
    };
    approved(s, &o, fund, csv);
    let issued = step(s, &o.clerk, 3, sub::issue).unwrap();
    assert_eq!(issued.state, BatchState::Issued);
    assert!(step(s, &o.clerk, 3, sub::issue).is_err(), "issued once");
    assert_eq!(balance(s, "fund:zhuxuejin"), -12_050);
    assert_eq!(balance(s, "subsidy"), 12_050);
    let waits = s
        .execute(move |tx| loads::waiting_for_card(tx, a.no))
        .unwrap();
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].amount, 10_050);
    assert_eq!(card_now(s, b.no).waiting, 2_000);
    let entry = &entries(s, "subsidy.issue")[0];
    assert_eq!(entry.login, "wang.li");
    audit_clean(s);
    let r = s
        .read(|tx| {
            let b = sub::get(tx, 3)?.unwrap();
            sub::report(tx, &b)
        })
        .unwrap();
    assert_eq!((r.issued.count, r.issued.amount), (2, 12_050));
    assert_eq!(r.waiting.amount, 12_050);

    let revoked = step(s, &o.checker, 3, sub::revoke).unwrap();
    let entry = &entries(s, "subsidy.revoke")[0];
    assert_eq!(
        (entry.login.as_str(), entry.target.as_str()),
        ("zhao.cw", "subsidy:3")
    );
    assert_eq!(revoked.state, BatchState::Closed);
    assert_eq!(revoked.revoked, 2);
    assert_eq!(balance(s, "fund:zhuxuejin"), 0);
    assert_eq!(balance(s, "subsidy"), 0);
    assert_eq!(card_now(s, a.no).waiting, 0);
    assert!(step(s, &o.checker, 3, sub::revoke).is_err(), "closed");
    let lines = s.read(|tx| sub::lines(tx, 3, 0, 10)).unwrap();
    let states: Vec<String> = lines
        .iter()
        .map(|l| {
            sub::line_view(l).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(states, ["revoked", "revoked"]);
    audit_clean(s);

    // A batch revoked before it was issued moved nothing.
    let c = holder_with_card(s, "2026003");
    import(
        s,
        &o.clerk,
        batch(4),
        &format!("卡号,金额\n{},1\n", c.no.get()),
    )
    .unwrap()
    .unwrap();
    let closed = step(s, &o.checker, 4, sub::revoke).unwrap();
    assert_eq!((closed.state, closed.revoked), (BatchState::Closed, 1));
    audit_clean(s);
}

// R-B5: what still waits after the batch's date goes back to funding when an operator
// expires it — not before; journalled; the batch closes.
pub fn subsidy_expiry(f: &Fixture) {
    let s = &f.store;
    let o = office(s);
    let a = holder_with_card(s, "2026001");
    approved(s, &o, batch(5), &format!("卡号,金额\n{},30\n", a.no.get()));
    step(s, &o.clerk, 5, sub::issue).unwrap();
    let funding = balance(s, "funding");
    let last_day = at("2026-03-31 23:59:59");
    let e = step_at(s, &o.checker, 5, sub::expire, last_day).unwrap_err();
    assert!(e.to_string().contains("尚未过期"), "{e}");
    let after = at("2026-04-01 00:00:00");
    let b = step_at(s, &o.checker, 5, sub::expire, after).unwrap();
    assert_eq!((b.state, b.expired), (BatchState::Closed, 1));
    assert_eq!(balance(s, "funding"), funding + 3_000);
    assert_eq!(card_now(s, a.no).waiting, 0);
    let log = entries(s, "subsidy.expire");
    assert_eq!(log[0].login, "zhao.cw");
    let day = s.read(move |tx| sub::day(tx, after.date())).unwrap();
    assert_eq!((day.expired.count, day.expired.amount), (1, 3_000));
    audit_clean(s);
}

// R-B5: the audit finds a line that disagrees with its waiting load, and a batch whose sum
// differs from its lines.
pub fn subsidy_audit_finds_tampering(f: &Fixture) {
    let s = &f.store;
    let o = office(s);
    let a = holder_with_card(s, "2026001");
    approved(s, &o, batch(6), &format!("卡号,金额\n{},30\n", a.no.get()));
    step(s, &o.clerk, 6, sub::issue).unwrap();
    audit_clean(s);
    s.execute(|tx| {
        tx.conn.exec(
            "UPDATE subsidy_lines SET amount = amount + 1 WHERE batch_no = 6",
            &[],
        )
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(
        report.subsidy_mismatches,
        ["subsidy line 6/2", "subsidy batch 6 counts"],
        "{report:?}"
    );
}

/// The card's next tap on the world's POS picks up what waits (an MF1 card at counter 0 with
/// nothing on it): the load authorised, the card written, the record uploaded.
fn pick_up(s: &Store, c: &Card, serial: u32, amount: i64) {
    let l = LoadRequest {
        purpose: LoadPurpose::Pickup,
        card_no: c.no,
        card: LoadCard::Mf1,
        card_counter: 0,
        balance_before: 0,
        amount,
        subsidy_seq: 0,
        wallet_no: 1,
        serial,
        time: now(),
    };
    let keys = s.tac_verifier();
    let req = LoadAuth {
        origin: origin(),
        request: l.clone(),
    };
    s.execute(move |tx| {
        let services = LoadServices {
            bank: &SimulatedBank,
            keys: keys.as_deref(),
        };
        topup::authorize(tx, &req, services, now())
    })
    .unwrap();
    let record = Record {
        kind: RecordKind::Subsidy,
        status: RecordStatus::Success,
        fee: 0,
        balance_after: amount,
        ..purchase(c.no, serial, 0, 0, 0)
    };
    upload(s, Record { amount, ..record }).unwrap();
}

// R-B5: a line picked up at the POS shows as picked up in the batch and its report; a
// revoke afterwards takes back only what still waits; the day's report counts both.
pub fn subsidy_picked_up_then_revoked(f: &Fixture) {
    let s = &f.store;
    world(s);
    let o = office(s);
    let (a, b) = (
        holder_with_card(s, "2026001"),
        holder_with_card(s, "2026002"),
    );
    let csv = format!("卡号,金额\n{},15\n{},25\n", a.no.get(), b.no.get());
    approved(s, &o, batch(8), &csv);
    step(s, &o.clerk, 8, sub::issue).unwrap();
    pick_up(s, &a, 1, 1_500);
    assert_eq!(card_now(s, a.no).balance, 1_500);
    audit_clean(s);
    let states = |s: &Store| -> Vec<String> {
        s.read(|tx| sub::lines(tx, 8, 0, 10))
            .unwrap()
            .iter()
            .map(|l| {
                sub::line_view(l).unwrap()["state"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(states(s), ["picked-up", "waiting"]);
    let funding = balance(s, "funding");
    let closed = step(s, &o.checker, 8, sub::revoke).unwrap();
    assert_eq!((closed.state, closed.revoked), (BatchState::Closed, 1));
    assert_eq!(balance(s, "funding"), funding + 2_500);
    assert_eq!(balance(s, "subsidy"), 0);
    assert_eq!(states(s), ["picked-up", "revoked"]);
    let r = s
        .read(|tx| {
            let b = sub::get(tx, 8)?.unwrap();
            sub::report(tx, &b)
        })
        .unwrap();
    assert_eq!((r.issued.count, r.issued.amount), (2, 4_000));
    assert_eq!((r.picked_up.count, r.picked_up.amount), (1, 1_500));
    assert_eq!((r.revoked.count, r.revoked.amount), (1, 2_500));
    assert_eq!(r.waiting.count, 0);
    let day = s.read(|tx| sub::day(tx, now().date())).unwrap();
    assert_eq!(day.issued.amount, 4_000);
    assert_eq!(day.picked_up.amount, 1_500);
    assert_eq!(day.revoked.amount, 2_500);
    audit_clean(s);
}

/// A step of the state-machine test, by operator 0 (the importer), 1 or 2.
#[derive(Clone, Copy, Debug)]
enum Act {
    Check(usize),
    Approve(usize),
    Reject(usize),
    Issue(usize),
    Revoke(usize),
    /// Expire, on the batch's last day (`false`) or the day after (`true`).
    Expire(usize, bool),
}

fn act() -> impl proptest::strategy::Strategy<Value = Act> {
    use proptest::prelude::*;
    let who = 0..3usize;
    prop_oneof![
        who.clone().prop_map(Act::Check),
        who.clone().prop_map(Act::Approve),
        who.clone().prop_map(Act::Reject),
        who.clone().prop_map(Act::Issue),
        who.clone().prop_map(Act::Revoke),
        (who, any::<bool>()).prop_map(|(w, late)| Act::Expire(w, late)),
    ]
}

/// What the rules say a batch is, as the test models them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Model {
    state: BatchState,
    checker: Option<usize>,
    /// The approval request was rejected: the batch may be checked again.
    rejected: bool,
}

impl Model {
    /// The state after `a`, or `None` when the rules refuse it.
    fn next(self, a: Act) -> Option<Model> {
        use BatchState as B;
        let to = |state| Some(Model { state, ..self });
        match (self.state, a) {
            (B::Imported, Act::Check(w)) => Some(Model {
                state: B::Checked,
                checker: Some(w),
                rejected: false,
            }),
            (B::Checked, Act::Check(w)) if self.rejected => Some(Model {
                state: B::Checked,
                checker: Some(w),
                rejected: false,
            }),
            (B::Checked, Act::Approve(w))
                if !self.rejected && Some(w) != self.checker && w != 0 =>
            {
                to(B::Approved)
            }
            (B::Checked, Act::Reject(w)) if !self.rejected && Some(w) != self.checker => {
                Some(Model {
                    rejected: true,
                    ..self
                })
            }
            (B::Approved, Act::Issue(_)) => to(B::Issued),
            (B::Issued, Act::Expire(_, true)) => to(B::Closed),
            (B::Checked, Act::Revoke(_)) if self.rejected => to(B::Closed),
            (B::Imported | B::Approved | B::Issued, Act::Revoke(_)) => to(B::Closed),
            _ => None,
        }
    }
}

// R-B5, R-B1: any sequence of steps by any of three operators leaves a batch where the rules
// say (refused steps change nothing), the subsidy account holding exactly what issued,
// unclosed batches wait with, and the books clean.
pub fn subsidy_batch_state_machine(f: &Fixture) {
    use proptest::test_runner::{Config, TestRunner};
    let s = &f.store;
    let o = office(s);
    let who = [o.clerk.clone(), o.checker.clone(), o.approver.clone()];
    let cards = [
        holder_with_card(s, "2026001"),
        holder_with_card(s, "2026002"),
    ];
    let csv = format!(
        "卡号,金额\n{},1\n{},2\n",
        cards[0].no.get(),
        cards[1].no.get()
    );
    let next_batch = std::sync::atomic::AtomicU32::new(100);
    let waiting = std::sync::atomic::AtomicI64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let acts = proptest::collection::vec(act(), 1..10);
    runner
        .run(&acts, |acts| {
            let no = next_batch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            import(s, &who[0], batch(no), &csv).unwrap().unwrap();
            let mut model = Model {
                state: BatchState::Imported,
                checker: None,
                rejected: false,
            };
            for a in acts {
                let expect = model.next(a);
                let got = match a {
                    Act::Check(w) => step(s, &who[w], no, sub::check),
                    Act::Approve(w) => step(s, &who[w], no, sub::approve),
                    Act::Issue(w) => step(s, &who[w], no, sub::issue),
                    Act::Revoke(w) => step(s, &who[w], no, sub::revoke),
                    Act::Expire(w, late) => {
                        let day = if late { "2026-04-01" } else { "2026-03-31" };
                        step_at(s, &who[w], no, sub::expire, at(&format!("{day} 08:00:00")))
                    }
                    Act::Reject(w) => {
                        let by = who[w].clone();
                        s.execute(move |tx| {
                            let b = sub::get(tx, no)?.unwrap();
                            let id = b
                                .approval
                                .ok_or_else(|| HostError::Invalid("no approval request".into()))?;
                            approvals::decide(
                                tx,
                                &by,
                                id,
                                approvals::Decision::Reject {
                                    note: String::new(),
                                },
                                now(),
                                |_, _| Err(HostError::Invariant("not run".into())),
                            )?;
                            sub::get(tx, no).map(Option::unwrap)
                        })
                    }
                };
                let stored = s.read(move |tx| sub::get(tx, no)).unwrap().unwrap();
                match (expect, got) {
                    (Some(m), Ok(b)) => {
                        proptest::prop_assert_eq!(b.state, m.state, "{:?}", a);
                        if m.state == BatchState::Issued {
                            waiting.fetch_add(300, std::sync::atomic::Ordering::SeqCst);
                        }
                        if model.state == BatchState::Issued && m.state == BatchState::Closed {
                            waiting.fetch_sub(300, std::sync::atomic::Ordering::SeqCst);
                        }
                        model = m;
                    }
                    (None, Err(HostError::Invalid(_) | HostError::Forbidden(_))) => {}
                    (e, g) => proptest::prop_assert!(false, "{a:?}: expected {e:?}, got {g:?}"),
                }
                proptest::prop_assert_eq!(stored.state, model.state);
                let held = waiting.load(std::sync::atomic::Ordering::SeqCst);
                proptest::prop_assert_eq!(balance(s, "subsidy"), held);
            }
            Ok(())
        })
        .unwrap();
    audit_clean(s);
}

// R-B5, R-B6, R-B7: a subsidy still waiting for a card the card office replaces goes, when
// the balance moves, to the new card as the same load of the same batch line (the new card
// picks it up; the batch's report and audit still account for it); one waiting for a closed
// card is revoked back to the batch's funding at the payout, counted as the batch's revoke.
pub fn subsidy_follows_replaced_or_closed_card(f: &Fixture) {
    use ykt_host::domain::closures::{self, Payout};
    use ykt_host::domain::replacements::{self, FeePayment};
    let s = &f.store;
    world(s);
    let o = office(s);
    let (a, b) = (
        holder_with_card(s, "2026101"),
        holder_with_card(s, "2026102"),
    );
    let csv = "学工号,金额,备注\n2026101,10,一月\n2026102,20,一月\n";
    approved(s, &o, batch(9), csv);
    step(s, &o.clerk, 9, sub::issue).unwrap();
    let funded = balance(s, "funding");
    // Replacement: the subsidy goes with the balance, when it moves.
    let old = a.no;
    let new = s
        .execute(move |tx| {
            admin::report_loss(tx, old)?;
            let req = replacements::Request {
                old_card: old,
                display_no: ykt_proto::DisplayNo::new(3_100_000_201).unwrap(),
                fee: 0,
                fee_method: FeePayment::None,
            };
            let a = Actor::system("test");
            let (_, new) = replacements::replace(tx, &a, &req, now())?;
            replacements::run_due(tx, &a, now() + chrono::Duration::days(2))?;
            Ok(new)
        })
        .unwrap();
    assert_eq!(card_now(s, old).waiting, 0);
    assert_eq!(card_now(s, new.no).waiting, 1_000);
    let waits = s
        .execute(move |tx| loads::waiting_for_card(tx, new.no))
        .unwrap();
    assert_eq!(waits.len(), 1);
    assert!(matches!(
        waits[0].source,
        loads::WaitingSource::Subsidy { batch: 9, .. }
    ));
    audit_clean(s);
    // The new card picks it up at its next tap.
    pick_up(s, &card_now(s, new.no), 1, 1_000);
    assert_eq!(card_now(s, new.no).balance, 1_000);
    audit_clean(s);
    // Closure: the subsidy goes back to the batch's funding at the payout.
    let closed = b.no;
    s.execute(move |tx| {
        let a = Actor::system("test");
        closures::request(
            tx,
            &a,
            closed,
            Payout::bank("6222020200112233")?,
            None,
            now(),
        )?;
        closures::run_due(tx, &a, now() + chrono::Duration::days(2))
    })
    .unwrap();
    assert_eq!(card_now(s, b.no).waiting, 0);
    assert_eq!(balance(s, "funding"), funded + 2_000);
    let batch = s.read(|tx| sub::get(tx, 9)).unwrap().unwrap();
    assert_eq!(batch.revoked, 1);
    audit_clean(s);
}
