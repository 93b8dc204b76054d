//! The card office's lifecycle of a card's money (R-B6, R-B7): replacement with the balance
//! moved after the waiting period and late records corrected, card fees, closure with its
//! refund in cash or to the bank, late records of a closed card held.

use chrono::Duration;
use ykt_host::domain::closures::{self, Payout};
use ykt_host::domain::exceptions::{Action, Resolve};
use ykt_host::domain::replacements::{self, Covered, FeePayment, Request};
use ykt_host::domain::{admin, journal::Actor, shifts};
use ykt_host::*;
use ykt_proto::{CardNo, DisplayNo, LoadPurpose, RecordStatus};

use super::loads::{authorize, balance_of, deposit, load_record, request};
use super::support::*;

fn clerk(s: &Store) -> Actor {
    s.execute(|tx| {
        let n = domain::operators::NewOperator {
            login: "clerk".into(),
            name: "卡务".into(),
            roles: ykt_host::access::Roles::of(&[ykt_host::access::Role::Clerk]),
            password_hash: "x".into(),
        };
        let op = domain::operators::add(tx, &Actor::system("test"), &n, now())?;
        Ok(Actor::operator(op.id, "clerk", None, "test"))
    })
    .unwrap()
}

fn lose(s: &Store, no: CardNo) {
    s.execute(move |tx| admin::report_loss(tx, no)).unwrap();
}

fn replace(
    s: &Store,
    actor: &Actor,
    old: CardNo,
    display: u64,
    fee: i64,
    how: FeePayment,
) -> Result<(replacements::Replacement, Card)> {
    let actor = actor.clone();
    s.execute(move |tx| {
        let req = Request {
            old_card: old,
            display_no: DisplayNo::new(display).unwrap(),
            fee,
            fee_method: how,
        };
        replacements::replace(tx, &actor, &req, now())
    })
}

fn sweep(s: &Store, at: chrono::NaiveDateTime) -> usize {
    s.execute(move |tx| replacements::run_due(tx, &Actor::system("sweep"), at))
        .unwrap()
        .len()
}

fn replacement(s: &Store, old: CardNo) -> replacements::Replacement {
    s.read(move |tx| replacements::of_old(tx, old, false))
        .unwrap()
        .unwrap()
}

// R-B6: a lost card is replaced by a new card number; the old one is cancelled (57 online)
// and stays blacklisted; its balance moves to money waiting for the new card only after
// the waiting period (2 days by default), and the new card picks it up.
pub fn replacement_waits_then_moves(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let old = card(s, 5_000);
    // Only a lost or bad card is replaced.
    assert!(matches!(
        replace(s, &clerk, old.no, 3_100_000_001, 0, FeePayment::None),
        Err(HostError::Invalid(_))
    ));
    // A deposit waiting for the old card moves with its balance.
    deposit(s, old.no, 400, "w-old");
    lose(s, old.no);
    let (r, new) = replace(s, &clerk, old.no, 3_100_000_001, 0, FeePayment::None).unwrap();
    assert_ne!(new.no, old.no);
    assert_eq!(r.due_at, now() + Duration::days(2));
    let o = card_now(s, old.no);
    assert_eq!((o.status, o.balance), (CardStatus::Cancelled, 5_000));
    // code 57: the old card online.
    assert_eq!(
        refused(debit(s, &o, purchase(old.no, 1, 0, 5_000, 100))),
        57
    );
    // A second replacement of the same card is refused.
    assert!(replace(s, &clerk, old.no, 3_100_000_002, 0, FeePayment::None).is_err());
    // Not due yet: nothing moves.
    assert_eq!(sweep(s, now() + Duration::days(1)), 0);
    assert_eq!(card_now(s, new.no).waiting, 0);
    // An offline record of the old card inside the waiting period books to the old card.
    upload(s, offline(old.no, 2, 0, 5_000, 300)).unwrap();
    assert_eq!(card_now(s, old.no).balance, 4_700);
    audit_clean(s);
    assert_eq!(sweep(s, now() + Duration::days(2)), 1);
    assert_eq!(sweep(s, now() + Duration::days(3)), 0);
    let (o, n) = (card_now(s, old.no), card_now(s, new.no));
    assert_eq!(
        (o.balance, o.waiting, n.balance, n.waiting),
        (0, 0, 0, 5_100)
    );
    assert!(matches!(
        replacement(s, old.no).state,
        replacements::State::Moved { amount: 5_100, .. }
    ));
    audit_clean(s);
    // The new card picks the moved money up at its next tap.
    let l = request(LoadPurpose::Pickup, new.no, 10, 0, 0, 5_100);
    authorize(s, origin(), l.clone()).unwrap();
    upload(s, load_record(DEVICE, &l, RecordStatus::Success)).unwrap();
    assert_eq!(card_now(s, new.no).balance, 5_100);
    audit_clean(s);
}

