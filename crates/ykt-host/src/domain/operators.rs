//! Operators (R-B1): the people who run the card office, their roles, passwords, login
//! lockout, API tokens and browser sessions. Every change is journalled in its transaction.
//! Password hashes are computed and verified by the caller off the writer threads
//! (`secrets.rs`); these functions only store and compare what they are given.

use chrono::{Duration, NaiveDateTime};
use serde_json::json;

use super::journal::{self, Actor, Change};
use crate::access::{Role, Roles};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo_people::{
    self as rp, ApiToken, Operator, OperatorStatus, PasswordState, WebSession,
};
use crate::secrets::{self, NewToken};

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(HostError::Invalid(m.into()))
}

/// Login lockout and session lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failed logins in a row after which the operator is locked.
    pub max_failures: u32,
    /// How long a lock lasts.
    pub lock_for: Duration,
    /// A browser session unused this long has ended.
    pub session_idle: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            max_failures: 5,
            lock_for: Duration::minutes(15),
            session_idle: Duration::minutes(30),
        }
    }
}

/// The login of the first system administrator, created at the first start.
pub const FIRST_ADMIN: &str = "admin";
/// Most operators listed at once; most tokens an operator holds.
pub const MAX_LIST: u32 = 10_000;
const MAX_TOKENS: usize = 100;

fn check_login(login: &str) -> Result<()> {
    let ok = (1..=32).contains(&login.len())
        && login.starts_with(|c: char| c.is_ascii_lowercase())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        invalid("a login has 1 to 32 characters: a-z first, then a-z, 0-9, '.', '_', '-'")
    }
}

fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if (1..=64).contains(&n) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        invalid("a display name has 1 to 64 characters")
    }
}

/// What the journal and the API show of an operator: never the password hash.
pub fn view(o: &Operator) -> serde_json::Value {
    json!({
        "id": o.id,
        "login": o.login,
        "name": o.name,
        "roles": o.roles.iter().map(Role::as_str).collect::<Vec<_>>(),
        "role_titles": o.roles.iter().map(Role::title).collect::<Vec<_>>(),
        "status": o.status.as_str(),
        "must_change_password": o.password == PasswordState::MustChange,
        "failed_logins": o.failed_logins,
        "locked_until": o.locked_until.map(|t| t.to_string()),
        "created_at": o.created_at.to_string(),
    })
}

fn target(o: &Operator) -> String {
    format!("operator:{}", o.login)
}

pub fn get(tx: &mut Tx<'_>, login: &str) -> Result<Operator> {
    rp::operator_by_login(tx.conn, login, false)?
        .ok_or_else(|| HostError::Invalid(format!("no operator {login:?}")))
}

fn get_locked(tx: &mut Tx<'_>, login: &str) -> Result<Operator> {
    rp::operator_by_login(tx.conn, login, true)?
        .ok_or_else(|| HostError::Invalid(format!("no operator {login:?}")))
}

pub fn by_id(tx: &mut Tx<'_>, id: i64) -> Result<Operator> {
    rp::operator_by_id(tx.conn, id, false)?
        .ok_or_else(|| HostError::Corrupt(format!("operator {id} vanished")))
}

pub fn list(tx: &mut Tx<'_>) -> Result<Vec<Operator>> {
    rp::operator_list(tx.conn, MAX_LIST)
}

/// A new operator as the administrator gives it; the password already hashed.
#[derive(Clone, Debug)]
pub struct NewOperator {
    pub login: String,
    pub name: String,
    pub roles: Roles,
    pub password_hash: String,
}

fn insert(tx: &mut Tx<'_>, n: &NewOperator, now: NaiveDateTime) -> Result<Operator> {
    check_login(&n.login)?;
    check_name(&n.name)?;
    if n.roles.is_empty() {
        return invalid("an operator has at least one role");
    }
    let o = Operator {
        id: 0,
        login: n.login.clone(),
        name: n.name.clone(),
        roles: n.roles,
        status: OperatorStatus::Active,
        password_hash: n.password_hash.clone(),
        // Whoever chose this password is not the operator: they change it at first login.
        password: PasswordState::MustChange,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
    };
    let Some(id) = rp::operator_insert(tx.conn, &o)? else {
        return invalid(format!("operator {:?} exists", n.login));
    };
    Ok(Operator { id, ..o })
}

/// Adds an operator, who must change the given password at first login.
pub fn add(
    tx: &mut Tx<'_>,
    actor: &Actor,
    n: &NewOperator,
    now: NaiveDateTime,
) -> Result<Operator> {
    let o = insert(tx, n, now)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new("operator.add", target(&o)).after(view(&o)),
    )?;
    Ok(o)
}

