//! Money a person takes in, over the admin API (R-B1): card-office deposits (above the
//! threshold they wait for a second operator's approval), the approvals themselves, cash
//! shifts and their report, and the threshold setting.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use ykt_proto::{CardNo, Fen};

use super::admin::card_json;
use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::admin::{self, Payer};
use crate::domain::approvals::{self, Approval, Decision, Operation};
use crate::domain::journal::{Actor, Change};
use crate::domain::operators;
use crate::domain::shifts::{self, Method};
use crate::error::HostError;
use crate::ledger::Tx;
use crate::repo;

type S = State<Arc<Shared>>;

/// `meta` row: a deposit of at least this many fen waits for approval; 0 = never.
pub const DEPOSIT_APPROVAL: &str = "deposit_approval_threshold";

pub(crate) fn routes() -> Api {
    Api::new()
        .post("/cards/{no}/deposit", Access::Needs(P::Deposit), deposit)
        .get("/approvals", Access::Own, approvals)
        .get("/approvals/{id}", Access::Own, approval)
        .post(
            "/approvals/{id}/approve",
            Access::Needs(P::ApprovalDecide),
            approve,
        )
        .post(
            "/approvals/{id}/reject",
            Access::Needs(P::ApprovalDecide),
            reject,
        )
        .get("/me/shift", Access::Needs(P::ShiftOwn), my_shift)
        .post("/me/shift/close", Access::Needs(P::ShiftOwn), close_shift)
        .get("/reports/cash", Access::Needs(P::ReportRead), cash_report)
        .get("/settings", Access::SignedIn, settings)
        .put("/settings", Access::Needs(P::Settings), set_settings)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositReq {
    amount: Fen,
    /// The card office's receipt id: a repeated id is refused, never booked twice.
    id: String,
    /// cash (default), bank-card or transfer.
    #[serde(default)]
    method: Option<String>,
}

fn method(m: Option<&str>) -> Result<Method, ApiError> {
    match m {
        None => Ok(Method::Cash),
        Some(m) => Method::parse(m).ok_or_else(|| invalid("method is cash, bank-card or transfer")),
    }
}

fn parse_card(n: u32) -> Result<CardNo, ApiError> {
    CardNo::new(n).ok_or_else(|| invalid("a card number is 1 to 16777215"))
}

/// What a deposit request came to.
enum Deposited {
    Done(crate::model::Card),
    Waiting(Approval),
}

/// A deposit at the card office. At or above the threshold it is not booked: it waits for a
/// second operator (202 with the request); the threshold is read in the same transaction.
async fn deposit(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<DepositReq>,
) -> Result<Response, ApiError> {
    let no = parse_card(no)?;
    let method = method(r.method.as_deref())?;
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let done = jobs::execute(&s.store, move |tx| {
        let threshold = repo::meta(tx.conn, DEPOSIT_APPROVAL)?;
        if threshold > 0 && r.amount >= threshold {
            // The same checks as the deposit itself, so a request that could never be
            // booked is refused now, not at approval.
            admin::check_deposit(tx, no, r.amount, &r.id)?;
            let payload = json!({"card_no": no.get(), "amount": r.amount, "id": r.id, "method": method.as_str()});
            let a = approvals::request(tx, &actor, Operation::Deposit, &format!("card:{}", no.get()), payload, now)?;
            return Ok(Deposited::Waiting(a));
        }
        let payer = Payer { actor: &actor, method };
        admin::deposit(tx, payer, no, r.amount, &r.id, now).map(Deposited::Done)
    })
    .await?;
    Ok(match done {
        Deposited::Done(c) => Json(card_json(&c)).into_response(),
        Deposited::Waiting(a) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "pending", "approval": a.view(),
                        "message": "金额超过审批限额，等待第二位操作员审批"})),
        )
            .into_response(),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApprovalQuery {
    /// pending (default) or all.
    status: Option<String>,
    limit: Option<u32>,
}

