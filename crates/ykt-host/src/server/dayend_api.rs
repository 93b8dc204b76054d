//! Day-end (日终, R-B9) on the admin API: close a day, show a closed day (its frozen report,
//! meal-period totals, audit verdict), list closed days.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::dayend;
use crate::domain::journal::Change;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/dayend", Access::Needs(P::ReportRead), list)
        .get("/dayend/{day}", Access::Needs(P::ReportRead), show)
        .post("/dayend/{day}", Access::Needs(P::MerchantWrite), close)
}

fn parse_day(s: &str) -> Result<NaiveDate, super::api::ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid("a day is YYYY-MM-DD"))
}

async fn close(State(s): S, caller: Caller, ApiPath(day): ApiPath<String>) -> ApiResult {
    let day = parse_day(&day)?;
    let now = s.config.clock.now();
    let by = caller.actor.login.clone();
    let d = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let d = dayend::close(tx, day, &by, now)?;
        let change = Change::new("dayend.close", format!("day:{day}")).after(json!({
            "audit_clean": d.audit_clean, "accounts": d.accounts, "meals": d.meals,
        }));
        Ok((d, change))
    })
    .await?;
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
