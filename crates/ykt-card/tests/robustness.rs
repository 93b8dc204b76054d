#![allow(clippy::unwrap_used)]
//! Untrusted card content never panics anything: random dumps, damaged blocks, random APDUs,
//! random CPU card images. And the fixed sequences have a fixed, known length.

mod common;
use common::*;

use proptest::prelude::*;
use ykt_card::app::diagnose::diagnose;
use ykt_card::app::{Interrupted, Mf1App};
use ykt_card::cpu::CpuCard;
use ykt_card::mf1::Mf1Card;
use ykt_card::{Fault, Reader, SimCard, SimulatedReader, TearOutcome};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_dumps_never_panic(mut dump in proptest::collection::vec(any::<u8>(), 1024)) {
        dump[4] = dump[0] ^ dump[1] ^ dump[2] ^ dump[3];
        let card = Mf1Card::from_dump(&dump).unwrap();
        let keys = keys();
        let mut r = SimulatedReader::new(1);
        r.place(SimCard::Mf1(card));
        let _ = diagnose(&mut r, &keys);
        let _ = Mf1App::new(&keys).read(&mut r, 0);
    }

    // An issued card with any bytes of any block overwritten: reads, inspections and debits
    // return errors or results, never panic, and never create money.
    #[test]
    fn damaged_issued_cards_never_panic(block in 1u8..64, bytes: [u8; 16], amount in 0i64..20_000) {
        let keys = keys();
        let app = Mf1App::new(&keys);
        let mut card = card(10_000);
        *card.raw_block_mut(block).unwrap() = bytes;
        let mut r = reader_with(card, 2);
        let _ = diagnose(&mut r, &keys);
        if let Ok(c) = app.read(&mut r, 0) {
            prop_assert!(c.wallet.balance <= 10_000);
            if app.transact(&mut r, &c, &purchase(amount, 0, 1, at(1, 8))).is_ok() {
                prop_assert_eq!(app.read(&mut r, 0).unwrap().wallet.balance, c.wallet.balance - amount);
            }
        }
    }

    #[test]
    fn random_apdus_never_panic(apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..20)) {
        let keys = keys();
        let mut card = ykt_card::cpu::app::issue_cpu(
            &keys, [1, 2, 3, 4], ykt_proto::types::CardNo::new(5).unwrap(),
            ykt_proto::types::DisplayNo::new(5).unwrap(), 1,
            chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(), 100, "1234", 9,
        ).unwrap();
        let before = card.balance;
        let _ = card.process(&ykt_card::cpu::apdu::command(0, 0xA4, 4, 0, &ykt_card::cpu::card::AID, Some(0)));
        for apdu in apdus {
            let resp = card.process(&apdu);
            prop_assert!(resp.len() >= 2);
        }
        // Without keys no command sequence can move money.
        prop_assert_eq!(card.balance, before);
    }

    #[test]
    fn random_cpu_images_never_panic(text in "(([a-z_]{1,12}) = ([0-9A-F ]{0,50})\n){0,30}") {
        let _ = CpuCard::from_image(&text);
    }
}

// The number of reader operations of each sequence is fixed (a terminal budgets its time on
// it: each MF1 operation takes a few milliseconds on a real reader).
#[test]
fn operation_counts_are_fixed() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    let mut r = reader_with(card(10_000), 1);
    let start = r.op_count();
    let c = app.read(&mut r, 0).unwrap();
    let read_ops = r.op_count() - start;
    let start = r.op_count();
    app.transact(&mut r, &c, &purchase(100, 0, 1, at(1, 8)))
        .unwrap();
    let debit_ops = r.op_count() - start;
    // select; header (auth s0, read); info, pin (auth s1, 2 reads); directory, lock, subsidy
    // sequence (auth s3, 3 reads); wallet (auth s4, 3 reads) = 14.
    assert_eq!(read_ops, 14);
    // auth B s4, read main, write state, auth B ring, write 2 record blocks, auth B s4, write
    // main, backup, state = 10.
    assert_eq!(debit_ops, 10);
}

