//! The exception queue (R-B3, issue 10.6) and broken invariants (issue 10.7): nothing that
//! left a card is dropped, and a bug is never a final code.

use ykt_host::domain::exceptions::{self, Action, ExceptionState, Resolve};
use ykt_host::domain::{admin, records};
use ykt_host::exception_rows::Filter;
use ykt_host::ledger::{FUNDING_ACCOUNT, SUSPENSE_ACCOUNT, Transfer, record_transfer_id};
use ykt_host::*;
use ykt_proto::{CardNo, CardType, Record, RecordKind, RecordStatus, ReturnCode};

use super::suite::as_collected;
use super::support::*;

const NO_MERCHANT: u32 = 999;

fn raw_upload(s: &Store, r: Record) -> Result<Uploaded> {
    let tac = s.tac_verifier();
    s.execute(move |tx| records::upload(tx, &origin(), &r, tac.as_deref(), now()))
}

fn held(s: &Store, r: &Record) -> exceptions::Held {
    let (d, n) = (r.device, r.serial);
    s.read(move |tx| exceptions::get(tx, d, n))
        .unwrap()
        .expect("held")
}

fn open_count(s: &Store) -> i64 {
    s.read(exceptions::count_open).unwrap()
}

fn resolve(s: &Store, r: &Record, action: Action) -> Result<exceptions::Held> {
    let (d, n) = (r.device, r.serial);
    let req = Resolve {
        action,
        note: "核对无误".into(),
        by: "admin".into(),
    };
    s.execute(move |tx| exceptions::resolve(tx, d, n, &req, now()))
}

fn balance(s: &Store, account: &str) -> i64 {
    let a = account.to_owned();
    s.read(move |tx| repo::account_balance(tx.conn, &a))
        .unwrap()
        .unwrap_or(0)
}

fn is_stored(s: &Store, r: &Record) -> bool {
    let (d, n) = (r.device, r.serial);
    s.read(move |tx| repo::record_get(tx.conn, d, n, false))
        .unwrap()
        .is_some()
}

/// The refused offline debits of one card (10,000 fen, counter 0 booked): each kind of final
/// refusal, as (record, code).
fn refused_kinds(c: &Card) -> Vec<(Record, u8)> {
    let mut merchant = offline(c.no, 11, 1, 9_900, 100);
    merchant.merchant_no = NO_MERCHANT;
    let unknown_card = offline(CardNo::new(0x00AB_CDEF).unwrap(), 12, 0, 500, 50);
    let repeated = offline(c.no, 13, 0, 10_000, 100);
    let implausible = offline(c.no, 14, 5_000, 9_900, 100);
    let mut tac = offline(c.no, 15, 2, 9_900, 100);
    tac.card_type = CardType::Cpu;
    tac.tac = expected_tac(&tac) ^ 1;
    let collected = as_collected(&offline(CardNo::new(0x00AB_CDEE).unwrap(), 16, 0, 500, 40));
    vec![
        (merchant, 40),
        (unknown_card, 50),
        (repeated, 61),
        (implausible, 62),
        (tac, 99),
        (collected, 50),
    ]
}

/// The world, a card with one debit booked, and every kind of `refused_kinds` held.
fn every_kind_held(s: &Store) -> (Card, Vec<(Record, u8)>) {
    world(s);
    let c = card(s, 10_000);
    upload(s, offline(c.no, 10, 0, 10_000, 100)).unwrap();
    let kinds = refused_kinds(&c);
    for (r, _) in &kinds {
        raw_upload(s, r.clone()).unwrap();
    }
    (c, kinds)
}

// issue 10.6, R-B3: a debit whose money left the card and that the host refuses for good
// (40, 50, 61, 62, 99; an offline record or one collected from a card, R-F4.17) is held in
// the exception queue with its code and reason, in the answer's transaction; the terminal
// gets the final code it always got, again on a re-upload; different content under the same
// (device, serial) is 30. Nothing is booked; the audit is clean.
/// Issue 18 (found by the fuzz target host_booking): an offline record, or one collected from
/// the card, that takes more than the card's account holds is held with 69 (卡账户已透支),
/// never booked to a negative account; the books stay clean.
pub fn debits_beyond_the_account_are_held(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 1_000);
    // The card says it had 50.00; the books say 10.00.
    let r = offline(c.no, 40, 0, 5_000, 2_000);
    assert_eq!(
        raw_upload(s, r.clone()).unwrap(),
        Uploaded::Held(ReturnCode(69))
    );
    let collected = as_collected(&offline(c.no, 41, 1, 5_000, 1_500));
    assert_eq!(
        raw_upload(s, collected).unwrap(),
        Uploaded::Held(ReturnCode(69))
    );
    assert_eq!(card_now(s, c.no).balance, 1_000);
    // Within the account, the same kind of record books.
    let ok = offline(c.no, 42, 2, 5_000, 400);
    assert!(matches!(raw_upload(s, ok).unwrap(), Uploaded::Stored(_)));
    assert_eq!(card_now(s, c.no).balance, 600);
    assert!(s.read(|tx| ledger::audit(tx.conn)).unwrap().is_clean());
}

