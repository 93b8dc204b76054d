//! Card-vs-account reconciliation's routes (R-B10, `domain::reconcile`): the listing,
//! a run (with its collection orders to the terminals, R-F4.17) and the alarm's thresholds.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiJson, ApiQuery, ApiResult};
use super::auth::Caller;
use super::registry::Command;
use super::routes::Api;
use super::{Shared, jobs, metrics};
use crate::access::{Access, Permission as P};
use crate::domain::journal::Change;
use crate::domain::reconcile::{self, APPLY_CHUNK, Alarm, Show};
use crate::error::HostError;
use ykt_proto::Fen;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/reconcile", Access::Needs(P::ReportRead), list)
        .post("/reconcile/run", Access::Needs(P::AuditRun), run)
        .put("/reconcile/settings", Access::Needs(P::Settings), settings)
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::from(HostError::Invalid(m.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `open` (default), `alarms` or `all`.
    show: Option<String>,
    /// The page starts after this card number.
    after: Option<u32>,
    limit: Option<u32>,
}

/// `GET /reconcile?show=open|alarms|all&after=CARD&limit=N`.
async fn list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let show = match q.show.as_deref() {
        None | Some("open") => Show::Open,
        Some("alarms") => Show::Alarms,
        Some("all") => Show::All,
        Some(_) => return Err(invalid("show is open, alarms or all")),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=reconcile::MAX_LIST).contains(&limit) {
        return Err(invalid(format!("limit is 1 to {}", reconcile::MAX_LIST)));
    }
    let after = q.after.unwrap_or(0);
    let now = s.config.clock.now();
    let (cards, alarm, unexplained) = jobs::read(&s.store, move |tx| {
        let cards = reconcile::list(tx, show, after, limit + 1, now)?;
        Ok((
            cards,
            reconcile::alarm_settings(tx)?,
            reconcile::unexplained(tx, now)?,
        ))
    })
    .await?;
    metrics::reconcile_unexplained(unexplained);
    let more = cards.len() > limit as usize;
    let shown = &cards[..cards.len().min(limit as usize)];
    let next = if more {
        shown.last().map(|c| c.card_no)
    } else {
        None
    };
    Ok(Json(json!({
        "cards": shown,
        "alarm": alarm,
        "unexplained": unexplained,
        "next_after": next,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunReq {}

/// `POST /reconcile/run` with `{}`: scans every card on a reader, re-checks those out of
/// agreement on a writer (in chunks, each journalled), sends the collection orders to the
/// terminals connected here and notes which went out.
async fn run(State(s): S, caller: Caller, ApiJson(_): ApiJson<RunReq>) -> ApiResult {
    let scan = jobs::read(&s.store, reconcile::scan).await?;
    let now = s.config.clock.now();
    let mut total = reconcile::Applied::default();
    for chunk in scan.candidates.chunks(APPLY_CHUNK) {
        let cards = chunk.to_vec();
        let applied = jobs::change(&s.store, &caller.actor, now, move |tx| {
            let a = reconcile::apply(tx, &cards, now)?;
            let change = Change::new("reconcile.run", "reconcile").after(json!({
                "checked": a.checked,
                "found": a.found,
                "resolved": a.resolved,
                "orders": a.orders.len(),
            }));
            Ok((a, change))
        })
        .await?;
        total.checked += applied.checked;
        total.found += applied.found;
        total.resolved += applied.resolved;
        total.orders.extend(applied.orders);
    }
    // A terminal not connected to this process gets its order at the next run.
    let mut sent = Vec::new();
    let mut orders = Vec::with_capacity(total.orders.len());
    for o in &total.orders {
        let ok = s.registry.send(
            o.device,
            Command::Collect {
                card: o.card,
                count: o.count,
            },
        );
        if ok {
            sent.push(*o);
        }
        orders.push(
            json!({"device": o.device.to_string(), "card_no": o.card.get(),
            "count": o.count, "sent": ok}),
        );
    }
    if !sent.is_empty() {
        let marked = sent.clone();
        jobs::change(&s.store, &caller.actor, now, move |tx| {
            reconcile::mark_sent(tx, &marked, now)?;
            let change = Change::new("reconcile.collect", "reconcile").after(&marked);
            Ok(((), change))
        })
        .await?;
    }
    let unexplained = jobs::read(&s.store, move |tx| reconcile::unexplained(tx, now)).await?;
    metrics::reconcile_unexplained(unexplained);
    Ok(Json(json!({
        "cards": scan.cards,
        "candidates": scan.candidates.len(),
        "truncated": scan.truncated,
        "checked": total.checked,
        "found": total.found,
        "resolved": total.resolved,
        "orders": orders,
        "unexplained": unexplained,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsReq {
    days: i64,
    fen: Fen,
}

/// `PUT /reconcile/settings` with `{"days": N, "fen": N}`.
async fn settings(State(s): S, caller: Caller, ApiJson(r): ApiJson<SettingsReq>) -> ApiResult {
    let alarm = Alarm {
        days: r.days,
        fen: r.fen,
    };
    let now = s.config.clock.now();
    jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = reconcile::alarm_settings(tx)?;
        reconcile::set_alarm(tx, alarm)?;
        let change = Change::new("reconcile.settings", "settings")
            .before(before)
            .after(alarm);
        Ok(((), change))
    })
    .await?;
    Ok(Json(json!({ "alarm": alarm })))
}
