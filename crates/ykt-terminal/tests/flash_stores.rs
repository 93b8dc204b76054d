#![allow(clippy::unwrap_used)]
//! The fuzz target `flash_stores` on stable: the terminal's flash other than the journal
//! (blacklist and its delta log, parameters, state, A/B slots, statistics baseline) gives an
//! error or a clean fallback for any content, never a panic and never a wrong blacklist.
//! Inputs are built so that they pass the checksums and reach the decoders. issue 18.3a

mod common;

use proptest::prelude::*;
use ykt_terminal::fuzz_flash_stores;

const RAW: u8 = 0;
const BLACKLIST_LOG: u8 = 1;
const PARAMS_SLOTS: u8 = 2;
const STATE_SLOTS: u8 = 3;
const BASELINE: u8 = 4;
const DELTA: u8 = 5;

/// A delta payload (`from | to | count | cards`, little-endian), well formed or not.
fn delta_payload() -> impl Strategy<Value = Vec<u8>> {
    let well_formed = (0u32..6, 0u32..8, prop::collection::vec(any::<u32>(), 0..6)).prop_map(
        |(from, step, cards)| {
            let mut p = Vec::new();
            p.extend_from_slice(&from.to_le_bytes());
            p.extend_from_slice(&(from + step).to_le_bytes());
            p.extend_from_slice(&(cards.len() as u16).to_le_bytes());
            for c in cards {
                // Mostly valid card numbers (1..2^24) with either listed bit.
                let n = c & 0x80FF_FFFF | u32::from(c & 0xFF_FFFF == 0);
                p.extend_from_slice(&n.to_le_bytes());
            }
            p
        },
    );
    prop_oneof![
        4 => well_formed,
        1 => prop::collection::vec(any::<u8>(), 1..40),
    ]
}

fn be16(n: usize) -> [u8; 2] {
    (n as u16).to_be_bytes()
}

/// A fuzz input for the blacklist log mode.
fn blacklist_input() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        0u32..4,
        prop::collection::vec(any::<u32>(), 0..8),
        prop::collection::vec(delta_payload(), 0..16),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(shape, base_version, bulk, deltas, tail)| {
            let mut v = vec![BLACKLIST_LOG, shape];
            if shape & 1 == 1 {
                // A base image: its version and its cards.
                v.extend_from_slice(&base_version.to_be_bytes());
                v.push(bulk.len() as u8);
                for c in bulk {
                    v.extend_from_slice(&c.to_be_bytes());
                }
            }
            v.push(deltas.len() as u8);
            for d in deltas {
                v.extend_from_slice(&be16(d.len()));
                v.extend_from_slice(&d);
            }
            v.extend_from_slice(&tail);
            v
        })
}

/// A generation: small, or at the very end of the counter.
fn generation() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..4, Just(u64::MAX - 1), Just(u64::MAX), any::<u64>()]
}

/// A parameters payload of format 2 (as the terminal writes it), of format 1 (an old
/// terminal's flash) or random, mutated a little.
fn params_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..3,
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(kind, merchant, block, flips)| {
            let mut p = match kind {
                0 => {
                    let mut p = vec![2];
                    p.extend_from_slice(&merchant.to_le_bytes());
                    p.extend_from_slice(&[2, b'A', b'B', 0xFF, 1]);
                    ykt_proto::encode_params(&ykt_proto::test_vectors::params(), &mut p).unwrap();
                    p
                }
                // The fixture's slot without its 20-byte header.
                1 => ykt_proto::hexstr::parse_vec(common::FLASH_V1_SLOT).unwrap()[20..].to_vec(),
                _ => block,
            };
            if p.is_empty() {
                return p;
            }
            for (at, xor) in flips {
                let i = at.index(p.len());
                p[i] ^= xor;
            }
            p
        })
}