/// At the first start (no operator at all): the first system administrator, `admin`, with
/// the given initial password. `None` when operators exist.
pub fn bootstrap(
    tx: &mut Tx<'_>,
    password_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<Operator>> {
    if rp::operator_count(tx.conn)? > 0 {
        return Ok(None);
    }
    let n = NewOperator {
        login: FIRST_ADMIN.into(),
        name: "系统管理员".into(),
        roles: Roles::of(&[Role::Admin]),
        password_hash: password_hash.to_owned(),
    };
    add(tx, &Actor::system("first start"), &n, now).map(Some)
}

/// The first system administrator: whom the legacy admin token acts as.
pub fn first_admin(tx: &mut Tx<'_>) -> Result<Option<Operator>> {
    rp::operator_first(tx.conn)
}

/// Active operators holding the admin role, other than `except`.
fn other_admins(tx: &mut Tx<'_>, except: i64) -> Result<usize> {
    Ok(list(tx)?
        .iter()
        .filter(|o| {
            o.id != except && o.status == OperatorStatus::Active && o.roles.contains(Role::Admin)
        })
        .count())
}

/// Refuses a change that would leave no active system administrator.
fn keep_an_admin(tx: &mut Tx<'_>, o: &Operator, after: &Operator) -> Result<()> {
    let was = o.status == OperatorStatus::Active && o.roles.contains(Role::Admin);
    let is = after.status == OperatorStatus::Active && after.roles.contains(Role::Admin);
    if was && !is && other_admins(tx, o.id)? == 0 {
        return invalid(
            "the last active system administrator cannot lose that role or be disabled",
        );
    }
    Ok(())
}

fn update(
    tx: &mut Tx<'_>,
    actor: &Actor,
    before: &Operator,
    after: &Operator,
    operation: &'static str,
    now: NaiveDateTime,
) -> Result<Operator> {
    keep_an_admin(tx, before, after)?;
    rp::operator_update(tx.conn, after)?;
    let change = Change::new(operation, target(after))
        .before(view(before))
        .after(view(after));
    journal::append(tx, actor, now, &change)?;
    Ok(after.clone())
}

/// Disables or enables an operator. Disabling ends their sessions and revokes their tokens.
pub fn set_status(
    tx: &mut Tx<'_>,
    actor: &Actor,
    login: &str,
    status: OperatorStatus,
    now: NaiveDateTime,
) -> Result<Operator> {
    let o = get_locked(tx, login)?;
    if o.status == status {
        return invalid(format!("operator {login:?} is {} already", status.as_str()));
    }
    let mut after = o.clone();
    after.status = status;
    if status == OperatorStatus::Active {
        after.failed_logins = 0;
        after.locked_until = None;
    } else {
        rp::tokens_revoke_all(tx.conn, o.id, now)?;
        rp::sessions_end_all(tx.conn, o.id, now)?;
    }
    let op = match status {
        OperatorStatus::Active => "operator.enable",
        OperatorStatus::Disabled => "operator.disable",
    };
    update(tx, actor, &o, &after, op, now)
}

pub fn set_roles(
    tx: &mut Tx<'_>,
    actor: &Actor,
    login: &str,
    roles: Roles,
    now: NaiveDateTime,
) -> Result<Operator> {
    if roles.is_empty() {
        return invalid("an operator has at least one role");
    }
    let o = get_locked(tx, login)?;
    let mut after = o.clone();
    after.roles = roles;
    update(tx, actor, &o, &after, "operator.roles", now)
}

/// An administrator sets a new password: the operator changes it at the next login; their
/// sessions end and a lock is lifted.
pub fn reset_password(
    tx: &mut Tx<'_>,
    actor: &Actor,
    login: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<Operator> {
    let o = get_locked(tx, login)?;
    let mut after = o.clone();
    after.password_hash = hash.to_owned();
    after.password = PasswordState::MustChange;
    after.failed_logins = 0;
    after.locked_until = None;
    rp::sessions_end_all(tx.conn, o.id, now)?;
    update(tx, actor, &o, &after, "operator.password-reset", now)
}

/// The operator changes their own password. `verified_hash` is the hash the old password
/// was verified against (off the writer): if it changed since, the change is refused.
pub fn change_own_password(
    tx: &mut Tx<'_>,
    actor: &Actor,
    id: i64,
    verified_hash: &str,
    new_hash: &str,
    now: NaiveDateTime,
) -> Result<Operator> {
    let o = rp::operator_by_id(tx.conn, id, true)?
        .ok_or_else(|| HostError::Corrupt(format!("operator {id} vanished")))?;
    if o.password_hash != verified_hash {
        return invalid("the password changed meanwhile; sign in again");
    }
    let mut after = o.clone();
    after.password_hash = new_hash.to_owned();
    after.password = PasswordState::Chosen;
    update(tx, actor, &o, &after, "operator.password-change", now)
}

// ---- logging in ------------------------------------------------------------------------------

/// Why a login is refused. The API says only "wrong name or password" for `BadCredentials`
/// and for an unknown login alike, so logins cannot be probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    BadCredentials,
    Locked { until: NaiveDateTime },
    Disabled,
}

/// Whether the password presented matched the hash the caller verified it against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    Matches { hash: String },
    Differs,
}

