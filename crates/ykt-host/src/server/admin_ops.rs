//! Operator routes beside `admin.rs`: the card list (paged, mounted with `POST /cards`), the daily report, and the
//! front-end processors (R-H7) with the watcher that signs this process's FEP in as soon as
//! it is activated, without a restart.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use ykt_proto::CardNo;

use super::admin::card_json;
use super::api::{ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::journal::Change;
use crate::domain::{admin, blacklist, report};
use crate::model::{Fep, FepStatus};

type S = State<Arc<Shared>>;

/// Cards per page at most.
pub const MAX_CARD_PAGE: u32 = 1_000;
/// FEPs listed at most.
const MAX_FEPS: u32 = 1_000;
/// How often an unsigned FEP is checked for activation.
const FEP_RECHECK: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/reports/daily", Access::Needs(P::ReportRead), daily)
        .get("/feps", Access::Needs(P::FepRead), feps)
        .post("/feps", Access::Needs(P::FepWrite), add_fep)
        .post(
            "/feps/{id}/{action}",
            Access::Needs(P::FepWrite),
            fep_action,
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CardPage {
    after: Option<u32>,
    limit: Option<u32>,
}

/// `GET /cards?after=N&limit=M`: cards in number order; `next_after` continues the list.
pub(crate) async fn cards(State(s): S, ApiQuery(p): ApiQuery<CardPage>) -> ApiResult {
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_CARD_PAGE).contains(&limit) {
        return Err(invalid(format!("limit is 1 to {MAX_CARD_PAGE}")));
    }
    let after = match p.after {
        None | Some(0) => None,
        Some(n) => Some(CardNo::new(n).ok_or_else(|| invalid("after is a card number"))?),
    };
    let page = jobs::read(&s.store, move |tx| {
        crate::repo::card_list(tx.conn, after, limit + 1)
    })
    .await?;
    let more = page.len() > limit as usize;
    let shown = &page[..page.len().min(limit as usize)];
    let list: Vec<Value> = shown
        .iter()
        .map(|c| {
            let mut v = card_json(c);
            v["blacklisted"] = json!(blacklist::blocks(c.status));
            v
        })
        .collect();
    let next = if more {
        shown.last().map(|c| c.no.get())
    } else {
        None
    };
    Ok(Json(json!({"cards": list, "next_after": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    date: Option<String>,
}

/// `GET /reports/daily?date=YYYY-MM-DD` (default: today on the campus clock).
async fn daily(State(s): S, ApiQuery(q): ApiQuery<DayQuery>) -> ApiResult {
    let date = match q.date {
        Some(d) => {
            NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| invalid("date is YYYY-MM-DD"))?
        }
        None => s.config.clock.now().date(),
    };
    let (r, subsidies) = jobs::read(&s.store, move |tx| {
        Ok((
            report::daily(tx, date)?,
            crate::domain::subsidies::day(tx, date)?,
        ))
    })
    .await?;
    let mut v = serde_json::to_value(&r).map_err(|e| invalid(e.to_string()))?;
    v["subsidies"] = json!(subsidies);
    v["net_amount"] = json!(r.total.net_amount());
    v["net_fee"] = json!(r.total.net_fee());
    Ok(Json(v))
}

fn fep_json(f: &Fep, this: u32) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "status": f.status.as_str(),
        "signed_in_at": f.signed_in_at.map(|t| t.to_string()),
        "this_process": f.id == this,
    })
}

async fn feps(State(s): S) -> ApiResult {
    let list = jobs::read(&s.store, |tx| {
        let rows = tx.conn.query(
            "SELECT id FROM feps ORDER BY id LIMIT $1",
            &[MAX_FEPS.into()],
        )?;
        rows.iter()
            .map(|r| admin::fep(tx, r.int_as(0)?))
            .collect::<crate::error::Result<Vec<_>>>()
    })
    .await?;
    let this = s.config.fep_id;
    Ok(Json(Value::Array(
        list.iter().map(|f| fep_json(f, this)).collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFep {
    id: u32,
    name: String,
}

async fn add_fep(State(s): S, caller: Caller, ApiJson(f): ApiJson<NewFep>) -> ApiResult {
    let (this, now) = (s.config.fep_id, s.config.clock.now());
    let made = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let made = admin::register_fep(tx, f.id, &f.name)?;
        let change = Change::new("fep.add", format!("fep:{}", f.id)).after(fep_json(&made, this));
        Ok((made, change))
    })
    .await?;
    Ok(Json(fep_json(&made, s.config.fep_id)))
}

/// `activate` (and, for this process's FEP, sign in at once) or `deregister`.
async fn fep_action(
    State(s): S,
    caller: Caller,
    ApiPath((id, action)): ApiPath<(u32, String)>,
) -> ApiResult {
    let (this, now) = (s.config.fep_id, s.config.clock.now());
    let operation = match action.as_str() {
        "activate" => "fep.activate",
        "deregister" => "fep.deregister",
        other => {
            return Err(invalid(format!(
                "unknown FEP action {other:?}: activate, deregister"
            )));
        }
    };
    let f = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = admin::fep(tx, id)?;
        let f = fep_do(tx, operation, id, this, now)?;
        let change = Change::new(operation, format!("fep:{id}"))
            .before(fep_json(&before, this))
            .after(fep_json(&f, this));
        Ok((f, change))
    })
    .await?;
    Ok(Json(fep_json(&f, this)))
}

fn fep_do(
    tx: &mut crate::ledger::Tx<'_>,
    operation: &str,
    id: u32,
    this: u32,
    now: chrono::NaiveDateTime,
) -> crate::Result<Fep> {
    match operation {
        "fep.activate" => {
            let f = admin::activate_fep(tx, id)?;
            if id == this {
                admin::sign_in_fep(tx, id, now)
            } else {
                Ok(f)
            }
        }
        _ => admin::deregister_fep(tx, id),
    }
}

/// Signs this process's FEP in whenever it is activated but not signed in (activated by
/// another process, or by hand in the database), so terminals stop getting 12 without a
/// restart. Stops with the server.
pub(crate) async fn fep_watch(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let id = shared.config.fep_id;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(FEP_RECHECK) => {}
        }
        let state = jobs::read(&shared.store, move |tx| crate::repo::fep_get(tx.conn, id)).await;
        let needs = matches!(&state, Ok(Some(f)) if f.status == FepStatus::Activated && f.signed_in_at.is_none());
        if needs {
            super::admin::sign_in_fep(&shared).await;
        }
    }
}