// R-B6: records of the old card that arrive after the move are booked to it; what they need
// comes back by a recorded correction: from the moved money while it waits (the rest waits
// again), else from the new card's account; when neither covers it, held with 69.
pub fn late_record_after_move_is_corrected(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let old = card(s, 5_000);
    lose(s, old.no);
    let (_, new) = replace(s, &clerk, old.no, 3_100_000_011, 0, FeePayment::None).unwrap();
    sweep(s, now() + Duration::days(2));
    assert_eq!(card_now(s, new.no).waiting, 5_000);
    // Case 1: the moved money still waits.
    upload(s, offline(old.no, 1, 0, 5_000, 800)).unwrap();
    let (o, n) = (card_now(s, old.no), card_now(s, new.no));
    assert_eq!((o.balance, n.waiting), (0, 4_200));
    let r = replacement(s, old.no);
    assert_eq!((r.corrected, r.corrections), (800, 1));
    assert_eq!(balance_of(s, "merchant:100"), 800);
    audit_clean(s);
    // Case 2: the new card picked the rest up; the next late record takes it from the new
    // card's account.
    let l = request(LoadPurpose::Pickup, new.no, 10, 0, 0, 4_200);
    authorize(s, origin(), l.clone()).unwrap();
    upload(s, load_record(DEVICE, &l, RecordStatus::Success)).unwrap();
    upload(s, offline(old.no, 2, 1, 4_200, 200)).unwrap();
    assert_eq!(card_now(s, new.no).balance, 4_000);
    assert_eq!(card_now(s, old.no).balance, 0);
    assert_eq!(replacement(s, old.no).corrected, 1_000);
    audit_clean(s);
    // Case 3: the new card spent it: what its account lacks is never taken, the record is
    // held with code 69 for the card office.
    let n = card_now(s, new.no);
    debit(s, &n, purchase(new.no, 20, 1, 4_000, 3_000)).unwrap();
    assert_eq!(refused(upload(s, offline(old.no, 3, 2, 4_000, 2_000))), 69);
    assert_eq!(card_now(s, new.no).balance, 1_000);
    assert_eq!(replacement(s, old.no).corrected, 1_000);
    audit_clean(s);
    // The cover itself reports what it did.
    let no = old.no;
    let c = s
        .execute(move |tx| {
            let mut c = admin::card(tx, no)?;
            replacements::cover_late_record(tx, &mut c, 0, now())
        })
        .unwrap();
    assert_eq!(c, Covered::Nothing);
}