pub fn refused_debits_are_held(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    upload(s, offline(c.no, 10, 0, 10_000, 100)).unwrap();
    let before = card_now(s, c.no);
    for (r, code) in refused_kinds(&c) {
        assert_eq!(
            raw_upload(s, r.clone()).unwrap(),
            Uploaded::Held(ReturnCode(code))
        );
        let h = held(s, &r);
        assert_eq!(
            (h.record.clone(), h.code.0, h.uploader),
            (r.clone(), code, DEVICE)
        );
        assert_eq!(h.reason, ReturnCode(code).text());
        assert_eq!(h.state, ExceptionState::Open);
        assert!(!is_stored(s, &r), "a held record is not booked");
        // The same record again: the same answer, still one exception.
        assert_eq!(
            raw_upload(s, r.clone()).unwrap(),
            Uploaded::Held(ReturnCode(code))
        );
        let mut other = r.clone();
        other.amount += 1;
        other.balance_after -= 1;
        assert_eq!(refused(raw_upload(s, other)), 30);
        // Issue 18 (found by the fuzz target host_booking): a record that moved no money
        // under the held record's (device, serial) is 30 too, never booked beside it.
        let mut no_money = r.clone();
        no_money.kind = RecordKind::BlackCard;
        no_money.status = RecordStatus::Written;
        no_money.card_counter += 5;
        assert_eq!(refused(raw_upload(s, no_money.clone())), 30);
        assert!(!is_stored(s, &no_money));
        // Nor an online debit under it (host_booking again): 30, nothing booked.
        let online = purchase(c.no, r.serial, before.counter_next, before.balance, 100);
        assert_eq!(refused(debit(s, &c, online.clone())), 30);
        assert!(!is_stored(s, &online));
    }
    assert_eq!(open_count(s), 6);
    let after = card_now(s, c.no);
    assert_eq!(
        (after.balance, after.counters_used),
        (before.balance, before.counters_used)
    );
    // Even a merchant created since does not book the held record behind the queue's back.
    s.execute(|tx| admin::create_merchant(tx, NO_MERCHANT, "二食堂"))
        .unwrap();
    let (merchant_record, _) = refused_kinds(&c).remove(0);
    assert_eq!(refused(upload(s, merchant_record)), 40);
    assert_eq!(open_count(s), 6);
    audit_clean(s);
}

// issue 10.6, R-B3: what moved no money keeps today's handling: a failed or pulled record
// of an unknown card, a debit of nothing and a reversal are refused, not held; an online
// debit refused at authorisation is not an exception (the card was not touched).
pub fn records_without_money_are_not_held(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let ghost = CardNo::new(0x00AB_CDEF).unwrap();
    let mut pulled = offline(ghost, 20, 0, 500, 50);
    pulled.status = RecordStatus::CardPulled;
    assert_eq!(refused(raw_upload(s, pulled)), 50);
    let nothing = offline(c.no, 21, 0, 10_000, 0);
    assert_eq!(refused(raw_upload(s, nothing)), 34);
    let mut reversal = offline(c.no, 22, 0, 9_900, 100);
    reversal.kind = ykt_proto::RecordKind::Reversal;
    reversal.original_serial = Some(999);
    reversal.balance_after = 10_000;
    assert_eq!(refused(raw_upload(s, reversal)), 31);
    let mut online = purchase(c.no, 23, 0, 10_000, 100);
    online.merchant_no = NO_MERCHANT;
    assert_eq!(refused(debit(s, &c, online)), 36);
    assert_eq!(open_count(s), 0);
    audit_clean(s);
}

