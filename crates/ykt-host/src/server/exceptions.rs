//! The card office's view of the exception queue (R-B3, `domain::exceptions`):
//! `GET /exceptions`, `GET /exceptions/{device}/{serial}`,
//! `POST /exceptions/{device}/{serial}/resolve` (`docs/admin-api.md`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use ykt_proto::{PhysicalId, TerminalSerial};

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs, metrics};
use crate::access::{Access, Permission as P};
use crate::domain::exceptions::{self, Action, ExceptionState, Held, Resolve};
use crate::domain::journal::{self, Change};
use crate::error::HostError;
use crate::exception_rows::Filter;

type S = State<Arc<Shared>>;

/// Exceptions per page at most.
const MAX_PAGE: u32 = 500;
/// A resolution's note, in bytes, at most.
const MAX_NOTE: usize = 1_000;

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/exceptions", Access::Needs(P::ExceptionRead), list)
        .get(
            "/exceptions/{device}/{serial}",
            Access::Needs(P::ExceptionRead),
            show,
        )
        .post(
            "/exceptions/{device}/{serial}/resolve",
            Access::Needs(P::ExceptionResolve),
            resolve,
        )
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::from(HostError::Invalid(m.into()))
}

fn parse_device(s: &str) -> Result<PhysicalId, ApiError> {
    s.parse().map_err(|e: &str| invalid(e))
}

fn parse_key(device: &str, serial: &str) -> Result<(PhysicalId, TerminalSerial), ApiError> {
    let serial = serial
        .parse()
        .map_err(|_| invalid("a serial is 0 to 4294967295"))?;
    Ok((parse_device(device)?, serial))
}

fn held_json(h: &Held) -> Value {
    let r = &h.record;
    let state = match &h.state {
        ExceptionState::Open => json!({"state": "open"}),
        ExceptionState::Resolved(x) => json!({
            "state": x.action.as_str(),
            "resolved_by": x.by,
            "resolved_at": x.at.to_string(),
            "note": x.note,
            "before": serde_json::from_str::<Value>(&x.before).unwrap_or(Value::Null),
            "after": serde_json::from_str::<Value>(&x.after).unwrap_or(Value::Null),
        }),
    };
    json!({
        "device": r.device.to_string(),
        "serial": r.serial,
        "code": h.code.0,
        "reason": h.reason,
        "received_at": h.received_at.to_string(),
        "uploader": h.uploader.to_string(),
        "resolution": state,
        "record": {
            "kind": format!("{:?}", r.kind),
            "status": crate::repo::status_str(r.status),
            "online": r.online,
            "card_type": format!("{:?}", r.card_type),
            "card_no": r.card_no.get(),
            "card_counter": r.card_counter,
            "wallet_no": r.wallet_no,
            "balance_before": r.balance_before,
            "amount": r.amount,
            "fee": r.fee,
            "balance_after": r.balance_after,
            "time": r.time.to_string(),
            "merchant_no": r.merchant_no,
            "original_serial": r.original_serial,
            "item_code": r.item_code,
            "tac": r.tac,
        },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `open`, `resolved` or `all` (default `open`).
    state: Option<String>,
    /// `DEVICE/SERIAL`: the page starts after it.
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /exceptions?state=open|resolved|all&after=DEVICE/SERIAL&limit=N`.
async fn list(State(s): S, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult {
    let filter = match q.state.as_deref() {
        None | Some("open") => Filter::Open,
        Some("resolved") => Filter::Resolved,
        Some("all") => Filter::All,
        Some(_) => return Err(invalid("state is open, resolved or all")),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid(format!("limit is 1 to {MAX_PAGE}")));
    }
    let after = match q.after.as_deref() {
        None => None,
        Some(a) => {
            let (d, n) = a
                .split_once('/')
                .ok_or_else(|| invalid("after is DEVICE/SERIAL"))?;
            Some(parse_key(d, n)?)
        }
    };
    let (page, open) = jobs::read(&s.store, move |tx| {
        let page = exceptions::list(tx, filter, after, limit + 1)?;
        Ok((page, exceptions::count_open(tx)?))
    })
    .await?;
    metrics::exceptions_open(open);
    let more = page.len() > limit as usize;
    let shown = &page[..page.len().min(limit as usize)];
    let next = if more {
        shown
            .last()
            .map(|h| format!("{}/{}", h.record.device, h.record.serial))
    } else {
        None
    };
    Ok(Json(json!({
        "exceptions": shown.iter().map(held_json).collect::<Vec<_>>(),
        "open": open,
        "next_after": next,
    })))
}

/// `GET /exceptions/{device}/{serial}`.
async fn show(State(s): S, ApiPath((device, serial)): ApiPath<(String, String)>) -> ApiResult {
    let (device, serial) = parse_key(&device, &serial)?;
    let held = jobs::read(&s.store, move |tx| exceptions::get(tx, device, serial)).await?;
    match held {
        Some(h) => Ok(Json(held_json(&h))),
        None => Err(invalid(format!("no exception {device}/{serial}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveReq {
    action: Action,
    #[serde(default)]
    note: String,
}

/// `POST /exceptions/{device}/{serial}/resolve` with `{"action": "book"|"suspense"|"reject",
/// "note": "…"}`.
async fn resolve(
    State(s): S,
    caller: Caller,
    ApiPath((device, serial)): ApiPath<(String, String)>,
    ApiJson(r): ApiJson<ResolveReq>,
) -> ApiResult {
    let (device, serial) = parse_key(&device, &serial)?;
    if r.note.len() > MAX_NOTE {
        return Err(invalid(format!("a note has at most {MAX_NOTE} bytes")));
    }
    let req = Resolve {
        action: r.action,
        note: r.note,
        by: caller.login().to_owned(),
    };
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let (held, open) = jobs::execute(&s.store, move |tx| {
        let before = exceptions::get(tx, device, serial)?.map(|h| held_json(&h));
        let held = exceptions::resolve(tx, device, serial, &req, now)?;
        let change = Change::new("exception.resolve", format!("record:{device}:{serial}"))
            .before(before)
            .after(held_json(&held));
        journal::append(tx, &actor, now, &change)?;
        Ok((held, exceptions::count_open(tx)?))
    })
    .await?;
    metrics::exceptions_open(open);
    Ok(Json(held_json(&held)))
}