// R-B6: the card fee (工本费) is income of its own, paid in cash (in the clerk's shift) or
// from the old card's balance; the audit checks the income against the replacements.
pub fn replacement_fee_cash_or_balance(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let a = card(s, 3_000);
    let b = card(s, 3_000);
    lose(s, a.no);
    lose(s, b.no);
    // A fee needs its payment, and no payment means no fee.
    assert!(replace(s, &clerk, a.no, 3_100_000_021, 1_000, FeePayment::None).is_err());
    assert!(replace(s, &clerk, a.no, 3_100_000_021, 0, FeePayment::Cash).is_err());
    // The balance must cover a fee taken from it.
    assert!(replace(s, &clerk, a.no, 3_100_000_021, 5_000, FeePayment::Balance).is_err());
    replace(s, &clerk, a.no, 3_100_000_021, 1_000, FeePayment::Cash).unwrap();
    replace(s, &clerk, b.no, 3_100_000_022, 1_000, FeePayment::Balance).unwrap();
    assert_eq!(balance_of(s, "income:card_fee"), 2_000);
    assert_eq!(card_now(s, a.no).balance, 3_000);
    assert_eq!(card_now(s, b.no).balance, 2_000);
    let op = clerk.operator.unwrap();
    let report = s
        .read(move |tx| shifts::report(tx, op, "clerk", now().date()))
        .unwrap();
    assert_eq!((report.cash.count, report.cash.amount), (1, 1_000));
    audit_clean(s);
    // Tampering with the income is found.
    s.execute(|tx| {
        tx.conn.exec(
            "UPDATE card_replacements SET fee = 999 WHERE fee_method = 'cash'",
            &[],
        )
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert!(!report.lifecycle_mismatches.is_empty(), "{report:?}");
}

fn close(s: &Store, actor: &Actor, no: CardNo, payout: Payout) -> Result<closures::Closure> {
    let actor = actor.clone();
    s.execute(move |tx| closures::request(tx, &actor, no, payout.clone(), None, now()))
}

fn pay(
    s: &Store,
    actor: &Actor,
    no: CardNo,
    at: chrono::NaiveDateTime,
) -> Result<closures::Closure> {
    let actor = actor.clone();
    s.execute(move |tx| closures::pay(tx, &actor, no, at))
}

// R-B7: a closure blocks the card at once (57) and pays out its account plus the deposits
// still waiting only after the waiting period; in cash it is a payout in the clerk's shift.
pub fn closure_refund_in_cash(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let c = card(s, 4_000);
    deposit(s, c.no, 500, "d1");
    let no = c.no;
    s.execute(move |tx| admin::add_subsidy(tx, no, 300, 7, now()))
        .unwrap();
    close(s, &clerk, c.no, Payout::Cash).unwrap();
    assert!(close(s, &clerk, c.no, Payout::Cash).is_err());
    // code 57 at once.
    assert_eq!(refused(debit(s, &c, purchase(c.no, 1, 0, 4_000, 100))), 57);
    // Not before it is due.
    assert!(matches!(
        pay(s, &clerk, c.no, now() + Duration::days(1)),
        Err(HostError::Invalid(_))
    ));
    // A late offline record inside the period still books to the card.
    upload(s, offline(c.no, 2, 0, 4_000, 1_000)).unwrap();
    let paid = pay(s, &clerk, c.no, now() + Duration::days(2)).unwrap();
    assert!(matches!(
        paid.state,
        closures::State::Paid { amount: 3_500, .. }
    ));
    assert!(pay(s, &clerk, c.no, now() + Duration::days(3)).is_err());
    assert_eq!(card_now(s, c.no).balance, 0);
    assert_eq!(balance_of(s, "refund:cash"), 3_500);
    // The subsidy still waiting is the school's money: revoked back to funding (R-B5).
    assert_eq!(card_now(s, c.no).waiting, 0);
    let op = clerk.operator.unwrap();
    let day = (now() + Duration::days(2)).date();
    let report = s
        .read(move |tx| shifts::report(tx, op, "clerk", day))
        .unwrap();
    assert_eq!((report.paid_out.count, report.paid_out.amount), (1, 3_500));
    audit_clean(s);
}

// R-B7: a bank refund is paid by the host's sweep when due, to `refund:bank`.
pub fn closure_refund_to_bank(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let c = card(s, 2_500);
    assert!(Payout::bank("12ab").is_err());
    close(s, &clerk, c.no, Payout::bank("6222020200112233").unwrap()).unwrap();
    let sweep = |at| {
        s.execute(move |tx| closures::run_due(tx, &Actor::system("sweep"), at))
            .unwrap()
            .len()
    };
    assert_eq!(sweep(now() + Duration::days(1)), 0);
    assert_eq!(sweep(now() + Duration::days(2)), 1);
    assert_eq!(balance_of(s, "refund:bank"), 2_500);
    assert_eq!(card_now(s, c.no).balance, 0);
    audit_clean(s);
}

// R-B7, R-B3: a record of a closed, paid-out card is held in the exception queue with 57;
// resolved, it is booked from funding (the account was paid out), never lost.
pub fn closed_card_late_record_held(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let c = card(s, 2_000);
    close(s, &clerk, c.no, Payout::Cash).unwrap();
    pay(s, &clerk, c.no, now() + Duration::days(2)).unwrap();
    // code 57
    let late = offline(c.no, 5, 0, 2_000, 600);
    assert_eq!(refused(upload(s, late.clone())), 57);
    assert_eq!(refused(upload(s, late.clone())), 57);
    audit_clean(s);
    let funding = balance_of(s, "funding");
    let req = Resolve {
        action: Action::Book,
        note: "已退款后的脱机消费".into(),
        by: "admin".into(),
    };
    s.execute(move |tx| domain::exceptions::resolve(tx, late.device, late.serial, &req, now()))
        .unwrap();
    assert_eq!(balance_of(s, "merchant:100"), 600);
    assert_eq!(balance_of(s, "funding"), funding - 600);
    assert_eq!(card_now(s, c.no).balance, 0);
    audit_clean(s);
}

// R-B6, code 53: a bad card is refused with 53 until the card office repairs it; the image
// to write carries the account's balance, the difference to the card's last record
// explained, and the card is normal again.
pub fn bad_card_repair(f: &Fixture) {
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let c = card(s, 3_000);
    upload(s, offline(c.no, 1, 0, 3_000, 500)).unwrap();
    let no = c.no;
    // Only a bad card is repaired.
    let repair = |s: &Store| {
        let a = clerk.clone();
        s.execute(move |tx| domain::repair::repair(tx, &a, no, now()))
    };
    assert!(matches!(repair(s), Err(HostError::Invalid(_))));
    s.execute(move |tx| admin::report_bad(tx, no)).unwrap();
    let bad = card_now(s, c.no);
    // code 53
    assert_eq!(
        refused(debit(s, &bad, purchase(c.no, 2, 1, 2_500, 100))),
        53
    );
    // The host knows more than the broken card: a deposit posted straight to the account.
    s.execute(move |tx| {
        let actor = Actor::system("test");
        admin::post_opening_balance(tx, no, 700, "adj-1", now())?;
        domain::journal::append(
            tx,
            &actor,
            now(),
            &domain::journal::Change::new("card.deposit", "card").transfer("dep:adj-1"),
        )
    })
    .unwrap();
    let r = repair(s).unwrap();
    assert_eq!((r.balance, r.counter, r.difference), (3_200, 1, 700));
    assert_eq!(r.last_record.as_ref().map(|l| l.balance_after), Some(2_500));
    assert!(r.explanation.contains("700"), "{}", r.explanation);
    let now_card = card_now(s, c.no);
    assert_eq!(now_card.status, CardStatus::Normal);
    debit(s, &now_card, purchase(c.no, 3, 1, 3_200, 100)).unwrap();
    assert!(repair(s).is_err());
    audit_clean(s);
}

fn holder_with_card(s: &Store, number: &str, balance: i64) -> Card {
    let c = card(s, balance);
    let (n, no) = (number.to_owned(), c.no);
    s.execute(move |tx| {
        let actor = Actor::system("test");
        let fields = ykt_host::repo_holders::HolderFields {
            name: "毕业生".into(),
            kind: ykt_host::repo_holders::HolderKind::Student,
            department: "计算机学院".into(),
            id_number: None,
            phone: None,
        };
        domain::cardholders::add(tx, &actor, &n, &fields, now())?;
        domain::cardholders::attach_card(tx, &actor, &n, no, now())
    })
    .unwrap();
    c
}

// R-B7, R-B1: a graduation list closes its cards as one batch; every line's error is
// reported and nothing closed; above the threshold the batch waits for a second operator.
pub fn graduation_batch_with_approval(f: &Fixture) {
    use ykt_host::domain::closure_batches::{self, Imported};
    use ykt_host::import::Format;
    let s = &f.store;
    world(s);
    let clerk = clerk(s);
    let a = holder_with_card(s, "2022001", 1_000);
    let b = holder_with_card(s, "2022002", 2_000);
    let parse = |text: &str| closure_batches::parse(Format::Csv, text.as_bytes());
    // Per-line errors of the file itself.
    let errors = parse("学工号,退款方式,银行账号\n2022001,cash,6222\n2022002,支票,\n").unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let import = |s: &Store, text: &str| {
        let lines = parse(text).unwrap();
        let actor = clerk.clone();
        s.execute(move |tx| closure_batches::import(tx, &actor, &lines, now()))
            .unwrap()
    };
    // Per-line errors against the state: nothing is closed.
    let Imported::Refused(errors) = import(s, "学工号\n2022001\n2022009\n2022001\n") else {
        panic!("unknown and repeated numbers are refused")
    };
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(card_now(s, a.no).status, CardStatus::Normal);
    // At or above the threshold: a request for a second operator.
    s.execute(|tx| repo::set_meta(tx.conn, closures::BATCH_APPROVAL, 3_000))
        .unwrap();
    let text = "学工号,银行账号\n2022001,\n2022002,6222020200112233\n";
    let Imported::Waiting {
        approval, total, ..
    } = import(s, text)
    else {
        panic!("3,000 fen needs approval")
    };
    assert_eq!(total, 3_000);
    assert_eq!(card_now(s, a.no).status, CardStatus::Normal);
    let requester = clerk.clone();
    let id = approval.id;
    // Never one's own request.
    let own = s.execute(move |tx| {
        domain::approvals::decide(
            tx,
            &requester,
            id,
            domain::approvals::Decision::Approve,
            now(),
            |tx, a| closure_batches::approved(tx, a, &requester, now()),
        )
    });
    assert!(own.is_err());
    let checker = s
        .execute(|tx| {
            let n = domain::operators::NewOperator {
                login: "finance".into(),
                name: "财务".into(),
                roles: ykt_host::access::Roles::of(&[ykt_host::access::Role::Finance]),
                password_hash: "x".into(),
            };
            let op = domain::operators::add(tx, &Actor::system("test"), &n, now())?;
            Ok(Actor::operator(op.id, "finance", None, "test"))
        })
        .unwrap();
    let requester = clerk.clone();
    s.execute(move |tx| {
        domain::approvals::decide(
            tx,
            &checker,
            id,
            domain::approvals::Decision::Approve,
            now(),
            |tx, a| closure_batches::approved(tx, a, &requester, now()),
        )
    })
    .unwrap();
    let (ca, cb) = (card_now(s, a.no), card_now(s, b.no));
    assert_eq!(
        (ca.status, cb.status),
        (CardStatus::Cancelled, CardStatus::Cancelled)
    );
    let list = s.read(|tx| closures::list(tx, Some(1), 100)).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].payout, Payout::bank("6222020200112233").unwrap());
    // Below the threshold a batch closes at once.
    let _c = holder_with_card(s, "2022003", 100);
    assert!(matches!(
        import(s, "学工号\n2022003\n"),
        Imported::Closed { batch: 2, .. }
    ));
    // The bank refund is paid by the sweep when due; the cash one by the finance office.
    let paid = s
        .execute(|tx| closures::run_due(tx, &Actor::system("sweep"), now() + Duration::days(2)))
        .unwrap();
    assert_eq!(paid.len(), 1);
    pay(s, &clerk, a.no, now() + Duration::days(2)).unwrap();
    assert_eq!(balance_of(s, "refund:bank"), 2_000);
    assert_eq!(balance_of(s, "refund:cash"), 1_000);
    audit_clean(s);
}
