//! The operator journal (R-B1): one entry for every state change a person makes, appended in
//! the same transaction as the change, naming who (operator and the role used), from where,
//! what, on what, and the values before and after. Append-only: nothing in ykt updates or
//! deletes it, and the database refuses to (schema V7 triggers). Never a password, key, token
//! or PIN in it: callers pass views that leave them out.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value as Json;

use crate::access::Role;
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo::{time_from, time_key};
use crate::sql::{Row, Value};

/// Who acts: an operator and the role their request was allowed under, or ykt itself
/// (first start, demo seeding, migrations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub operator: Option<i64>,
    pub login: String,
    /// The role whose permission allowed the action; "system" for ykt itself.
    pub role: String,
    /// The client's address as the HTTP listener saw it, or where a system action ran.
    pub client: String,
}

impl Actor {
    pub fn operator(id: i64, login: &str, role: Option<Role>, client: &str) -> Actor {
        Actor {
            operator: Some(id),
            login: login.to_owned(),
            role: role.map_or("signed-in", Role::as_str).to_owned(),
            client: client.to_owned(),
        }
    }

    /// ykt acting on its own, e.g. `Actor::system("demo")`.
    pub fn system(what: &str) -> Actor {
        Actor {
            operator: None,
            login: "system".into(),
            role: "system".into(),
            client: what.to_owned(),
        }
    }
}

/// What changed: the operation's name (`card.deposit`), its target (`card:42`), the values
/// before and after, and the transfers it posted (the audit pairs them with the ledger).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Change {
    pub operation: &'static str,
    pub target: String,
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub transfers: Vec<String>,
}

impl Change {
    pub fn new(operation: &'static str, target: impl Into<String>) -> Change {
        Change {
            operation,
            target: target.into(),
            ..Change::default()
        }
    }

    pub fn before(mut self, v: impl Serialize) -> Change {
        self.before = serde_json::to_value(v).ok();
        self
    }

    pub fn after(mut self, v: impl Serialize) -> Change {
        self.after = serde_json::to_value(v).ok();
        self
    }

    pub fn transfer(mut self, id: impl Into<String>) -> Change {
        self.transfers.push(id.into());
        self
    }
}

/// Longest target or operation name, and most transfers one entry names.
const MAX_TEXT: usize = 256;
const MAX_TRANSFERS: usize = 100_000;

/// Appends one entry; returns its sequence number.
pub fn append(tx: &mut Tx<'_>, actor: &Actor, at: NaiveDateTime, change: &Change) -> Result<i64> {
    if change.target.len() > MAX_TEXT || change.transfers.len() > MAX_TRANSFERS {
        return Err(HostError::Invalid("journal entry too large".into()));
    }
    let text = |v: &Option<Json>| -> Value { v.as_ref().map(Json::to_string).into() };
    let seq = tx
        .conn
        .query_one(
            "INSERT INTO journal (at, operator_id, operator_login, role, client, operation, \
             target, before_value, after_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING seq",
            &[
                time_key(at).into(),
                actor.operator.into(),
                actor.login.as_str().into(),
                actor.role.as_str().into(),
                actor.client.as_str().into(),
                change.operation.into(),
                change.target.as_str().into(),
                text(&change.before),
                text(&change.after),
            ],
        )?
        .int(0)?;
    for id in &change.transfers {
        tx.conn.exec(
            "INSERT INTO journal_transfers (transfer_id, seq) VALUES ($1, $2)",
            &[id.as_str().into(), seq.into()],
        )?;
    }
    Ok(seq)
}

/// One entry as read back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub operator: Option<i64>,
    pub login: String,
    pub role: String,
    pub client: String,
    pub operation: String,
    pub target: String,
    pub before: Option<Json>,
    pub after: Option<Json>,
}

/// What to list: every field optional; `before` pages backwards from a sequence number.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub operator: Option<String>,
    pub target: Option<String>,
    pub operation: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Most entries one page holds.
pub const MAX_PAGE: u32 = 1_000;

fn parse_json(s: Option<String>) -> Option<Json> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn entry_row(r: &Row) -> Result<Entry> {
    Ok(Entry {
        seq: r.int(0)?,
        at: time_from(r.int(1)?)?.to_string(),
        operator: r.opt_int(2)?,
        login: r.text(3)?.to_owned(),
        role: r.text(4)?.to_owned(),
        client: r.text(5)?.to_owned(),
        operation: r.text(6)?.to_owned(),
        target: r.text(7)?.to_owned(),
        before: parse_json(r.opt_text(8)?.map(str::to_owned)),
        after: parse_json(r.opt_text(9)?.map(str::to_owned)),
    })
}

/// The newest entries matching `f`, newest first.
pub fn list(tx: &mut Tx<'_>, f: &Filter) -> Result<Vec<Entry>> {
    let limit = f.limit.clamp(1, MAX_PAGE);
    let rows = tx.conn.query(
        "SELECT seq, at, operator_id, operator_login, role, client, operation, target, \
         before_value, after_value FROM journal \
         WHERE (CAST($1 AS TEXT) IS NULL OR operator_login = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR target = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR operation = $3) \
         AND (CAST($4 AS BIGINT) IS NULL OR at >= $4) \
         AND (CAST($5 AS BIGINT) IS NULL OR at < $5) \
         AND (CAST($6 AS BIGINT) IS NULL OR seq < $6) \
         ORDER BY seq DESC LIMIT $7",
        &[
            f.operator.clone().into(),
            f.target.clone().into(),
            f.operation.clone().into(),
            f.from.map(time_key).into(),
            f.to.map(time_key).into(),
            f.before_seq.into(),
            limit.into(),
        ],
    )?;
    rows.iter().map(entry_row).collect()
}

/// The transfer kinds only a person makes: each such transfer must be named by exactly one
/// journal entry (`ledger::audit`).
pub const PERSON_KINDS: [&str; 5] = ["deposit", "card_fee", "refund", "payout", "commission"];
