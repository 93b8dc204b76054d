//! The admin JSON API (`/api/v1`, documented in `docs/admin-api.md`). Every mutating route
//! is a domain function run in one store transaction. Money is integer fen.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ykt_proto::{CardNo, ConsumptionMode, DisplayNo, Fen, PhysicalId, WorkMode};

use super::registry::Command;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::{admin, blacklist};
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
        .post("/cards/{no}/deposit", Access::Needs(P::Deposit), deposit)
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
}

/// An API error: 400 for invalid requests, 409 for refusals with their code, 500 otherwise.
pub(crate) struct ApiError(HostError);

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self.0 {
            HostError::Invalid(m) => (StatusCode::BAD_REQUEST, json!({"error": m})),
            HostError::Refused(c) => (
                StatusCode::CONFLICT,
                json!({"error": c.table_text().unwrap_or("refused"), "code": c.0}),
            ),
            other => {
                tracing::error!(error = %other, "admin request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": other.to_string()}),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError(HostError::Invalid(m.into()))
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
    json!({"no": m.no, "name": m.name, "status": m.status.as_str(), "balance": balance})
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
struct NewMerchant {
    no: u32,
    name: String,
}

async fn add_merchant(State(s): S, Json(m): Json<NewMerchant>) -> ApiResult {
    let made = jobs::execute(&s.store, move |tx| {
        admin::create_merchant(tx, m.no, &m.name)
    })
    .await?;
    Ok(Json(merchant_json(&made, 0)))
}

fn device_json(d: &Device, connected: bool) -> Value {
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
        "params": params_json(p),
        "last_report": d.last_report.map(|r| json!({
            "at": r.at.to_string(),
            "pending_records": r.pending_records,
            "terminal_clock": r.terminal_clock.to_string(),
            "blacklist_version": r.blacklist_version,
        })),
    })
}

