//! `ykt_host::backup` (#16) on a store whose writer commits all the time: a copy in many
//! small steps reads one snapshot (it never starts over, however often the writer
//! commits), holds every deposit acknowledged before it began, audits clean, and restores.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use ykt_host::backup::{self, CarriedFile, Pace};
use ykt_host::domain::{admin, journal::Actor};
use ykt_host::*;
use ykt_proto::CardNo;

const CARDS: u32 = 3_000;

fn now() -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 2)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
}

/// Deposits of 1 fen, one per transaction, round the cards until `stop`; the ids of those
/// acknowledged (committed), in order.
fn depositor(
    store: Store,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let list = Arc::clone(&acked);
    let thread = std::thread::spawn(move || {
        for i in 0u32.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let id = format!("n{i}");
            let (card, ref_id) = (CardNo::new(1 + i % CARDS).unwrap(), id.clone());
            store
                .execute(move |tx| {
                    admin::deposit(
                        tx,
                        admin::Payer::system(&Actor::system("test")),
                        card,
                        1,
                        &ref_id,
                        now(),
                    )
                })
                .unwrap();
            list.lock().unwrap().push(id);
        }
    });
    (acked, thread)
}

// #16: many small steps while the writer commits: one snapshot, no restart, every
// acknowledged deposit in the copy, audit clean; restore gives the same database back
// with the carried files.
#[test]
fn a_stepwise_backup_under_a_busy_writer_is_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ykt.db");
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
    store
        .execute(|tx| {
            for _ in 0..CARDS {
                admin::issue_numbered_card(
                    tx,
                    2_026_000_000,
                    1,
                    NaiveDate::from_ymd_opt(2030, 7, 31).unwrap(),
                )?;
            }
            Ok(())
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, writer) = depositor(store.clone(), Arc::clone(&stop));
    while acked.lock().unwrap().len() < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }

    let out = dir.path().join("copy.backup");
    let carried = [CarriedFile {
        name: "keys".into(),
        content: b"the system keys".to_vec(),
    }];
    let before = acked.lock().unwrap().clone();
    let pace = Pace {
        pages_per_step: 8,
        pause: Duration::from_millis(2),
    };
    let copied = backup::backup(&db, &out, &carried, pace, &AtomicBool::new(false)).unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Many steps, each a few pages; a restart would have copied pages again.
    let pages = copied.pages;
    assert!(pages > 100, "{copied:?}");
    assert_eq!(copied.steps, pages.div_ceil(8), "{copied:?}");
    assert!(
        during > 0,
        "the writer committed nothing while the copy ran"
    );

    let found = backup::inspect(&out).unwrap();
    assert_eq!(found.schema_version, found.current_version);
    assert_eq!(found.carried, [("keys".to_owned(), 15)]);
    let copy = rusqlite::Connection::open(&out).unwrap();
    let mut stmt = copy
        .prepare("SELECT id FROM transfers WHERE kind = 'deposit'")
        .unwrap();
    let ids: std::collections::HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Every deposit acknowledged before the copy began; none beyond those acknowledged by
    // its end.
    for id in &before {
        assert!(ids.contains(&format!("dep:{id}")), "deposit {id} missing");
    }
    assert!(ids.len() <= acked.lock().unwrap().len());
    assert!(backup::audit_file(&out).unwrap().is_clean());

    let restored = dir.path().join("restored.db");
    let (_, files) = backup::restore(&out, &restored).unwrap();
    assert_eq!(files, carried);
    let back = rusqlite::Connection::open(&restored).unwrap();
    let tables: i64 = back
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE name = ?1",
            [backup::CARRIED_TABLE],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        tables, 0,
        "the carried files stay out of the restored database"
    );
    assert!(backup::audit_file(&restored).unwrap().is_clean());
    // A file is never overwritten.
    assert!(backup::backup(&db, &out, &[], Pace::INTERACTIVE, &AtomicBool::new(false)).is_err());
    assert!(backup::restore(&out, &restored).is_err());
}
