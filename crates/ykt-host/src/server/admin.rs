//! The admin JSON API (`/api/v1`, documented in `docs/admin-api.md`). Every mutating route
//! is a domain function run in one store transaction. Money is integer fen.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ykt_proto::{CardNo, DisplayNo, Fen, PhysicalId};

pub(crate) use super::api::ApiError;
use super::api::{ApiJson, ApiPath, ApiResult, invalid};
use super::auth::Caller;
use super::registry::Command;
use super::routes::Api;
use super::{Shared, jobs, params_api};
use crate::access::{Access, Permission as P};
use crate::domain::admin::Payer;
use crate::domain::journal::Change;
use crate::domain::shifts::Method;
use crate::domain::{admin, blacklist, cardholders};
use crate::error::HostError;
use crate::model::*;
use crate::{ledger, params_codec, repo};

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .get("/merchants", Access::Needs(P::MerchantRead), merchants)
        .post("/merchants", Access::Needs(P::MerchantWrite), add_merchant)
        .get("/devices", Access::Needs(P::DeviceRead), devices)
        .post("/devices", Access::Needs(P::DeviceWrite), add_device)
        .get("/devices/{id}", Access::Needs(P::DeviceRead), device)
        .post(
            "/devices/{id}/enable",
            Access::Needs(P::DeviceWrite),
            enable_device,
        )
        .post(
            "/devices/{id}/disable",
            Access::Needs(P::DeviceWrite),
            disable_device,
        )
        .put(
            "/devices/{id}/params",
            Access::Needs(P::DeviceWrite),
            set_params,
        )
        .post(
            "/devices/{id}/collect",
            Access::Needs(P::DeviceWrite),
            collect,
        )
        .get(
            "/cards",
            Access::Needs(P::CardRead),
            super::admin_ops::cards,
        )
        .post("/cards", Access::Needs(P::CardWrite), issue_card)
        .get("/cards/{no}", Access::Needs(P::CardRead), card)
        .post(
            "/cards/{no}/{action}",
            Access::Needs(P::CardWrite),
            card_action,
        )
        .get(
            "/blacklist",
            Access::Needs(P::BlacklistRead),
            blacklist_show,
        )
        .get("/audit", Access::Needs(P::AuditRun), audit)
        .merge(super::admin_ops::routes())
        .merge(super::exceptions::routes())
        .merge(super::cash_api::routes())
        .merge(super::loads_api::routes())
        .merge(super::lifecycle_api::routes())
        .merge(super::authcards_api::routes())
}

fn parse_device(s: &str) -> Result<PhysicalId, ApiError> {
    s.parse().map_err(|e: &str| invalid(e))
}

fn parse_card(n: u32) -> Result<CardNo, ApiError> {
    CardNo::new(n).ok_or_else(|| invalid("a card number is 1 to 16777215"))
}

/// Signs this process in as its FEP (R-H7); logs why not when it cannot.
pub(crate) async fn sign_in_fep(shared: &Shared) {
    let (id, now) = (shared.config.fep_id, shared.config.clock.now());
    match jobs::execute(&shared.store, move |tx| admin::sign_in_fep(tx, id, now)).await {
        Ok(_) => tracing::info!(fep = id, "front-end processor signed in"),
        Err(e) => tracing::warn!(fep = id, code = e.return_code().0, error = %e,
            "front-end processor cannot sign in; terminals get codes 10-13 until it is registered and activated"),
    }
}

fn merchant_json(m: &Merchant, balance: Fen) -> Value {
    json!({"no": m.no, "name": m.name, "status": m.status.as_str(), "kind": m.kind.as_str(),
           "commission_bp": m.commission_bp, "balance": balance})
}

