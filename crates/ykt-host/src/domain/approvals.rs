//! The two-person rule (R-B1): an operation a finance office wants checked is not done when
//! asked; it waits as a request until a second operator, allowed to decide, approves it (then
//! it runs, in the approval's transaction) or rejects it. The requester cannot decide their
//! own request. Requests and decisions are journalled.

use chrono::NaiveDateTime;
use serde_json::{Value as Json, json};

use super::journal::{self, Actor, Change};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo::{time_from, time_key};
use crate::sql::Row;

/// What may wait for approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A card-office deposit above the threshold (`settings::DEPOSIT_APPROVAL`).
    Deposit,
    /// A checked subsidy batch (`domain::subsidies`): approving it lets it be issued.
    SubsidyBatch,
    /// A graduation closure batch whose refunds reach `closure_batch_approval`
    /// (`domain::closure_batches`): approving it closes its cards.
    ClosureBatch,
    /// A merchant payout (解款) above `merchants::PAYOUT_APPROVAL`.
    Payout,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deposit => "card.deposit",
            Operation::SubsidyBatch => "subsidy.batch",
            Operation::ClosureBatch => "card.close_batch",
            Operation::Payout => "merchant.payout",
        }
    }

    fn parse(s: &str) -> Result<Operation> {
        match s {
            "card.deposit" => Ok(Operation::Deposit),
            "subsidy.batch" => Ok(Operation::SubsidyBatch),
            "card.close_batch" => Ok(Operation::ClosureBatch),
            "merchant.payout" => Ok(Operation::Payout),
            other => Err(HostError::Corrupt(format!("approval operation {other:?}"))),
        }
    }
}

/// Where a request stands; a decided one holds who decided and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved {
        by: i64,
        at: NaiveDateTime,
    },
    Rejected {
        by: i64,
        at: NaiveDateTime,
        note: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    pub id: i64,
    pub operation: Operation,
    pub target: String,
    /// The operation's arguments, as the requester gave them.
    pub payload: Json,
    pub requested_by: i64,
    pub requested_at: NaiveDateTime,
    pub state: State,
}

impl Approval {
    pub fn view(&self) -> Json {
        let (status, by, at, note) = match &self.state {
            State::Pending => ("pending", None, None, None),
            State::Approved { by, at } => ("approved", Some(*by), Some(at.to_string()), None),
            State::Rejected { by, at, note } => (
                "rejected",
                Some(*by),
                Some(at.to_string()),
                Some(note.clone()),
            ),
        };
        json!({
            "id": self.id,
            "operation": self.operation.as_str(),
            "target": self.target,
            "payload": self.payload,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.to_string(),
            "status": status,
            "decided_by": by,
            "decided_at": at,
            "note": note,
        })
    }
}

const COLUMNS: &str = "id, operation, target, payload, requested_by, requested_at, status, \
                       decided_by, decided_at, note";

fn row(r: &Row) -> Result<Approval> {
    let decided = || -> Result<(i64, NaiveDateTime)> {
        let by = r
            .opt_int(7)?
            .ok_or_else(|| HostError::Corrupt("approval without decider".into()))?;
        let at = r
            .opt_int(8)?
            .ok_or_else(|| HostError::Corrupt("approval without time".into()))?;
        Ok((by, time_from(at)?))
    };
    let state = match r.text(6)? {
        "pending" => State::Pending,
        "approved" => {
            let (by, at) = decided()?;
            State::Approved { by, at }
        }
        "rejected" => {
            let (by, at) = decided()?;
            State::Rejected {
                by,
                at,
                note: r.opt_text(9)?.unwrap_or("").to_owned(),
            }
        }
        other => return Err(HostError::Corrupt(format!("approval status {other:?}"))),
    };
    Ok(Approval {
        id: r.int(0)?,
        operation: Operation::parse(r.text(1)?)?,
        target: r.text(2)?.to_owned(),
        payload: serde_json::from_str(r.text(3)?)
            .map_err(|e| HostError::Corrupt(format!("approval payload: {e}")))?,
        requested_by: r.int(4)?,
        requested_at: time_from(r.int(5)?)?,
        state,
    })
}

