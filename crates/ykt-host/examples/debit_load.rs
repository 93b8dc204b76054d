//! Closed-loop load of online debits (R-P5.2) through `Store::submit`: T terminals, each
//! with its own device and card, one request in flight each; prints TPS and latency.
//!
//! cargo run -p ykt-host --example debit_load -- sqlite /tmp/load.db 2000 100000
//! cargo run -p ykt-host --example debit_load -- postgres "host=127.0.0.1 user=postgres dbname=ykt_load" 2000 50000

use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use ykt_host::domain::{admin, records};
use ykt_host::*;
use ykt_proto::{CardType, DisplayNo, PhysicalId, Record, RecordKind, RecordStatus};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: debit_load sqlite|postgres <path|url> <terminals> <requests>";
    let (kind, target) = (args.get(1).expect(usage), args.get(2).expect(usage));
    let terminals: u32 = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let total: u32 = args.get(4).and_then(|a| a.parse().ok()).expect(usage);
    let backend = match kind.as_str() {
        "sqlite" => Backend::Sqlite(target.into()),
        _ => Backend::Postgres(target.clone()),
    };
    let store = Store::open(StoreConfig::new(backend))?;
    let now =
        NaiveDateTime::parse_from_str("2026-03-02 12:00:00", "%Y-%m-%d %H:%M:%S").expect("time");
    let start_setup = Instant::now();
    store.execute(move |tx| {
        admin::register_fep(tx, 1, "load")?;
        admin::activate_fep(tx, 1)?;
        admin::sign_in_fep(tx, 1, now)?;
        admin::create_merchant(tx, 1, "load").map(drop)
    })?;
    let mut cards = Vec::new();
    for t in 0..terminals {
        let id = PhysicalId((t + 1).to_be_bytes());
        let card = store.execute(move |tx| {
            admin::register_device(
                tx,
                NewDevice {
                    id,
                    terminal_no: t,
                    merchant_no: Some(1),
                    mac_suite: MacSuite::Aes128Cmac,
                    functions: Functions::ALL,
                    max_amount: 0,
                    params: params_codec::default_params(),
                },
            )?;
            admin::set_device_status(tx, id, DeviceStatus::Enabled)?;
            admin::set_device_key(tx, id, [7; 16])?;
            let c = admin::issue_card(
                tx,
                NewCard {
                    display_no: DisplayNo::new(u64::from(t) + 1).expect("display"),
                    class: 1,
                    expiry: NaiveDate::from_ymd_opt(2030, 1, 1).expect("date"),
                    counter: 0,
                },
            )?;
            // The opening balance, written on the card at issue.
            admin::pay_opening_balance(
                tx,
                admin::Payer::system(&ykt_host::domain::journal::Actor::system("example")),
                c,
                10_000_000,
                &format!("load-{t}"),
                now,
            )
        })?;
        cards.push(card);
    }
    eprintln!(
        "setup: {terminals} terminals in {:?}",
        start_setup.elapsed()
    );

    let (done_tx, done_rx) = mpsc::channel::<(u32, Duration, bool)>();
    let mut state: Vec<(u32, i64)> = cards.iter().map(|c| (0, c.balance)).collect();
    let submit = |t: u32, serial: u32, balance: i64| {
        let card: &Card = &cards[t as usize];
        let record = Record {
            device: PhysicalId((t + 1).to_be_bytes()),
            serial,
            kind: RecordKind::Purchase,
            status: RecordStatus::Initiated,
            online: true,
            card_type: CardType::Mf1,
            card_no: card.no,
            card_counter: serial,
            wallet_no: 1,
            balance_before: balance,
            amount: 1,
            fee: 0,
            balance_after: balance - 1,
            time: now,
            merchant_no: 1,
            original_serial: None,
            item_code: 0,
            tac: 0,
        };
        let req = DebitRequest {
            origin: Origin {
                fep: 1,
                device: record.device,
                terminal_no: t,
            },
            record,
            card_view: Some(CardView::of(card)),
        };
        let sent = Instant::now();
        let reply = done_tx.clone();
        store
            .submit(
                move |tx| records::authorize(tx, &req, now),
                move |r| {
                    let _ = reply.send((t, sent.elapsed(), r.is_ok()));
                },
            )
            .expect("queue");
    };
    let start = Instant::now();
    let mut issued = 0u32;
    for t in 0..terminals.min(total) {
        submit(t, 0, state[t as usize].1);
        issued += 1;
    }
    let mut latencies = Vec::with_capacity(total as usize);
    let mut failed = 0u32;
    while latencies.len() < issued as usize {
        let (t, lat, ok) = done_rx.recv().expect("reply");
        latencies.push(lat);
        let s = &mut state[t as usize];
        if ok {
            s.0 += 1;
            s.1 -= 1;
        } else {
            failed += 1;
        }
        if issued < total {
            submit(t, s.0, s.1);
            issued += 1;
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{kind}: {total} debits, {terminals} terminals, {failed} failed, {:.0} TPS, p50 {:?}, p99 {:?}, max {:?}",
        f64::from(total) / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    let report = store.execute(|tx| ledger::audit(tx.conn))?;
    println!("audit clean: {}", report.is_clean());
    Ok(())
}
