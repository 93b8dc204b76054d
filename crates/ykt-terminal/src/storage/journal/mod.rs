//! The transaction journal: the terminal's record of every transaction, on flash.
//!
//! Append-only: a record is appended and synced before the card is touched (R-P5.2), and
//! every later change (status, upload) is a new entry; nothing is overwritten in place.
//! The region is a ring of segments. When the head segment is full the next one is reused;
//! it is always free because, each time a segment is opened, the oldest segment is
//! reclaimed: its pending records are carried forward, then a reclaim marker is written.
//! Recovery replays the segments in sequence order and stops each at its first bad frame;
//! a torn tail of the head segment is zeroed so that stale bytes can never be read as
//! entries later.

mod entry;
mod layout;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate};
use ykt_proto::{CardNo, CardType, PhysicalId, Record, RecordKind, RecordStatus, TerminalSerial};

use super::flash::{Flash, FlashError, Region, read_padded, write_padded};
use super::frame::{self, OVERHEAD};
use super::mem_flash::MemFlash;
use super::stats::{Baseline, DayTotals, Stats, contribution};
use entry::Entry;
pub use layout::JournalConfig;
use layout::{HEADER_LEN, RESERVE, SegmentHeader};

const REGION: Region = Region::Journal;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The flow refuses new transactions until records are uploaded.
    #[error(
        "journal full: {pending} records not uploaded (limit {limit}); upload before new transactions"
    )]
    Full { pending: usize, limit: u32 },
    #[error("terminal serial numbers exhausted")]
    SerialsExhausted,
    #[error("no record with serial {0} in the journal")]
    UnknownSerial(TerminalSerial),
    #[error("journal geometry on flash ({found}) differs from the configuration ({expected})")]
    Layout { found: String, expected: String },
    #[error("corrupt journal: {0}")]
    Corrupt(String),
    #[error("invalid journal configuration: {0}")]
    Config(&'static str),
    #[error("an earlier storage error interrupted the journal; reopen it")]
    Poisoned,
    #[error(transparent)]
    Flash(#[from] FlashError),
}

/// What recovery found at power-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments_replayed: u32,
    pub records: usize,
    pub pending: usize,
    /// Bytes of a torn tail that were cleared.
    pub torn_bytes_cleared: u64,
    /// A reclaim interrupted by the power cut was completed.
    pub reclaim_completed: bool,
    /// True when the region was blank and a new journal was started.
    pub formatted: bool,
    pub next_serial: TerminalSerial,
}

#[derive(Clone, Debug)]
struct Held {
    record: Record,
    uploaded: bool,
    /// Sequence number of the segment holding the newest full copy of the record.
    home: u64,
}

/// The journal's in-memory index; the flash holds the truth. Every mutating call takes
/// the flash device, writes, syncs, and only then updates the index.
#[derive(Debug)]
pub struct Journal {
    cfg: JournalConfig,
    records: BTreeMap<TerminalSerial, Held>,
    pending: BTreeSet<TerminalSerial>,
    /// Sequence number of each segment with a valid header.
    seqs: Vec<Option<u64>>,
    head: u32,
    head_seq: u64,
    write_pos: usize,
    reclaimed_through: u64,
    baseline: Baseline,
    next_serial: TerminalSerial,
    poisoned: bool,
}

