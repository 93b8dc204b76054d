//! Conformance tests of the people of a card office (R-B1): operators, logins and lockout,
//! tokens, sessions and the operator journal, on both backends.

use chrono::Duration;
use ykt_host::access::{Role, Roles};
use ykt_host::domain::journal::{self, Actor, Filter};
use ykt_host::domain::operators::{self, LoginPolicy, LoginRefusal, NewOperator, Verified};
use ykt_host::repo_people::{OperatorStatus, PasswordState};
use ykt_host::*;

use super::support::*;

/// A cheap stand-in for an Argon2id hash: these tests are about state, not hashing.
fn hash(p: &str) -> String {
    format!("test-hash:{p}")
}

pub fn admin_actor(s: &Store) -> Actor {
    let a = s
        .execute(|tx| operators::bootstrap(tx, &hash("initial"), now()))
        .unwrap();
    let a = match a {
        Some(a) => a,
        None => s
            .read(|tx| operators::get(tx, operators::FIRST_ADMIN))
            .unwrap(),
    };
    Actor::operator(a.id, &a.login, Some(Role::Admin), "127.0.0.1")
}

pub fn add(s: &Store, actor: &Actor, login: &str, roles: &[Role]) -> repo_people::Operator {
    let n = NewOperator {
        login: login.into(),
        name: format!("{login} 老师"),
        roles: Roles::of(roles),
        password_hash: hash("secret-1"),
    };
    let actor = actor.clone();
    s.execute(move |tx| operators::add(tx, &actor, &n, now()))
        .unwrap()
}

fn login(
    s: &Store,
    who: &str,
    password: &str,
    at: chrono::NaiveDateTime,
) -> Result<repo_people::Operator, LoginRefusal> {
    let (who, v) = (
        who.to_owned(),
        Verified::Matches {
            hash: hash(password),
        },
    );
    // The caller verifies off the writer; a wrong password is `Differs`.
    let current = s.read({
        let who = who.clone();
        move |tx| Ok(operators::get(tx, &who).ok().map(|o| o.password_hash))
    });
    let verified = match current.unwrap() {
        Some(h) if h == hash(password) => v,
        _ => Verified::Differs,
    };
    s.execute(move |tx| {
        operators::record_login(tx, &who, &verified, &LoginPolicy::default(), "10.0.0.9", at)
    })
    .unwrap()
}

fn entries(s: &Store, f: Filter) -> Vec<journal::Entry> {
    s.read(move |tx| {
        journal::list(
            tx,
            &Filter {
                limit: 1000,
                ..f.clone()
            },
        )
    })
    .unwrap()
}

// R-B1: the first start creates one administrator who must change the initial password;
// operators are added with roles, and every change is journalled with who and what.
pub fn operators_and_journal(f: &Fixture) {
    let s = &f.store;
    let admin = admin_actor(s);
    assert_eq!(
        s.execute(|tx| operators::bootstrap(tx, "x", now()))
            .unwrap(),
        None,
        "only once"
    );
    let first = s.read(|tx| operators::get(tx, "admin")).unwrap();
    assert_eq!(first.password, PasswordState::MustChange);
    assert!(first.roles.contains(Role::Admin));

    let clerk = add(s, &admin, "wang.li", &[Role::Clerk]);
    assert_eq!(clerk.password, PasswordState::MustChange);
    let dup = NewOperator {
        login: "wang.li".into(),
        name: "x".into(),
        roles: Roles::of(&[Role::Clerk]),
        password_hash: hash("p"),
    };
    let a = admin.clone();
    let e = s
        .execute(move |tx| operators::add(tx, &a, &dup, now()))
        .unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    for bad in ["", "Wang", "1abc", "a b", &"x".repeat(33)] {
        let n = NewOperator {
            login: bad.into(),
            name: "n".into(),
            roles: Roles::of(&[Role::Clerk]),
            password_hash: hash("p"),
        };
        let a = admin.clone();
        assert!(
            s.execute(move |tx| operators::add(tx, &a, &n, now()))
                .is_err(),
            "{bad:?}"
        );
    }

    let a = admin.clone();
    let after = s
        .execute(move |tx| {
            operators::set_roles(
                tx,
                &a,
                "wang.li",
                Roles::of(&[Role::Clerk, Role::Finance]),
                now(),
            )
        })
        .unwrap();
    assert!(after.roles.contains(Role::Finance));

    let log = entries(
        s,
        Filter {
            target: Some("operator:wang.li".into()),
            ..Filter::default()
        },
    );
    let ops: Vec<_> = log.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["operator.roles", "operator.add"], "newest first");
    let roles = &log[0];
    assert_eq!(roles.login, "admin");
    assert_eq!(roles.role, "admin");
    assert_eq!(roles.client, "127.0.0.1");
    assert_eq!(
        roles.before.as_ref().unwrap()["roles"],
        serde_json::json!(["clerk"])
    );
    assert_eq!(
        roles.after.as_ref().unwrap()["roles"],
        serde_json::json!(["clerk", "finance"])
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(
        !text.contains("test-hash"),
        "never a password hash in the journal: {text}"
    );
    let by_admin = entries(
        s,
        Filter {
            operator: Some("admin".into()),
            ..Filter::default()
        },
    );
    assert_eq!(by_admin.len(), 2);
    let first_start = entries(
        s,
        Filter {
            operator: Some("system".into()),
            ..Filter::default()
        },
    );
    assert_eq!(first_start[0].operation, "operator.add");
}

