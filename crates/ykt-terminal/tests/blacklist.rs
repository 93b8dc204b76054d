//! The blacklist store: versions, incremental updates, bulk initialisation (R-F4.21),
//! persistence and power cuts.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use ykt_proto::CardNo;
use ykt_terminal::{BlacklistChange, BlacklistError, BlacklistStore, MemFlash};

fn card(n: u32) -> CardNo {
    CardNo::new(n).unwrap()
}

fn add(n: u32) -> BlacklistChange {
    BlacklistChange {
        card: card(n),
        listed: true,
    }
}

fn remove(n: u32) -> BlacklistChange {
    BlacklistChange {
        card: card(n),
        listed: false,
    }
}

fn listed(store: &BlacklistStore, cards: &[u32]) -> Vec<bool> {
    cards.iter().map(|&n| store.contains(card(n))).collect()
}

// R-F4.21: bulk initialisation by card numbers and by bitmap pages; the largest card
// number (2^24 − 1) is supported.
#[test]
fn bulk_initialisation_by_numbers_and_bitmap_pages() {
    let mut flash = MemFlash::new();
    let mut store = BlacklistStore::open(&mut flash).unwrap();
    assert_eq!(store.version(), 0);
    store.begin_bulk(7);
    store
        .bulk_page_numbers(&[card(1), card(CardNo::MAX)])
        .unwrap();
    // Byte 2 covers cards 16–23: list 17 and 23.
    store.bulk_page_bitmap(2, &[0b1000_0010]).unwrap();
    assert!(!store.contains(card(1)), "not visible before finish");
    assert_eq!(store.version(), 0);
    store.finish_bulk(&mut flash).unwrap();
    assert_eq!(store.version(), 7);
    assert_eq!(
        listed(&store, &[1, 2, 16, 17, 23, CardNo::MAX]),
        [true, false, false, true, true, true]
    );
    assert_eq!(store.len(), 4);
    let reopened = BlacklistStore::open(&mut flash).unwrap();
    assert_eq!(reopened.version(), 7);
    assert_eq!(
        listed(&reopened, &[1, 17, 23, CardNo::MAX, 5]),
        [true, true, true, true, false]
    );
    assert!(matches!(
        store.bulk_page_bitmap(1 << 21, &[1]),
        Err(BlacklistError::NoBulkLoad)
    ));
    store.begin_bulk(8);
    assert!(matches!(
        store.bulk_page_bitmap((1 << 21) - 1, &[1, 2]),
        Err(BlacklistError::PageOutOfRange { .. })
    ));
}

// R-F4.21: a million cards in bulk (the benchmark measures its speed).
#[test]
fn a_million_card_bulk_load() {
    let mut flash = MemFlash::new();
    let mut store = BlacklistStore::open(&mut flash).unwrap();
    store.begin_bulk(1);
    let cards: Vec<CardNo> = (0..1_000_000u32).map(|i| card(1 + i * 16)).collect();
    for page in cards.chunks(10_000) {
        store.bulk_page_numbers(page).unwrap();
    }
    store.finish_bulk(&mut flash).unwrap();
    let reopened = BlacklistStore::open(&mut flash).unwrap();
    assert_eq!(reopened.len(), 1_000_000);
    assert!(reopened.contains(card(1 + 16 * 999_999)));
    assert!(!reopened.contains(card(2)));
}

#[test]
fn incremental_updates_need_consecutive_versions() {
    let mut flash = MemFlash::new();
    let mut store = BlacklistStore::open(&mut flash).unwrap();
    store
        .apply_incremental(&mut flash, 0, 1, &[add(5), add(6)])
        .unwrap();
    assert_eq!(
        store.apply_incremental(&mut flash, 2, 3, &[add(7)]),
        Err(BlacklistError::VersionGap { have: 1, from: 2 })
    );
    assert_eq!(
        store.apply_incremental(&mut flash, 1, 1, &[add(7)]),
        Err(BlacklistError::VersionNotNewer { from: 1, to: 1 })
    );
    store
        .apply_incremental(&mut flash, 1, 3, &[remove(5)])
        .unwrap();
    let reopened = BlacklistStore::open(&mut flash).unwrap();
    assert_eq!(reopened.version(), 3);
    assert_eq!(listed(&reopened, &[5, 6, 7]), [false, true, false]);
    let too_many = vec![add(1); 4097];
    assert_eq!(
        store.apply_incremental(&mut flash, 3, 4, &too_many),
        Err(BlacklistError::TooManyChanges(4097))
    );
}

