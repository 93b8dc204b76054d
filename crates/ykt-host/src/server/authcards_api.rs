//! Operator authorisation cards over the admin API (R-B11, `docs/operators.md`): issue, list,
//! show with the latest checks, the card office's state changes and PIN reset. Every change
//! goes through `jobs::change` (journalled); PIN hashes are computed off the writer.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use ykt_proto::{AuthFunction, AuthFunctions, Pin};

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::authcards::{self, Action, MAX_LIST, NewAuthCard};
use crate::error::HostError;
use crate::repo_authcards as ra;
use crate::secrets;

type S = State<Arc<Shared>>;

/// Checks shown with a card.
const USES_SHOWN: u32 = 50;

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/authcards", Access::Needs(P::CardRead), list)
        .post("/authcards", Access::Needs(P::CardWrite), issue)
        .get("/authcards/{no}", Access::Needs(P::CardRead), show)
        .post(
            "/authcards/{no}/state",
            Access::Needs(P::CardWrite),
            change_state,
        )
        .post(
            "/authcards/{no}/pin",
            Access::Needs(P::CardWrite),
            reset_pin,
        )
}

fn parse_time(s: &str) -> Result<NaiveDateTime, ApiError> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| invalid(format!("{s:?} is not YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")))
}

fn parse_functions(names: &[String]) -> Result<AuthFunctions, ApiError> {
    if names.len() > AuthFunction::ALL.len() {
        return Err(invalid("too many functions"));
    }
    names
        .iter()
        .map(|n| {
            AuthFunction::parse(n).ok_or_else(|| {
                let known: Vec<_> = AuthFunction::ALL.iter().map(|f| f.as_str()).collect();
                invalid(format!(
                    "unknown function {n:?}; known: {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// The PIN's Argon2id hash, computed on a blocking thread.
async fn pin_hash(pin: String) -> Result<String, ApiError> {
    if Pin::new(&pin).is_none() {
        return Err(invalid("a PIN is 4 to 12 digits"));
    }
    tokio::task::spawn_blocking(move || secrets::hash_password(&pin))
        .await
        .map_err(|_| ApiError(HostError::Closed))?
        .map_err(ApiError)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    operator: Option<i64>,
    limit: Option<u32>,
}

async fn list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(1_000).clamp(1, MAX_LIST);
    let cards = jobs::read(&s.store, move |tx| ra::list(tx.conn, q.operator, limit)).await?;
    Ok(Json(json!({
        "cards": cards.iter().map(authcards::view).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    operator_id: i64,
    valid_from: String,
    valid_until: String,
    functions: Vec<String>,
    pin: String,
}

async fn issue(State(s): S, caller: Caller, ApiJson(b): ApiJson<IssueBody>) -> ApiResult {
    let new = NewAuthCard {
        operator_id: b.operator_id,
        valid_from: parse_time(&b.valid_from)?,
        valid_until: parse_time(&b.valid_until)?,
        functions: parse_functions(&b.functions)?,
        pin_hash: pin_hash(b.pin).await?,
    };
    let (now, by) = (s.config.clock.now(), caller.id());
    let card = jobs::change(&s.store, &caller.actor, now, move |tx| {
        authcards::issue(tx, &new, by, now)
    })
    .await?;
    Ok(Json(authcards::view(&card)))
}

async fn show(State(s): S, ApiPath(no): ApiPath<u32>) -> ApiResult {
    let (card, uses) = jobs::read(&s.store, move |tx| {
        Ok((
            ra::get(tx.conn, no, false)?,
            ra::uses(tx.conn, no, USES_SHOWN)?,
        ))
    })
    .await?;
    let card = card.ok_or_else(|| invalid(format!("no authorisation card {no}")))?;
    let uses: Vec<_> = uses
        .iter()
        .map(|u| {
            json!({
                "device": u.device.to_string(),
                "function": u.function.as_str(),
                "terminal_time": u.terminal_time.to_string(),
                "at": u.at.to_string(),
                "code": u.code.0,
            })
        })
        .collect();
    let mut v = authcards::view(&card);
    v["uses"] = json!(uses);
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    action: String,
}

async fn change_state(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(b): ApiJson<StateBody>,
) -> ApiResult {
    let action = Action::parse(&b.action).ok_or_else(|| {
        let known: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        invalid(format!(
            "unknown action {:?}; known: {}",
            b.action,
            known.join(", ")
        ))
    })?;
    let now = s.config.clock.now();
    let card = jobs::change(&s.store, &caller.actor, now, move |tx| {
        authcards::act(tx, no, action, now)
    })
    .await?;
    Ok(Json(authcards::view(&card)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: String,
}

async fn reset_pin(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(b): ApiJson<PinBody>,
) -> ApiResult {
    let hash = pin_hash(b.pin).await?;
    let now = s.config.clock.now();
    let card = jobs::change(&s.store, &caller.actor, now, move |tx| {
        authcards::reset_pin(tx, no, &hash, now)
    })
    .await?;
    Ok(Json(authcards::view(&card)))
}
