//! Merchants' terms and money (R-B8) and maintenance mode (R-B9) on the admin API
//! (`docs/admin-api.md`): type and commission, payouts (解款, two-person rule above the
//! threshold), the merchant accounts' check (44), maintenance on / off (8).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::approvals::{self, Approval, Operation};
use crate::domain::journal::{self, Change};
use crate::domain::merchants::{
    self, Maintenance, PAYOUT_APPROVAL, PayoutAmount, SimulatedPayoutBank,
};
use crate::model::{MerchantKind, MerchantStatus};
use crate::repo;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .put(
            "/merchants/{no}/terms",
            Access::Needs(P::MerchantWrite),
            set_terms,
        )
        .put(
            "/merchants/{no}/status",
            Access::Needs(P::MerchantWrite),
            set_status,
        )
        .post(
            "/merchants/{no}/payout",
            Access::Needs(P::MerchantWrite),
            payout,
        )
        .get(
            "/merchants/{no}/payouts",
            Access::Needs(P::MerchantRead),
            payouts,
        )
        .post(
            "/merchants/check",
            Access::Needs(P::MerchantWrite),
            check_accounts,
        )
        .get("/maintenance", Access::SignedIn, maintenance)
        .put("/maintenance", Access::Needs(P::Settings), set_maintenance)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermsReq {
    /// canteen, shop, topup-agent or general.
    kind: Option<String>,
    /// 0 to 10000 basis points.
    commission_bp: Option<u16>,
}

fn terms_json(m: &crate::model::Merchant) -> serde_json::Value {
    json!({"no": m.no, "name": m.name, "status": m.status.as_str(), "kind": m.kind.as_str(),
           "commission_bp": m.commission_bp})
}

async fn set_terms(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<TermsReq>,
) -> ApiResult {
    let kind = r.kind.as_deref().map(MerchantKind::parse).transpose()?;
    let now = s.config.clock.now();
    let after = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let (before, after) = merchants::set_terms(tx, no, kind, r.commission_bp)?;
        let change = Change::new("merchant.terms", format!("merchant:{no}"))
            .before(terms_json(&before))
            .after(terms_json(&after));
        Ok((after, change))
    })
    .await?;
    Ok(Json(terms_json(&after)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusReq {
    /// normal, stopped (43), abnormal (44) or deregistered (41, final).
    status: String,
}

/// A merchant's status: finance sets an abnormal merchant normal once its account is
/// explained; stopped (止付) and deregistered as R-H3 says.
async fn set_status(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
    ApiJson(r): ApiJson<StatusReq>,
) -> ApiResult {
    let status = MerchantStatus::ALL
        .iter()
        .copied()
        .find(|st| st.as_str() == r.status)
        .ok_or_else(|| {
            super::api::invalid("status is normal, stopped, abnormal or deregistered")
        })?;
    let now = s.config.clock.now();
    let after = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = crate::domain::admin::merchant(tx, no)?;
        let after = crate::domain::admin::set_merchant_status(tx, no, status)?;
        let change = Change::new("merchant.status", format!("merchant:{no}"))
            .before(terms_json(&before))
            .after(terms_json(&after));
        Ok((after, change))
    })
    .await?;
    Ok(Json(terms_json(&after)))
}

enum PaidOut {
    Done(merchants::Payout),
    Waiting(Approval),
}

/// Pays the merchant's balance minus its commission. Above the threshold (a system
/// parameter) it waits for a second operator (202 with the request), who approves exactly
/// the gross shown.
async fn payout(
    State(s): S,
    caller: Caller,
    ApiPath(no): ApiPath<u32>,
) -> Result<Response, ApiError> {
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let done = jobs::execute(&s.store, move |tx| {
        let threshold = repo::meta(tx.conn, PAYOUT_APPROVAL)?;
        let gross = merchants::payout_gross(tx, no)?;
        if threshold > 0 && gross >= threshold {
            let payload = json!({"merchant_no": no, "gross": gross});
            let target = format!("merchant:{no}");
            let a = approvals::request(tx, &actor, Operation::Payout, &target, payload, now)?;
            return Ok(PaidOut::Waiting(a));
        }
        let (p, change) = merchants::payout(
            tx,
            &actor.login,
            no,
            PayoutAmount::All,
            &SimulatedPayoutBank,
            now,
        )?;
        journal::append(tx, &actor, now, &change)?;
        Ok(PaidOut::Done(p))
    })
    .await?;
    Ok(match done {
        PaidOut::Done(p) => Json(p.view()).into_response(),
        PaidOut::Waiting(a) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "pending", "approval": a.view(),
                        "message": "解款金额超过审批限额，等待第二位操作员审批"})),
        )
            .into_response(),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
}

async fn payouts(
    State(s): S,
    ApiPath(no): ApiPath<u32>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(100).min(1_000);
    let list = jobs::read(&s.store, move |tx| merchants::payouts(tx, no, limit)).await?;
    Ok(Json(json!(
        list.iter().map(merchants::Payout::view).collect::<Vec<_>>()
    )))
}

async fn check_accounts(State(s): S, caller: Caller) -> ApiResult {
    let now = s.config.clock.now();
    let marked = jobs::change(&s.store, &caller.actor, now, |tx| {
        let marked = merchants::check_accounts(tx)?;
        let change = Change::new("merchant.check", "merchants").after(json!({"abnormal": marked}));
        Ok((marked, change))
    })
    .await?;
    Ok(Json(json!({ "abnormal": marked })))
}

async fn maintenance(State(s): S) -> ApiResult {
    let m = jobs::read(&s.store, merchants::maintenance).await?;
    Ok(Json(json!({ "maintenance": m })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceReq {
    /// on or off.
    maintenance: String,
}

async fn set_maintenance(
    State(s): S,
    caller: Caller,
    ApiJson(r): ApiJson<MaintenanceReq>,
) -> ApiResult {
    let mode = match r.maintenance.as_str() {
        "on" => Maintenance::On,
        "off" => Maintenance::Off,
        _ => return Err(super::api::invalid("maintenance is on or off")),
    };
    let now = s.config.clock.now();
    jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = merchants::set_maintenance(tx, mode)?;
        let change = Change::new("system.maintenance", "system")
            .before(json!({ "maintenance": before }))
            .after(json!({ "maintenance": mode }));
        Ok(((), change))
    })
    .await?;
    Ok(Json(json!({ "maintenance": mode })))
}