impl Journal {
    /// Recovers the journal from flash (or starts one on blank flash).
    pub fn open<F: Flash + ?Sized>(
        flash: &mut F,
        cfg: JournalConfig,
    ) -> Result<(Journal, RecoveryReport), JournalError> {
        cfg.validate().map_err(JournalError::Config)?;
        let seg = cfg.segment_size as usize;
        let mut journal = Journal {
            cfg,
            records: BTreeMap::new(),
            pending: BTreeSet::new(),
            seqs: vec![None; cfg.segments as usize],
            head: 0,
            head_seq: 0,
            write_pos: HEADER_LEN,
            reclaimed_through: 0,
            baseline: Baseline::default(),
            next_serial: 1,
            poisoned: false,
        };
        let mut report = RecoveryReport::default();
        let mut header = [0u8; HEADER_LEN];
        for index in 0..cfg.segments {
            read_padded(flash, REGION, index as u64 * seg as u64, &mut header)?;
            let Some(h) = SegmentHeader::decode(&header) else {
                continue;
            };
            if h.segment_size != cfg.segment_size || h.segments != cfg.segments {
                return Err(JournalError::Layout {
                    found: format!("{} segments of {} bytes", h.segments, h.segment_size),
                    expected: format!("{} segments of {} bytes", cfg.segments, cfg.segment_size),
                });
            }
            if h.index != index || h.seq == 0 || h.seq == u64::MAX {
                return Err(JournalError::Corrupt(format!(
                    "segment {index} carries header of segment {} seq {}",
                    h.index, h.seq
                )));
            }
            journal.seqs[index as usize] = Some(h.seq);
            journal.next_serial = journal.next_serial.max(h.next_serial);
        }
        let mut order: Vec<(u64, u32)> = journal
            .seqs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (s, i as u32)))
            .collect();
        order.sort_unstable();
        if order.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(JournalError::Corrupt(
                "two segments share a sequence number".into(),
            ));
        }
        let Some(&(head_seq, head)) = order.last() else {
            // Blank, or a first header torn while formatting: start afresh. Anything else
            // would restart serial numbers over records that may exist: refuse.
            if journal.has_data_beyond_first_header(flash)? {
                return Err(JournalError::Corrupt(
                    "no valid segment header in a written journal".into(),
                ));
            }
            journal.start_segment(flash, 0, 1)?;
            report.formatted = true;
            report.next_serial = journal.next_serial;
            return Ok((journal, report));
        };
        let mut buf = vec![0u8; seg];
        let mut end = HEADER_LEN;
        for &(seq, index) in &order {
            read_padded(flash, REGION, index as u64 * seg as u64, &mut buf)?;
            end = HEADER_LEN;
            while let Some((payload, next)) = frame::decode(seq, &buf, end) {
                let entry = Entry::decode(payload).map_err(|e| {
                    JournalError::Corrupt(format!("segment {index}, offset {end}: {e}"))
                })?;
                journal.replay(entry, seq);
                end = next;
            }
        }
        report.segments_replayed = order.len() as u32;
        journal.head = head;
        journal.head_seq = head_seq;
        journal.write_pos = end;
        // `buf` holds the head segment: clear anything written after its last good frame.
        if let Some(last) = buf[end..].iter().rposition(|&b| b != 0) {
            let offset = head as u64 * seg as u64 + end as u64;
            flash.write(REGION, offset, &vec![0u8; last + 1])?;
            flash.sync(REGION)?;
            report.torn_bytes_cleared = last as u64 + 1;
        }
        let victim = (head + 1) % cfg.segments;
        if let Some(v) =
            journal.seqs[victim as usize].filter(|&v| v > journal.reclaimed_through && v < head_seq)
        {
            journal.reclaim(flash, v)?;
            report.reclaim_completed = true;
        }
        report.records = journal.records.len();
        report.pending = journal.pending.len();
        report.next_serial = journal.next_serial;
        Ok((journal, report))
    }

    fn has_data_beyond_first_header<F: Flash + ?Sized>(
        &self,
        flash: &mut F,
    ) -> Result<bool, JournalError> {
        let size = flash.size(REGION)?.min(self.cfg.total_size());
        let mut chunk = vec![0u8; self.cfg.segment_size as usize];
        let mut offset = HEADER_LEN as u64;
        while offset < size {
            let len = chunk.len().min((size - offset) as usize);
            flash.read(REGION, offset, &mut chunk[..len])?;
            if chunk[..len].iter().any(|&b| b != 0) {
                return Ok(true);
            }
            offset += len as u64;
        }
        Ok(false)
    }

    fn replay(&mut self, entry: Entry, seq: u64) {
        match entry {
            Entry::Appended(record) | Entry::Carried(record) => {
                let serial = record.serial;
                self.next_serial = self.next_serial.max(serial.saturating_add(1));
                self.pending.insert(serial);
                self.records.insert(
                    serial,
                    Held {
                        record,
                        uploaded: false,
                        home: seq,
                    },
                );
            }
            Entry::StatusChanged { serial, status } => {
                if let Some(held) = self.records.get_mut(&serial) {
                    held.record.status = status;
                }
            }
            Entry::Proven {
                serial,
                status,
                tac,
            } => {
                if let Some(held) = self.records.get_mut(&serial) {
                    held.record.status = status;
                    held.record.tac = tac;
                }
            }
            Entry::Uploaded { serial } => {
                if let Some(held) = self.records.get_mut(&serial) {
                    held.uploaded = true;
                    self.pending.remove(&serial);
                }
            }
            Entry::Reclaimed {
                seq: victim,
                baseline,
            } => {
                self.reclaimed_through = self.reclaimed_through.max(victim);
                self.baseline = baseline;
                self.drop_homed_through(victim);
            }
        }
    }

    fn drop_homed_through(&mut self, victim: u64) {
        let pending = &mut self.pending;
        self.records.retain(|serial, held| {
            let keep = held.home > victim;
            if !keep {
                pending.remove(serial);
            }
            keep
        });
    }

    /// Appends a new record and syncs it; the record gets the next serial number, which is
    /// returned. Only after this returns may the card be written (R-P5.2, R-P5.6).
    pub fn append<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        mut record: Record,
    ) -> Result<TerminalSerial, JournalError> {
        self.check_usable()?;
        if self.pending.len() >= self.cfg.max_pending as usize {
            return Err(self.full());
        }
        let serial = self.next_serial;
        if serial == TerminalSerial::MAX {
            return Err(JournalError::SerialsExhausted);
        }
        record.serial = serial;
        let entry = Entry::Appended(record);
        self.write_entry(flash, &entry, true)?;
        self.sync(flash)?;
        let Entry::Appended(record) = entry else {
            unreachable!("built above")
        };
        self.records.insert(
            serial,
            Held {
                record,
                uploaded: false,
                home: self.head_seq,
            },
        );
        self.pending.insert(serial);
        self.next_serial = serial + 1;
        Ok(serial)
    }

    /// Records a new status for a record (e.g. 写卡成功 after the card write), synced.
    pub fn set_status<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        serial: TerminalSerial,
        status: RecordStatus,
    ) -> Result<(), JournalError> {
        self.check_usable()?;
        let held = self
            .records
            .get(&serial)
            .ok_or(JournalError::UnknownSerial(serial))?;
        if held.record.status == status {
            return Ok(());
        }
        self.write_entry(flash, &Entry::StatusChanged { serial, status }, false)?;
        self.sync(flash)?;
        if let Some(held) = self.records.get_mut(&serial) {
            held.record.status = status;
        }
        Ok(())
    }

    /// Records a new status together with the card's TAC (CPU purchases), synced.
    pub fn set_status_tac<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        serial: TerminalSerial,
        status: RecordStatus,
        tac: u32,
    ) -> Result<(), JournalError> {
        self.check_usable()?;
        let held = self
            .records
            .get(&serial)
            .ok_or(JournalError::UnknownSerial(serial))?;
        if held.record.status == status && held.record.tac == tac {
            return Ok(());
        }
        let entry = Entry::Proven {
            serial,
            status,
            tac,
        };
        self.write_entry(flash, &entry, false)?;
        self.sync(flash)?;
        if let Some(held) = self.records.get_mut(&serial) {
            held.record.status = status;
            held.record.tac = tac;
        }
        Ok(())
    }

    /// Records that the host acknowledged the record, synced. Idempotent, also for a record
    /// whose space was already reused.
    pub fn mark_uploaded<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        serial: TerminalSerial,
    ) -> Result<(), JournalError> {
        self.check_usable()?;
        let Some(held) = self.records.get(&serial) else {
            // Only uploaded records leave the journal: an earlier serial that is gone was
            // acknowledged before.
            return if serial < self.next_serial {
                Ok(())
            } else {
                Err(JournalError::UnknownSerial(serial))
            };
        };
        if held.uploaded {
            return Ok(());
        }
        self.write_entry(flash, &Entry::Uploaded { serial }, false)?;
        self.sync(flash)?;
        if let Some(held) = self.records.get_mut(&serial) {
            held.uploaded = true;
        }
        self.pending.remove(&serial);
        Ok(())
    }

    /// Records not yet uploaded, oldest first (R-P5.9).
    pub fn pending(&self) -> impl Iterator<Item = &Record> + '_ {
        self.pending
            .iter()
            .filter_map(|s| self.records.get(s).map(|h| &h.record))
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// A record still held in the journal (uploaded records stay until their space is reused).
    pub fn get(&self, serial: TerminalSerial) -> Option<&Record> {
        self.records.get(&serial).map(|h| &h.record)
    }

    pub fn is_uploaded(&self, serial: TerminalSerial) -> Option<bool> {
        self.records.get(&serial).map(|h| h.uploaded)
    }

    /// Every record held, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records.values().map(|h| &h.record)
    }

    /// The serial the next `append` will assign; never lower than any serial ever handed out.
    pub fn next_serial(&self) -> TerminalSerial {
        self.next_serial
    }

    pub fn config(&self) -> JournalConfig {
        self.cfg
    }

    /// Statistics for `today` and the calendar day before it (R-F4.22).
    pub fn stats(&self, today: NaiveDate) -> Stats {
        let yesterday = today.pred_opt();
        let mut stats = Stats {
            today: self.baseline.totals(today),
            yesterday: DayTotals::default(),
        };
        if let Some(y) = yesterday {
            stats.yesterday = self.baseline.totals(y);
        }
        for held in self.records.values() {
            let Some((is_reversal, amount)) = contribution(&held.record) else {
                continue;
            };
            let date = held.record.time.date();
            if date == today {
                stats.today.add(is_reversal, amount);
            } else if Some(date) == yesterday {
                stats.yesterday.add(is_reversal, amount);
            }
        }
        stats
    }

    fn full(&self) -> JournalError {
        JournalError::Full {
            pending: self.pending.len(),
            limit: self.cfg.max_pending,
        }
    }

    fn check_usable(&self) -> Result<(), JournalError> {
        if self.poisoned {
            Err(JournalError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn guard<T>(&mut self, result: Result<T, FlashError>) -> Result<T, JournalError> {
        if result.is_err() {
            self.poisoned = true;
        }
        Ok(result?)
    }

    fn sync<F: Flash + ?Sized>(&mut self, flash: &mut F) -> Result<(), JournalError> {
        let result = flash.sync(REGION);
        self.guard(result)
    }

    fn segment_offset(&self, index: u32) -> u64 {
        index as u64 * self.cfg.segment_size as u64
    }

    fn room(&self, is_record: bool) -> usize {
        let reserve = if is_record { RESERVE } else { 0 };
        (self.cfg.segment_size as usize).saturating_sub(self.write_pos + reserve)
    }

    /// Writes one entry into the head segment (not synced), opening segments as needed.
    fn write_entry<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        entry: &Entry,
        is_record: bool,
    ) -> Result<(), JournalError> {
        let payload = entry.encode();
        let need = payload.len() + OVERHEAD;
        let mut advances = 0;
        while self.room(is_record) < need {
            if advances == self.cfg.segments {
                return Err(self.full());
            }
            self.advance(flash)?;
            advances += 1;
        }
        self.write_in_head(flash, &payload)
    }

    fn write_in_head<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        payload: &[u8],
    ) -> Result<(), JournalError> {
        let mut bytes = Vec::with_capacity(payload.len() + OVERHEAD);
        frame::encode(self.head_seq, payload, &mut bytes);
        if bytes.len() > self.room(false) {
            return Err(JournalError::Corrupt(
                "no room left in the head segment".into(),
            ));
        }
        let offset = self.segment_offset(self.head) + self.write_pos as u64;
        // Padded: the region may end before `write_pos` (blank bytes need not exist).
        let result = write_padded(flash, REGION, offset, &bytes);
        self.guard(result)?;
        self.write_pos += bytes.len();
        Ok(())
    }

    /// Writes and syncs a fresh segment header; the segment becomes the head.
    fn start_segment<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        index: u32,
        seq: u64,
    ) -> Result<(), JournalError> {
        let header = SegmentHeader {
            index,
            seq,
            next_serial: self.next_serial,
            segment_size: self.cfg.segment_size,
            segments: self.cfg.segments,
        };
        let result = write_padded(flash, REGION, self.segment_offset(index), &header.encode());
        self.guard(result)?;
        self.sync(flash)?;
        self.seqs[index as usize] = Some(seq);
        self.head = index;
        self.head_seq = seq;
        self.write_pos = HEADER_LEN;
        Ok(())
    }

    /// Opens the next segment (free by invariant) and reclaims the one after it.
    fn advance<F: Flash + ?Sized>(&mut self, flash: &mut F) -> Result<(), JournalError> {
        let next = (self.head + 1) % self.cfg.segments;
        let seq = self
            .head_seq
            .checked_add(1)
            .ok_or_else(|| JournalError::Corrupt("segment sequence overflow".into()))?;
        debug_assert!(
            self.seqs[next as usize].is_none_or(|s| s <= self.reclaimed_through),
            "reusing a live segment"
        );
        self.start_segment(flash, next, seq)?;
        let victim = (next + 1) % self.cfg.segments;
        if let Some(v) =
            self.seqs[victim as usize].filter(|&v| v > self.reclaimed_through && v < seq)
        {
            self.reclaim(flash, v)?;
        }
        Ok(())
    }

    /// Carries the pending records of segment `victim` (and older) into the head, then
    /// writes the reclaim marker with the statistics of the records that leave.
    fn reclaim<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        victim: u64,
    ) -> Result<(), JournalError> {
        let carry: Vec<TerminalSerial> = self
            .records
            .iter()
            .filter(|(_, h)| h.home <= victim && !h.uploaded)
            .map(|(s, _)| *s)
            .collect();
        for serial in &carry {
            let Some(held) = self.records.get(serial) else {
                continue;
            };
            let payload = Entry::Carried(held.record.clone()).encode();
            self.write_in_head(flash, &payload)?;
        }
        let mut baseline = self.baseline;
        for held in self
            .records
            .values()
            .filter(|h| h.home <= victim && h.uploaded)
        {
            if let Some((is_reversal, amount)) = contribution(&held.record) {
                baseline.add(held.record.time.date(), is_reversal, amount);
            }
        }
        self.write_in_head(
            flash,
            &Entry::Reclaimed {
                seq: victim,
                baseline,
            }
            .encode(),
        )?;
        self.sync(flash)?;
        for serial in &carry {
            if let Some(held) = self.records.get_mut(serial) {
                held.home = self.head_seq;
            }
        }
        self.drop_homed_through(victim);
        self.reclaimed_through = victim;
        self.baseline = baseline;
        Ok(())
    }
}