async fn approvals(State(s): S, ApiQuery(q): ApiQuery<ApprovalQuery>) -> ApiResult {
    let pending = match q.status.as_deref() {
        None | Some("pending") => true,
        Some("all") => false,
        Some(_) => return Err(invalid("status is pending or all")),
    };
    let limit = q.limit.unwrap_or(100);
    let list = jobs::read(&s.store, move |tx| approvals::list(tx, pending, limit)).await?;
    Ok(Json(Value::Array(
        list.iter().map(Approval::view).collect(),
    )))
}

async fn approval(State(s): S, ApiPath(id): ApiPath<i64>) -> ApiResult {
    let a = jobs::read(&s.store, move |tx| approvals::get(tx, id, false)).await?;
    Ok(Json(a.view()))
}

/// Performs an approved request as its requester did it: the deposit names the requester
/// (who took the money) and is tallied in their shift; a subsidy batch becomes approved.
fn run(
    tx: &mut Tx<'_>,
    a: &Approval,
    approver: &Actor,
    now: chrono::NaiveDateTime,
) -> crate::Result<Change> {
    let client = approver.client.as_str();
    match a.operation {
        Operation::Payout => crate::domain::merchants::approved_payout(
            tx,
            a,
            &approver.login,
            &crate::domain::merchants::SimulatedPayoutBank,
            now,
        ),
        Operation::SubsidyBatch => {
            let by = approver
                .operator
                .ok_or_else(|| HostError::Invalid("only an operator approves".into()))?;
            crate::domain::subsidies::approved(tx, a, by, now)
        }
        Operation::ClosureBatch => {
            let requester = requester_actor(tx, a, client)?;
            crate::domain::closure_batches::approved(tx, a, &requester, now)
        }
        Operation::Deposit => {
            let p = &a.payload;
            let bad = || HostError::Corrupt(format!("approval {} payload {p}", a.id));
            let no = p["card_no"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .and_then(CardNo::new)
                .ok_or_else(bad)?;
            let amount = p["amount"].as_i64().ok_or_else(bad)?;
            let receipt = p["id"].as_str().ok_or_else(bad)?;
            let method = p["method"]
                .as_str()
                .and_then(Method::parse)
                .ok_or_else(bad)?;
            let actor = requester_actor(tx, a, client)?;
            let c = admin::deposit(
                tx,
                Payer {
                    actor: &actor,
                    method,
                },
                no,
                amount,
                receipt,
                now,
            )?;
            Ok(Change::new("approval.approve", a.target.clone()).after(card_json(&c)))
        }
    }
}

/// The requester of an approved request, who the performed operation names (R-B1).
fn requester_actor(tx: &mut Tx<'_>, a: &Approval, client: &str) -> crate::Result<Actor> {
    let requester = operators::by_id(tx, a.requested_by)?;
    Ok(Actor {
        operator: Some(requester.id),
        login: requester.login.clone(),
        role: "requester".into(),
        client: client.to_owned(),
    })
}

async fn approve(State(s): S, caller: Caller, ApiPath(id): ApiPath<i64>) -> ApiResult {
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let a = jobs::execute(&s.store, move |tx| {
        let approver = actor.clone();
        approvals::decide(tx, &actor, id, Decision::Approve, now, |tx, a| {
            run(tx, a, &approver, now)
        })
    })
    .await?;
    Ok(Json(a.view()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectReq {
    #[serde(default)]
    note: String,
}

async fn reject(
    State(s): S,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<RejectReq>,
) -> ApiResult {
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let a = jobs::execute(&s.store, move |tx| {
        let d = Decision::Reject {
            note: r.note.clone(),
        };
        approvals::decide(tx, &actor, id, d, now, |_, _| unreachable_run())
    })
    .await?;
    Ok(Json(a.view()))
}

/// A rejection runs nothing.
fn unreachable_run() -> crate::Result<Change> {
    Err(HostError::Invariant("a rejected request was run".into()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    /// YYYY-MM-DD; today when absent.
    date: Option<String>,
    /// Another operator's login (the cash report).
    operator: Option<String>,
}

fn day(s: &Shared, d: Option<&str>) -> Result<NaiveDate, ApiError> {
    match d {
        None => Ok(s.config.clock.now().date()),
        Some(d) => {
            NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| invalid("date is YYYY-MM-DD"))
        }
    }
}

async fn my_shift(State(s): S, caller: Caller, ApiQuery(q): ApiQuery<DayQuery>) -> ApiResult {
    if q.operator.is_some() {
        return Err(invalid(
            "another operator's shifts: GET /reports/cash?operator=…",
        ));
    }
    let date = day(&s, q.date.as_deref())?;
    let (id, login) = (caller.id(), caller.login().to_owned());
    let r = jobs::read(&s.store, move |tx| shifts::report(tx, id, &login, date)).await?;
    Ok(Json(json!(r)))
}

async fn close_shift(State(s): S, caller: Caller) -> ApiResult {
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let shift = jobs::execute(&s.store, move |tx| shifts::close(tx, &actor, now)).await?;
    Ok(Json(json!(shift)))
}

async fn cash_report(State(s): S, ApiQuery(q): ApiQuery<DayQuery>) -> ApiResult {
    let date = day(&s, q.date.as_deref())?;
    let login = q.operator.ok_or_else(|| invalid("operator is required"))?;
    let r = jobs::read(&s.store, move |tx| {
        let o = operators::get(tx, &login)?;
        shifts::report(tx, o.id, &o.login, date)
    })
    .await?;
    Ok(Json(json!(r)))
}

/// The system settings of the card office, each a `meta` row: (name, lowest, highest).
const SETTINGS: [(&str, i64, i64); 3] = [
    (DEPOSIT_APPROVAL, 0, crate::domain::checks::MAX_CARD_BALANCE),
    // R-B6, R-B7: days between a replacement or closure and its money moving.
    (
        crate::domain::replacements::WAIT_DAYS,
        0,
        crate::domain::replacements::MAX_WAIT_DAYS,
    ),
    // R-B7: a closure batch refunding at least this waits for approval (0 = never).
    (crate::domain::closures::BATCH_APPROVAL, 0, 10_000_000_000),
];

fn settings_json(tx: &mut Tx<'_>) -> crate::Result<Value> {
    let mut v = serde_json::Map::new();
    for (name, _, _) in SETTINGS {
        v.insert(name.to_owned(), json!(repo::meta(tx.conn, name)?));
    }
    Ok(Value::Object(v))
}

async fn settings(State(s): S) -> ApiResult {
    let v = jobs::read(&s.store, settings_json).await?;
    Ok(Json(v))
}

/// Any of the settings; those left out keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsReq {
    deposit_approval_threshold: Option<Fen>,
    replacement_wait_days: Option<i64>,
    closure_batch_approval: Option<Fen>,
}

async fn set_settings(State(s): S, caller: Caller, ApiJson(r): ApiJson<SettingsReq>) -> ApiResult {
    let given = [
        r.deposit_approval_threshold,
        r.replacement_wait_days,
        r.closure_batch_approval,
    ];
    if given.iter().all(Option::is_none) {
        return Err(invalid(format!(
            "give at least one of {}",
            SETTINGS.map(|(n, _, _)| n).join(", ")
        )));
    }
    let mut changes = Vec::new();
    for ((name, low, high), v) in SETTINGS.into_iter().zip(given) {
        if let Some(v) = v {
            if !(low..=high).contains(&v) {
                return Err(invalid(format!("{name} is {low} to {high}")));
            }
            changes.push((name, v));
        }
    }
    let now = s.config.clock.now();
    let v = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = settings_json(tx)?;
        for (name, v) in &changes {
            repo::set_meta(tx.conn, name, *v)?;
        }
        let after = settings_json(tx)?;
        let change = Change::new("settings.set", "settings")
            .before(before)
            .after(after.clone());
        Ok((after, change))
    })
    .await?;
    Ok(Json(v))
}