fn requester(actor: &Actor) -> Result<i64> {
    actor
        .operator
        .ok_or_else(|| HostError::Invalid("only an operator can ask for an approval".into()))
}

/// Files a request; it waits for a second operator.
pub fn request(
    tx: &mut Tx<'_>,
    actor: &Actor,
    operation: Operation,
    target: &str,
    payload: Json,
    now: NaiveDateTime,
) -> Result<Approval> {
    let by = requester(actor)?;
    let id = tx
        .conn
        .query_one(
            "INSERT INTO approvals (operation, target, payload, requested_by, requested_at, \
             status) VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING id",
            &[
                operation.as_str().into(),
                target.into(),
                payload.to_string().into(),
                by.into(),
                time_key(now).into(),
            ],
        )?
        .int(0)?;
    let a = get(tx, id, false)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new("approval.request", target).after(a.view()),
    )?;
    Ok(a)
}

pub fn get(tx: &mut Tx<'_>, id: i64, lock: bool) -> Result<Approval> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1{lock}");
    tx.conn
        .query_opt(&sql, &[id.into()])?
        .map(|r| row(&r))
        .transpose()?
        .ok_or_else(|| HostError::Invalid(format!("no approval request {id}")))
}

/// Pending requests (oldest first), or every request, newest first.
pub fn list(tx: &mut Tx<'_>, pending_only: bool, limit: u32) -> Result<Vec<Approval>> {
    let sql = if pending_only {
        format!("SELECT {COLUMNS} FROM approvals WHERE status = 'pending' ORDER BY id LIMIT $1")
    } else {
        format!("SELECT {COLUMNS} FROM approvals ORDER BY id DESC LIMIT $1")
    };
    tx.conn
        .query(&sql, &[limit.clamp(1, 1_000).into()])?
        .iter()
        .map(row)
        .collect()
}

/// A decision on a pending request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject { note: String },
}

/// Why a decision is refused (403 on the API): it is the requester's own.
pub const OWN_REQUEST: &str = "不能审批自己提交的申请";

/// Decides a pending request under its row lock. On approval `run` performs the operation in
/// this transaction and returns what changed (its transfers included); the journal entry
/// names the decider and carries both the request and the result.
pub fn decide(
    tx: &mut Tx<'_>,
    actor: &Actor,
    id: i64,
    decision: Decision,
    now: NaiveDateTime,
    run: impl FnOnce(&mut Tx<'_>, &Approval) -> Result<Change>,
) -> Result<Approval> {
    let by = requester(actor)?;
    let a = get(tx, id, true)?;
    if a.state != State::Pending {
        return Err(HostError::Invalid(format!(
            "approval request {id} is decided already"
        )));
    }
    if a.requested_by == by {
        return Err(HostError::Forbidden(OWN_REQUEST.into()));
    }
    let (status, note, change) = match &decision {
        Decision::Approve => {
            let done = run(tx, &a)?;
            (
                "approved",
                None,
                Change {
                    operation: "approval.approve",
                    ..done
                },
            )
        }
        Decision::Reject { note } => {
            if note.chars().count() > 500 {
                return Err(HostError::Invalid(
                    "a note has at most 500 characters".into(),
                ));
            }
            (
                "rejected",
                Some(note.clone()),
                Change::new("approval.reject", a.target.clone()),
            )
        }
    };
    tx.conn.exec(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, note = $5 \
         WHERE id = $1 AND status = 'pending'",
        &[
            id.into(),
            status.into(),
            by.into(),
            time_key(now).into(),
            note.into(),
        ],
    )?;
    let decided = get(tx, id, false)?;
    let change = Change {
        before: Some(a.view()),
        after: Some(json!({"request": decided.view(), "result": change.after})),
        ..change
    };
    journal::append(tx, actor, now, &change)?;
    Ok(decided)
}
