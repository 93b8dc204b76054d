//! The card office's lifecycle routes (R-B6, R-B7): replacement, bad-card repair, closure
//! (one card or a graduation list), refunds, and the sweep that moves due replacements'
//! balances and pays due bank refunds — run by the server every `sweep_interval` and on
//! demand. Requests are 卡务 (`card-write`), payouts 财务 (`refund`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use ykt_proto::{CardNo, DisplayNo, Fen};

use super::admin::card_json;
use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::cardholders_api::format_of;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::closure_batches::{self, Imported};
use crate::domain::closures::{self, Payout};
use crate::domain::journal::{Actor, Change};
use crate::domain::repair;
use crate::domain::replacements::{self, FeePayment, Request};
use crate::error::HostError;
use crate::import;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    let write = Access::Needs(P::CardWrite);
    let read = Access::Needs(P::CardRead);
    let refund = Access::Needs(P::Refund);
    Api::new()
        .post("/cards/{no}/replace", write, replace)
        .get("/cards/{no}/replacement", read, replacement)
        .get("/replacements", read, replacements_list)
        .post("/replacements/run", write, run_moves)
        .post("/cards/{no}/repair", write, repair_card)
        .post("/cards/{no}/close", write, close)
        .get("/cards/{no}/closure", read, closure)
        .get("/closures", read, closures_list)
        .post(
            "/closures/import",
            write,
            import_list.layer(DefaultBodyLimit::max(import::MAX_BYTES)),
        )
        .post("/closures/run", refund, run_refunds)
        .post("/closures/{no}/pay", refund, pay)
}

