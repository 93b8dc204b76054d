//! Typed data access for the people of a card office (schema V7): operators, API tokens,
//! browser sessions, the operator journal. No rules: `domain::operators` and
//! `domain::journal` hold them.

use chrono::NaiveDateTime;

use crate::access::Roles;
use crate::error::{HostError, Result};
use crate::repo::{time_from, time_key};
use crate::sql::{Conn, Row, Value};

/// Whether an operator may sign in at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorStatus {
    Active,
    Disabled,
}

impl OperatorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorStatus::Active => "active",
            OperatorStatus::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Result<OperatorStatus> {
        match s {
            "active" => Ok(OperatorStatus::Active),
            "disabled" => Ok(OperatorStatus::Disabled),
            other => Err(HostError::Corrupt(format!("operator status {other:?}"))),
        }
    }
}

/// Whether the operator must choose a new password before doing anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordState {
    /// Set by the operator.
    Chosen,
    /// Initial or reset by an administrator: to be changed at the next login.
    MustChange,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub roles: Roles,
    pub status: OperatorStatus,
    pub password_hash: String,
    pub password: PasswordState,
    pub failed_logins: u32,
    pub locked_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

const OPERATOR_COLUMNS: &str = "id, login, name, roles, status, password_hash, must_change, \
                                failed_logins, locked_until, created_at";

fn operator_row(r: &Row) -> Result<Operator> {
    Ok(Operator {
        id: r.int(0)?,
        login: r.text(1)?.to_owned(),
        name: r.text(2)?.to_owned(),
        roles: Roles::parse_list(r.text(3)?)
            .map_err(|e| HostError::Corrupt(format!("operator roles: {e}")))?,
        status: OperatorStatus::parse(r.text(4)?)?,
        password_hash: r.text(5)?.to_owned(),
        password: if r.int(6)? != 0 {
            PasswordState::MustChange
        } else {
            PasswordState::Chosen
        },
        failed_logins: r.int_as(7)?,
        locked_until: r.opt_int(8)?.map(time_from).transpose()?,
        created_at: time_from(r.int(9)?)?,
    })
}

fn must_change(p: PasswordState) -> Value {
    Value::from(p == PasswordState::MustChange)
}

/// Inserts an operator; `None` when the login is taken.
pub fn operator_insert(c: &mut dyn Conn, o: &Operator) -> Result<Option<i64>> {
    let rows = c.query(
        "INSERT INTO operators (login, name, roles, status, password_hash, must_change, \
         failed_logins, locked_until, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, $7) \
         ON CONFLICT (login) DO NOTHING RETURNING id",
        &[
            o.login.as_str().into(),
            o.name.as_str().into(),
            o.roles.to_list().into(),
            o.status.as_str().into(),
            o.password_hash.as_str().into(),
            must_change(o.password),
            time_key(o.created_at).into(),
        ],
    )?;
    rows.first().map(|r| r.int(0)).transpose()
}

pub fn operator_count(c: &mut dyn Conn) -> Result<i64> {
    c.query_one("SELECT COUNT(*) FROM operators", &[])?.int(0)
}

pub fn operator_by_login(c: &mut dyn Conn, login: &str, lock: bool) -> Result<Option<Operator>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE login = $1{lock}");
    c.query_opt(&sql, &[login.into()])?
        .map(|r| operator_row(&r))
        .transpose()
}

pub fn operator_by_id(c: &mut dyn Conn, id: i64, lock: bool) -> Result<Option<Operator>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = $1{lock}");
    c.query_opt(&sql, &[id.into()])?
        .map(|r| operator_row(&r))
        .transpose()
}

/// The first operator created (the first system administrator), if any.
pub fn operator_first(c: &mut dyn Conn) -> Result<Option<Operator>> {
    let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY id LIMIT 1");
    c.query_opt(&sql, &[])?
        .map(|r| operator_row(&r))
        .transpose()
}

pub fn operator_list(c: &mut dyn Conn, limit: u32) -> Result<Vec<Operator>> {
    let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY id LIMIT $1");
    c.query(&sql, &[limit.into()])?
        .iter()
        .map(operator_row)
        .collect()
}

/// Writes every mutable column of an operator.
pub fn operator_update(c: &mut dyn Conn, o: &Operator) -> Result<()> {
    let n = c.exec(
        "UPDATE operators SET name = $2, roles = $3, status = $4, password_hash = $5, \
         must_change = $6, failed_logins = $7, locked_until = $8 WHERE id = $1",
        &[
            o.id.into(),
            o.name.as_str().into(),
            o.roles.to_list().into(),
            o.status.as_str().into(),
            o.password_hash.as_str().into(),
            must_change(o.password),
            i64::from(o.failed_logins).into(),
            o.locked_until.map(time_key).into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Corrupt(format!("operator {} vanished", o.id)))
    }
}

