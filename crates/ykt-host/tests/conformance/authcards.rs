//! Conformance tests of operator authorisation cards (R-B11, codes 80–89): issue, the card
//! office's lifecycle, the terminal's online check (0x0A) and its record, on both backends.

use ykt_host::access::Role;
use ykt_host::domain::authcards::{self, Action, CheckOutcome, NewAuthCard, PinVerdict};
use ykt_host::domain::journal;
use ykt_host::repo_authcards::{self as ra, AuthCardState};
use ykt_host::*;
use ykt_proto::{AuthCheckRequest, AuthFunction, AuthFunctions, ReturnCode};

use super::people::{add, admin_actor};
use super::support::*;

/// A cheap stand-in for an Argon2id hash: these tests are about state, not hashing.
fn hash(p: &str) -> String {
    format!("test-hash:{p}")
}

/// The caller's verification as the server does it off the writer (here: by the stand-in).
fn verdict(s: &Store, no: u32, pin: &str) -> PinVerdict {
    match s.read(move |tx| ra::get(tx.conn, no, false)).unwrap() {
        None => PinVerdict::NotChecked,
        Some(c) => PinVerdict::Checked {
            matches: c.pin_hash == hash(pin),
            hash: c.pin_hash,
        },
    }
}

fn ask(s: &Store, no: u32, function: AuthFunction, time: &str, pin: &str) -> CheckOutcome {
    let v = verdict(s, no, pin);
    let req = AuthCheckRequest {
        card_no: no,
        function,
        time: at(time),
        nonce: 1,
        pin_block: [0; 16],
    };
    s.execute(move |tx| authcards::check(tx, FEP, DEVICE, &req, &v, now()))
        .unwrap()
}

fn code(s: &Store, no: u32, function: AuthFunction, pin: &str) -> u8 {
    ask(s, no, function, "2026-03-02 12:00:00", pin).code.0
}

/// A card for a new operator: reversals and statistics, 2026-03-01 to 2026-04-01, PIN 2468.
fn issue(s: &Store, login: &str) -> ra::AuthCard {
    let actor = admin_actor(s);
    let op = add(s, &actor, login, &[Role::Clerk]);
    let new = NewAuthCard {
        operator_id: op.id,
        valid_from: at("2026-03-01 00:00:00"),
        valid_until: at("2026-04-01 00:00:00"),
        functions: AuthFunctions::NONE
            .with(AuthFunction::Reversal)
            .with(AuthFunction::Statistics),
        pin_hash: hash("2468"),
    };
    let by = actor.clone();
    s.execute(move |tx| {
        let (card, change) = authcards::issue(tx, &new, op.id, now())?;
        journal::append(tx, &by, now(), &change)?;
        Ok(card)
    })
    .unwrap()
}

fn act(s: &Store, no: u32, action: Action) -> Result<ra::AuthCard> {
    s.execute(move |tx| authcards::act(tx, no, action, now()).map(|(c, _)| c))
}