// issue 10.6, R-B3: the card office resolves each exception once, through the upload's own
// booking: `book` to its merchant (which must exist), `suspense` (card → suspense, or
// funding → suspense for a card the host does not know), `reject` (nothing booked; the
// only way out for a counter used by another record). Each resolution records who, when,
// a note, before and after; the audit stays clean throughout.
pub fn exceptions_resolved(f: &Fixture) {
    let s = &f.store;
    let (c, kinds) = every_kind_held(s);
    let [
        merchant,
        unknown_card,
        repeated,
        implausible,
        tac,
        collected,
    ] = <[(Record, u8); 6]>::try_from(kinds)
        .unwrap()
        .map(|(r, _)| r);

    // 40: booking needs the merchant; once it exists the record is booked to it.
    assert!(matches!(
        resolve(s, &merchant, Action::Book),
        Err(HostError::Invalid(_))
    ));
    s.execute(|tx| admin::create_merchant(tx, NO_MERCHANT, "二食堂"))
        .unwrap();
    let done = resolve(s, &merchant, Action::Book).unwrap();
    let ExceptionState::Resolved(x) = &done.state else {
        panic!("{done:?}")
    };
    assert_eq!(
        (x.action, x.by.as_str(), x.note.as_str()),
        (Action::Book, "admin", "核对无误")
    );
    assert!(
        x.before.contains("\"open\"") && x.after.contains("merchant:999"),
        "{x:?}"
    );
    assert_eq!(balance(s, "merchant:999"), 100);
    assert_eq!(card_now(s, c.no).balance, 9_800);
    assert!(is_stored(s, &merchant));
    assert!(matches!(
        resolve(s, &merchant, Action::Reject),
        Err(HostError::Invalid(_))
    ));
    // A re-upload is still answered as held, and books nothing more.
    assert_eq!(refused(upload(s, merchant.clone())), 40);
    audit_clean(s);

    // 50: a card the host does not know has no account: suspense from funding, or reject.
    assert!(matches!(
        resolve(s, &unknown_card, Action::Book),
        Err(HostError::Invalid(_))
    ));
    let funding = balance(s, FUNDING_ACCOUNT);
    resolve(s, &unknown_card, Action::Suspense).unwrap();
    assert_eq!(balance(s, SUSPENSE_ACCOUNT), 50);
    assert_eq!(balance(s, FUNDING_ACCOUNT), funding - 50);
    resolve(s, &collected, Action::Reject).unwrap();
    audit_clean(s);

    // 61: the counter belongs to another record; booking would count it twice.
    for action in [Action::Book, Action::Suspense] {
        assert!(matches!(
            resolve(s, &repeated, action),
            Err(HostError::Invalid(_))
        ));
    }
    resolve(s, &repeated, Action::Reject).unwrap();
    // 62 and 99: the card office overrides the check; booked to its merchant / suspense.
    resolve(s, &implausible, Action::Book).unwrap();
    resolve(s, &tac, Action::Suspense).unwrap();
    assert_eq!(balance(s, SUSPENSE_ACCOUNT), 150);
    assert_eq!(card_now(s, c.no).balance, 9_600);
    assert_eq!(open_count(s), 0);

    // Listing: resolved ones page in (device, serial) order.
    let page = |filter, after| {
        s.read(move |tx| exceptions::list(tx, filter, after, 2))
            .unwrap()
    };
    assert!(page(Filter::Open, None).is_empty());
    let first = page(Filter::Resolved, None);
    assert_eq!(first.len(), 2);
    let last = first.last().unwrap();
    let next = page(
        Filter::Resolved,
        Some((last.record.device, last.record.serial)),
    );
    assert_eq!(next.len(), 2);
    let all = s
        .read(|tx| exceptions::list(tx, Filter::All, None, 100))
        .unwrap();
    assert_eq!(all.len(), 6);
    audit_clean(s);
}

// issue 10.6, R-B3: the audit covers the queue: a held record that is open but booked, and
// one resolved as booked without its transfers, are both found.
pub fn audit_covers_exceptions(f: &Fixture) {
    let s = &f.store;
    let (_, kinds) = every_kind_held(s);
    let implausible = kinds[3].0.clone();
    resolve(s, &implausible, Action::Book).unwrap();
    audit_clean(s);
    let report = |s: &Store| s.read(|tx| ledger::audit(tx.conn)).unwrap();
    // Its transfers go missing (kind changed): resolved as booked without them.
    let id = record_transfer_id(DEVICE, implausible.serial, "amount");
    s.execute(move |tx| {
        tx.conn.exec(
            "UPDATE transfers SET kind = 'tampered' WHERE id = $1",
            &[id.as_str().into()],
        )
    })
    .unwrap();
    let key = |r: &Record| (repo::device_key(r.device), i64::from(r.serial));
    assert_eq!(report(s).exception_mismatches, vec![key(&implausible)]);
    // An open one booked behind the queue's back: a transfer with its (device, serial).
    let open = kinds[1].0.clone();
    let serial = open.serial;
    s.execute(move |tx| {
        tx.post(Transfer {
            id: "forged".into(),
            from: FUNDING_ACCOUNT.into(),
            to: SUSPENSE_ACCOUNT.into(),
            amount: 50,
            kind: "debit",
            record: Some((DEVICE, serial)),
            time: now(),
        })
    })
    .unwrap();
    let found = report(s).exception_mismatches;
    assert!(found.contains(&key(&open)), "{found:?}");
    assert!(!report(s).is_clean());
}

// issue 10.7, R-B3: a broken invariant (the record's transfer id exists already) is a bug,
// not the terminal's fault: it gets a code of 1–9 and retries; nothing of the record is
// committed; no exception is held.
pub fn broken_invariant_is_retryable(f: &Fixture) {
    let s = &f.store;
    world(s);
    let c = card(s, 10_000);
    let r = offline(c.no, 7, 0, 10_000, 100);
    let id = record_transfer_id(DEVICE, 7, "amount");
    s.execute(move |tx| {
        tx.post(Transfer {
            id: id.clone(),
            from: FUNDING_ACCOUNT.into(),
            to: SUSPENSE_ACCOUNT.into(),
            amount: 1,
            kind: "injected",
            record: None,
            time: now(),
        })
    })
    .unwrap();
    let e = raw_upload(s, r.clone()).unwrap_err();
    assert!(
        e.return_code().is_handled_as_timeout(),
        "retryable, got {e:?} → {:?}",
        e.return_code()
    );
    assert!(!is_stored(s, &r));
    let after = card_now(s, c.no);
    assert_eq!((after.balance, after.counters_used), (10_000, 0));
    assert_eq!(open_count(s), 0);
    audit_clean(s);
}
