//! Round-trip and corruption properties of every application block format.

use super::format::*;
use chrono::{NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use ykt_proto::types::{CardNo, DisplayNo, PhysicalId};

fn date() -> impl Strategy<Value = NaiveDate> {
    (2000i32..=2255, 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

fn time() -> impl Strategy<Value = NaiveDateTime> {
    (0u32..=u32::MAX).prop_map(from_card_time)
}

fn kind() -> impl Strategy<Value = TxKind> {
    prop_oneof![
        Just(TxKind::Purchase),
        Just(TxKind::TopUp),
        Just(TxKind::Reversal)
    ]
}

fn fen() -> impl Strategy<Value = i64> {
    0..=MAX_FEN
}

/// Every single-byte change of a sealed block must be rejected.
fn corrupt_all<T: PartialEq + std::fmt::Debug>(
    block: [u8; 16],
    decode: impl Fn(&[u8; 16]) -> Option<T>,
    pos: usize,
    x: u8,
) -> Result<(), TestCaseError> {
    let mut b = block;
    b[pos] ^= x;
    prop_assert_eq!(decode(&b), None);
    Ok(())
}

proptest! {
    // R-T2.1: card numbers up to 2^24 − 1; R-T2.2: display numbers up to 10 digits.
    #[test]
    fn card_info_round_trip_and_corruption(no in 1u32..=CardNo::MAX, disp in 0u64..=DisplayNo::MAX, class: u8, exp in date(), pos in 0usize..16, x in 1u8..=255) {
        let info = CardInfo { card_no: CardNo::new(no).unwrap(), display_no: DisplayNo::new(disp).unwrap(), class, expiry: exp };
        prop_assert_eq!(CardInfo::decode(&info.encode()), Some(info));
        corrupt_all(info.encode(), CardInfo::decode, pos, x)?;
    }

    // R-F4.2: a wallet copy with any single damaged byte is recognised as bad, and a copy
    // moved to another wallet's sector too (R-F4.4).
    #[test]
    fn wallet_round_trip_and_corruption(w in 0u8..4, bal in fen(), counter in 0u32..=MAX_COUNTER, day in proptest::option::of(date()), count: u16, amount in fen(), pos in 0usize..16, x in 1u8..=255) {
        let wallet = Wallet { balance: bal, counter, day, daily_count: count, daily_amount: amount };
        prop_assert_eq!(Wallet::decode(w, &wallet.encode(w)), Some(wallet));
        prop_assert_eq!(Wallet::decode((w + 1) % 4, &wallet.encode(w)), None);
        corrupt_all(wallet.encode(w), |b| Wallet::decode(w, b), pos, x)?;
    }

    // R-B5: a pick-up's state carries the subsidy sequence after it.
    #[test]
    fn tx_state_round_trip_and_corruption(w in 0u8..4, pending: bool, k in kind(), c in 0u32..=MAX_COUNTER, b1 in fen(), b2 in fen(), seq in proptest::option::of(any::<u16>()), pos in 0usize..16, x in 1u8..=255) {
        let t = TxState { pending, kind: k, counter_before: c, balance_before: b1, balance_after: b2, subsidy_seq_after: seq };
        prop_assert_eq!(TxState::decode(w, &t.encode(w)), Some(t));
        corrupt_all(t.encode(w), |b| TxState::decode(w, b), pos, x)?;
    }

    // R-F4.15: the lock flag survives a round trip; a damaged lock block is not mistaken for a
    // valid one (the application then treats the card as locked).
    #[test]
    fn lock_round_trip_and_corruption(locked: bool, v: u32, t in time(), dev: [u8; 4], pos in 0usize..16, x in 1u8..=255) {
        let l = LockStatus { locked, blacklist_version: v, changed_at: t, device: PhysicalId(dev) };
        prop_assert_eq!(LockStatus::decode(&l.encode()), Some(l));
        corrupt_all(l.encode(), LockStatus::decode, pos, x)?;
    }

    // R-F4.17: ring records round-trip; any single damaged byte of either block is detected,
    // and a record read from the wrong slot is rejected.
    #[test]
    fn ring_record_round_trip_and_corruption(w in 0u8..4, slot in 0u32..16, k in kind(), c in 0u32..=MAX_COUNTER, b1 in fen(), a in fen(), f in fen(), b2 in fen(), t in time(), dev: [u8; 4], serial: u32, seq in proptest::option::of(1u16..), pos in 0usize..32, x in 1u8..=255) {
        let r = CardRecord { kind: k, counter_before: c, balance_before: b1, amount: a, fee: f, balance_after: b2, time: t, device: PhysicalId(dev), serial, subsidy_seq_after: seq };
        let [ba, bb] = r.encode(w, slot);
        prop_assert_eq!(CardRecord::decode(w, slot, &ba, &bb), Some(r));
        prop_assert_eq!(CardRecord::decode(w, slot + 1, &ba, &bb), None);
        let (mut ca, mut cb) = (ba, bb);
        if pos < 16 { ca[pos] ^= x } else { cb[pos - 16] ^= x }
        prop_assert_eq!(CardRecord::decode(w, slot, &ca, &cb), None);
    }

    // R-B5: the subsidy sequence block round-trips; a damaged one is not read as a number
    // (an all-zero block is sequence 0, a card issued before the block).
    #[test]
    fn subsidy_seq_round_trip_and_corruption(seq: u16, pos in 0usize..16, x in 1u8..=255) {
        let q = SubsidySeq(seq);
        prop_assert_eq!(SubsidySeq::decode(&q.encode()), Some(q));
        let mut b = q.encode();
        b[pos] ^= x;
        let zero = b == [0; 16] && seq == 0;
        prop_assert!(zero || SubsidySeq::decode(&b).is_none());
    }

    #[test]
    fn header_pin_directory_corruption(pos in 0usize..16, x in 1u8..=255, v: [u8; 8]) {
        let h = Header { layout: LAYOUT_VERSION, key_version: 3 };
        prop_assert_eq!(Header::decode(&h.encode()), Some(h));
        corrupt_all(h.encode(), Header::decode, pos, x)?;
        let p = PinData { verifier: v };
        prop_assert_eq!(PinData::decode(&p.encode()), Some(p));
        corrupt_all(p.encode(), PinData::decode, pos, x)?;
        corrupt_all(Directory::standard().encode(), Directory::decode, pos, x)?;
    }

    #[test]
    fn decoders_never_panic(b: [u8; 16], c: [u8; 16], w in 0u8..8) {
        let _ = (CardInfo::decode(&b), Wallet::decode(w, &b), TxState::decode(w, &b), LockStatus::decode(&b));
        let _ = (Directory::decode(&b), Header::decode(&b), PinData::decode(&b), CardRecord::decode(w, 0, &b, &c), SubsidySeq::decode(&b));
    }
}

// R-F4.4: the standard directory lists several wallets, each with its own sector and ring.
#[test]
fn standard_directory_round_trip() {
    let d = Directory::standard();
    assert_eq!(Directory::decode(&d.encode()), Some(d.clone()));
    assert!(d.wallets.len() >= 2);
    assert_eq!(d.wallets[0].ring_capacity(), 9);
    assert_eq!(d.wallets[1].ring_capacity(), 6);
    // Slots of a ring never share a block and never touch a trailer.
    let mut seen = std::collections::HashSet::new();
    for w in &d.wallets {
        for slot in 0..w.ring_capacity() {
            let (a, b) = w.ring_blocks(slot);
            for blk in [a, b] {
                assert_ne!(blk % 4, 3);
                assert!(seen.insert(blk));
            }
        }
    }
}

#[test]
fn overlapping_directory_is_rejected() {
    let bad = Directory {
        wallets: vec![WalletDir {
            sector: 4,
            ring_first: 4,
            ring_sectors: 2,
        }],
    };
    assert_eq!(Directory::decode(&bad.encode()), None);
    let fixed = Directory {
        wallets: vec![WalletDir {
            sector: 3,
            ring_first: 6,
            ring_sectors: 2,
        }],
    };
    assert_eq!(Directory::decode(&fixed.encode()), None);
}

#[test]
fn bcd_display_number() {
    assert_eq!(bcd10(1_234_567_890), [0x12, 0x34, 0x56, 0x78, 0x90]);
    assert_eq!(from_bcd10(&[0x12, 0x34, 0x56, 0x78, 0x9A]), None);
}