/// Read side of a login: the operator to verify the password against, or why not to try.
pub fn login_candidate(
    tx: &mut Tx<'_>,
    login: &str,
    now: NaiveDateTime,
) -> Result<std::result::Result<Operator, LoginRefusal>> {
    let Some(o) = rp::operator_by_login(tx.conn, login, false)? else {
        return Ok(Err(LoginRefusal::BadCredentials));
    };
    Ok(refusal(&o, now).map_or(Ok(o), Err))
}

fn refusal(o: &Operator, now: NaiveDateTime) -> Option<LoginRefusal> {
    if o.status == OperatorStatus::Disabled {
        return Some(LoginRefusal::Disabled);
    }
    match o.locked_until {
        Some(until) if until > now => Some(LoginRefusal::Locked { until }),
        _ => None,
    }
}

/// Write side of a login, under the operator's row lock: counts a failure (and locks after
/// `max_failures` in a row), or clears the count on success. Journalled either way.
pub fn record_login(
    tx: &mut Tx<'_>,
    login: &str,
    verified: &Verified,
    policy: &LoginPolicy,
    client: &str,
    now: NaiveDateTime,
) -> Result<std::result::Result<Operator, LoginRefusal>> {
    let Some(o) = rp::operator_by_login(tx.conn, login, true)? else {
        return Ok(Err(LoginRefusal::BadCredentials));
    };
    if let Some(r) = refusal(&o, now) {
        return Ok(Err(r));
    }
    let actor = Actor::operator(o.id, &o.login, None, client);
    let mut after = o.clone();
    let ok = matches!(verified, Verified::Matches { hash } if *hash == o.password_hash);
    let (operation, outcome) = if ok {
        after.failed_logins = 0;
        after.locked_until = None;
        ("operator.login", Ok(after.clone()))
    } else {
        after.failed_logins = o.failed_logins.saturating_add(1);
        if after.failed_logins >= policy.max_failures {
            let until = now + policy.lock_for;
            after.locked_until = Some(until);
            after.failed_logins = 0;
            ("operator.locked", Err(LoginRefusal::Locked { until }))
        } else {
            ("operator.login-failed", Err(LoginRefusal::BadCredentials))
        }
    };
    rp::operator_update(tx.conn, &after)?;
    let change = Change::new(operation, target(&o)).after(json!({
        "failed_logins": after.failed_logins,
        "locked_until": after.locked_until.map(|t| t.to_string()),
    }));
    journal::append(tx, &actor, now, &change)?;
    Ok(outcome)
}

// ---- browser sessions ------------------------------------------------------------------------

/// A session just opened: the cookie value (shown to the browser only) and its CSRF token.
#[derive(Clone, Debug)]
pub struct OpenedSession {
    pub cookie: String,
    pub csrf: String,
}

pub fn session_open(
    tx: &mut Tx<'_>,
    operator: &Operator,
    client: &str,
    now: NaiveDateTime,
) -> Result<OpenedSession> {
    let cookie = secrets::random_hex32()?;
    let csrf = secrets::random_hex32()?;
    rp::session_insert(
        tx.conn,
        &WebSession {
            id_hash: secrets::digest(&cookie),
            operator_id: operator.id,
            csrf: csrf.clone(),
            client: client.to_owned(),
            created_at: now,
            last_seen: now,
            ended_at: None,
        },
    )?;
    Ok(OpenedSession { cookie, csrf })
}

/// The live session of a cookie and its operator; `None` when unknown, ended, idle past the
/// policy, or its operator is disabled.
pub fn session_resolve(
    tx: &mut Tx<'_>,
    cookie: &str,
    policy: &LoginPolicy,
    now: NaiveDateTime,
) -> Result<Option<(WebSession, Operator)>> {
    let Some(s) = rp::session_get(tx.conn, &secrets::digest(cookie))? else {
        return Ok(None);
    };
    if s.ended_at.is_some() || s.last_seen + policy.session_idle < now {
        return Ok(None);
    }
    let o = by_id(tx, s.operator_id)?;
    Ok((o.status == OperatorStatus::Active).then_some((s, o)))
}

