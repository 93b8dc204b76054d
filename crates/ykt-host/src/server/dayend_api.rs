//! Day-end (日终, R-B9) on the admin API: close a day, show a closed day (its frozen report,
//! meal-period totals, audit verdict), list closed days; its settings (close time, payout
//! threshold) and the meal periods (餐次). [`schedule`]: `ykt serve` closes each day by
//! itself once its close time has passed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::api::{ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::dayend;
use crate::domain::journal::{Actor, Change};
use crate::domain::merchants::PAYOUT_APPROVAL;
use crate::repo;
use ykt_proto::Fen;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/dayend", Access::Needs(P::ReportRead), list)
        .get("/dayend/{day}", Access::Needs(P::ReportRead), show)
        .post("/dayend/{day}", Access::Needs(P::MerchantWrite), close)
        .get("/settings/dayend", Access::SignedIn, settings)
        .put("/settings/dayend", Access::Needs(P::Settings), set_settings)
        .get("/settings/meal-periods", Access::SignedIn, meals)
        .put(
            "/settings/meal-periods",
            Access::Needs(P::Settings),
            set_meals,
        )
}

/// Closes `day` in one writer transaction and journals it under `actor`.
async fn close_day(
    s: &Shared,
    actor: &Actor,
    day: NaiveDate,
) -> Result<dayend::DayEnd, crate::HostError> {
    let now = s.config.clock.now();
    let by = actor.login.clone();
    jobs::change_settled(&s.store, actor, now, move |tx| {
        let d = dayend::close(tx, day, &by, now)?;
        let change = Change::new("dayend.close", format!("day:{day}")).after(json!({
            "audit_clean": d.audit_clean, "accounts": d.accounts, "meals": d.meals,
        }));
        Ok((d, change))
    })
    .await
}

/// The day-end schedule of `ykt serve`: every `config.dayend_check`, the latest day whose
/// close time has passed is closed unless it is already (by hand or by another process
/// sharing the database: then the close is refused and nothing happens). Journalled as
/// `system` (`dayend-schedule`). Stops with the server.
pub(crate) async fn schedule(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let actor = Actor::system("dayend-schedule");
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(shared.config.dayend_check) => {}
        }
        let now = shared.config.clock.now();
        let due = jobs::read(&shared.store, move |tx| dayend::next_due(tx, now)).await;
        match due {
            Ok(Some(day)) => match close_day(&shared, &actor, day).await {
                Ok(d) => tracing::info!(%day, audit_clean = d.audit_clean, "day-end: day closed"),
                Err(e) => tracing::warn!(%day, "day-end: not closed: {e}"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!("day-end schedule: {e}"),
        }
    }
}

fn parse_day(s: &str) -> Result<NaiveDate, super::api::ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid("a day is YYYY-MM-DD"))
}

async fn close(State(s): S, caller: Caller, ApiPath(day): ApiPath<String>) -> ApiResult {
    let day = parse_day(&day)?;
    let d = close_day(&s, &caller.actor, day).await?;
    Ok(Json(d.view()))
}

async fn show(State(s): S, ApiPath(day): ApiPath<String>) -> ApiResult {
    let day = parse_day(&day)?;
    match jobs::read(&s.store, move |tx| dayend::get(tx, day)).await? {
        Some(d) => Ok(Json(d.view())),
        None => Err(invalid(format!("day {day} is not closed"))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(31).clamp(1, 366);
    let days = jobs::read(&s.store, move |tx| dayend::list(tx, limit)).await?;
    Ok(Json(json!(
        days.iter()
            .map(
                |d| json!({"day": d.day.to_string(), "closed_at": d.view()["closed_at"],
                            "closed_by": d.closed_by, "audit_clean": d.audit_clean})
            )
            .collect::<Vec<_>>()
    )))
}

/// The largest payout threshold accepted (fen, ten million yuan).
const MAX_PAYOUT_THRESHOLD: Fen = 1_000_000_000;

fn settings_view(minute: i64, threshold: Fen) -> serde_json::Value {
    json!({ dayend::CLOSE_MINUTE: minute, PAYOUT_APPROVAL: threshold })
}

async fn settings(State(s): S) -> ApiResult {
    let (m, t) = jobs::read(&s.store, |tx| {
        Ok((
            repo::meta(tx.conn, dayend::CLOSE_MINUTE)?,
            repo::meta(tx.conn, PAYOUT_APPROVAL)?,
        ))
    })
    .await?;
    Ok(Json(settings_view(m, t)))
}

/// Either or both; what is left out stays.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsReq {
    dayend_close_minute: Option<i64>,
    payout_approval_threshold: Option<Fen>,
}

async fn set_settings(State(s): S, caller: Caller, ApiJson(r): ApiJson<SettingsReq>) -> ApiResult {
    if r.dayend_close_minute
        .is_some_and(|m| !(0..1440).contains(&m))
    {
        return Err(invalid(
            "dayend_close_minute is 0 to 1439 (minutes after midnight)",
        ));
    }
    if r.payout_approval_threshold
        .is_some_and(|t| !(0..=MAX_PAYOUT_THRESHOLD).contains(&t))
    {
        return Err(invalid(format!(
            "payout_approval_threshold is 0 to {MAX_PAYOUT_THRESHOLD} fen"
        )));
    }
    let now = s.config.clock.now();
    let (m, t) = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = (
            repo::meta(tx.conn, dayend::CLOSE_MINUTE)?,
            repo::meta(tx.conn, PAYOUT_APPROVAL)?,
        );
        let after = (
            r.dayend_close_minute.unwrap_or(before.0),
            r.payout_approval_threshold.unwrap_or(before.1),
        );
        repo::set_meta(tx.conn, dayend::CLOSE_MINUTE, after.0)?;
        repo::set_meta(tx.conn, PAYOUT_APPROVAL, after.1)?;
        let change = Change::new("settings.set", "settings")
            .before(settings_view(before.0, before.1))
            .after(settings_view(after.0, after.1));
        Ok((after, change))
    })
    .await?;
    Ok(Json(settings_view(m, t)))
}

async fn meals(State(s): S) -> ApiResult {
    let periods = jobs::read(&s.store, dayend::meal_periods).await?;
    Ok(Json(json!({ "periods": periods })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MealsReq {
    periods: Vec<dayend::MealPeriod>,
}

async fn set_meals(State(s): S, caller: Caller, ApiJson(r): ApiJson<MealsReq>) -> ApiResult {
    let periods = dayend::check_meal_periods(r.periods)?;
    let now = s.config.clock.now();
    let periods = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = dayend::meal_periods(tx)?;
        let after = dayend::set_meal_periods(tx, periods.clone())?;
        let change = Change::new("meal_periods.set", "meal_periods")
            .before(json!(before))
            .after(json!(after));
        Ok((after, change))
    })
    .await?;
    Ok(Json(json!({ "periods": periods })))
}
