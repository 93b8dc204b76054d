//! Entry points for the fuzz targets `card_image` and `keys_file` (`fuzz/`) and the property
//! tests that run the same code on stable Rust: untrusted card content must never panic a
//! reader, an inspection or a transaction, and must never create money; a key file is read
//! exactly or refused.

use chrono::NaiveDate;
use ykt_proto::types::{CardNo, DisplayNo, PhysicalId};

use crate::app::diagnose::diagnose;
use crate::app::issue::{IssueParams, issue};
use crate::app::{Mf1App, TxKind, TxRequest};
use crate::cpu::CpuCard;
use crate::keys::{MAX_FILE_LEN, SystemKeys};
use crate::mf1::Mf1Card;
use crate::{SimCard, SimulatedReader};

const OPENING_BALANCE: i64 = 10_000;

/// Fixed keys, so fuzzed patches land on a card the reader can authenticate to.
pub(crate) fn fuzz_keys() -> SystemKeys {
    let mut material = [0u8; 112];
    for (i, b) in material.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    SystemKeys::from_material(1, &material)
}

/// Interprets `data` by its first byte:
/// - `0`: the rest is a raw MF1 dump (any length; only a 1024-byte one with a good BCC parses);
/// - `1`: the rest is a CPU card image (text);
/// - otherwise: patches `(block, 16 bytes)` applied to a freshly issued MF1 card, which is
///   then inspected, read and debited.
///
/// Panics only when an invariant breaks: a debit that succeeds on a damaged card must take
/// exactly its amount, and no read may show more money than was issued.
pub fn card_image(data: &[u8]) {
    let keys = fuzz_keys();
    match data.split_first() {
        None => {}
        Some((0, dump)) => {
            if let Ok(card) = Mf1Card::from_dump(dump) {
                let mut reader = SimulatedReader::new(1);
                reader.place(SimCard::Mf1(card));
                let _ = diagnose(&mut reader, &keys);
                let _ = Mf1App::new(&keys).read(&mut reader, 0);
            }
        }
        Some((1, text)) => {
            let _ = CpuCard::from_image(&String::from_utf8_lossy(text));
        }
        Some((_, patches)) => patched_card(&keys, patches),
    }
}

fn patched_card(keys: &SystemKeys, patches: &[u8]) {
    let (Some(card_no), Some(display_no), Some(expiry)) = (
        CardNo::new(4242),
        DisplayNo::new(2_026_004_242),
        NaiveDate::from_ymd_opt(2030, 6, 30),
    ) else {
        return;
    };
    let params = IssueParams {
        card_no,
        display_no,
        class: 1,
        expiry,
        balances: vec![OPENING_BALANCE],
        pin: "123456".into(),
    };
    let Ok(mut card) = issue(keys, [0x11, 0x22, 0x33, 0x44], &params) else {
        return;
    };
    for patch in patches.chunks_exact(17).take(64) {
        if let Some(block) = card.raw_block_mut(patch[0] % 64) {
            block.copy_from_slice(&patch[1..]);
        }
    }
    let mut reader = SimulatedReader::new(2);
    reader.place(SimCard::Mf1(card));
    let _ = diagnose(&mut reader, keys);
    let app = Mf1App::new(keys);
    let Ok(read) = app.read(&mut reader, 0) else {
        return;
    };
    assert!(
        read.wallet.balance <= OPENING_BALANCE,
        "a damaged card showed new money"
    );
    let Some(time) = expiry
        .and_hms_opt(12, 0, 0)
        .and_then(|t| t.checked_sub_days(chrono::Days::new(365)))
    else {
        return;
    };
    let request = TxRequest {
        kind: TxKind::Purchase,
        amount: 100,
        fee: 0,
        time,
        device: PhysicalId([1, 2, 3, 4]),
        serial: 1,
    };
    if app.transact(&mut reader, &read, &request).is_ok()
        && let Ok(after) = app.read(&mut reader, 0)
    {
        assert_eq!(
            after.wallet.balance,
            read.wallet.balance - 100,
            "a debit took the wrong amount"
        );
    }
}

/// Arbitrary bytes as a key file (`ykt keys new`'s format): refused with an error, or read
/// into keys that write back as a file reading the same, whose `Debug` shows no key byte.
pub fn keys_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = SystemKeys::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_FILE_LEN, "an oversized key file was read");
    let written = keys.to_text();
    assert_eq!(
        SystemKeys::parse(&written).as_ref(),
        Ok(&keys),
        "a key file does not read back"
    );
    let shown = format!("{keys:?}");
    assert!(
        !shown.contains(&ykt_proto::hexstr::encode(&keys.pin)),
        "Debug printed key bytes"
    );
}