// R-B11: every code of a check from the card's state: 0, 80–89 (code 0, 80, 81, 82, 83, 84,
// 85, 86, 87, 88, 89), each check recorded with its answer.
pub fn auth_card_codes(f: &Fixture) {
    let s = &f.store;
    world(s);
    let card = issue(s, "wang");
    assert_eq!(card.no, 900_001, "numbers of their own, from 900001");
    let no = card.no;
    use AuthFunction::*;
    // code 0: the card may, with its PIN; the operator is named.
    let ok = ask(s, no, Reversal, "2026-03-02 12:00:00", "2468");
    assert_eq!(ok.code, ReturnCode::SUCCESS);
    assert_eq!(i64::from(ok.operator), card.operator_id);
    assert_eq!(ok.tries_left, 5);
    // code 80: unknown card.
    assert_eq!(code(s, 123_456, Reversal, "2468"), 80);
    // code 85 / 86: before valid_from, at valid_until (exclusive).
    assert_eq!(
        ask(s, no, Reversal, "2026-02-28 23:59:59", "2468").code.0,
        85
    );
    assert_eq!(
        ask(s, no, Reversal, "2026-04-01 00:00:00", "2468").code.0,
        86
    );
    assert_eq!(
        ask(s, no, Reversal, "2026-03-31 23:59:59", "2468").code.0,
        0
    );
    // code 88: a function the card is not granted; no PIN is counted for it.
    assert_eq!(code(s, no, ManualSignIn, "0000"), 88);
    assert_eq!(code(s, no, ClearOfflineTime, "2468"), 88);
    // code 89: a wrong PIN counts; a right one clears the count.
    let wrong = ask(s, no, Reversal, "2026-03-02 12:00:00", "1111");
    assert_eq!((wrong.code.0, wrong.operator, wrong.tries_left), (89, 0, 4));
    assert_eq!(
        ask(s, no, Statistics, "2026-03-02 12:00:00", "2468").tries_left,
        5
    );
    // code 83: the fifth wrong PIN in a row locks the card, the right PIN no longer helps.
    for left in (0..5).rev() {
        let o = ask(s, no, Reversal, "2026-03-02 12:00:00", "9999");
        assert_eq!((o.code.0, o.tries_left), (89, left));
    }
    assert_eq!(code(s, no, Reversal, "2468"), 83);
    let locked = s
        .read(move |tx| ra::get(tx.conn, no, false))
        .unwrap()
        .unwrap();
    assert_eq!(
        (locked.state, locked.pin_failures),
        (AuthCardState::Locked, 5)
    );
    // A PIN reset unlocks it with a new PIN.
    s.execute(move |tx| authcards::reset_pin(tx, no, &hash("1357"), now()).map(drop))
        .unwrap();
    assert_eq!(code(s, no, Reversal, "2468"), 89);
    assert_eq!(code(s, no, Reversal, "1357"), 0);
    // code 82 frozen, 81 lost, 84 disabled, 87 cancelled: each state its own code.
    act(s, no, Action::Freeze).unwrap();
    assert_eq!(code(s, no, Reversal, "1357"), 82);
    act(s, no, Action::Unfreeze).unwrap();
    assert_eq!(code(s, no, Reversal, "1357"), 0);
    act(s, no, Action::ReportLost).unwrap();
    assert_eq!(code(s, no, Reversal, "1357"), 81);
    act(s, no, Action::Disable).unwrap();
    assert_eq!(code(s, no, Reversal, "1357"), 84);
    act(s, no, Action::Cancel).unwrap();
    assert_eq!(code(s, no, Reversal, "1357"), 87);
    // Every check is kept with its answer, newest first.
    let uses = s.read(move |tx| ra::uses(tx.conn, no, 100)).unwrap();
    assert_eq!(uses.len(), 21);
    assert_eq!(uses[0].code.0, 87);
    assert_eq!(
        uses.last().map(|u| (u.code.0, u.function)),
        Some((0, Reversal))
    );
    assert!(uses.iter().all(|u| u.device == DEVICE));
    audit_clean(s);
}

// R-B11: the lifecycle is one table; a change that does not apply is refused (400), writes
// nothing, and each change that does is journalled with before and after.
pub fn auth_card_lifecycle(f: &Fixture) {
    let s = &f.store;
    world(s);
    let no = issue(s, "li").no;
    use AuthCardState as S;
    for (action, from, to) in [
        (Action::ReportLost, S::Normal, Some(S::Lost)),
        (Action::ReportLost, S::Locked, Some(S::Lost)),
        (Action::ReportLost, S::Lost, None),
        (Action::Freeze, S::Normal, Some(S::Frozen)),
        (Action::Freeze, S::Locked, None),
        (Action::Unfreeze, S::Frozen, Some(S::Normal)),
        (Action::Unfreeze, S::Normal, None),
        (Action::Disable, S::Lost, Some(S::Disabled)),
        (Action::Disable, S::Cancelled, None),
        (Action::Cancel, S::Disabled, Some(S::Cancelled)),
        (Action::Cancel, S::Cancelled, None),
    ] {
        assert_eq!(action.next(from), to, "{action:?} from {from:?}");
    }
    assert!(matches!(
        act(s, no, Action::Unfreeze),
        Err(HostError::Invalid(_))
    ));
    act(s, no, Action::Freeze).unwrap();
    assert!(matches!(
        s.execute(move |tx| authcards::reset_pin(tx, no, &hash("0000"), now())),
        Err(HostError::Invalid(_))
    ));
    act(s, no, Action::Cancel).unwrap();
    assert!(matches!(
        act(s, no, Action::Cancel),
        Err(HostError::Invalid(_))
    ));
    assert!(matches!(
        act(s, 42, Action::Freeze),
        Err(HostError::Invalid(_))
    ));
    // Issue refuses what it cannot issue.
    let op = s
        .read(|tx| ra::get(tx.conn, 900_001, false))
        .unwrap()
        .unwrap()
        .operator_id;
    let bad = |from: &str, until: &str, functions: AuthFunctions, operator_id: i64| {
        let new = NewAuthCard {
            operator_id,
            valid_from: at(from),
            valid_until: at(until),
            functions,
            pin_hash: hash("2468"),
        };
        s.execute(move |tx| authcards::issue(tx, &new, op, now()).map(drop))
    };
    let rev = AuthFunctions::NONE.with(AuthFunction::Reversal);
    assert!(bad("2026-03-02 00:00:00", "2026-03-01 00:00:00", rev, op).is_err());
    assert!(bad("2026-03-01 00:00:00", "2036-03-01 00:00:00", rev, op).is_err());
    assert!(
        bad(
            "2026-03-01 00:00:00",
            "2026-04-01 00:00:00",
            AuthFunctions::NONE,
            op
        )
        .is_err()
    );
    assert!(bad("2026-03-01 00:00:00", "2026-04-01 00:00:00", rev, 999_999).is_err());
    // The journal names each change of the card: issue, then freeze, then cancel.
    let ops: Vec<String> = s
        .read(|tx| {
            let filter = journal::Filter {
                target: Some("authcard:900001".into()),
                limit: 100,
                ..journal::Filter::default()
            };
            journal::list(tx, &filter)
        })
        .unwrap()
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert!(ops.contains(&"authcard.issue".to_owned()), "{ops:?}");
    audit_clean(s);
}