fn slots_input(
    mode: u8,
    payload: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((generation(), payload), 1..=2),
        any::<u32>(),
    )
        .prop_map(move |(slots, now)| {
            let mut v = vec![mode, (slots.len() - 1) as u8];
            for (g, p) in slots {
                v.extend_from_slice(&g.to_be_bytes());
                if mode == PARAMS_SLOTS {
                    v.extend_from_slice(&be16(p.len()));
                } else {
                    v.push(p.len() as u8);
                }
                v.extend_from_slice(&p);
            }
            v.extend_from_slice(&now.to_be_bytes());
            v
        })
}

/// A state payload (`1 | offline ms | offline | saved? | time | offset | set? | time`).
fn state_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        0u8..3,
        any::<i64>(),
        any::<i64>(),
        any::<u32>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..2),
    )
        .prop_map(|(ms, offline, secs, offset, nanos, flips)| {
            let mut p = vec![1];
            p.extend_from_slice(&ms.to_le_bytes());
            p.extend_from_slice(&[offline.min(1), 1]);
            p.extend_from_slice(&(secs % 10_000_000_000).to_le_bytes());
            p.extend_from_slice(&(nanos % 1_000_000_000).to_le_bytes());
            p.extend_from_slice(&offset.to_le_bytes());
            p.push(offline);
            p.extend_from_slice(&secs.to_le_bytes());
            p.extend_from_slice(&nanos.to_le_bytes());
            for (at, xor) in flips {
                let i = at.index(p.len());
                p[i] ^= xor;
            }
            p
        })
}

// A case may open the 2 MiB bitmap several times: few cases here; the fuzz target runs more.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    // issue 18.3a: arbitrary bytes in every mode never panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        fuzz_flash_stores(&data);
    }

    // issue 18.3a, R-F4.21: a delta log of checksummed frames opens to exactly the list its
    // chained deltas describe, or to an error when a frame does not decode.
    #[test]
    fn blacklist_log_opens_to_its_deltas(input in blacklist_input()) {
        fuzz_flash_stores(&input);
    }

    // issue 18.3a: raw bytes as a region's image.
    #[test]
    fn raw_region_images(region in 0u8..3, image in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut input = vec![RAW, region];
        input.extend_from_slice(&image);
        fuzz_flash_stores(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // issue 18.3a, R-P5.1: stored parameters that open can be saved again and reopen.
    #[test]
    fn params_slots_open_or_refuse(input in slots_input(PARAMS_SLOTS, params_payload())) {
        fuzz_flash_stores(&input);
    }

    // issue 18.3a, R-F4.18, R-F4.19: stored state that opens can be written and reopens.
    #[test]
    fn state_slots_open_or_refuse(input in slots_input(STATE_SLOTS, state_payload())) {
        fuzz_flash_stores(&input);
    }

    // issue 18.3a, R-F4.22: the statistics baseline round-trips and sums without panics.
    #[test]
    fn baseline_decodes_or_refuses(data in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut input = vec![BASELINE];
        input.extend_from_slice(&data);
        fuzz_flash_stores(&input);
    }

    // issue 18.3a: the delta decoder reads exactly the canonical layout.
    #[test]
    fn delta_decoder_is_canonical(payload in delta_payload()) {
        let mut input = vec![DELTA];
        input.extend_from_slice(&payload);
        fuzz_flash_stores(&input);
    }
}

// issue 18.3a: a stored slot at the last generation (forged or corrupt, with a good CRC)
// must not make the next save overflow the counter; it is refused or written, not a panic.
#[test]
fn slot_at_the_last_generation_is_not_an_overflow() {
    let mut params = vec![PARAMS_SLOTS, 0];
    params.extend_from_slice(&u64::MAX.to_be_bytes());
    params.extend_from_slice(&be16(8));
    params.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0xFF, 0]);
    fuzz_flash_stores(&params);
    let mut state = vec![STATE_SLOTS, 0];
    state.extend_from_slice(&u64::MAX.to_be_bytes());
    state.push(0);
    fuzz_flash_stores(&state);
}

// issue 18.3a: the fuzz target's seeds (fuzz/seeds/flash_stores) run clean on stable.
#[test]
fn fuzz_seeds_run_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/flash_stores");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        fuzz_flash_stores(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 10, "seeds missing: {n}");
}
