//! Bulk provisioning for load tests and migrations (`/api/v1/bulk/*`, `docs/loadgen.md`):
//! thousands of devices and up to a million cards in one request, a range of cards reported
//! lost (a large blacklist), and the books of one merchant (what `ykt loadgen` checks its own
//! tally against). Work is cut into chunks, each one store transaction, so a million cards
//! never sit in one transaction and other requests keep flowing between chunks.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use rand::TryRngCore;
use serde::Deserialize;
use serde_json::json;
use ykt_proto::{CardNo, DisplayNo, Fen, PhysicalId};

use super::admin::Provisioning;
use super::api::{ApiJson, ApiPath, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::admin;
use crate::domain::journal::Change;
use crate::error::HostError;
use crate::model::*;
use crate::{params_codec, repo};

type S = State<Arc<Shared>>;

/// Devices per request at most (one front-end processor serves up to ~3,000, REFERENCE.md).
pub const MAX_BULK_DEVICES: u32 = 10_000;
/// Cards per request at most.
pub const MAX_BULK_CARDS: u32 = 1_000_000;
/// Rows per store transaction: large enough to amortise the commit, small enough that
/// terminals' jobs are not held up for long behind one.
const CHUNK: u32 = 2_000;

pub(crate) fn routes() -> Api {
    Api::new()
        .post("/bulk/devices", Access::Needs(P::Bulk), bulk_devices)
        .post("/bulk/cards", Access::Needs(P::Bulk), bulk_cards)
        .post("/bulk/lose", Access::Needs(P::Bulk), bulk_lose)
        .get("/bulk/books/{merchant}", Access::Needs(P::Bulk), books)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkDevicesReq {
    count: u32,
    merchant_no: u32,
    /// Physical ID of the first device (8 hex digits); the others follow it.
    first_id: String,
    /// Terminal number of the first device; the others follow it (default 1).
    #[serde(default)]
    first_terminal_no: Option<u32>,
}

/// Registers `count` enabled AES-128 devices with fresh random master keys; returns their
/// provisioning data (the only time the keys are shown).
async fn bulk_devices(
    State(s): S,
    caller: Caller,
    ApiJson(r): ApiJson<BulkDevicesReq>,
) -> ApiResult {
    if r.count == 0 || r.count > MAX_BULK_DEVICES {
        return Err(invalid(format!("count is 1 to {MAX_BULK_DEVICES}")));
    }
    let first: PhysicalId = r.first_id.parse().map_err(|e: &str| invalid(e))?;
    let first = u32::from_be_bytes(first.0);
    if first.checked_add(r.count - 1).is_none() {
        return Err(invalid("the physical IDs would pass FFFFFFFF"));
    }
    let first_terminal = r.first_terminal_no.unwrap_or(1);
    if first_terminal.checked_add(r.count - 1).is_none() {
        return Err(invalid("the terminal numbers would overflow"));
    }
    let mut keys = vec![[0u8; 16]; r.count as usize];
    for k in &mut keys {
        rand::rngs::OsRng
            .try_fill_bytes(k)
            .map_err(|e| invalid(format!("OS random generator failed: {e}")))?;
    }
    let merchant = r.merchant_no;
    let now = s.config.clock.now();
    for (chunk_no, chunk) in keys.chunks(CHUNK as usize).enumerate() {
        let base = chunk_no as u32 * CHUNK;
        let chunk = chunk.to_vec();
        jobs::change(&s.store, &caller.actor, now, move |tx| {
            for (i, key) in chunk.iter().enumerate() {
                let n = base + i as u32;
                let id = PhysicalId((first + n).to_be_bytes());
                admin::register_device(
                    tx,
                    NewDevice {
                        id,
                        terminal_no: first_terminal + n,
                        merchant_no: Some(merchant),
                        mac_suite: MacSuite::Aes128Cmac,
                        functions: Functions::ALL,
                        max_amount: 0,
                        params: params_codec::default_params(),
                    },
                )?;
                admin::set_device_key(tx, id, *key)?;
                admin::set_device_status(tx, id, DeviceStatus::Enabled)?;
            }
            let last = PhysicalId((first + base + chunk.len() as u32 - 1).to_be_bytes());
            let first = PhysicalId((first + base).to_be_bytes());
            let change = Change::new("bulk.devices", format!("devices:{first}-{last}"))
                .after(json!({"count": chunk.len(), "merchant_no": merchant}));
            Ok(((), change))
        })
        .await?;
    }
    let host = s.config.terminal_listen.to_string();
    let devices: Vec<Provisioning> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| Provisioning {
            physical_id: PhysicalId((first + n as u32).to_be_bytes()).to_string(),
            master_key: hex::encode_upper(key),
            mac_suite: "aes128".into(),
            host: host.clone(),
            terminal_no: first_terminal + n as u32,
            merchant_no: merchant,
        })
        .collect();
    Ok(Json(json!({ "devices": devices })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkCardsReq {
    count: u32,
    /// Opening balance of each card in fen, paid in from the funding account.
    #[serde(default)]
    balance: Fen,
    #[serde(default = "default_class")]
    class: u8,
    /// YYYY-MM-DD.
    expiry: String,
    /// Display number of a card = this base + its card number (≤ 10 digits in all).
    display_base: u64,
}

fn default_class() -> u8 {
    1
}

/// Issues `count` cards with an opening balance each. Card numbers come from the system
/// sequence, consecutive within a chunk; the answer lists the ranges `[first, last]`.
async fn bulk_cards(State(s): S, caller: Caller, ApiJson(r): ApiJson<BulkCardsReq>) -> ApiResult {
    if r.count == 0 || r.count > MAX_BULK_CARDS {
        return Err(invalid(format!("count is 1 to {MAX_BULK_CARDS}")));
    }
    // Refused before the first chunk: nothing is issued.
    admin::check_opening_balance(r.balance)?;
    let expiry = NaiveDate::parse_from_str(&r.expiry, "%Y-%m-%d")
        .map_err(|_| invalid("expiry is YYYY-MM-DD"))?;
    let top = r.display_base.checked_add(u64::from(CardNo::MAX));
    if top.and_then(DisplayNo::new).is_none() {
        return Err(invalid(
            "display_base + 16777215 must fit in 10 digits (≤ 9983222784)",
        ));
    }
    let now = s.config.clock.now();
    let (balance, class, base) = (r.balance, r.class, r.display_base);
    let mut ranges: Vec<[u32; 2]> = Vec::new();
    let mut left = r.count;
    while left > 0 {
        let n = left.min(CHUNK);
        let range = jobs::change(&s.store, &caller.actor, now, move |tx| {
            let mut range: Option<[u32; 2]> = None;
            // One journal entry for the chunk, naming every opening-balance transfer.
            let mut change = Change::new("bulk.cards", "cards");
            for _ in 0..n {
                let c = admin::issue_numbered_card(tx, base, class, expiry)?;
                admin::check_opening_balance(balance)?;
                if balance > 0 {
                    let receipt = format!("bulk:{}", c.no.get());
                    change = change
                        .transfer(admin::post_opening_balance(tx, c.no, balance, &receipt, now)?.1);
                }
                let no = c.no.get();
                range = Some(match range {
                    Some([first, _]) => [first, no],
                    None => [no, no],
                });
            }
            let range = range.ok_or_else(|| HostError::Invalid("empty chunk".into()))?;
            change.target = format!("cards:{}-{}", range[0], range[1]);
            let change = change.after(json!({"count": n, "balance": balance, "class": class}));
            Ok((range, change))
        })
        .await?;
        match ranges.last_mut() {
            Some(last) if last[1] + 1 == range[0] => last[1] = range[1],
            _ => ranges.push(range),
        }
        left -= n;
    }
    Ok(Json(json!({ "ranges": ranges, "count": r.count })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkLoseReq {
    first: u32,
    last: u32,
}

/// Reports the cards `first ..= last` lost (R-H4): each joins the blacklist, one version
/// each. Cards that are not normal are skipped and counted.
async fn bulk_lose(State(s): S, caller: Caller, ApiJson(r): ApiJson<BulkLoseReq>) -> ApiResult {
    let first = CardNo::new(r.first).ok_or_else(|| invalid("first is 1 to 16777215"))?;
    let last = CardNo::new(r.last).ok_or_else(|| invalid("last is 1 to 16777215"))?;
    if first > last || last.get() - first.get() >= MAX_BULK_CARDS {
        return Err(invalid(format!(
            "first ≤ last, at most {MAX_BULK_CARDS} cards"
        )));
    }
    let (mut listed, mut skipped, mut version) = (0u32, 0u32, 0u32);
    let mut start = first.get();
    let now = s.config.clock.now();
    loop {
        let end = start.saturating_add(CHUNK - 1).min(last.get());
        let (l, sk, v) = jobs::change(&s.store, &caller.actor, now, move |tx| {
            let (mut l, mut sk, mut v) = (0u32, 0u32, 0u32);
            for no in start..=end {
                let no = CardNo::new(no).ok_or_else(|| HostError::Invalid("card".into()))?;
                match repo::card_get(tx.conn, no, true)? {
                    Some(c) if c.status == CardStatus::Normal => {
                        v = admin::report_loss(tx, no)?.1;
                        l += 1;
                    }
                    _ => sk += 1,
                }
            }
            let change = Change::new("bulk.lose", format!("cards:{start}-{end}"))
                .after(json!({"listed": l, "skipped": sk, "blacklist_version": v}));
            Ok(((l, sk, v), change))
        })
        .await?;
        listed += l;
        skipped += sk;
        version = version.max(v);
        if end == last.get() {
            break;
        }
        start = end + 1;
    }
    Ok(Json(
        json!({ "listed": listed, "skipped": skipped, "blacklist_version": version }),
    ))
}

/// The books of one merchant: booked purchase records (count, amount, fee) and the
/// merchant account's balance. `ykt loadgen` compares them with what it was told.
/// (PostgreSQL sums BIGINT as NUMERIC: cast back.)
async fn books(State(s): S, ApiPath(merchant): ApiPath<u32>) -> ApiResult {
    let (records, amount, fee, unbooked, balance) = jobs::read(&s.store, move |tx| {
        let row = tx.conn.query_one(
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT), \
             CAST(COALESCE(SUM(fee), 0) AS BIGINT) FROM records WHERE merchant_no = $1 AND booked = 1",
            &[merchant.into()],
        )?;
        let unbooked = tx.conn.query_one(
            "SELECT COUNT(*) FROM records WHERE merchant_no = $1 AND booked = 0",
            &[merchant.into()],
        )?;
        let balance =
            repo::account_balance(tx.conn, &repo::merchant_account(merchant))?.unwrap_or(0);
        Ok((
            row.int(0)?,
            row.int(1)?,
            row.int(2)?,
            unbooked.int(0)?,
            balance,
        ))
    })
    .await?;
    Ok(Json(json!({
        "merchant_no": merchant,
        "booked_records": records,
        "booked_amount": amount,
        "booked_fee": fee,
        "unbooked_records": unbooked,
        "merchant_balance": balance,
    })))
}
