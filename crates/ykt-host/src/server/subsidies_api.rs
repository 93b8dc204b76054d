//! Subsidy batches over the admin API (R-B5, `docs/admin-api.md`): import a list (CSV /
//! XLSX) as a batch, check, approve, issue, revoke, expire; the batches, their lines, the
//! report per batch and the caps. The steps journal themselves (`domain::subsidies`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ykt_proto::Fen;

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::cardholders_api::format_of;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::subsidies::{self as sub, Batch, BatchState, NewBatch};
use crate::error::HostError;
use crate::import;
use crate::import_subsidies;
use crate::ledger::Tx;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    let read = Access::Needs(P::SubsidyRead);
    let import = Access::Needs(P::SubsidyImport);
    let decide = Access::Needs(P::SubsidyApprove);
    Api::new()
        .get("/subsidies", read, list)
        .post(
            "/subsidies/import",
            import,
            import_file.layer(DefaultBodyLimit::max(import::MAX_BYTES)),
        )
        .get("/subsidies/caps", read, get_caps)
        .put("/subsidies/caps", Access::Needs(P::Settings), set_caps)
        .get("/subsidies/{no}", read, show)
        .get("/subsidies/{no}/lines", read, lines)
        .post("/subsidies/{no}/check", decide, check)
        .post("/subsidies/{no}/approve", decide, approve)
        .post("/subsidies/{no}/issue", import, issue)
        .post("/subsidies/{no}/revoke", decide, revoke)
        .post("/subsidies/{no}/expire", decide, expire)
        .get("/reports/subsidies", read, report)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// One state only (imported, checked, approved, issued, closed).
    state: Option<String>,
    /// The `next_before` of the previous page.
    before: Option<u32>,
    limit: Option<u32>,
}

fn state_of(s: Option<&str>) -> Result<Option<BatchState>, ApiError> {
    s.map(|s| {
        BatchState::parse(s)
            .ok_or_else(|| invalid("state is imported, checked, approved, issued or closed"))
    })
    .transpose()
}

async fn batches(s: &Shared, q: ListQuery) -> Result<Vec<Batch>, ApiError> {
    let state = state_of(q.state.as_deref())?;
    let limit = q.limit.unwrap_or(100);
    Ok(jobs::read(&s.store, move |tx| sub::list(tx, state, q.before, limit)).await?)
}

async fn list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let found = batches(&s, q).await?;
    Ok(Json(json!({
        "batches": found.iter().map(sub::view).collect::<Vec<_>>(),
        "next_before": found.last().map(|b| b.no),
    })))
}

async fn report(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let found = batches(&s, q).await?;
    let (each, total) = jobs::read(&s.store, move |tx| sub::reports(tx, &found)).await?;
    Ok(Json(json!({"batches": each, "total": total})))
}

fn batch_no(no: u32) -> Result<u32, ApiError> {
    if no == 0 {
        return Err(invalid("a batch number is 1 to 4294967295"));
    }
    Ok(no)
}

async fn show(State(s): S, ApiPath(no): ApiPath<u32>) -> Response {
    let found = jobs::read(&s.store, move |tx| {
        let Some(b) = sub::get(tx, no)? else {
            return Ok(None);
        };
        let r = sub::report(tx, &b)?;
        Ok(Some((b, r)))
    })
    .await;
    match found {
        Ok(Some((b, r))) => {
            let mut v = sub::view(&b);
            v["report"] = json!(r);
            Json(v).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "无此补助批次"})),
        )
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LinesQuery {
    /// The `next_after` of the previous page (a line number).
    after: Option<u64>,
    limit: Option<u32>,
}