// The read after a torn write says what it did with the interrupted transaction.
#[test]
fn interrupted_transactions_are_reported() {
    let keys = keys();
    let app = Mf1App::new(&keys);
    // Tear the backup write (op 8 of the debit): landed, finished on the next read.
    // Tear the main write (op 7): did not land, abandoned.
    for (k, landed) in [(8u64, true), (7, false)] {
        let mut r = reader_with(card(10_000), 1);
        let c = app.read(&mut r, 0).unwrap();
        r.inject(r.op_count() + k, Fault::Tear(TearOutcome::Garbage));
        assert!(
            app.transact(&mut r, &c, &purchase(100, 0, 1, at(1, 8)))
                .is_err()
        );
        r.retap();
        let again = app.read(&mut r, 0).unwrap();
        match again.interrupted {
            Some(Interrupted::Finished(t)) if landed => assert_eq!(t.balance_after, 9_900),
            Some(Interrupted::Abandoned(t)) if !landed => assert_eq!(t.balance_before, 10_000),
            other => panic!("k={k}: {other:?}"),
        }
        assert!(app.read(&mut r, 0).unwrap().interrupted.is_none());
        let _ = r.select();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // The fuzz target's entry point, on stable: patched issued cards, raw dumps, CPU images.
    #[test]
    fn fuzz_entry_point_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        ykt_card::fuzzing::card_image(&data);
    }

    // issue 18.3c: the fuzz target `keys_file` on stable: any text, and key files with one
    // line changed, are read exactly or refused.
    #[test]
    fn keys_file_entry_point(text in "\\PC{0,300}") {
        ykt_card::fuzzing::keys_file(text.as_bytes());
    }

    #[test]
    fn keys_file_with_a_line_changed(line in 0usize..10, junk in "[ -~]{0,40}", material: [u8; 32]) {
        let mut m = [0u8; 112];
        m[..32].copy_from_slice(&material);
        let text = ykt_card::keys::SystemKeys::from_material(7, &m).to_text();
        let mut lines: Vec<&str> = text.lines().collect();
        let i = line % lines.len();
        lines[i] = &junk;
        ykt_card::fuzzing::keys_file(lines.join("\n").as_bytes());
        prop_assert!(ykt_card::keys::SystemKeys::parse(&text).is_ok());
        ykt_card::fuzzing::keys_file(text.as_bytes());
    }

    // issue 18: the fuzz target `cpu_transaction` on stable — any bytes as a session.
    #[test]
    fn cpu_transaction_entry_point(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        ykt_card::fuzzing_cpu::cpu_transaction(&data);
    }

    // issue 18: sessions of purchases, loads and faults only (no raw commands), so every
    // step's money is checked (R-F4.2, R-B4).
    #[test]
    fn cpu_sessions_of_money_and_faults(ops in proptest::collection::vec(
        prop_oneof![
            (0u16..20_000).prop_map(|a| vec![2, (a >> 8) as u8, a as u8]),
            (0u16..20_000).prop_map(|a| vec![3, (a >> 8) as u8, a as u8]),
            any::<[u8; 5]>().prop_map(|m| vec![4, m[0], m[1], m[2], m[3], m[4]]),
            (0u8..5, 0u8..8).prop_map(|(f, at)| vec![6, f, at]),
            Just(vec![0]),
            Just(vec![7]),
        ], 0..30)) {
        ykt_card::fuzzing_cpu::cpu_transaction(&ops.concat());
    }

    #[test]
    fn patched_blocks_never_create_money(block in 0u8..64, bytes: [u8; 16]) {
        let mut data = vec![2, block];
        data.extend_from_slice(&bytes);
        ykt_card::fuzzing::card_image(&data);
    }
}

// issue 18: the CPU session's bookkeeping follows the card: a purchase of 1.00 元, a
// top-up of 0.50 元, a purchase beyond the balance refused, a forged load refused.
#[test]
fn cpu_session_books_follow_the_card() {
    let ops = [2, 0, 100, 3, 0, 50, 2, 0xFF, 0xFF, 4, 1, 2, 3, 4, 9, 0];
    assert_eq!(
        ykt_card::fuzzing_cpu::cpu_transaction(&ops),
        10_000 - 100 + 50
    );
    // A fault during the purchase's DEBIT: the proof decides, the books still follow.
    let torn = [6, 2, 4, 2, 0, 100, 0];
    let left = ykt_card::fuzzing_cpu::cpu_transaction(&torn);
    assert!(left == 10_000 || left == 9_900, "{left}");
}

// issue 18: the seeds of `card_image` (an issued MF1 dump, an issued CPU image, a patch)
// and `cpu_transaction` run clean on stable; the dump and the image parse.
#[test]
fn card_seeds_run_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    let mf1 = std::fs::read(format!("{dir}/card_image/issued-mf1")).unwrap();
    assert!(ykt_card::mf1::Mf1Card::from_dump(&mf1[1..]).is_ok());
    let cpu = std::fs::read(format!("{dir}/card_image/issued-cpu")).unwrap();
    assert!(ykt_card::cpu::CpuCard::from_image(std::str::from_utf8(&cpu[1..]).unwrap()).is_ok());
    for name in ["issued-mf1", "issued-cpu", "patched-block4"] {
        ykt_card::fuzzing::card_image(&std::fs::read(format!("{dir}/card_image/{name}")).unwrap());
    }
    for name in ["purchase-load-forged", "torn-purchase", "pin-raw"] {
        let bytes = std::fs::read(format!("{dir}/cpu_transaction/{name}")).unwrap();
        ykt_card::fuzzing_cpu::cpu_transaction(&bytes);
    }
}

// issue 18.3c: the seeds of the fuzz target `keys_file` run clean on stable; the valid ones
// read, the broken ones are refused.
#[test]
fn keys_file_seeds_run_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/keys_file");
    for name in [
        "valid",
        "lower-case-and-comments",
        "signed-digit",
        "missing-entry",
    ] {
        let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
        ykt_card::fuzzing::keys_file(&bytes);
        let reads = ykt_card::keys::SystemKeys::parse(std::str::from_utf8(&bytes).unwrap()).is_ok();
        assert_eq!(
            reads,
            name.starts_with("valid") || name.starts_with("lower"),
            "{name}"
        );
    }
}