// Power cut at every byte of a series of incremental updates: after recovery the list is
// exactly the one of some version reached, never a mix, and no synced update is lost.
#[test]
fn power_cut_during_incremental_updates() {
    let updates: Vec<Vec<BlacklistChange>> = (1..=6u32)
        .map(|v| vec![add(v * 10), add(v * 10 + 1), remove(v * 10 - 9)])
        .collect();
    let expected = |version: u32| -> BTreeSet<u32> {
        let mut set = BTreeSet::new();
        for (i, u) in updates.iter().enumerate().take(version as usize) {
            let _ = i;
            for c in u {
                if c.listed {
                    set.insert(c.card.get())
                } else {
                    set.remove(&c.card.get())
                };
            }
        }
        set
    };
    let probe: Vec<u32> = (0..=61).filter(|&n| n > 0).collect();
    let mut total = MemFlash::new();
    let mut s = BlacklistStore::open(&mut total).unwrap();
    for (v, u) in updates.iter().enumerate() {
        s.apply_incremental(&mut total, v as u32, v as u32 + 1, u)
            .unwrap();
    }
    for cut in 0..total.bytes_written() {
        let mut flash = MemFlash::new();
        flash.cut_power_after(cut);
        let mut done = 0;
        if let Ok(mut store) = BlacklistStore::open(&mut flash) {
            for (v, u) in updates.iter().enumerate() {
                if store
                    .apply_incremental(&mut flash, v as u32, v as u32 + 1, u)
                    .is_err()
                {
                    break;
                }
                done = v as u32 + 1;
            }
        }
        let mut after = flash.power_cycle(cut);
        let store = BlacklistStore::open(&mut after).unwrap();
        let v = store.version();
        assert!(
            v == done || v == done + 1,
            "cut {cut}: version {v}, {done} synced"
        );
        let got: BTreeSet<u32> = probe
            .iter()
            .copied()
            .filter(|&n| store.contains(card(n)))
            .collect();
        assert_eq!(got, expected(v), "cut {cut}");
    }
}

// R-F4.21: a power cut anywhere in a bulk load leaves the old list usable, or the new one
// complete (cut points sampled across the 2 MiB image, plus every byte of its edges).
#[test]
fn power_cut_during_bulk_load_keeps_old_or_new_list() {
    let mut base = MemFlash::new();
    let mut store = BlacklistStore::open(&mut base).unwrap();
    store.apply_incremental(&mut base, 0, 1, &[add(3)]).unwrap();
    let before = base.bytes_written();
    let run = |flash: &mut MemFlash| -> Result<(), BlacklistError> {
        let mut store = BlacklistStore::open(flash)?;
        store.begin_bulk(9);
        store.bulk_page_numbers(&[card(4), card(CardNo::MAX)])?;
        store.finish_bulk(flash)
    };
    let mut full = base.clone();
    run(&mut full).unwrap();
    let total = full.bytes_written() - before;
    let cuts = (0..100)
        .chain((0..300).map(|i| i * total / 300))
        .chain(total - 100..total);
    for cut in cuts {
        let mut flash = base.clone();
        flash.cut_power_after(cut);
        let _ = run(&mut flash);
        let mut after = flash.power_cycle(cut);
        let store = BlacklistStore::open(&mut after).unwrap();
        match store.version() {
            1 => assert_eq!(
                listed(&store, &[3, 4, CardNo::MAX]),
                [true, false, false],
                "cut {cut}"
            ),
            9 => assert_eq!(
                listed(&store, &[3, 4, CardNo::MAX]),
                [false, true, true],
                "cut {cut}"
            ),
            v => panic!("cut {cut}: version {v}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    // Random incremental updates (enough to overflow the delta log and rewrite the base
    // image) agree with a set model, before and after reopening.
    #[test]
    fn incremental_updates_match_a_set(batches in prop::collection::vec(prop::collection::vec((1u32..2000, any::<bool>()), 0..600), 1..60)) {
        let mut flash = MemFlash::new();
        let mut store = BlacklistStore::open(&mut flash).unwrap();
        let mut model = BTreeSet::new();
        for (v, batch) in batches.iter().enumerate() {
            let changes: Vec<BlacklistChange> = batch.iter().map(|&(n, listed)| BlacklistChange { card: card(n), listed }).collect();
            store.apply_incremental(&mut flash, v as u32, v as u32 + 1, &changes).unwrap();
            for c in &changes {
                if c.listed { model.insert(c.card.get()); } else { model.remove(&c.card.get()); }
            }
        }
        let reopened = BlacklistStore::open(&mut flash).unwrap();
        prop_assert_eq!(reopened.version(), batches.len() as u32);
        for n in 1..2000 {
            prop_assert_eq!(reopened.contains(card(n)), model.contains(&n));
            prop_assert_eq!(store.contains(card(n)), model.contains(&n));
        }
    }
}

// issue 18.3a, R-F4.21: a log header reset at start-up leaves no frame behind that a later
// start-up could replay. Here the newest base image is damaged after a compaction: the list
// falls back to the older base, and it must read the same at the next power-up (the frames
// of that older base, still in the log area, were once replayed then).
#[test]
fn fallback_to_an_older_base_reopens_the_same() {
    let mut flash = MemFlash::new();
    let mut store = BlacklistStore::open(&mut flash).unwrap();
    store
        .apply_incremental(&mut flash, 0, 1, &[add(5)])
        .unwrap();
    store
        .apply_incremental(&mut flash, 1, 2, &[add(6)])
        .unwrap();
    store.begin_bulk(10);
    store.bulk_page_numbers(&[card(7)]).unwrap();
    store.finish_bulk(&mut flash).unwrap();
    // Damage the base image of generation 1 (slot 1, after the 256 KiB log and slot 0).
    let mut image = flash.image(ykt_terminal::Region::Blacklist).to_vec();
    let slot1 = 256 * 1024 + (20 + 4 + (1 << 21));
    image[slot1 + 100] ^= 0xFF;
    let mut flash = MemFlash::with_image(ykt_terminal::Region::Blacklist, &image);
    let first = BlacklistStore::open(&mut flash).unwrap();
    let seen = (first.version(), listed(&first, &[5, 6, 7]));
    let mut again = flash.power_cycle(0);
    let second = BlacklistStore::open(&mut again).unwrap();
    assert_eq!((second.version(), listed(&second, &[5, 6, 7])), seen);
}
