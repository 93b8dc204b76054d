//! `ykt serve --demo`: a demo campus in a fresh data directory, so a newcomer can tap a card
//! within a minute. Idempotent: the marker file `DATA/demo.json` says it is done.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use rand::RngCore;
use ykt_card::app::issue::{IssueParams, issue};
use ykt_card::cpu::app::issue_cpu;
use ykt_card::keys::SystemKeys;
use ykt_host::domain::admin;
use ykt_host::server::Provisioning;
use ykt_host::*;
use ykt_proto::{CardNo, DisplayNo, Fen, PhysicalId};

const MERCHANTS: [(u32, &str); 3] = [(1001, "第一食堂"), (1002, "第二食堂"), (1003, "校园超市")];
/// (physical ID, terminal number, merchant).
const DEVICES: [(&str, u32, u32); 4] = [
    ("10000001", 1, 1001),
    ("10000002", 2, 1001),
    ("10000003", 3, 1002),
    ("10000004", 4, 1003),
];
const CARDS: usize = 10;
const CPU_CARDS: usize = 2;
const PIN: &str = "123456";

/// Whether the demo campus is seeded in `data` already.
pub fn seeded(data: &Path) -> bool {
    data.join("demo.json").exists()
}

/// The system key file `DATA/keys`, created with fresh random keys when missing.
pub fn ensure_keys(data: &Path) -> anyhow::Result<std::path::PathBuf> {
    let keys_path = data.join("keys");
    if !keys_path.exists() {
        let mut material = [0u8; 112];
        rand::rng().fill_bytes(&mut material);
        let keys = SystemKeys::from_material(1, &material);
        crate::cmd::keys::write_secret(&keys_path, keys.to_text().as_bytes())?;
    }
    Ok(keys_path)
}

/// Registers and activates the demo's FEP before the server starts, so it signs in at once.
pub fn prepare_fep(store: &Store, fep: u32) -> anyhow::Result<()> {
    store
        .execute(move |tx| {
            if admin::fep(tx, fep).is_err() {
                admin::register_fep(tx, fep, "demo FEP")?;
            }
            admin::activate_fep(tx, fep)
        })
        .context("cannot register the demo FEP")?;
    Ok(())
}