/// Keeps a session alive; written at most once a minute per session.
pub fn session_touch(tx: &mut Tx<'_>, s: &WebSession, now: NaiveDateTime) -> Result<()> {
    if now - s.last_seen >= Duration::minutes(1) {
        rp::session_touch(tx.conn, &s.id_hash, now)?;
    }
    Ok(())
}

pub fn session_close(
    tx: &mut Tx<'_>,
    actor: &Actor,
    cookie: &str,
    now: NaiveDateTime,
) -> Result<()> {
    if rp::session_end(tx.conn, &secrets::digest(cookie), now)? {
        journal::append(
            tx,
            actor,
            now,
            &Change::new("operator.logout", format!("operator:{}", actor.login)),
        )?;
    }
    Ok(())
}

// ---- API tokens ------------------------------------------------------------------------------

/// What the API shows of a token: never its secret or hash.
pub fn token_view(t: &ApiToken) -> serde_json::Value {
    json!({
        "id": t.id,
        "label": t.label,
        "created_at": t.created_at.to_string(),
        "expires_at": t.expires_at.map(|x| x.to_string()),
        "revoked_at": t.revoked_at.map(|x| x.to_string()),
    })
}

/// Creates a token for `login`; the returned text is shown once and never stored.
pub fn token_create(
    tx: &mut Tx<'_>,
    actor: &Actor,
    login: &str,
    label: &str,
    expires_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<(ApiToken, String)> {
    if label.chars().count() > 64 || label.chars().any(char::is_control) {
        return invalid("a token label has at most 64 characters");
    }
    if expires_at.is_some_and(|e| e <= now) {
        return invalid("a token's expiry is in the future");
    }
    let o = get_locked(tx, login)?;
    if o.status != OperatorStatus::Active {
        return invalid(format!("operator {login:?} is disabled"));
    }
    let live = rp::token_list(tx.conn, Some(o.id), MAX_LIST)?
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    if live >= MAX_TOKENS {
        return invalid(format!("an operator holds at most {MAX_TOKENS} tokens"));
    }
    let new = NewToken::generate()?;
    let t = ApiToken {
        id: new.id.clone(),
        operator_id: o.id,
        secret_hash: secrets::digest(&new.secret),
        label: label.to_owned(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    rp::token_insert(tx.conn, &t)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new("token.create", target(&o)).after(token_view(&t)),
    )?;
    Ok((t, new.text()))
}

pub fn tokens_of(tx: &mut Tx<'_>, login: &str) -> Result<Vec<ApiToken>> {
    let o = get(tx, login)?;
    rp::token_list(tx.conn, Some(o.id), MAX_LIST)
}

/// Revokes one of `login`'s tokens.
pub fn token_revoke(
    tx: &mut Tx<'_>,
    actor: &Actor,
    login: &str,
    id: &str,
    now: NaiveDateTime,
) -> Result<ApiToken> {
    let o = get(tx, login)?;
    let t = rp::token_get(tx.conn, id)?
        .filter(|t| t.operator_id == o.id)
        .ok_or_else(|| HostError::Invalid(format!("operator {login:?} has no token {id:?}")))?;
    if !rp::token_revoke(tx.conn, id, now)? {
        return invalid(format!("token {id:?} is revoked already"));
    }
    let after = ApiToken {
        revoked_at: Some(now),
        ..t.clone()
    };
    let change = Change::new("token.revoke", target(&o))
        .before(token_view(&t))
        .after(token_view(&after));
    journal::append(tx, actor, now, &change)?;
    Ok(after)
}

/// The operator a presented `ykt_…` token stands for; `None` when it is not a live token of
/// an active operator.
pub fn token_resolve(
    tx: &mut Tx<'_>,
    presented: &str,
    now: NaiveDateTime,
) -> Result<Option<Operator>> {
    let Some((id, secret)) = NewToken::parse(presented) else {
        return Ok(None);
    };
    let Some(t) = rp::token_get(tx.conn, id)? else {
        return Ok(None);
    };
    let live = t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now);
    if !live || !secrets::same(secrets::digest(secret).as_bytes(), t.secret_hash.as_bytes()) {
        return Ok(None);
    }
    let o = by_id(tx, t.operator_id)?;
    Ok((o.status == OperatorStatus::Active).then_some(o))
}
