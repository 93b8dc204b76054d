//! A reconciliation run (R-B10) over many cards: the scan on a reader and the re-check of
//! the cards out of agreement on the writer. Cards, counters and records are written by SQL
//! (one booked record per card, one card in 1,000 lower than its account).
//! `CARGO_TARGET_DIR=/work/target-recon cargo bench -p ykt-host --bench reconcile_scan`
//! (`YKT_BENCH_CARDS`, default 1,000,000; `YKT_BENCH_PG="host=127.0.0.1 user=postgres
//! dbname=…"` for an empty PostgreSQL database instead of a SQLite file).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use chrono::NaiveDate;
use ykt_host::domain::reconcile::{self, APPLY_CHUNK};
use ykt_host::{Backend, Store, StoreConfig};

fn main() {
    let cards: i64 = std::env::var("YKT_BENCH_CARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (backend, numbers) = match std::env::var("YKT_BENCH_PG") {
        Ok(pg) => (
            Backend::Postgres(pg),
            format!("SELECT x FROM generate_series(1, {cards}) AS x"),
        ),
        Err(_) => (
            Backend::Sqlite(dir.path().join("bench.db")),
            format!(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {cards}) \
                 SELECT x FROM n"
            ),
        ),
    };
    let store = Store::open(StoreConfig::new(backend)).unwrap();
    let t = Instant::now();
    store
        .execute(move |tx| {
            tx.conn.exec(
                &format!(
                    "INSERT INTO cards (no, display_no, status, class, expiry, balance, \
                     counter_floor, counter_next, counters_used) \
                     SELECT x, 3000000000 + x, 'normal', 1, 1900000000, 9900, 0, 1, 1 \
                     FROM ({numbers}) AS s"
                ),
                &[],
            )?;
            tx.conn.exec(
                "INSERT INTO card_counters (card_no, counter, device, serial) \
                 SELECT no, 0, 268435457, no FROM cards",
                &[],
            )?;
            tx.conn.exec(
                "INSERT INTO records (device, serial, kind, status, online, card_type, card_no, \
                 card_counter, wallet_no, balance_before, amount, fee, balance_after, time, \
                 merchant_no, item_code, tac, booked, received_at) \
                 SELECT 268435457, no, 'purchase', 'written', 0, 'mf1', no, 0, 1, 10000, 100, 0, \
                 CASE WHEN no % 1000 = 0 THEN 9800 ELSE 9900 END, 1764000000, 1001, 0, 0, 1, \
                 1764000000 FROM cards",
                &[],
            )?;
            Ok(())
        })
        .unwrap();
    println!(
        "{cards} cards written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // A database in service has its statistics (autovacuum, SQLite's optimize).
    store.execute(|tx| tx.conn.exec("ANALYZE", &[])).unwrap();

    let t = Instant::now();
    let scan = store.read(reconcile::scan).unwrap();
    let scanned = t.elapsed();
    println!(
        "scan: {} cards, {} out of agreement, {:.2} s ({:.0} cards/s)",
        scan.cards,
        scan.candidates.len(),
        scanned.as_secs_f64(),
        scan.cards as f64 / scanned.as_secs_f64()
    );
    let now = NaiveDate::from_ymd_opt(2026, 12, 2)
        .unwrap()
        .and_hms_opt(5, 0, 0)
        .unwrap();
    let t = Instant::now();
    let mut found = 0;
    for chunk in scan.candidates.chunks(APPLY_CHUNK) {
        let cards = chunk.to_vec();
        found += store
            .execute(move |tx| reconcile::apply(tx, &cards, now))
            .unwrap()
            .found;
    }
    println!(
        "apply: {found} cards stored in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(found as usize, scan.candidates.len());
}
