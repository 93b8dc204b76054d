//! Arbitrary or damaged images of the blacklist, parameter and state regions: an error or a
//! clean fallback to the last intact value, never a panic.
#![allow(clippy::unwrap_used)]

mod common;

use common::at;
use proptest::prelude::*;
use ykt_proto::CardNo;
use ykt_terminal::{
    BlacklistChange, BlacklistStore, MemFlash, ParamsStore, Region, SavedParams, StateStore,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_small_region_images_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = ParamsStore::open(&mut MemFlash::with_image(Region::Params, &data));
        let _ = StateStore::open(&mut MemFlash::with_image(Region::State, &data), 0, at(1, 1));
        let _ = BlacklistStore::open(&mut MemFlash::with_image(Region::Blacklist, &data));
    }

    // Damage to the newer parameter slot falls back to the older one.
    #[test]
    fn a_damaged_slot_falls_back_to_the_other(byte in 0usize..200, xor in 1u8..) {
        let mut flash = MemFlash::new();
        let mut store = ParamsStore::open(&mut flash).unwrap();
        let old = SavedParams { merchant_no: 1, ..SavedParams::default() };
        let new = SavedParams { merchant_no: 2, merchant_name: "二食堂".into(), ..SavedParams::default() };
        store.save(&mut flash, old.clone()).unwrap();
        store.save(&mut flash, new.clone()).unwrap();
        let mut image = flash.image(Region::Params).to_vec();
        // Generation 2 lives in slot 0 (bytes 0..).
        let len = 20 + 4 + 1 + new.merchant_name.len() + 1 + 1 + 1;
        let i = byte % len;
        image[i] ^= xor;
        let got = ParamsStore::open(&mut MemFlash::with_image(Region::Params, &image)).unwrap().get().clone();
        prop_assert!(got == old);
    }

    // Damage in the blacklist delta log ends the replay there (earlier updates stay).
    #[test]
    fn a_damaged_delta_log_keeps_the_updates_before_the_damage(at_byte in 16usize..200, xor in 1u8..) {
        let mut flash = MemFlash::new();
        let mut store = BlacklistStore::open(&mut flash).unwrap();
        for v in 0..5u32 {
            let change = BlacklistChange { card: CardNo::new(v + 1).unwrap(), listed: true };
            store.apply_incremental(&mut flash, v, v + 1, &[change]).unwrap();
        }
        let mut image = flash.image(Region::Blacklist).to_vec();
        let i = at_byte % image.len();
        image[i] ^= xor;
        if let Ok(damaged) = BlacklistStore::open(&mut MemFlash::with_image(Region::Blacklist, &image)) {
            let v = damaged.version();
            for n in 1..=5u32 {
                prop_assert_eq!(damaged.contains(CardNo::new(n).unwrap()), n <= v);
            }
        }
    }
}
