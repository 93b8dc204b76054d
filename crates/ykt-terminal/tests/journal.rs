//! The journal: append-only records, recovery, bounded size, serials (R-P5.2, R-P5.6, R-P5.9).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{at, day, purchase, reversal};
use proptest::prelude::*;
use ykt_proto::RecordStatus;
use ykt_terminal::{Flash, Journal, JournalConfig, JournalError, MemFlash, Region};

/// Small segments so that a few dozen records exercise segment reuse and carrying.
const SMALL: JournalConfig = JournalConfig::with_segment_size(1024, 8);

fn open(flash: &mut MemFlash, cfg: JournalConfig) -> Journal {
    Journal::open(flash, cfg).unwrap().0
}

// R-P5.2 / R-P5.6: append returns only after the record is synced: a power cut right after
// it (all unsynced writes dropped, whatever the seed) keeps the record.
#[test]
fn an_appended_record_survives_an_immediate_power_cut() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    let serial = journal
        .append(&mut flash, purchase(5, 300, at(1, 12)))
        .unwrap();
    assert_eq!(serial, 1);
    flash.cut_power_after(0);
    for seed in 0..8 {
        let mut after = flash.power_cycle(seed);
        let (reopened, report) = Journal::open(&mut after, SMALL).unwrap();
        assert_eq!(reopened.get(serial).unwrap().amount, 300);
        assert_eq!(report.pending, 1);
        assert_eq!(reopened.next_serial(), 2);
    }
}

// R-P5.9: pending records come oldest first; uploaded ones leave the pending list.
// R-P5.6: status changes are appended and survive a reopen.
#[test]
fn pending_records_oldest_first_and_status_changes_persist() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    let serials: Vec<u32> = (0..5)
        .map(|i| {
            journal
                .append(&mut flash, purchase(10 + i, 100, at(1, 9)))
                .unwrap()
        })
        .collect();
    assert_eq!(serials, [1, 2, 3, 4, 5]);
    journal
        .set_status(&mut flash, 2, RecordStatus::Written)
        .unwrap();
    journal.mark_uploaded(&mut flash, 1).unwrap();
    journal.mark_uploaded(&mut flash, 3).unwrap();
    journal.mark_uploaded(&mut flash, 3).unwrap(); // idempotent
    let pending: Vec<u32> = journal.pending().map(|r| r.serial).collect();
    assert_eq!(pending, [2, 4, 5]);
    let reopened = open(&mut flash, SMALL);
    assert_eq!(
        reopened.pending().map(|r| r.serial).collect::<Vec<_>>(),
        [2, 4, 5]
    );
    assert_eq!(reopened.get(2).unwrap().status, RecordStatus::Written);
    assert_eq!(reopened.is_uploaded(3), Some(true));
    assert_eq!(
        journal.set_status(&mut flash, 99, RecordStatus::Written),
        Err(JournalError::UnknownSerial(99))
    );
}

// R-P5.6: when the journal is full of pending records a new transaction is refused with a
// clear error, while the records already there can still change status and be uploaded.
#[test]
fn full_of_pending_refuses_new_records_but_not_status_changes() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    for i in 0..8 {
        journal
            .append(&mut flash, purchase(1 + i, 100, at(1, 9)))
            .unwrap();
    }
    let err = journal
        .append(&mut flash, purchase(99, 100, at(1, 9)))
        .unwrap_err();
    assert_eq!(
        err,
        JournalError::Full {
            pending: 8,
            limit: 8
        }
    );
    assert!(err.to_string().contains("journal full"));
    for serial in 1..=8 {
        journal
            .set_status(&mut flash, serial, RecordStatus::Written)
            .unwrap();
    }
    journal.mark_uploaded(&mut flash, 1).unwrap();
    assert_eq!(
        journal
            .append(&mut flash, purchase(99, 100, at(1, 9)))
            .unwrap(),
        9
    );
}