// ---- API tokens ----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub operator_id: i64,
    pub secret_hash: String,
    pub label: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

const TOKEN_COLUMNS: &str =
    "id, operator_id, secret_hash, label, created_at, expires_at, revoked_at";

fn token_row(r: &Row) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.text(0)?.to_owned(),
        operator_id: r.int(1)?,
        secret_hash: r.text(2)?.to_owned(),
        label: r.text(3)?.to_owned(),
        created_at: time_from(r.int(4)?)?,
        expires_at: r.opt_int(5)?.map(time_from).transpose()?,
        revoked_at: r.opt_int(6)?.map(time_from).transpose()?,
    })
}

pub fn token_insert(c: &mut dyn Conn, t: &ApiToken) -> Result<()> {
    c.exec(
        "INSERT INTO api_tokens (id, operator_id, secret_hash, label, created_at, expires_at, \
         revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        &[
            t.id.as_str().into(),
            t.operator_id.into(),
            t.secret_hash.as_str().into(),
            t.label.as_str().into(),
            time_key(t.created_at).into(),
            t.expires_at.map(time_key).into(),
        ],
    )
    .map(drop)
}

pub fn token_get(c: &mut dyn Conn, id: &str) -> Result<Option<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
    c.query_opt(&sql, &[id.into()])?
        .map(|r| token_row(&r))
        .transpose()
}

pub fn token_list(c: &mut dyn Conn, operator_id: Option<i64>, limit: u32) -> Result<Vec<ApiToken>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE (CAST($1 AS BIGINT) IS NULL OR operator_id = $1) \
         ORDER BY created_at, id LIMIT $2"
    );
    c.query(&sql, &[operator_id.into(), limit.into()])?
        .iter()
        .map(token_row)
        .collect()
}

/// Revokes a token that is not revoked yet; false when it was (or does not exist).
pub fn token_revoke(c: &mut dyn Conn, id: &str, at: NaiveDateTime) -> Result<bool> {
    Ok(c.exec(
        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[id.into(), time_key(at).into()],
    )? == 1)
}

/// Revokes every live token of an operator (disabled, or password reset); how many.
pub fn tokens_revoke_all(c: &mut dyn Conn, operator_id: i64, at: NaiveDateTime) -> Result<u64> {
    c.exec(
        "UPDATE api_tokens SET revoked_at = $2 WHERE operator_id = $1 AND revoked_at IS NULL",
        &[operator_id.into(), time_key(at).into()],
    )
}

// ---- browser sessions ------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSession {
    pub id_hash: String,
    pub operator_id: i64,
    pub csrf: String,
    pub client: String,
    pub created_at: NaiveDateTime,
    pub last_seen: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

pub fn session_insert(c: &mut dyn Conn, s: &WebSession) -> Result<()> {
    c.exec(
        "INSERT INTO web_sessions (id_hash, operator_id, csrf, client, created_at, last_seen, \
         ended_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        &[
            s.id_hash.as_str().into(),
            s.operator_id.into(),
            s.csrf.as_str().into(),
            s.client.as_str().into(),
            time_key(s.created_at).into(),
            time_key(s.last_seen).into(),
        ],
    )
    .map(drop)
}

pub fn session_get(c: &mut dyn Conn, id_hash: &str) -> Result<Option<WebSession>> {
    c.query_opt(
        "SELECT id_hash, operator_id, csrf, client, created_at, last_seen, ended_at \
         FROM web_sessions WHERE id_hash = $1",
        &[id_hash.into()],
    )?
    .map(|r| {
        Ok(WebSession {
            id_hash: r.text(0)?.to_owned(),
            operator_id: r.int(1)?,
            csrf: r.text(2)?.to_owned(),
            client: r.text(3)?.to_owned(),
            created_at: time_from(r.int(4)?)?,
            last_seen: time_from(r.int(5)?)?,
            ended_at: r.opt_int(6)?.map(time_from).transpose()?,
        })
    })
    .transpose()
}

pub fn session_touch(c: &mut dyn Conn, id_hash: &str, at: NaiveDateTime) -> Result<()> {
    c.exec(
        "UPDATE web_sessions SET last_seen = $2 WHERE id_hash = $1 AND ended_at IS NULL",
        &[id_hash.into(), time_key(at).into()],
    )
    .map(drop)
}

pub fn session_end(c: &mut dyn Conn, id_hash: &str, at: NaiveDateTime) -> Result<bool> {
    Ok(c.exec(
        "UPDATE web_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL",
        &[id_hash.into(), time_key(at).into()],
    )? == 1)
}

pub fn sessions_end_all(c: &mut dyn Conn, operator_id: i64, at: NaiveDateTime) -> Result<u64> {
    c.exec(
        "UPDATE web_sessions SET ended_at = $2 WHERE operator_id = $1 AND ended_at IS NULL",
        &[operator_id.into(), time_key(at).into()],
    )
}
