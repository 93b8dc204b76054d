//! The card office's PIN routes (R-B10, `domain::pin`): reset, change (the old PIN counted
//! against the card's wrong tries: 60, and 54 when they lock it) and the tries allowed.
//! Argon2 runs on a blocking thread, never on a writer; no PIN is logged or journalled.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use ykt_proto::CardNo;

use super::api::{ApiError, ApiJson, ApiPath, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::journal::Change;
use crate::domain::pin::{self, Tried};
use crate::error::HostError;
use crate::{repo, secrets};

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .post("/cards/{no}/pin/reset", Access::Needs(P::CardWrite), reset)
        .post(
            "/cards/{no}/pin/change",
            Access::Needs(P::CardWrite),
            change,
        )
        .put("/pin/settings", Access::Needs(P::Settings), settings)
}

fn card_no(n: u32) -> Result<CardNo, ApiError> {
    CardNo::new(n).ok_or_else(|| invalid("a card number is 1 to 16777215"))
}

fn checked(pin: &str) -> Result<(), ApiError> {
    match pin::pin_problem(pin) {
        Some(p) => Err(invalid(p)),
        None => Ok(()),
    }
}

async fn hash(pin: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || secrets::hash_password(&pin))
        .await
        .map_err(|_| ApiError(HostError::Closed))?
        .map_err(ApiError)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetReq {
    pin: String,
}

/// `POST /cards/{no}/pin/reset` with `{"pin": "NNNNNN"}`: the cardholder proved who they are
/// at the counter; the card's writer writes the same PIN's verification data on the card.
async fn reset(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<ResetReq>,
) -> ApiResult {
    let no = card_no(no)?;
    checked(&r.pin)?;
    let h = hash(r.pin).await?;
    let now = s.config.clock.now();
    jobs::change(&s.store, &caller.actor, now, move |tx| {
        pin::set(tx, no, &h, now)?;
        Ok((
            (),
            Change::new("card.pin.reset", format!("card:{}", no.get())),
        ))
    })
    .await?;
    Ok(Json(json!({"card_no": no.get(), "pin": "reset"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeReq {
    old: String,
    new: String,
}

/// `POST /cards/{no}/pin/change` with `{"old": …, "new": …}`: a wrong old PIN is 409 with
/// code 60 (and the tries left), or 54 when it was the last try allowed (the card is locked).
async fn change(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<ChangeReq>,
) -> ApiResult {
    let no = card_no(no)?;
    checked(&r.old)?;
    checked(&r.new)?;
    let Some(stored) = jobs::read(&s.store, move |tx| pin::hash_of(tx, no)).await? else {
        return Err(invalid(format!(
            "card {} has no PIN on the host: reset it",
            no.get()
        )));
    };
    let old = r.old;
    let right = tokio::task::spawn_blocking(move || secrets::verify_password(&old, &stored))
        .await
        .map_err(|_| ApiError(HostError::Closed))?;
    let new_hash = if right {
        Some(hash(r.new).await?)
    } else {
        None
    };
    let now = s.config.clock.now();
    let tried = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let tried = pin::count_try(tx, no, right)?;
        if let (Tried::Right, Some(h)) = (tried, &new_hash) {
            pin::set(tx, no, h, now)?;
        }
        let outcome = match tried {
            Tried::Right => json!({"result": "changed"}),
            Tried::Wrong { left } => json!({"result": "wrong", "left": left}),
            Tried::Locked => json!({"result": "locked"}),
        };
        let change = Change::new("card.pin.change", format!("card:{}", no.get())).after(outcome);
        Ok((tried, change))
    })
    .await?;
    match tried {
        Tried::Right => Ok(Json(json!({"card_no": no.get(), "pin": "changed"}))),
        other => Err(ApiError(HostError::Refused(other.code()))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsReq {
    max_failures: i64,
}

/// `PUT /pin/settings` with `{"max_failures": N}` (1–10).
async fn settings(State(s): S, caller: Caller, ApiJson(r): ApiJson<SettingsReq>) -> ApiResult {
    let n = r.max_failures;
    let now = s.config.clock.now();
    jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = repo::meta(tx.conn, pin::MAX_FAILURES)?;
        pin::set_max_failures(tx, n)?;
        let change = Change::new("pin.settings", "settings")
            .before(json!({ pin::MAX_FAILURES: before }))
            .after(json!({ pin::MAX_FAILURES: n }));
        Ok(((), change))
    })
    .await?;
    Ok(Json(json!({ pin::MAX_FAILURES: n })))
}