// Bounded size with safe reuse: thousands of records through a small ring, with a few
// records left pending for a long time (carried forward), serials strictly increasing.
#[test]
fn space_of_uploaded_records_is_reused_and_pending_ones_are_kept() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    let mut last = 0;
    let stuck = journal
        .append(&mut flash, purchase(77, 500, at(1, 8)))
        .unwrap();
    for i in 0..2_000u32 {
        let serial = journal
            .append(&mut flash, purchase(1 + i % 1000, 100, at(1, 9)))
            .unwrap();
        assert!(serial > last);
        last = serial;
        journal
            .set_status(&mut flash, serial, RecordStatus::Written)
            .unwrap();
        if i % 3 != 0 {
            journal.mark_uploaded(&mut flash, serial).unwrap();
        } else {
            let oldest_other = journal
                .pending()
                .map(|r| r.serial)
                .find(|&s| s != stuck)
                .unwrap();
            journal.mark_uploaded(&mut flash, oldest_other).unwrap();
        }
    }
    assert!(flash.image(Region::Journal).len() as u64 <= SMALL.total_size());
    let (reopened, _) = Journal::open(&mut flash, SMALL).unwrap();
    assert_eq!(reopened.get(stuck).unwrap().card_no.get(), 77);
    assert_eq!(reopened.pending().next().unwrap().serial, stuck);
    assert_eq!(reopened.next_serial(), last + 1);
    assert_eq!(reopened.pending_count(), journal.pending_count());
}

// The default journal holds at least 10,000 pending records (the offline buffer).
#[test]
fn default_journal_holds_ten_thousand_pending_records() {
    let cfg = JournalConfig::default();
    assert_eq!(cfg.max_pending, 10_000);
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, cfg);
    for i in 0..10_000u32 {
        journal
            .append(&mut flash, purchase(1 + i, 100, at(2, 10)))
            .unwrap();
    }
    assert!(matches!(
        journal.append(&mut flash, purchase(1, 1, at(2, 10))),
        Err(JournalError::Full { .. })
    ));
    let reopened = open(&mut flash, cfg);
    assert_eq!(reopened.pending_count(), 10_000);
    assert_eq!(reopened.pending().next().unwrap().serial, 1);
}

// Serial numbers never restart: a written journal whose headers are all destroyed is an
// error, not a blank journal.
#[test]
fn a_journal_without_any_valid_header_is_not_reformatted() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    journal
        .append(&mut flash, purchase(1, 1, at(1, 1)))
        .unwrap();
    let mut image = flash.image(Region::Journal).to_vec();
    image[0] ^= 0xFF;
    let mut damaged = MemFlash::with_image(Region::Journal, &image);
    assert!(matches!(
        Journal::open(&mut damaged, SMALL),
        Err(JournalError::Corrupt(_))
    ));
}

#[test]
fn a_journal_with_another_geometry_is_refused_not_misread() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    journal
        .append(&mut flash, purchase(1, 1, at(1, 1)))
        .unwrap();
    let other = JournalConfig::with_segment_size(2048, 8);
    assert!(matches!(
        Journal::open(&mut flash, other),
        Err(JournalError::Layout { .. })
    ));
}

// R-F4.22: successful debits and reversals, today and yesterday, across day changes
// (a skipped day makes yesterday zero), reopen, and reuse of the records' space.
#[test]
fn statistics_today_and_yesterday() {
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    let s1 = journal
        .append(&mut flash, purchase(1, 1000, at(10, 11)))
        .unwrap();
    journal
        .set_status(&mut flash, s1, RecordStatus::Written)
        .unwrap();
    let s2 = journal
        .append(&mut flash, purchase(2, 500, at(11, 11)))
        .unwrap();
    journal
        .set_status(&mut flash, s2, RecordStatus::Success)
        .unwrap();
    let pulled = journal
        .append(&mut flash, purchase(3, 700, at(11, 12)))
        .unwrap();
    journal
        .set_status(&mut flash, pulled, RecordStatus::CardPulled)
        .unwrap();
    let rev = journal
        .append(&mut flash, reversal(2, 500, at(11, 13), s2))
        .unwrap();
    journal
        .set_status(&mut flash, rev, RecordStatus::Written)
        .unwrap();

    let stats = journal.stats(day(11));
    assert_eq!((stats.today.debits, stats.today.debit_amount), (1, 550));
    assert_eq!(
        (stats.today.reversals, stats.today.reversal_amount),
        (1, 500)
    );
    assert_eq!(
        (stats.yesterday.debits, stats.yesterday.debit_amount),
        (1, 1100)
    );
    // Next day: 11th is yesterday; two days later: nothing.
    assert_eq!(journal.stats(day(12)).yesterday, stats.today);
    assert_eq!(journal.stats(day(12)).today.debits, 0);
    assert_eq!(journal.stats(day(13)), Default::default());

    // Push the records out of the ring: the totals stay.
    for serial in [s1, s2, pulled, rev] {
        journal.mark_uploaded(&mut flash, serial).unwrap();
    }
    for i in 0..200 {
        let s = journal
            .append(&mut flash, purchase(9, 1, at(12, 9)))
            .unwrap();
        journal.mark_uploaded(&mut flash, s).unwrap();
        let _ = i;
    }
    assert!(
        journal.get(s1).is_none(),
        "the space of uploaded records was reused"
    );
    let reopened = open(&mut flash, SMALL);
    assert_eq!(reopened.stats(day(11)), stats);
    assert_eq!(reopened.stats(day(12)).yesterday, stats.today);
    assert_eq!(
        reopened.stats(day(12)).today.debits,
        0,
        "unwritten records do not count"
    );
}