// R-B1: the last active administrator can neither be disabled nor lose the role.
pub fn last_admin_is_kept(f: &Fixture) {
    let s = &f.store;
    let admin = admin_actor(s);
    let a = admin.clone();
    let e = s
        .execute(move |tx| operators::set_status(tx, &a, "admin", OperatorStatus::Disabled, now()))
        .unwrap_err();
    assert!(e.to_string().contains("last active"), "{e}");
    let a = admin.clone();
    assert!(
        s.execute(move |tx| operators::set_roles(
            tx,
            &a,
            "admin",
            Roles::of(&[Role::Auditor]),
            now()
        ))
        .is_err()
    );
    add(s, &admin, "second", &[Role::Admin]);
    let a = admin.clone();
    let off = s
        .execute(move |tx| operators::set_status(tx, &a, "admin", OperatorStatus::Disabled, now()))
        .unwrap();
    assert_eq!(off.status, OperatorStatus::Disabled);
}

// R-B1: failed logins are counted; after five in a row the operator is locked for 15
// minutes, even with the right password; the lock ends by itself.
pub fn login_lockout(f: &Fixture) {
    let s = &f.store;
    let admin = admin_actor(s);
    add(s, &admin, "clerk1", &[Role::Clerk]);
    let t0 = now();
    assert!(login(s, "clerk1", "secret-1", t0).is_ok());
    assert_eq!(
        login(s, "nobody", "secret-1", t0).unwrap_err(),
        LoginRefusal::BadCredentials
    );
    for i in 0..4 {
        assert_eq!(
            login(s, "clerk1", "wrong", t0).unwrap_err(),
            LoginRefusal::BadCredentials,
            "{i}"
        );
    }
    let until = t0 + Duration::minutes(15);
    assert_eq!(
        login(s, "clerk1", "wrong", t0).unwrap_err(),
        LoginRefusal::Locked { until }
    );
    assert_eq!(
        login(s, "clerk1", "secret-1", t0 + Duration::minutes(14)).unwrap_err(),
        LoginRefusal::Locked { until },
        "locked even with the right password"
    );
    let back = login(s, "clerk1", "secret-1", until).unwrap();
    assert_eq!(back.failed_logins, 0);
    let locked = entries(
        s,
        Filter {
            operation: Some("operator.locked".into()),
            ..Filter::default()
        },
    );
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].client, "10.0.0.9");
    let failed = entries(
        s,
        Filter {
            operation: Some("operator.login-failed".into()),
            ..Filter::default()
        },
    );
    assert_eq!(failed.len(), 4);
    // A success in between resets the count.
    for _ in 0..4 {
        let _ = login(s, "clerk1", "wrong", until);
    }
    assert!(login(s, "clerk1", "secret-1", until).is_ok());
    assert_eq!(
        login(s, "clerk1", "wrong", until).unwrap_err(),
        LoginRefusal::BadCredentials
    );
    // A disabled operator cannot log in.
    let a = admin.clone();
    s.execute(move |tx| operators::set_status(tx, &a, "clerk1", OperatorStatus::Disabled, now()))
        .unwrap();
    assert_eq!(
        login(s, "clerk1", "secret-1", until).unwrap_err(),
        LoginRefusal::Disabled
    );
}