/// The geometry `fuzz_journal_image` opens images with: small, so fuzzers reach every path.
pub const FUZZ_CONFIG: JournalConfig = JournalConfig::with_segment_size(1024, 8);

/// Opens an arbitrary journal image; when it opens, appends, changes and uploads a record
/// and reopens, checking that serials never go back. Must never panic (fuzz target).
pub fn fuzz_journal_image(data: &[u8]) {
    let data = &data[..data.len().min(FUZZ_CONFIG.total_size() as usize)];
    let mut flash = MemFlash::with_image(REGION, data);
    let Ok((mut journal, _)) = Journal::open(&mut flash, FUZZ_CONFIG) else {
        return;
    };
    let Some(card_no) = CardNo::new(1) else {
        return;
    };
    let record = Record {
        device: PhysicalId([1, 2, 3, 4]),
        serial: 0,
        kind: RecordKind::Purchase,
        status: RecordStatus::NotWritten,
        online: false,
        card_type: CardType::Mf1,
        card_no,
        card_counter: 1,
        wallet_no: 1,
        balance_before: 1000,
        amount: 100,
        fee: 0,
        balance_after: 900,
        time: DateTime::UNIX_EPOCH.naive_utc(),
        merchant_no: 1,
        original_serial: None,
        item_code: 0,
        tac: 0,
    };
    let before = journal.next_serial();
    let appended = journal.append(&mut flash, record);
    if let Ok(serial) = appended {
        assert!(serial >= before, "serial went back");
        let _ = journal.set_status(&mut flash, serial, RecordStatus::Written);
    }
    let oldest = journal.pending().next().map(|r| r.serial);
    if let Some(oldest) = oldest {
        let _ = journal.mark_uploaded(&mut flash, oldest);
    }
    match Journal::open(&mut flash, FUZZ_CONFIG) {
        Ok((reopened, _)) => {
            assert!(
                reopened.next_serial() >= journal.next_serial(),
                "serial went back after reopen"
            );
            if let Ok(serial) = appended {
                assert!(reopened.get(serial).is_some(), "a synced record was lost");
            }
        }
        Err(e) => panic!("a journal that opened and was written by us fails to reopen: {e}"),
    }
}
