//! Storage speed: bulk blacklist initialisation (R-F4.21), journal append and recovery.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use ykt_proto::{CardNo, CardType, PhysicalId, Record, RecordKind, RecordStatus};
use ykt_terminal::{BlacklistStore, Journal, JournalConfig, MemFlash};

fn record() -> Record {
    Record {
        device: PhysicalId([1, 2, 3, 4]),
        serial: 0,
        kind: RecordKind::Purchase,
        status: RecordStatus::NotWritten,
        online: false,
        card_type: CardType::Mf1,
        card_no: CardNo::new(12_345).unwrap(),
        card_counter: 3,
        wallet_no: 1,
        balance_before: 10_000,
        amount: 1_200,
        fee: 0,
        balance_after: 8_800,
        time: NaiveDate::from_ymd_opt(2026, 3, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap(),
        merchant_no: 7,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

fn blacklist(c: &mut Criterion) {
    let cards: Vec<CardNo> = (0..1_000_000u32)
        .map(|i| CardNo::new(1 + i * 16).unwrap())
        .collect();
    let mut group = c.benchmark_group("blacklist");
    group.sample_size(10);
    // R-F4.21: one million card numbers in pages of 1,000, made durable.
    group.bench_function("bulk_1m_numbers", |b| {
        b.iter(|| {
            let mut flash = MemFlash::new();
            let mut store = BlacklistStore::open(&mut flash).unwrap();
            store.begin_bulk(1);
            for page in cards.chunks(1_000) {
                store.bulk_page_numbers(page).unwrap();
            }
            store.finish_bulk(&mut flash).unwrap();
            black_box(store.version())
        })
    });
    let mut flash = MemFlash::new();
    let mut store = BlacklistStore::open(&mut flash).unwrap();
    store.begin_bulk(1);
    store.bulk_page_numbers(&cards).unwrap();
    store.finish_bulk(&mut flash).unwrap();
    group.bench_function("open_with_1m", |b| {
        b.iter(|| black_box(BlacklistStore::open(&mut flash).unwrap().version()))
    });
    group.bench_function("contains", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 7919) % CardNo::MAX + 1;
            black_box(store.contains(CardNo::new(n).unwrap()))
        })
    });
    group.finish();
}

fn journal(c: &mut Criterion) {
    let cfg = JournalConfig::default();
    let mut group = c.benchmark_group("journal");
    group.bench_function("append_write_upload", |b| {
        let mut flash = MemFlash::new();
        let (mut journal, _) = Journal::open(&mut flash, cfg).unwrap();
        b.iter(|| {
            let serial = journal.append(&mut flash, record()).unwrap();
            journal
                .set_status(&mut flash, serial, RecordStatus::Written)
                .unwrap();
            journal.mark_uploaded(&mut flash, serial).unwrap();
        })
    });
    let mut flash = MemFlash::new();
    let (mut journal, _) = Journal::open(&mut flash, cfg).unwrap();
    for _ in 0..10_000 {
        let serial = journal.append(&mut flash, record()).unwrap();
        journal
            .set_status(&mut flash, serial, RecordStatus::Written)
            .unwrap();
    }
    group.sample_size(10);
    group.bench_function("recover_10k_pending", |b| {
        b.iter(|| black_box(Journal::open(&mut flash, cfg).unwrap().1.pending))
    });
    group.finish();
}

criterion_group!(benches, blacklist, journal);
criterion_main!(benches);
