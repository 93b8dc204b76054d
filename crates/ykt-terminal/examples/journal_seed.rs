//! Writes journal images in the fuzzing geometry (`FUZZ_CONFIG`), as seeds for the
//! `journal_decode` fuzz target: `cargo run -p ykt-terminal --example journal_seed -- DIR`.
//! The images cover a fresh journal, a wrapped ring with carried records, and a torn tail.

use std::path::PathBuf;

use chrono::NaiveDate;
use ykt_proto::{CardNo, CardType, PhysicalId, Record, RecordKind, RecordStatus};
use ykt_terminal::{FUZZ_CONFIG, Journal, MemFlash, Region};

fn record(card: u32) -> Option<Record> {
    Some(Record {
        device: PhysicalId([0xA1, 0xB2, 0xC3, 0xD4]),
        serial: 0,
        kind: if card.is_multiple_of(5) {
            RecordKind::Reversal
        } else {
            RecordKind::Purchase
        },
        status: RecordStatus::NotWritten,
        online: card.is_multiple_of(2),
        card_type: CardType::Mf1,
        card_no: CardNo::new(card)?,
        card_counter: card,
        wallet_no: 1,
        balance_before: 10_000,
        amount: 100 + i64::from(card),
        fee: 5,
        balance_after: 9_895 - i64::from(card),
        time: NaiveDate::from_ymd_opt(2026, 3, 1 + card % 3)?.and_hms_opt(12, 0, 0)?,
        merchant_no: 7,
        original_serial: None,
        item_code: 0,
        tac: 0,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: journal_seed DIR")?);
    std::fs::create_dir_all(&dir)?;
    for (name, appends, cut) in [
        ("fresh", 3u32, None),
        ("wrapped", 60, None),
        ("torn", 20, Some(2000u64)),
    ] {
        let mut flash = MemFlash::new();
        let (mut journal, _) = Journal::open(&mut flash, FUZZ_CONFIG)?;
        if let Some(cut) = cut {
            flash.cut_power_after(cut);
        }
        for card in 1..=appends {
            let Some(r) = record(card) else { continue };
            let Ok(serial) = journal.append(&mut flash, r) else {
                break;
            };
            if journal
                .set_status(&mut flash, serial, RecordStatus::Written)
                .is_err()
            {
                break;
            }
            // Keep the first two pending so that wrapping carries them.
            if serial > 2 && journal.mark_uploaded(&mut flash, serial).is_err() {
                break;
            }
        }
        std::fs::write(dir.join(name), flash.image(Region::Journal))?;
    }
    Ok(())
}