async fn merchants(State(s): S) -> ApiResult {
    let list = jobs::read(&s.store, |tx| {
        let rows = tx
            .conn
            .query("SELECT no FROM merchants ORDER BY no LIMIT 10000", &[])?;
        let mut out = Vec::new();
        for r in rows {
            let no =
                u32::try_from(r.int(0)?).map_err(|_| HostError::Corrupt("merchant no".into()))?;
            let m = admin::merchant(tx, no)?;
            let bal = repo::account_balance(tx.conn, &repo::merchant_account(no))?.unwrap_or(0);
            out.push(merchant_json(&m, bal));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Value::Array(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMerchant {
    no: u32,
    name: String,
    /// canteen, shop, topup-agent or general (the default).
    kind: Option<String>,
}

async fn add_merchant(State(s): S, caller: Caller, ApiJson(m): ApiJson<NewMerchant>) -> ApiResult {
    let kind = m
        .kind
        .as_deref()
        .map_or(Ok(MerchantKind::General), MerchantKind::parse)?;
    let now = s.config.clock.now();
    let made = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let made = admin::create_merchant_of(tx, m.no, &m.name, kind)?;
        let change = Change::new("merchant.add", format!("merchant:{}", made.no))
            .after(merchant_json(&made, 0));
        Ok((made, change))
    })
    .await?;
    Ok(Json(merchant_json(&made, 0)))
}

pub(crate) fn device_json(d: &Device, connected: bool) -> Value {
    let p = &d.params;
    json!({
        "id": d.id.to_string(),
        "terminal_no": d.terminal_no,
        "merchant_no": d.merchant_no,
        "status": d.status.as_str(),
        "mac_suite": d.mac_suite as u8,
        "has_master_key": d.master_key.is_some(),
        "max_amount": d.max_amount,
        "connected": connected,
        "params": params_api::params_json(p),
        "last_report": d.last_report.map(|r| json!({
            "at": r.at.to_string(),
            "pending_records": r.pending_records,
            "terminal_clock": r.terminal_clock.to_string(),
            "blacklist_version": r.blacklist_version,
        })),
    })
}

async fn devices(State(s): S) -> ApiResult {
    let list = jobs::read(&s.store, |tx| repo::device_list(tx.conn, None, 10_000)).await?;
    Ok(Json(Value::Array(
        list.iter()
            .map(|d| device_json(d, s.registry.is_connected(d.id)))
            .collect(),
    )))
}

async fn device(State(s): S, ApiPath(id): ApiPath<String>) -> ApiResult {
    let id = parse_device(&id)?;
    let d = jobs::read(&s.store, move |tx| admin::device(tx, id)).await?;
    Ok(Json(device_json(&d, s.registry.is_connected(id))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDeviceReq {
    id: String,
    terminal_no: u32,
    merchant_no: u32,
    /// 1 AES-128 (default), 2 SM4.
    #[serde(default)]
    mac_suite: Option<u8>,
    #[serde(default)]
    max_amount: Fen,
    /// Enable at once (default true).
    #[serde(default)]
    enable: Option<bool>,
}

/// A device's provisioning data (`docs/provisioning.md`), returned once at registration.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Provisioning {
    pub physical_id: String,
    pub master_key: String,
    pub mac_suite: String,
    pub host: String,
    pub terminal_no: u32,
    pub merchant_no: u32,
}

async fn add_device(State(s): S, caller: Caller, ApiJson(r): ApiJson<NewDeviceReq>) -> ApiResult {
    let id = parse_device(&r.id)?;
    let suite = match r.mac_suite.unwrap_or(1) {
        1 => MacSuite::Aes128Cmac,
        2 => MacSuite::Sm4Cmac,
        _ => return Err(invalid("mac_suite is 1 (AES-128) or 2 (SM4)")),
    };
    let mut key = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| invalid(format!("OS random generator failed: {e}")))?;
    let enable = r.enable.unwrap_or(true);
    let nd = NewDevice {
        id,
        terminal_no: r.terminal_no,
        merchant_no: Some(r.merchant_no),
        mac_suite: suite,
        functions: Functions::ALL,
        max_amount: r.max_amount,
        params: params_codec::default_params(),
    };
    let now = s.config.clock.now();
    let d = jobs::change(&s.store, &caller.actor, now, move |tx| {
        admin::register_device(tx, nd.clone())?;
        admin::set_device_key(tx, id, key)?;
        let d = if enable {
            admin::set_device_status(tx, id, DeviceStatus::Enabled)?
        } else {
            admin::device(tx, id)?
        };
        // The journal never holds the key: `device_json` shows only that there is one.
        let change =
            Change::new("device.add", format!("device:{id}")).after(device_json(&d, false));
        Ok((d, change))
    })
    .await?;
    let prov = Provisioning {
        physical_id: id.to_string(),
        master_key: hex::encode_upper(key),
        mac_suite: if suite == MacSuite::Sm4Cmac {
            "sm4"
        } else {
            "aes128"
        }
        .into(),
        host: s.config.terminal_listen.to_string(),
        terminal_no: d.terminal_no,
        merchant_no: r.merchant_no,
    };
    Ok(Json(
        json!({"device": device_json(&d, false), "provisioning": prov}),
    ))
}

async fn set_status(s: &Shared, caller: &Caller, id: &str, st: DeviceStatus) -> ApiResult {
    let id = parse_device(id)?;
    let now = s.config.clock.now();
    let d = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = admin::device(tx, id)?;
        let d = admin::set_device_status(tx, id, st)?;
        let change = Change::new("device.status", format!("device:{id}"))
            .before(json!({"status": before.status.as_str()}))
            .after(json!({"status": d.status.as_str()}));
        Ok((d, change))
    })
    .await?;
    Ok(Json(device_json(&d, s.registry.is_connected(id))))
}

async fn enable_device(State(s): S, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult {
    set_status(&s, &caller, &id, DeviceStatus::Enabled).await
}

async fn disable_device(State(s): S, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult {
    set_status(&s, &caller, &id, DeviceStatus::Disabled).await
}

async fn set_params(
    State(s): S,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<params_api::ParamsPatch>,
) -> ApiResult {
    let id = parse_device(&id)?;
    // The patch applies to the row as it is under its lock: concurrent patches of other
    // fields (from other hosts too) are kept.
    let now = s.config.clock.now();
    let d = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = admin::device(tx, id)?;
        let d = admin::change_device_params(tx, id, |p| params_api::apply(p, &patch))?;
        let change = Change::new("device.params", format!("device:{id}"))
            .before(params_api::params_json(&before.params))
            .after(params_api::params_json(&d.params));
        Ok((d, change))
    })
    .await?;
    // Push to the terminal if it is connected here; others learn it from their heartbeat.
    let pushed = s
        .registry
        .send(id, Command::PushParams(Box::new(d.params.clone())));
    Ok(Json(
        json!({"device": device_json(&d, s.registry.is_connected(id)), "pushed": pushed}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectReq {
    card_no: u32,
    count: u8,
}

async fn collect(
    State(s): S,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<CollectReq>,
) -> ApiResult {
    let id = parse_device(&id)?;
    let card = parse_card(r.card_no)?;
    let sent = s.registry.send(
        id,
        Command::Collect {
            card,
            count: r.count,
        },
    );
    // An order to a terminal changes no row, but a person gave it: journalled.
    let now = s.config.clock.now();
    jobs::change(&s.store, &caller.actor, now, move |_| {
        let change = Change::new("device.collect", format!("device:{id}"))
            .after(json!({"card_no": card.get(), "count": r.count, "sent": sent}));
        Ok(((), change))
    })
    .await?;
    Ok(Json(json!({"sent": sent})))
}

pub(crate) fn card_json(c: &Card) -> Value {
    json!({
        "card_no": c.no.get(),
        "display_no": c.display_no.get(),
        "status": c.status.as_str(),
        "class": c.class,
        "expiry": c.expiry.to_string(),
        "balance": c.balance,
        "counter_next": c.counter_next,
        "waiting": c.waiting,
        "subsidy_seq": c.subsidy_seq,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueReq {
    display_no: u64,
    class: u8,
    /// YYYY-MM-DD.
    expiry: String,
    /// Opening balance in fen, paid in through the funding account.
    #[serde(default)]
    balance: Fen,
    /// The cardholder's student or staff number (学工号); the card becomes their one active
    /// card (R-B2).
    #[serde(default)]
    cardholder: Option<String>,
}

async fn issue_card(State(s): S, caller: Caller, ApiJson(r): ApiJson<IssueReq>) -> ApiResult {
    let display = DisplayNo::new(r.display_no)
        .ok_or_else(|| invalid("a display number has at most 10 digits"))?;
    let expiry = NaiveDate::parse_from_str(&r.expiry, "%Y-%m-%d")
        .map_err(|_| invalid("expiry is YYYY-MM-DD"))?;
    let now = s.config.clock.now();
    let actor = caller.actor.clone();
    let holder = r.cardholder.clone();
    let c = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let c = admin::issue_card(
            tx,
            NewCard {
                display_no: display,
                class: r.class,
                expiry,
                counter: 0,
            },
        )?;
        let receipt = format!("issue:{}", c.no.get());
        let mut issued = card_json(&c);
        if let Some(number) = &r.cardholder {
            // Journalled by `attach_card` as its own entry; the issue names the holder too.
            cardholders::attach_card(tx, &actor, number, c.no, now)?;
            issued["cardholder"] = json!(number);
        }
        let change = Change::new("card.issue", format!("card:{}", c.no.get())).after(issued);
        // The opening balance is a deposit of its own, journalled by `deposit`.
        let payer = Payer {
            actor: &actor,
            method: Method::Cash,
        };
        let c = admin::pay_opening_balance(tx, payer, c, r.balance, &receipt, now)?;
        Ok((c, change))
    })
    .await?;
    let mut v = card_json(&c);
    v["cardholder"] = json!(holder);
    Ok(Json(v))
}

async fn card(State(s): S, ApiPath(no): ApiPath<u32>) -> ApiResult {
    let no = parse_card(no)?;
    let (c, listed) = jobs::read(&s.store, move |tx| {
        let c = admin::card(tx, no)?;
        let listed =
            repo::blacklist_page(tx.conn, CardNo::new(no.get() - 1), 1)?.first() == Some(&no);
        Ok((c, listed))
    })
    .await?;
    let mut v = card_json(&c);
    v["blacklisted"] = json!(listed);
    Ok(Json(v))
}

async fn card_action(
    State(s): S,
    caller: Caller,
    ApiPath((no, action)): ApiPath<(u32, String)>,
) -> ApiResult {
    let no = parse_card(no)?;
    let operation = match action.as_str() {
        "lose" => "card.lose",
        "found" => "card.found",
        "freeze" => "card.freeze",
        "unfreeze" => "card.unfreeze",
        "cancel" => "card.cancel",
        "bad" => "card.bad",
        other => {
            return Err(invalid(format!(
                "unknown card action {other:?}: lose, found, freeze, unfreeze, bad, cancel"
            )));
        }
    };
    let now = s.config.clock.now();
    let (c, version) = jobs::change(&s.store, &caller.actor, now, move |tx| {
        let before = admin::card(tx, no)?;
        let (c, version) = match operation {
            "card.lose" => admin::report_loss(tx, no),
            "card.found" => admin::report_found(tx, no),
            "card.freeze" => admin::set_card_status(tx, no, CardStatus::Frozen),
            "card.unfreeze" => admin::unfreeze(tx, no),
            "card.bad" => admin::report_bad(tx, no),
            _ => admin::set_card_status(tx, no, CardStatus::Cancelled),
        }?;
        let change = Change::new(operation, format!("card:{}", no.get()))
            .before(json!({"status": before.status.as_str()}))
            .after(json!({"status": c.status.as_str(), "blacklist_version": version}));
        Ok(((c, version), change))
    })
    .await?;
    let mut v = card_json(&c);
    v["blacklist_version"] = json!(version);
    Ok(Json(v))
}

async fn blacklist_show(State(s): S) -> ApiResult {
    let page = jobs::read(&s.store, |tx| {
        blacklist::bulk(tx, None, blacklist::MAX_PAGE)
    })
    .await?;
    Ok(Json(json!({
        "version": page.version,
        "cards": page.cards.iter().map(|c| c.get()).collect::<Vec<_>>(),
        "more": page.more,
    })))
}

async fn audit(State(s): S) -> ApiResult {
    let r = jobs::read(&s.store, |tx| ledger::audit(tx.conn)).await?;
    Ok(Json(
        json!({"clean": r.is_clean(), "report": format!("{r:?}")}),
    ))
}