fn params_json(p: &ykt_proto::TerminalParams) -> Value {
    json!({
        "version": p.version,
        "work_mode": match p.work_mode { WorkMode::FullOnline => "full-online", WorkMode::Auto => "auto", WorkMode::Offline => "offline" },
        "consumption_mode": match p.consumption_mode { ConsumptionMode::UnitPrice => "unit-price", ConsumptionMode::FixedAmount => "fixed-amount", ConsumptionMode::Coded => "coded" },
        "fixed_amount": p.fixed_amount,
        "max_balance": p.max_balance,
        "min_balance": p.min_balance,
        "max_daily_uses": p.max_daily_uses,
        "single_password_threshold": p.single_password_threshold,
        "daily_password_threshold": p.daily_password_threshold,
        "wallet_no": p.wallet_no,
        "max_offline_hours": p.max_offline_hours,
        "price_list": p.price_list.iter().map(|i| json!({"code": i.code, "price": i.price, "subject": i.subject})).collect::<Vec<_>>(),
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

async fn device(State(s): S, Path(id): Path<String>) -> ApiResult {
    let id = parse_device(&id)?;
    let d = jobs::read(&s.store, move |tx| admin::device(tx, id)).await?;
    Ok(Json(device_json(&d, s.registry.is_connected(id))))
}

#[derive(Deserialize)]
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

async fn add_device(State(s): S, Json(r): Json<NewDeviceReq>) -> ApiResult {
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
    let d = jobs::execute(&s.store, move |tx| {
        admin::register_device(tx, nd.clone())?;
        admin::set_device_key(tx, id, key)?;
        if enable {
            admin::set_device_status(tx, id, DeviceStatus::Enabled)
        } else {
            admin::device(tx, id)
        }
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

async fn set_status(s: &Shared, id: &str, st: DeviceStatus) -> ApiResult {
    let id = parse_device(id)?;
    let d = jobs::execute(&s.store, move |tx| admin::set_device_status(tx, id, st)).await?;
    Ok(Json(device_json(&d, s.registry.is_connected(id))))
}

async fn enable_device(State(s): S, Path(id): Path<String>) -> ApiResult {
    set_status(&s, &id, DeviceStatus::Enabled).await
}

async fn disable_device(State(s): S, Path(id): Path<String>) -> ApiResult {
    set_status(&s, &id, DeviceStatus::Disabled).await
}

/// Parameter changes; absent fields keep their value.
#[derive(Deserialize, Default)]
struct ParamsPatch {
    work_mode: Option<String>,
    consumption_mode: Option<String>,
    fixed_amount: Option<Fen>,
    max_balance: Option<Fen>,
    min_balance: Option<Fen>,
    max_daily_uses: Option<u16>,
    single_password_threshold: Option<Fen>,
    daily_password_threshold: Option<Fen>,
    wallet_no: Option<u8>,
    max_offline_hours: Option<u16>,
    /// Fee rate in percent for every class listed: `{"3": 5}`.
    fee_rates: Option<std::collections::BTreeMap<u8, u8>>,
    /// The whole price list of keyboard-coded mode (R-F4.10), replacing the old one.
    price_list: Option<Vec<PriceItemReq>>,
}

/// One item of the price list as the API takes it.
#[derive(Deserialize)]
struct PriceItemReq {
    code: u16,
    price: Fen,
    #[serde(default)]
    subject: u16,
}

/// Most items: the protocol's bound, or the host store's if lower.
const MAX_PRICE_ITEMS: usize = if ykt_proto::MAX_PRICE_ITEMS < params_codec::MAX_PRICE_ITEMS {
    ykt_proto::MAX_PRICE_ITEMS
} else {
    params_codec::MAX_PRICE_ITEMS
};
/// Highest item price in fen: a card's balance field is 24 bits.
const MAX_ITEM_PRICE: Fen = 0xFF_FFFF;

fn price_list(items: &[PriceItemReq]) -> Result<Vec<ykt_proto::PriceItem>, ApiError> {
    if items.len() > MAX_PRICE_ITEMS {
        return Err(invalid(format!(
            "price_list has {} items; at most {MAX_PRICE_ITEMS}",
            items.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    items
        .iter()
        .map(|i| {
            // Code 0 is what a record carries when no item was keyed.
            if i.code == 0 {
                return Err(invalid("price_list: an item code is 1 to 65535"));
            }
            if !seen.insert(i.code) {
                return Err(invalid(format!(
                    "price_list: item code {} appears twice",
                    i.code
                )));
            }
            if !(1..=MAX_ITEM_PRICE).contains(&i.price) {
                return Err(invalid(format!(
                    "price_list: the price of item {} is {} fen; it is 1 to {MAX_ITEM_PRICE}",
                    i.code, i.price
                )));
            }
            Ok(ykt_proto::PriceItem {
                code: i.code,
                price: i.price,
                subject: i.subject,
            })
        })
        .collect()
}

fn apply(p: &mut ykt_proto::TerminalParams, patch: &ParamsPatch) -> Result<(), ApiError> {
    if let Some(m) = &patch.work_mode {
        p.work_mode = match m.as_str() {
            "full-online" => WorkMode::FullOnline,
            "auto" => WorkMode::Auto,
            "offline" => WorkMode::Offline,
            _ => return Err(invalid("work_mode is full-online, auto or offline")),
        };
    }
    if let Some(m) = &patch.consumption_mode {
        p.consumption_mode = match m.as_str() {
            "unit-price" => ConsumptionMode::UnitPrice,
            "fixed-amount" => ConsumptionMode::FixedAmount,
            "coded" => ConsumptionMode::Coded,
            _ => {
                return Err(invalid(
                    "consumption_mode is unit-price, fixed-amount or coded",
                ));
            }
        };
    }
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = patch.$f { p.$f = v; })* };
    }
    set!(
        fixed_amount,
        max_balance,
        min_balance,
        max_daily_uses,
        single_password_threshold,
        daily_password_threshold,
        wallet_no,
        max_offline_hours
    );
    if let Some(rates) = &patch.fee_rates {
        for (class, rate) in rates {
            p.fee_rates[usize::from(*class)] = *rate;
        }
    }
    if let Some(items) = &patch.price_list {
        p.price_list = price_list(items)?;
    }
    // A coded terminal with no list could sell nothing: every code would be refused.
    if p.consumption_mode == ConsumptionMode::Coded && p.price_list.is_empty() {
        return Err(invalid(
            "consumption_mode coded needs a price_list with at least one item",
        ));
    }
    Ok(())
}

async fn set_params(
    State(s): S,
    Path(id): Path<String>,
    Json(patch): Json<ParamsPatch>,
) -> ApiResult {
    let id = parse_device(&id)?;
    let current = jobs::read(&s.store, move |tx| admin::device(tx, id)).await?;
    let mut params = current.params.clone();
    apply(&mut params, &patch)?;
    let d = jobs::execute(&s.store, move |tx| {
        admin::set_device_params(tx, id, params.clone())
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
struct CollectReq {
    card_no: u32,
    count: u8,
}

async fn collect(State(s): S, Path(id): Path<String>, Json(r): Json<CollectReq>) -> ApiResult {
    let id = parse_device(&id)?;
    let card = parse_card(r.card_no)?;
    let sent = s.registry.send(
        id,
        Command::Collect {
            card,
            count: r.count,
        },
    );
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
    })
}

#[derive(Deserialize)]
struct IssueReq {
    display_no: u64,
    class: u8,
    /// YYYY-MM-DD.
    expiry: String,
    /// Opening balance in fen, paid in through the funding account.
    #[serde(default)]
    balance: Fen,
}

async fn issue_card(State(s): S, Json(r): Json<IssueReq>) -> ApiResult {
    let display = DisplayNo::new(r.display_no)
        .ok_or_else(|| invalid("a display number has at most 10 digits"))?;
    let expiry = NaiveDate::parse_from_str(&r.expiry, "%Y-%m-%d")
        .map_err(|_| invalid("expiry is YYYY-MM-DD"))?;
    let now = s.config.clock.now();
    let c = jobs::execute(&s.store, move |tx| {
        let c = admin::issue_card(
            tx,
            NewCard {
                display_no: display,
                class: r.class,
                expiry,
                counter: 0,
            },
        )?;
        if r.balance > 0 {
            admin::deposit(tx, c.no, r.balance, &format!("issue:{}", c.no.get()), now)
        } else {
            Ok(c)
        }
    })
    .await?;
    Ok(Json(card_json(&c)))
}

async fn card(State(s): S, Path(no): Path<u32>) -> ApiResult {
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

#[derive(Deserialize)]
struct DepositReq {
    amount: Fen,
    /// The card office's receipt id: a repeated id is refused, never booked twice.
    id: String,
}

async fn deposit(State(s): S, Path(no): Path<u32>, Json(r): Json<DepositReq>) -> ApiResult {
    let no = parse_card(no)?;
    let now = s.config.clock.now();
    let c = jobs::execute(&s.store, move |tx| {
        admin::deposit(tx, no, r.amount, &r.id, now)
    })
    .await?;
    Ok(Json(card_json(&c)))
}

async fn card_action(State(s): S, Path((no, action)): Path<(u32, String)>) -> ApiResult {
    let no = parse_card(no)?;
    let (c, version) = jobs::execute(&s.store, move |tx| match action.as_str() {
        "lose" => admin::report_loss(tx, no),
        "found" => admin::report_found(tx, no),
        "freeze" => admin::set_card_status(tx, no, CardStatus::Frozen),
        "unfreeze" => {
            if admin::card(tx, no)?.status != CardStatus::Frozen {
                return Err(HostError::Invalid("the card is not frozen".into()));
            }
            admin::set_card_status(tx, no, CardStatus::Normal)
        }
        "cancel" => admin::set_card_status(tx, no, CardStatus::Cancelled),
        other => Err(HostError::Invalid(format!(
            "unknown card action {other:?}: lose, found, freeze, unfreeze, cancel"
        ))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(v: Value) -> Result<ykt_proto::TerminalParams, String> {
        let patch: ParamsPatch = serde_json::from_value(v).map_err(|e| e.to_string())?;
        let mut p = params_codec::default_params();
        apply(&mut p, &patch).map_err(|ApiError(e)| e.to_string())?;
        Ok(p)
    }

    // R-F4.10, R-F4.14: a price list with subjects is taken whole, in the order given, and
    // comes back out in the params JSON.
    #[test]
    fn price_list_set_and_shown() {
        let p = patch(json!({"consumption_mode": "coded", "price_list": [
            {"code": 12, "price": 1200, "subject": 3},
            {"code": 7, "price": MAX_ITEM_PRICE}
        ]}))
        .unwrap();
        assert_eq!(p.consumption_mode, ConsumptionMode::Coded);
        assert_eq!(
            p.price_list,
            vec![
                ykt_proto::PriceItem {
                    code: 12,
                    price: 1200,
                    subject: 3
                },
                ykt_proto::PriceItem {
                    code: 7,
                    price: MAX_ITEM_PRICE,
                    subject: 0
                },
            ]
        );
        assert_eq!(
            params_json(&p)["price_list"],
            json!([{"code": 12, "price": 1200, "subject": 3},
                   {"code": 7, "price": MAX_ITEM_PRICE, "subject": 0}])
        );
    }

    // R-F4.10: a bad list is refused with a message naming what is wrong.
    #[test]
    fn bad_price_lists_refused() {
        let cases = [
            (
                json!([{"code": 1, "price": 100}, {"code": 1, "price": 200}]),
                "appears twice",
            ),
            (json!([{"code": 1, "price": 0}]), "1 to 16777215"),
            (json!([{"code": 1, "price": -5}]), "1 to 16777215"),
            (
                json!([{"code": 1, "price": MAX_ITEM_PRICE + 1}]),
                "1 to 16777215",
            ),
            (json!([{"code": 0, "price": 100}]), "1 to 65535"),
        ];
        for (list, why) in cases {
            let e = patch(json!({"price_list": list})).unwrap_err();
            assert!(e.contains(why), "{list}: {e}");
        }
        let too_many: Vec<Value> = (1..=MAX_PRICE_ITEMS + 1)
            .map(|c| json!({"code": c, "price": 100}))
            .collect();
        let e = patch(json!({"price_list": too_many})).unwrap_err();
        assert!(e.contains(&format!("at most {MAX_PRICE_ITEMS}")), "{e}");
        let full: Vec<Value> = (1..=MAX_PRICE_ITEMS)
            .map(|c| json!({"code": c, "price": 100}))
            .collect();
        assert_eq!(
            patch(json!({"price_list": full})).unwrap().price_list.len(),
            MAX_PRICE_ITEMS
        );
    }

    // R-F4.10: coded mode without any item is refused; an empty list clears it otherwise.
    #[test]
    fn coded_mode_needs_items() {
        let e = patch(json!({"consumption_mode": "coded"})).unwrap_err();
        assert!(e.contains("needs a price_list"), "{e}");
        let e = patch(json!({"consumption_mode": "coded", "price_list": []})).unwrap_err();
        assert!(e.contains("needs a price_list"), "{e}");
        assert!(
            patch(json!({"price_list": []}))
                .unwrap()
                .price_list
                .is_empty()
        );
    }
}