// R-B1: API tokens are shown once, stored hashed, resolve to their operator until revoked
// or expired; disabling the operator revokes them.
pub fn api_tokens(f: &Fixture) {
    let s = &f.store;
    let admin = admin_actor(s);
    add(s, &admin, "tech", &[Role::Technician]);
    let a = admin.clone();
    let (t, text) = s
        .execute(move |tx| operators::token_create(tx, &a, "tech", "ci", None, now()))
        .unwrap();
    let resolve = |text: String, at| {
        s.read(move |tx| operators::token_resolve(tx, &text, at))
            .unwrap()
    };
    assert_eq!(resolve(text.clone(), now()).unwrap().login, "tech");
    let stored = s.read(|tx| operators::tokens_of(tx, "tech")).unwrap();
    assert!(!stored[0].secret_hash.is_empty() && !text.contains(&stored[0].secret_hash));
    let mut wrong = text.clone();
    wrong.pop();
    wrong.push(if text.ends_with('0') { '1' } else { '0' });
    assert!(resolve(wrong, now()).is_none());
    assert!(resolve("not a token".into(), now()).is_none());

    let a = admin.clone();
    let exp = now() + Duration::hours(1);
    let (_, short) = s
        .execute(move |tx| operators::token_create(tx, &a, "tech", "short", Some(exp), now()))
        .unwrap();
    assert!(resolve(short.clone(), now()).is_some());
    assert!(resolve(short, exp).is_none(), "expired");
    let a = admin.clone();
    assert!(
        s.execute(move |tx| operators::token_create(tx, &a, "tech", "past", Some(now()), now()))
            .is_err()
    );

    let (a, id) = (admin.clone(), t.id.clone());
    s.execute(move |tx| operators::token_revoke(tx, &a, "tech", &id, now()))
        .unwrap();
    assert!(resolve(text.clone(), now()).is_none(), "revoked");
    let (a, id) = (admin.clone(), t.id.clone());
    assert!(
        s.execute(move |tx| operators::token_revoke(tx, &a, "tech", &id, now()))
            .is_err()
    );

    let a = admin.clone();
    let (_, live) = s
        .execute(move |tx| operators::token_create(tx, &a, "tech", "", None, now()))
        .unwrap();
    let a = admin.clone();
    s.execute(move |tx| operators::set_status(tx, &a, "tech", OperatorStatus::Disabled, now()))
        .unwrap();
    assert!(
        resolve(live, now()).is_none(),
        "disabled operator's tokens revoked"
    );
    let created = entries(
        s,
        Filter {
            operation: Some("token.create".into()),
            ..Filter::default()
        },
    );
    assert_eq!(created.len(), 3);
    assert!(
        !serde_json::to_string(&created)
            .unwrap()
            .contains(&text[20..])
    );
}

// R-B1: a browser session lives while used and ends after 30 idle minutes or at logout.
pub fn web_sessions(f: &Fixture) {
    let s = &f.store;
    let admin = admin_actor(s);
    let clerk = add(s, &admin, "clerk2", &[Role::Clerk]);
    let opened = s
        .execute(move |tx| operators::session_open(tx, &clerk, "10.1.1.1", now()))
        .unwrap();
    let policy = LoginPolicy::default();
    let resolve = |cookie: String, at| {
        s.read(move |tx| operators::session_resolve(tx, &cookie, &policy, at))
            .unwrap()
    };
    let (sess, o) = resolve(opened.cookie.clone(), now() + Duration::minutes(29)).unwrap();
    assert_eq!(o.login, "clerk2");
    assert_eq!(sess.csrf, opened.csrf);
    assert_ne!(sess.id_hash, opened.cookie, "stored hashed");
    assert!(
        resolve(opened.cookie.clone(), now() + Duration::minutes(31)).is_none(),
        "idle"
    );
    let touched_at = now() + Duration::minutes(20);
    s.execute(move |tx| operators::session_touch(tx, &sess, touched_at))
        .unwrap();
    assert!(
        resolve(opened.cookie.clone(), now() + Duration::minutes(45)).is_some(),
        "kept alive"
    );
    let actor = Actor::operator(o.id, "clerk2", None, "10.1.1.1");
    let c = opened.cookie.clone();
    s.execute(move |tx| operators::session_close(tx, &actor, &c, now()))
        .unwrap();
    assert!(resolve(opened.cookie, now()).is_none(), "logged out");
}

// R-B1: the journal is append-only: the database itself refuses to change or delete it.
pub fn journal_is_append_only(f: &Fixture) {
    let s = &f.store;
    admin_actor(s);
    let before = entries(s, Filter::default()).len();
    for sql in ["UPDATE journal SET operation = 'x'", "DELETE FROM journal"] {
        let e = s.execute(move |tx| tx.conn.exec(sql, &[])).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(entries(s, Filter::default()).len(), before);
}

// R-B1: the audit pairs every deposit with the journal entry that names it: a deposit
// written behind the journal's back, or a journal entry naming no transfer, is a finding.
pub fn audit_pairs_deposits_with_the_journal(f: &Fixture) {
    let s = &f.store;
    let c = card(s, 1_000);
    audit_clean(s);
    let no = c.no.get();
    s.execute(move |tx| {
        tx.conn.exec(
            "INSERT INTO transfers (id, from_account, to_account, amount, kind, time) \
             VALUES ('dep:behind-the-back', 'funding', $1, 500, 'deposit', 0)",
            &[format!("card:{no}").into()],
        )?;
        tx.conn.exec(
            "UPDATE accounts SET balance = balance + 500 WHERE id = $1",
            &[format!("card:{no}").into()],
        )?;
        tx.conn.exec(
            "UPDATE accounts SET balance = balance - 500 WHERE id = 'funding'",
            &[],
        )?;
        tx.conn.exec(
            "UPDATE cards SET balance = balance + 500 WHERE no = $1",
            &[no.into()],
        )
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(
        report.journal_mismatches,
        vec!["dep:behind-the-back".to_owned()],
        "{report:?}"
    );
    let actor = Actor::system("test");
    s.execute(move |tx| {
        let change = journal::Change::new("card.deposit", "card:0").transfer("dep:nowhere");
        journal::append(tx, &actor, now(), &change)
    })
    .unwrap();
    let report = s.read(|tx| ledger::audit(tx.conn)).unwrap();
    assert_eq!(report.journal_mismatches.len(), 2, "{report:?}");
}