pub fn seed(
    store: &Store,
    data: &Path,
    fep: u32,
    terminal_listen: SocketAddr,
    http_listen: &SocketAddr,
) -> anyhow::Result<()> {
    let marker = data.join("demo.json");
    if marker.exists() {
        tracing::info!("demo campus already seeded ({})", marker.display());
        return Ok(());
    }
    let keys = crate::cmd::keys::load(&ensure_keys(data)?)?;
    let now = ykt_host::server::Clock::china().now();
    let today = now.date();
    let expiry = NaiveDate::from_ymd_opt(today.year_ce().1 as i32 + 4, 7, 31).unwrap_or(today);

    // FEP, merchants, devices with fresh master keys.
    let mut master_keys = Vec::new();
    for _ in DEVICES {
        let mut k = [0u8; 16];
        rand::rng().fill_bytes(&mut k);
        master_keys.push(k);
    }
    let mk = master_keys.clone();
    let cards: Vec<(CardNo, DisplayNo, Fen)> = store
        .execute(move |tx| {
            if admin::fep(tx, fep).is_err() {
                admin::register_fep(tx, fep, "demo FEP")?;
            }
            admin::activate_fep(tx, fep)?;
            admin::sign_in_fep(tx, fep, now)?;
            for (no, name) in MERCHANTS {
                admin::create_merchant(tx, no, name)?;
            }
            for ((id, terminal_no, merchant), key) in DEVICES.iter().zip(&mk) {
                let id: PhysicalId = id.parse().map_err(|e: &str| HostError::Invalid(e.into()))?;
                admin::register_device(
                    tx,
                    NewDevice {
                        id,
                        terminal_no: *terminal_no,
                        merchant_no: Some(*merchant),
                        mac_suite: MacSuite::Aes128Cmac,
                        functions: Functions::ALL,
                        max_amount: 0,
                        params: params_codec::default_params(),
                    },
                )?;
                admin::set_device_key(tx, id, *key)?;
                admin::set_device_status(tx, id, DeviceStatus::Enabled)?;
            }
            let mut cards = Vec::new();
            for i in 0..CARDS {
                let display = DisplayNo::new(2_026_000_001 + i as u64)
                    .ok_or_else(|| HostError::Invalid("display number".into()))?;
                let c = admin::issue_card(
                    tx,
                    NewCard {
                        display_no: display,
                        class: 1,
                        expiry,
                        counter: 0,
                    },
                )?;
                let balance = 5_000 + 1_000 * i as Fen;
                let receipt = format!("demo:{}", c.no.get());
                // The opening balance: written on the card at issue (a deposit would wait).
                let c = admin::pay_opening_balance(
                    tx,
                    admin::Payer::system(&ykt_host::domain::journal::Actor::system("demo")),
                    c,
                    balance,
                    &receipt,
                    now,
                )?;
                cards.push((c.no, display, balance));
            }
            // One card reported lost, so the blacklist is not empty.
            if let Some((no, _, _)) = cards.last() {
                admin::report_loss(tx, *no)?;
            }
            Ok(cards)
        })
        .context("cannot seed the demo campus")?;

    let devices_dir = data.join("devices");
    std::fs::create_dir_all(&devices_dir)?;
    for ((id, terminal_no, merchant), key) in DEVICES.iter().zip(&master_keys) {
        let p = Provisioning {
            physical_id: (*id).to_owned(),
            master_key: hex::encode_upper(key),
            mac_suite: "aes128".into(),
            host: host_address(terminal_listen),
            terminal_no: *terminal_no,
            merchant_no: *merchant,
        };
        let path = devices_dir.join(format!("{id}.json"));
        crate::cmd::keys::write_secret(&path, serde_json::to_string_pretty(&p)?.as_bytes())?;
    }
    let cards_dir = data.join("cards");
    std::fs::create_dir_all(&cards_dir)?;
    for (i, (no, display, balance)) in cards.iter().enumerate() {
        let mut uid = [0u8; 4];
        rand::rng().fill_bytes(&mut uid);
        let (bytes, name) = if i < CARDS - CPU_CARDS {
            let p = IssueParams {
                card_no: *no,
                display_no: *display,
                class: 1,
                expiry,
                balances: vec![*balance],
                pin: PIN.into(),
            };
            (
                issue(&keys, uid, &p)?.to_dump(),
                format!("{}.mf1", no.get()),
            )
        } else {
            let card = issue_cpu(
                &keys,
                uid,
                *no,
                *display,
                1,
                expiry,
                *balance,
                PIN,
                rand::rng().next_u64(),
            )
            .context("CPU card issue")?;
            (card.to_image().into_bytes(), format!("{}.cpu", no.get()))
        };
        crate::cmd::keys::write_secret(&cards_dir.join(name), &bytes)?;
    }
    // Last, and atomically: the marker says every file above is complete.
    crate::cmd::keys::write_secret(
        &marker,
        serde_json::to_string_pretty(&serde_json::json!({
            "merchants": MERCHANTS.iter().map(|m| m.0).collect::<Vec<_>>(),
            "devices": DEVICES.iter().map(|d| d.0).collect::<Vec<_>>(),
            "cards": cards.iter().map(|c| c.0.get()).collect::<Vec<_>>(),
            "lost_card": cards.last().map(|c| c.0.get()),
        }))?
        .as_bytes(),
    )?;
    let d = data.display();
    println!(
        "Demo campus ready in {d}:\n  \
         3 merchants (第一食堂, 第二食堂, 校园超市), 4 devices: provisioning files in {d}/devices/\n  \
         {CARDS} cards (PIN {PIN}; the last one reported lost): images in {d}/cards/, keys in {d}/keys\n  \
         admin token in {d}/admin-token; API at http://{http_listen}/api/v1 (docs/admin-api.md)\n\
         Next, in another shell: a POS terminal (connects to {}; docs/pos.md)\n    \
         ykt pos --provision {d}/devices/10000001.json --journal pos1\n  \
         and a card to tap: `ykt card show {d}/cards/1.mf1 --keys {d}/keys`.",
        host_address(terminal_listen)
    );
    Ok(())
}

/// The address a terminal on this machine dials (an unspecified listen address means loopback).
fn host_address(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("127.0.0.1:{}", listen.port())
    } else {
        listen.to_string()
    }
}