/// One step of a scripted or generated workload.
#[derive(Clone, Debug)]
enum Op {
    Append(u32, i64),
    Written(usize),
    Upload(usize),
    UploadOldest,
    WrittenNewest,
    UploadNewest,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..1000, 1i64..10_000).prop_map(|(c, a)| Op::Append(c, a)),
        2 => any::<usize>().prop_map(Op::Written),
        1 => any::<usize>().prop_map(Op::Upload),
        3 => Just(Op::UploadOldest),
        1 => Just(Op::UploadNewest),
    ]
}

/// What the test knows was synced: serial → (status, uploaded).
type Model = BTreeMap<u32, (RecordStatus, bool)>;

/// Runs `op`; on success updates the model. Returns the op's result and the state the
/// model would have if the op landed (for ops that fail at the power cut).
fn run(
    journal: &mut Journal,
    flash: &mut MemFlash,
    model: &mut Model,
    op: &Op,
) -> Result<(), JournalError> {
    match *op {
        Op::Append(card, amount) => {
            match journal.append(flash, purchase(card, amount, at(5, 12))) {
                Ok(serial) => {
                    assert!(model.keys().all(|&s| s < serial), "serial {serial} reused");
                    model.insert(serial, (RecordStatus::NotWritten, false));
                    Ok(())
                }
                Err(JournalError::Full { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Op::Written(i) | Op::Upload(i) if model.is_empty() => {
            let _ = i;
            Ok(())
        }
        Op::Written(i) => {
            let pending: Vec<u32> = model
                .iter()
                .filter(|(_, v)| !v.1)
                .map(|(s, _)| *s)
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            let serial = pending[i % pending.len()];
            journal.set_status(flash, serial, RecordStatus::Written)?;
            model.get_mut(&serial).unwrap().0 = RecordStatus::Written;
            Ok(())
        }
        Op::Upload(i) => {
            let serial = *model.keys().nth(i % model.len()).unwrap();
            journal.mark_uploaded(flash, serial)?;
            model.get_mut(&serial).unwrap().1 = true;
            Ok(())
        }
        Op::WrittenNewest => {
            let Some(serial) = model.iter().rev().find(|(_, v)| !v.1).map(|(s, _)| *s) else {
                return Ok(());
            };
            journal.set_status(flash, serial, RecordStatus::Written)?;
            model.get_mut(&serial).unwrap().0 = RecordStatus::Written;
            Ok(())
        }
        Op::UploadNewest => {
            let Some(&serial) = model.keys().last() else {
                return Ok(());
            };
            journal.mark_uploaded(flash, serial)?;
            model.get_mut(&serial).unwrap().1 = true;
            Ok(())
        }
        Op::UploadOldest => {
            let Some(serial) = journal.pending().next().map(|r| r.serial) else {
                return Ok(());
            };
            journal.mark_uploaded(flash, serial)?;
            model.get_mut(&serial).unwrap().1 = true;
            Ok(())
        }
    }
}

/// Every pending record of the model is in the journal with its synced state (or the
/// state of the one operation cut by the power loss); serials never go back.
fn check(journal: &Journal, model: &Model, cut: Option<&Op>) {
    for (&serial, &(status, uploaded)) in model {
        if uploaded {
            if let Some(r) = journal.get(serial) {
                assert_eq!(journal.is_uploaded(serial), Some(true), "serial {serial}");
                assert!(
                    r.status == status || matches!(cut, Some(Op::Written(_) | Op::WrittenNewest))
                );
            }
            continue;
        }
        let record = journal
            .get(serial)
            .unwrap_or_else(|| panic!("pending record {serial} lost"));
        let may_have_landed = cut.is_some_and(|op| !matches!(op, Op::Append(..)));
        assert!(
            record.status == status || may_have_landed,
            "serial {serial}: {:?} vs {status:?}",
            record.status
        );
        assert!(journal.is_uploaded(serial) == Some(false) || may_have_landed);
    }
    if let Some(&max) = model.keys().last() {
        assert!(journal.next_serial() > max);
    }
}

fn script() -> Vec<Op> {
    // Serials 1–3 stay pending throughout, so every reuse of their segments carries them.
    let mut ops = Vec::new();
    for i in 0..100u32 {
        ops.push(Op::Append(1 + i, 100 + i as i64));
        if i % 5 != 4 {
            ops.push(Op::WrittenNewest);
        }
        if i >= 3 {
            ops.push(Op::UploadNewest);
        }
    }
    ops
}

// R-P5.2, R-P5.9: cut power after every possible number of written bytes of a script that
// fills, reuses and carries segments; recovery never panics, keeps every synced entry and
// never reuses a serial.
#[test]
fn power_cut_after_every_byte() {
    let ops = script();
    let mut flash = MemFlash::new();
    let mut journal = open(&mut flash, SMALL);
    let mut model = Model::new();
    for op in &ops {
        run(&mut journal, &mut flash, &mut model, op).unwrap();
    }
    let total = flash.bytes_written();
    assert!(
        total > 2 * SMALL.total_size(),
        "the script must wrap the ring"
    );
    let (mut reclaims_completed, mut tails_cleared) = (0, 0);
    for cut_at in 0..total {
        let mut flash = MemFlash::new();
        flash.cut_power_after(cut_at);
        let mut model = Model::new();
        let mut cut = None;
        if let Ok((mut journal, _)) = Journal::open(&mut flash, SMALL) {
            for op in &ops {
                if let Err(e) = run(&mut journal, &mut flash, &mut model, op) {
                    assert_eq!(e, JournalError::Flash(ykt_terminal::FlashError::PowerLost));
                    cut = Some(op.clone());
                    break;
                }
            }
        }
        let mut after = flash.power_cycle(cut_at);
        let (mut journal, report) = Journal::open(&mut after, SMALL).unwrap();
        reclaims_completed += usize::from(report.reclaim_completed);
        tails_cleared += usize::from(report.torn_bytes_cleared > 0);
        check(&journal, &model, cut.as_ref());
        let serial = journal
            .append(&mut after, purchase(1, 1, at(6, 6)))
            .unwrap();
        assert!(model.keys().all(|&s| s < serial));
        let (reopened, _) = Journal::open(&mut after, SMALL).unwrap();
        assert!(reopened.get(serial).is_some());
    }
    assert!(
        reclaims_completed > 0 && tails_cleared > 0,
        "{reclaims_completed} {tails_cleared}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // R-P5.9: random workloads with reopen (clean or after a power cut at a random byte)
    // agree with a model of what was synced.
    #[test]
    fn random_workloads_match_the_model(ops in prop::collection::vec(op_strategy(), 1..250), cut in any::<Option<u16>>(), seed: u64) {
        let mut flash = MemFlash::new();
        let (mut journal, _) = Journal::open(&mut flash, SMALL).unwrap();
        let mut model = Model::new();
        if let Some(cut) = cut {
            flash.cut_power_after(u64::from(cut));
        }
        let mut cut_op = None;
        for op in &ops {
            if run(&mut journal, &mut flash, &mut model, op).is_err() {
                cut_op = Some(op.clone());
                break;
            }
        }
        if cut_op.is_none() {
            check(&journal, &model, None);
            prop_assert!(journal.pending_count() <= SMALL.max_pending as usize);
        }
        let mut after = flash.power_cycle(seed);
        let (reopened, _) = Journal::open(&mut after, SMALL).unwrap();
        check(&reopened, &model, cut_op.as_ref());
    }

    // A corrupted journal image (flipped bytes, truncation) gives an error or a clean
    // truncation, never a panic.
    #[test]
    fn corrupted_images_never_panic(
        ops in prop::collection::vec(op_strategy(), 1..120),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        keep in any::<prop::sample::Index>(),
    ) {
        let mut flash = MemFlash::new();
        let (mut journal, _) = Journal::open(&mut flash, ykt_terminal::FUZZ_CONFIG).unwrap();
        let mut model = Model::new();
        for op in &ops {
            run(&mut journal, &mut flash, &mut model, op).unwrap();
        }
        let mut image = flash.image(Region::Journal).to_vec();
        for (at, xor) in &flips {
            let i = at.index(image.len());
            image[i] ^= xor;
        }
        image.truncate(keep.index(image.len() + 1));
        ykt_terminal::fuzz_journal_image(&image);
        let mut damaged = MemFlash::with_image(Region::Journal, &image);
        if let Ok((mut j, _)) = Journal::open(&mut damaged, ykt_terminal::FUZZ_CONFIG) {
            let _ = j.append(&mut damaged, purchase(1, 1, at(1, 1)));
            prop_assert!(damaged.size(Region::Journal).unwrap() <= ykt_terminal::FUZZ_CONFIG.total_size());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..6000)) {
        ykt_terminal::fuzz_journal_image(&data);
    }
}