async fn lines(
    State(s): S,
    ApiPath(no): ApiPath<u32>,
    ApiQuery(q): ApiQuery<LinesQuery>,
) -> ApiResult {
    let (after, limit) = (q.after.unwrap_or(0), q.limit.unwrap_or(100));
    let rows = jobs::read(&s.store, move |tx| sub::lines(tx, no, after, limit)).await?;
    let views = rows
        .iter()
        .map(sub::line_view)
        .collect::<crate::Result<Vec<Value>>>()?;
    Ok(Json(json!({
        "lines": views,
        "next_after": rows.last().map(|l| l.line),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    batch: u32,
    name: String,
    /// YYYY-MM-DD: what still waits after this day may be expired.
    expires_on: String,
    #[serde(default)]
    note: String,
    /// `funding` (default) or `fund:<name>`.
    funding: Option<String>,
    batch_cap: Option<Fen>,
    card_cap: Option<Fen>,
}

async fn import_file(
    State(s): S,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let expires_on = NaiveDate::parse_from_str(&q.expires_on, "%Y-%m-%d")
        .map_err(|_| invalid("expires_on is YYYY-MM-DD"))?;
    let no = batch_no(q.batch)?;
    let new = NewBatch {
        no,
        name: q.name,
        note: q.note,
        funding: q
            .funding
            .unwrap_or_else(|| crate::ledger::FUNDING_ACCOUNT.to_owned()),
        expires_on,
        batch_cap: q.batch_cap,
        card_cap: q.card_cap,
    };
    let sha256 = hex::encode(Sha256::digest(&body));
    let parsed = tokio::task::spawn_blocking(move || import_subsidies::parse(format, &body, no))
        .await
        .map_err(|_| ApiError(HostError::Closed))?;
    let refused = |lines: Vec<import::LineError>| {
        (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": format!("名单有 {} 处错误，未导入", lines.len()), "lines": lines}),
            ),
        )
            .into_response()
    };
    let list = match parsed {
        Ok(list) => Arc::new(list),
        Err(lines) => return Ok(refused(lines)),
    };
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let done = jobs::execute(&s.store, move |tx| {
        sub::import(tx, &actor, &new, &list, &sha256, now)
    })
    .await?;
    Ok(match done {
        Ok(b) => Json(sub::view(&b)).into_response(),
        Err(lines) => refused(lines),
    })
}

/// A step of a batch by the calling operator.
async fn step(
    s: &Shared,
    caller: &Caller,
    no: u32,
    f: fn(
        &mut Tx<'_>,
        &crate::domain::journal::Actor,
        u32,
        chrono::NaiveDateTime,
    ) -> crate::Result<Batch>,
) -> ApiResult {
    let no = batch_no(no)?;
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let b = jobs::execute(&s.store, move |tx| f(tx, &actor, no, now)).await?;
    Ok(Json(sub::view(&b)))
}

async fn check(State(s): S, caller: Caller, ApiPath(no): ApiPath<u32>) -> ApiResult {
    step(&s, &caller, no, sub::check).await
}

async fn approve(State(s): S, caller: Caller, ApiPath(no): ApiPath<u32>) -> ApiResult {
    step(&s, &caller, no, sub::approve).await
}

async fn issue(State(s): S, caller: Caller, ApiPath(no): ApiPath<u32>) -> ApiResult {
    step(&s, &caller, no, sub::issue).await
}

async fn revoke(State(s): S, caller: Caller, ApiPath(no): ApiPath<u32>) -> ApiResult {
    step(&s, &caller, no, sub::revoke).await
}

async fn expire(State(s): S, caller: Caller, ApiPath(no): ApiPath<u32>) -> ApiResult {
    step(&s, &caller, no, sub::expire).await
}

fn caps_json((batch_cap, card_cap): (Fen, Fen)) -> Value {
    json!({"batch_cap": batch_cap, "card_cap": card_cap})
}

async fn get_caps(State(s): S) -> ApiResult {
    let c = jobs::read(&s.store, sub::caps).await?;
    Ok(Json(caps_json(c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapsReq {
    batch_cap: Fen,
    card_cap: Fen,
}

async fn set_caps(State(s): S, caller: Caller, ApiJson(r): ApiJson<CapsReq>) -> ApiResult {
    let now = s.config.clock.now();
    jobs::change(&s.store, &caller.actor, now, move |tx| {
        Ok(((), sub::set_caps(tx, r.batch_cap, r.card_cap)?))
    })
    .await?;
    Ok(Json(caps_json((r.batch_cap, r.card_cap))))
}