fn parse_card(n: u32) -> Result<CardNo, ApiError> {
    CardNo::new(n).ok_or_else(|| invalid("a card number is 1 to 16777215"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceReq {
    /// The new card's printed number.
    display_no: u64,
    /// 工本费 in fen (0 = none).
    #[serde(default)]
    fee: Fen,
    /// none (default), cash or balance.
    #[serde(default)]
    fee_method: Option<String>,
}

async fn replace(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<ReplaceReq>,
) -> ApiResult {
    let old = parse_card(no)?;
    let display_no =
        DisplayNo::new(r.display_no).ok_or_else(|| invalid("display_no has at most 10 digits"))?;
    let fee_method = match r.fee_method.as_deref() {
        None if r.fee == 0 => FeePayment::None,
        None => FeePayment::Cash,
        Some(m) => {
            FeePayment::parse(m).ok_or_else(|| invalid("fee_method is none, cash or balance"))?
        }
    };
    let req = Request {
        old_card: old,
        display_no,
        fee: r.fee,
        fee_method,
    };
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    // `replace` journals itself (naming the fee's transfer).
    let (rep, new) = jobs::execute(&s.store, move |tx| {
        replacements::replace(tx, &actor, &req, now)
    })
    .await?;
    Ok(Json(
        json!({"replacement": rep, "new_card": card_json(&new)}),
    ))
}

async fn replacement(State(s): S, ApiPath(no): ApiPath<u32>) -> ApiResult {
    let no = parse_card(no)?;
    let r = jobs::read(&s.store, move |tx| replacements::of_old(tx, no, false)).await?;
    match r {
        Some(r) => Ok(Json(json!(r))),
        None => Err(ApiError(HostError::Invalid(format!(
            "卡 {} 未补卡",
            no.get()
        )))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    batch: Option<i64>,
}

async fn replacements_list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    if q.batch.is_some() {
        return Err(invalid("replacements have no batch"));
    }
    let limit = q.limit.unwrap_or(100);
    let list = jobs::read(&s.store, move |tx| replacements::list(tx, limit)).await?;
    Ok(Json(json!(list)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunReq {
    /// Run as of this time (YYYY-MM-DD HH:MM:SS, the campus clock); a time later than now
    /// only when the server allows it (`ServerConfig::sweep_at_future`, tests).
    #[serde(default)]
    at: Option<String>,
}

fn run_time(s: &Shared, r: &RunReq) -> Result<NaiveDateTime, ApiError> {
    let now = s.config.clock.now();
    let Some(at) = &r.at else { return Ok(now) };
    let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
        .map_err(|_| invalid("at is YYYY-MM-DD HH:MM:SS"))?;
    if at > now && !s.config.sweep_at_future {
        return Err(invalid(
            "at is later than now: the waiting period cannot be cut short",
        ));
    }
    Ok(at)
}

/// Moves every due replacement's balance now (what the server's sweep does).
async fn run_moves(State(s): S, caller: Caller, ApiJson(r): ApiJson<RunReq>) -> ApiResult {
    let at = run_time(&s, &r)?;
    let actor = caller.actor.clone();
    let moved = jobs::execute(&s.store, move |tx| replacements::run_due(tx, &actor, at)).await?;
    Ok(Json(json!({"moved": moved})))
}

async fn repair_card(State(s): S, caller: Caller, ApiPath(no): ApiPath<u32>) -> ApiResult {
    let no = parse_card(no)?;
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let r = jobs::execute(&s.store, move |tx| repair::repair(tx, &actor, no, now)).await?;
    Ok(Json(json!(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseReq {
    /// cash or bank.
    method: String,
    #[serde(default)]
    bank_account: Option<String>,
}

fn payout(method: &str, bank: Option<&str>) -> Result<Payout, ApiError> {
    match (method, bank) {
        ("cash", None) => Ok(Payout::Cash),
        ("bank", Some(a)) => Ok(Payout::bank(a)?),
        ("cash", Some(_)) => Err(invalid("a cash refund has no bank_account")),
        ("bank", None) => Err(invalid("a bank refund needs bank_account")),
        _ => Err(invalid("method is cash or bank")),
    }
}

async fn close(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<CloseReq>,
) -> ApiResult {
    let no = parse_card(no)?;
    let p = payout(&r.method, r.bank_account.as_deref())?;
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let c = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let c = closures::request(tx, &actor, no, p.clone(), None, now)?;
        let change = Change::new("card.close", format!("card:{}", no.get())).after(json!(c));
        Ok((c, change))
    })
    .await?;
    Ok(Json(json!(c)))
}

async fn closure(State(s): S, ApiPath(no): ApiPath<u32>) -> ApiResult {
    let no = parse_card(no)?;
    let c = jobs::read(&s.store, move |tx| {
        let c = closures::of_card(tx, no, false)?;
        let card = crate::domain::admin::card(tx, no)?;
        let refundable = closures::refundable(tx, &card)?;
        Ok((c, refundable))
    })
    .await?;
    match c {
        (Some(c), refundable) => Ok(Json(json!({"closure": c, "refundable": refundable}))),
        (None, _) => Err(invalid(format!("卡 {} 未销户", no.get()))),
    }
}

async fn closures_list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(100);
    let list = jobs::read(&s.store, move |tx| closures::list(tx, q.batch, limit)).await?;
    Ok(Json(json!(list)))
}

/// A graduation list (CSV or XLSX): closed at once, or 202 waiting for approval above the
/// threshold; 400 with every line's error when any line cannot be closed.
async fn import_list(
    State(s): S,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let parsed = tokio::task::spawn_blocking(move || closure_batches::parse(format, &body))
        .await
        .map_err(|_| ApiError(HostError::Closed))?;
    let refused = |lines: Vec<import::LineError>| {
        (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": format!("名单有 {} 处错误，未销户", lines.len()), "lines": lines}),
            ),
        )
            .into_response()
    };
    let lines = match parsed {
        Ok(l) => l,
        Err(errors) => return Ok(refused(errors)),
    };
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let done = jobs::execute(&s.store, move |tx| {
        closure_batches::import(tx, &actor, &lines, now)
    })
    .await?;
    Ok(match done {
        Imported::Refused(errors) => refused(errors),
        Imported::Closed { batch, lines } => {
            Json(json!({"status": "closed", "batch": batch, "lines": lines})).into_response()
        }
        Imported::Waiting {
            batch,
            approval,
            total,
        } => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "pending", "batch": batch, "total": total,
                        "approval": approval.view(),
                        "message": "退款合计超过审批限额，等待第二位操作员审批"})),
        )
            .into_response(),
    })
}

async fn pay(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<RunReq>,
) -> ApiResult {
    let no = parse_card(no)?;
    let (now, actor) = (run_time(&s, &r)?, caller.actor.clone());
    // `pay` journals itself, naming its transfers; cash is a payout in the caller's shift.
    let c = jobs::execute(&s.store, move |tx| closures::pay(tx, &actor, no, now)).await?;
    Ok(Json(json!(c)))
}

/// Pays every due bank refund now (what the server's sweep does).
async fn run_refunds(State(s): S, caller: Caller, ApiJson(r): ApiJson<RunReq>) -> ApiResult {
    let at = run_time(&s, &r)?;
    let actor = caller.actor.clone();
    let paid = jobs::execute(&s.store, move |tx| closures::run_due(tx, &actor, at)).await?;
    Ok(Json(json!({"paid": paid})))
}

/// The server's sweep: due replacement moves and bank refunds, every `sweep_interval`,
/// as ykt's own action (journalled as `system`/`sweep`). A failed run is logged and
/// retried at the next interval; nothing is half done (one transaction per run).
pub(crate) async fn sweep_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(shared.config.sweep_interval) => {}
        }
        let now = shared.config.clock.now();
        let actor = Actor::system("sweep");
        let done = jobs::execute(&shared.store, move |tx| {
            let moved = replacements::run_due(tx, &actor, now)?.len();
            let paid = closures::run_due(tx, &actor, now)?.len();
            Ok((moved, paid))
        })
        .await;
        match done {
            Ok((0, 0)) => {}
            Ok((moved, paid)) => tracing::info!(moved, paid, "lifecycle sweep"),
            Err(e) => tracing::error!(error = %e, "lifecycle sweep failed"),
        }
    }
}