// R-B11: a PIN verified against a hash the card no longer has (a reset in between) is not
// trusted: code 1, the terminal asks again; nothing is counted.
pub fn auth_card_stale_pin_verdict(f: &Fixture) {
    let s = &f.store;
    world(s);
    let no = issue(s, "zhao").no;
    let stale = verdict(s, no, "2468");
    s.execute(move |tx| authcards::reset_pin(tx, no, &hash("8642"), now()).map(drop))
        .unwrap();
    let req = AuthCheckRequest {
        card_no: no,
        function: AuthFunction::Reversal,
        time: now(),
        nonce: 2,
        pin_block: [0; 16],
    };
    let r = s.execute(move |tx| authcards::check(tx, FEP, DEVICE, &req, &stale, now()));
    assert!(
        matches!(r, Err(HostError::Refused(ReturnCode::SYSTEM_FAILURE))),
        "{r:?}"
    );
    // A device the host does not know is refused before any card is looked at (code 20).
    let req = AuthCheckRequest {
        card_no: no,
        function: AuthFunction::Reversal,
        time: now(),
        nonce: 3,
        pin_block: [0; 16],
    };
    let v = verdict(s, no, "8642");
    let r = s.execute(move |tx| {
        authcards::check(tx, FEP, ykt_proto::PhysicalId([9; 4]), &req, &v, now())
    });
    assert!(
        matches!(r, Err(HostError::Refused(c)) if c.0 == 20),
        "{r:?}"
    );
    assert!(
        s.read(move |tx| ra::uses(tx.conn, no, 10))
            .unwrap()
            .is_empty()
    );
    let c = s
        .read(move |tx| ra::get(tx.conn, no, false))
        .unwrap()
        .unwrap();
    assert_eq!(c.pin_failures, 0);
    audit_clean(s);
}

// R-B11, R-B1: the audit finds a lock that disagrees with its wrong-PIN count and a card
// issued past the journal.
pub fn auth_card_audit_finds_tampering(f: &Fixture) {
    let s = &f.store;
    world(s);
    let no = issue(s, "sun").no;
    audit_clean(s);
    let findings = |s: &Store| {
        s.read(|tx| ledger::audit(tx.conn))
            .unwrap()
            .auth_card_mismatches
    };
    s.execute(move |tx| {
        tx.conn.exec(
            "UPDATE auth_cards SET state = 'locked' WHERE no = $1",
            &[i64::from(no).into()],
        )
    })
    .unwrap();
    assert_eq!(
        findings(s),
        vec![format!("authcard:{no} is locked with 0 wrong PINs")]
    );
    // A card put in by SQL: no person issued it.
    s.execute(move |tx| {
        tx.conn.exec(
            "UPDATE auth_cards SET state = 'normal' WHERE no = $1",
            &[i64::from(no).into()],
        )?;
        let mut copy = ra::get(tx.conn, no, false)?.unwrap();
        copy.no = 77;
        ra::insert(tx.conn, &copy)
    })
    .unwrap();
    assert_eq!(
        findings(s),
        vec!["authcard:77 has no issue in the journal".to_owned()]
    );
}
