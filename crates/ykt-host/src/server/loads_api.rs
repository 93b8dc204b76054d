//! Loads over the admin API (docs/loads.md): what waits for a card and its load
//! authorisations, the top-up limits (code 90), and which devices take top-ups and whose cash.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use ykt_proto::{CardNo, LoadPurpose, PhysicalId};

use super::api::{ApiError, ApiJson, ApiPath, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::journal::Change;
use crate::domain::topup::{self, Limits, TopUpSetting};
use crate::domain::{admin, operators};
use crate::repo_loads::{self as rows, Load, LoadState, WaitingLoad, WaitingSource, WaitingState};

type S = State<Arc<Shared>>;

/// At most this many loads of each kind are listed for a card.
const LIST_LIMIT: u32 = 200;

pub(crate) fn routes() -> Api {
    Api::new()
        .get(
            "/cards/{no}/waiting",
            Access::Needs(P::CardRead),
            card_waiting,
        )
        .get("/topup/limits", Access::SignedIn, get_limits)
        .put("/topup/limits", Access::Needs(P::Settings), put_limits)
        .put(
            "/devices/{id}/topup",
            Access::Needs(P::DeviceWrite),
            put_device,
        )
}

fn waiting_json(w: &WaitingLoad) -> Value {
    let (source, batch, expires) = match w.source {
        WaitingSource::Deposit => ("deposit", None, None),
        WaitingSource::Subsidy { batch, expires } => ("subsidy", Some(batch), expires),
    };
    let claim = match w.state {
        WaitingState::Claimed { device, serial } | WaitingState::Posted { device, serial, .. } => {
            Some(json!({"device": device.to_string(), "serial": serial}))
        }
        _ => None,
    };
    json!({
        "id": w.id,
        "amount": w.amount,
        "source": source,
        "batch": batch,
        "expires": expires.map(|t| t.to_string()),
        "state": w.state.as_str(),
        "load": claim,
        "created_at": w.created_at.to_string(),
    })
}

fn load_json(l: &Load) -> Value {
    let (state, settled) = match l.state {
        LoadState::Pending => ("pending", None),
        LoadState::Posted { at } => ("posted", Some(at)),
        LoadState::Voided { at } => ("voided", Some(at)),
    };
    json!({
        "device": l.device.to_string(),
        "serial": l.serial,
        "purpose": match l.purpose {
            LoadPurpose::TopUpCash => "cash",
            LoadPurpose::TopUpBank => "bank",
            LoadPurpose::Pickup => "pickup",
        },
        "amount": l.amount,
        "counter_before": l.counter_before,
        "balance_before": l.balance_before,
        "state": state,
        "settled_at": settled.map(|t| t.to_string()),
        "time": l.time.to_string(),
    })
}

async fn card_waiting(State(s): S, ApiPath(no): ApiPath<u32>) -> ApiResult {
    let no = CardNo::new(no).ok_or_else(|| invalid("a card number is 1 to 16777215"))?;
    let (card, waiting, loads) = jobs::read(&s.store, move |tx| {
        let card = admin::card(tx, no)?;
        let waiting = rows::waiting_all_of_card(tx.conn, no, LIST_LIMIT)?;
        let loads = rows::loads_of_card(tx.conn, no, LIST_LIMIT)?;
        Ok((card, waiting, loads))
    })
    .await?;
    Ok(Json(json!({
        "card_no": card.no.get(),
        "waiting": card.waiting,
        "subsidy_seq": card.subsidy_seq,
        "loads_pending": card.loads_pending,
        "waiting_loads": waiting.iter().map(waiting_json).collect::<Vec<_>>(),
        "loads": loads.iter().map(load_json).collect::<Vec<_>>(),
    })))
}

async fn get_limits(State(s): S) -> ApiResult {
    let l = jobs::read(&s.store, topup::limits).await?;
    Ok(Json(json!(l)))
}

async fn put_limits(State(s): S, caller: Caller, ApiJson(l): ApiJson<Limits>) -> ApiResult {
    let now = s.config.clock.now();
    let l = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = topup::limits(tx)?;
        let after = topup::set_limits(tx, l)?;
        let change = Change::new("topup.limits", "topup:limits")
            .before(json!(before))
            .after(json!(after));
        Ok((after, change))
    })
    .await?;
    Ok(Json(json!(l)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceReq {
    /// Whether the device takes top-ups (the function bit).
    enabled: bool,
    /// The operator logged in at it, whose cash it takes (none: bank top-ups only).
    #[serde(default)]
    operator: Option<String>,
}

fn parse_device(s: &str) -> Result<PhysicalId, ApiError> {
    s.parse().map_err(|e: &str| invalid(e))
}

async fn put_device(
    State(s): S,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<DeviceReq>,
) -> ApiResult {
    let id = parse_device(&id)?;
    if !r.enabled && r.operator.is_some() {
        return Err(invalid("a device without top-ups takes no operator's cash"));
    }
    let now = s.config.clock.now();
    let view = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let device = admin::device(tx, id)?;
        let before = topup::top_up_setting(tx, &device)?;
        let setting = match (&r.enabled, &r.operator) {
            (false, _) => TopUpSetting::Off,
            (true, None) => TopUpSetting::On { operator: None },
            (true, Some(login)) => TopUpSetting::On {
                operator: Some(operators::get(tx, login)?.id),
            },
        };
        topup::set_top_up(tx, id, &setting, now)?;
        let view = json!({"device": id.to_string(), "top_up": r.enabled, "operator": r.operator});
        let change = Change::new("device.topup", format!("device:{id}"))
            .before(json!({"setting": format!("{before:?}")}))
            .after(view.clone());
        Ok((view, change))
    })
    .await?;
    Ok(Json(view))
}
