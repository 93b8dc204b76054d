//! Provisioning through the admin API's bulk routes: a fresh merchant per run (so its books
//! hold exactly this run's records), N devices with their master keys, M cards.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use ykt_proto::{CardNo, DeviceKey, Fen, Key, PhysicalId, Suite};

use super::http::AdminApi;

/// Devices per bulk request (the route's limit).
const DEVICES_PER_REQUEST: u32 = 10_000;
/// Cards per bulk request (the route's limit).
const CARDS_PER_REQUEST: u32 = 1_000_000;
/// Display number = base + card number: outside the range of hand-issued cards.
const DISPLAY_BASE: u64 = 9_000_000_000;

pub struct Device {
    pub id: PhysicalId,
    pub key: DeviceKey,
}

/// Creates the merchant; its number also places the devices' physical IDs
/// (`A0000000 + (merchant mod 100,000) · 10,000`), so runs never collide.
pub async fn merchant(api: &AdminApi, no: u32) -> anyhow::Result<()> {
    api.post_ok(
        "/merchants",
        &json!({"no": no, "name": format!("loadgen {no}")}),
    )
    .await
    .with_context(|| format!("cannot create merchant {no} (pick another with --merchant)"))?;
    Ok(())
}

pub fn first_device(merchant: u32) -> u32 {
    0xA000_0000 + (merchant % 100_000) * 10_000
}

pub async fn devices(api: &AdminApi, merchant: u32, count: u32) -> anyhow::Result<Vec<Device>> {
    if count > DEVICES_PER_REQUEST {
        bail!("at most {DEVICES_PER_REQUEST} terminals");
    }
    let first = first_device(merchant);
    let v = api
        .post_ok(
            "/bulk/devices",
            &json!({
                "count": count,
                "merchant_no": merchant,
                "first_id": format!("{first:08X}"),
                "first_terminal_no": 1,
            }),
        )
        .await?;
    let list = v["devices"].as_array().context("no device list")?;
    list.iter().map(parse_device).collect()
}

fn parse_device(v: &Value) -> anyhow::Result<Device> {
    let id: PhysicalId = v["physical_id"]
        .as_str()
        .context("physical_id")?
        .parse()
        .map_err(|e: &str| anyhow::anyhow!(e))?;
    let key = ykt_proto::hexstr::parse::<16>(v["master_key"].as_str().context("master_key")?)
        .context("master key is 32 hex digits")?;
    let suite = match v["mac_suite"].as_str() {
        Some("sm4") => Suite::Sm4,
        _ => Suite::Aes128,
    };
    Ok(Device {
        id,
        key: DeviceKey {
            suite,
            key: Key(key),
        },
    })
}

/// Issues `count` cards with `balance` fen each; returns their numbers.
pub async fn cards(api: &AdminApi, count: u32, balance: Fen) -> anyhow::Result<Vec<CardNo>> {
    let mut out = Vec::with_capacity(count as usize);
    let mut left = count;
    while left > 0 {
        let n = left.min(CARDS_PER_REQUEST);
        let v = api
            .post_ok(
                "/bulk/cards",
                &json!({
                    "count": n,
                    "balance": balance,
                    "class": 1,
                    "expiry": "2099-12-31",
                    "display_base": DISPLAY_BASE,
                }),
            )
            .await?;
        for r in v["ranges"].as_array().context("no card ranges")? {
            let (a, b) = (
                r[0].as_u64().context("range")?,
                r[1].as_u64().context("range")?,
            );
            for no in a..=b {
                let no = u32::try_from(no)
                    .ok()
                    .and_then(CardNo::new)
                    .context("card number")?;
                out.push(no);
            }
        }
        left -= n;
    }
    if out.len() != count as usize {
        bail!("asked for {count} cards, the host issued {}", out.len());
    }
    Ok(out)
}

/// Reports every card lost (a blacklist of `cards.len()` entries); returns the version.
pub async fn lose_all(api: &AdminApi, cards: &[CardNo]) -> anyhow::Result<u32> {
    let mut version = 0;
    // Contiguous runs, one request each.
    let mut i = 0;
    while i < cards.len() {
        let mut j = i;
        while j + 1 < cards.len()
            && cards[j + 1].get() == cards[j].get() + 1
            && j + 1 - i < CARDS_PER_REQUEST as usize
        {
            j += 1;
        }
        let v = api
            .post_ok(
                "/bulk/lose",
                &json!({"first": cards[i].get(), "last": cards[j].get()}),
            )
            .await?;
        version = v["blacklist_version"].as_u64().unwrap_or(0) as u32;
        i = j + 1;
    }
    Ok(version)
}

/// Makes every device a top-up terminal (function bit 8) whose cash `operator` takes.
pub async fn top_up_devices(
    api: &AdminApi,
    devices: &[Device],
    operator: &str,
) -> anyhow::Result<()> {
    for d in devices {
        api.put_ok(
            &format!("/devices/{}/topup", d.id),
            &json!({"enabled": true, "operator": operator}),
        )
        .await
        .with_context(|| format!("cannot make {} a top-up device", d.id))?;
    }
    Ok(())
}

/// A card-office deposit of `amount` for every card: money waiting for its pick-up.
pub async fn deposits(
    api: &AdminApi,
    merchant: u32,
    cards: &[CardNo],
    amount: Fen,
) -> anyhow::Result<()> {
    for c in cards {
        api.post_ok(
            &format!("/cards/{}/deposit", c.get()),
            &json!({"amount": amount, "id": format!("loadgen-{merchant}-{}", c.get()), "method": "cash"}),
        )
        .await
        .with_context(|| format!("cannot deposit for card {}", c.get()))?;
    }
    Ok(())
}
