//! The entry point of the fuzz target `flash_stores` (`fuzz/`), public so that property tests
//! run the same code on stable Rust: the terminal's flash other than the journal (blacklist
//! with its delta log, parameters, state, A/B slots, statistics baseline). Whatever the flash
//! holds, opening gives an error or a clean fallback, never a panic, and never a blacklist
//! other than the one its intact frames describe.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use ykt_proto::CardNo;

use super::blacklist::{self, BlacklistChange, BlacklistError, BlacklistStore};
use super::codec::{Reader, Writer};
use super::flash::{Flash, FlashError, Region};
use super::frame;
use super::mem_flash::MemFlash;
use super::params::{self, ParamsError, ParamsStore};
use super::slots::SlotStore;
use super::state::{self, StateError, StateStore};
use super::stats::{BASELINE_LEN, Baseline};

/// The fuzz input as a stream of fields; past its end every field reads as zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }
    fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.0.len())
    }
}

/// Picks a store by the first byte and feeds it the rest (see each function).
pub fn flash_stores(data: &[u8]) {
    let mut input = Input(data);
    match input.u8() % 6 {
        0 => raw_image(&mut input),
        1 => blacklist_log(&mut input),
        2 => params_slots(&mut input),
        3 => state_slots(&mut input),
        4 => baseline(input.rest()),
        _ => delta(input.rest()),
    }
}

fn card(n: u32) -> Option<CardNo> {
    CardNo::new(n % CardNo::MAX + 1)
}

fn time(secs: u32) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(i64::from(secs), 0).map(|t| t.naive_utc())
}

/// Raw bytes as one region's image: each store opens it (or refuses it), opens the repaired
/// flash to the same value, and takes a write that a power cycle keeps.
fn raw_image(input: &mut Input<'_>) {
    let region = match input.u8() % 3 {
        0 => Region::Blacklist,
        1 => Region::Params,
        _ => Region::State,
    };
    let mut flash = MemFlash::with_image(region, input.rest());
    match region {
        Region::Blacklist => {
            if let Ok(store) = BlacklistStore::open(&mut flash) {
                let model = ListModel::of(&store);
                keeps_a_write(flash, store, model);
            }
        }
        Region::Params => {
            if let Ok(store) = ParamsStore::open(&mut flash) {
                params_rewritten(flash, store);
            }
        }
        _ => {
            if let Some(now) = time(1_800_000_000)
                && let Ok(store) = StateStore::open(&mut flash, 0, now)
            {
                state_rewritten(flash, store, now);
            }
        }
    }
}

/// What a blacklist must contain: its version, and the listed cards among those the input
/// touched (the rest of the bitmap stays as the base image had it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ListModel {
    version: u32,
    len: usize,
    touched: BTreeSet<CardNo>,
    listed: BTreeSet<CardNo>,
}

impl ListModel {
    fn of(store: &BlacklistStore) -> ListModel {
        ListModel {
            version: store.version(),
            len: store.len(),
            touched: BTreeSet::new(),
            listed: BTreeSet::new(),
        }
    }

    fn apply(&mut self, version: u32, changes: &[BlacklistChange]) {
        for c in changes {
            self.touched.insert(c.card);
            let was = self.listed.contains(&c.card);
            match (was, c.listed) {
                (false, true) => {
                    self.listed.insert(c.card);
                    self.len += 1;
                }
                (true, false) => {
                    self.listed.remove(&c.card);
                    self.len -= 1;
                }
                _ => {}
            }
        }
        self.version = version;
    }

    fn assert_matches(&self, store: &BlacklistStore) {
        assert_eq!(store.version(), self.version, "blacklist version");
        assert_eq!(store.len(), self.len, "blacklist size");
        for c in &self.touched {
            assert_eq!(
                store.contains(*c),
                self.listed.contains(c),
                "blacklist entry {c:?}"
            );
        }
    }
}

/// A blacklist log of generation `g` whose frames carry fuzzed payloads (valid CRCs, so the
/// delta decoder sees them), optionally after a stale header or a garbage tail, over an
/// empty base. Opening must give exactly the list its intact, chained deltas describe, or
/// `Corrupt` when a checksummed frame does not decode.
fn blacklist_log(input: &mut Input<'_>) {
    let shape = input.u8();
    let mut flash = MemFlash::new();
    let Ok(mut store) = BlacklistStore::open(&mut flash) else {
        return;
    };
    // A base image of generation 1 with some cards, as a compaction writes it.
    let mut model = ListModel::of(&store);
    if shape & 1 == 1 {
        store.begin_bulk(input.u32());
        let cards: Vec<CardNo> = (0..input.u8() % 8)
            .filter_map(|_| card(input.u32()))
            .collect();
        if store.bulk_page_numbers(&cards).is_err() || store.finish_bulk(&mut flash).is_err() {
            return;
        }
        model = ListModel::of(&store);
        for c in cards {
            model.touched.insert(c);
            model.listed.insert(c);
        }
    }
    let generation = store.generation();
    let seed = if shape & 2 == 2 {
        generation.wrapping_add(1) // a header of another generation: the log is not replayed
    } else {
        generation
    };
    let mut log = blacklist::log_header(seed).to_vec();
    let mut expected = Some(model.clone());
    let mut replaying = seed == generation;
    for _ in 0..input.u8() % 16 {
        let len = usize::from(input.u16()) % 600;
        let payload = input.bytes(len);
        if payload.is_empty() || log.len() + payload.len() + 16 > blacklist::LOG_SIZE {
            break;
        }
        frame::encode(generation, payload, &mut log);
        if !replaying {
            continue;
        }
        match blacklist::decode_delta(payload) {
            Err(_) => {
                expected = None;
                replaying = false;
            }
            Ok(d) if d.from != model.version || d.to <= d.from => replaying = false,
            Ok(d) => {
                assert_eq!(
                    blacklist::encode_delta(d.from, d.to, &d.changes),
                    payload,
                    "the delta layout is canonical"
                );
                model.apply(d.to, &d.changes);
                expected = Some(model.clone());
            }
        }
    }
    if shape & 4 == 4 {
        log.extend_from_slice(input.bytes(64));
    }
    if flash.write(Region::Blacklist, 0, &log).is_err() || flash.sync(Region::Blacklist).is_err() {
        return;
    }
    let mut flash = flash.power_cycle(0);
    match (BlacklistStore::open(&mut flash), expected) {
        (Ok(store), Some(model)) => {
            model.assert_matches(&store);
            keeps_a_write(flash, store, model);
        }
        (Err(BlacklistError::Corrupt(_)), None) => {}
        (got, want) => panic!("blacklist opened as {got:?}, expected {want:?}"),
    }
}

/// An opened list reopens the same, and an update on it survives a power cycle.
fn keeps_a_write(mut flash: MemFlash, store: BlacklistStore, mut model: ListModel) {
    let mut again = flash.power_cycle(1);
    match BlacklistStore::open(&mut again) {
        Ok(reopened) => model.assert_matches(&reopened),
        Err(e) => panic!("a list that opened does not reopen: {e}"),
    }
    let (mut store, from) = (store, model.version);
    let Some(to) = from.checked_add(1) else {
        return;
    };
    let Some(c) = card(from) else { return };
    let change = BlacklistChange {
        card: c,
        listed: !store.contains(c),
    };
    if store
        .apply_incremental(&mut flash, from, to, &[change])
        .is_err()
    {
        return;
    }
    model.apply(to, &[change]);
    model.assert_matches(&store);
    let mut after = flash.power_cycle(2);
    match BlacklistStore::open(&mut after) {
        Ok(reopened) => model.assert_matches(&reopened),
        Err(e) => panic!("an applied update does not reopen: {e}"),
    }
}

/// A flash holding up to two slots of `slots` with fuzzed generations and payloads (valid
/// CRCs, so the payload decoders see them); `len` reads each payload's length.
fn forged_slots(
    input: &mut Input<'_>,
    slots: &SlotStore,
    len: fn(&mut Input<'_>) -> usize,
) -> Option<MemFlash> {
    let mut flash = MemFlash::new();
    for _ in 0..1 + input.u8() % 2 {
        let generation = input.u64();
        let n = len(input);
        slots.store(&mut flash, generation, input.bytes(n)).ok()?;
    }
    Some(flash.power_cycle(0))
}

/// Parameter slots (payloads up to 2 KiB).
fn params_slots(input: &mut Input<'_>) {
    let Some(mut flash) = forged_slots(input, &params::SLOTS, |i| usize::from(i.u16()) % 2048)
    else {
        return;
    };
    if let Ok(store) = ParamsStore::open(&mut flash) {
        params_rewritten(flash, store);
    }
}

/// Parameters that opened can be saved again (the terminal saves at every sign-in) and
/// reopen as saved.
fn params_rewritten(mut flash: MemFlash, mut store: ParamsStore) {
    let mut saved = store.get().clone();
    saved.merchant_no = saved.merchant_no.wrapping_add(1);
    match store.save(&mut flash, saved.clone()) {
        Ok(()) => {}
        // A forged slot at the counter's end: refused, the store keeps what it has.
        Err(ParamsError::Flash(FlashError::GenerationsExhausted { .. })) => return,
        Err(e) => panic!("stored parameters that opened cannot be saved again: {e}"),
    }
    let mut after = flash.power_cycle(1);
    match ParamsStore::open(&mut after) {
        Ok(reopened) => assert_eq!(reopened.get(), &saved, "parameters after a save"),
        Err(e) => panic!("saved parameters do not reopen: {e}"),
    }
}

/// State slots (payloads up to 63 bytes), opened at a fuzzed terminal time.
fn state_slots(input: &mut Input<'_>) {
    let Some(mut flash) = forged_slots(input, &state::SLOTS, |i| usize::from(i.u8()) % 64) else {
        return;
    };
    let Some(now) = time(input.u32()) else { return };
    if let Ok(store) = StateStore::open(&mut flash, 0, now) {
        state_rewritten(flash, store, now);
    }
}

/// State that opened takes the transitions of a working day and reopens with them.
fn state_rewritten(mut flash: MemFlash, mut store: StateStore, now: NaiveDateTime) {
    let _ = store.offline().offline_ms(u64::MAX);
    let _ = store.offline().exceeded(u16::MAX, u64::MAX);
    let _ = store.clock().now(now);
    let clock = *store.clock();
    match store.went_offline(&mut flash, 10, now) {
        Ok(()) => {}
        Err(StateError::Flash(FlashError::GenerationsExhausted { .. })) => return,
        Err(e) => panic!("state that opened cannot be written: {e}"),
    }
    let mut after = flash.power_cycle(1);
    match StateStore::open(&mut after, 0, now) {
        Ok(reopened) => {
            assert!(
                reopened.offline().is_offline(),
                "offline after a power cycle"
            );
            assert_eq!(reopened.clock(), &clock, "clock offset after a power cycle");
        }
        Err(e) => panic!("written state does not reopen: {e}"),
    }
}

/// The statistics baseline a reclaim marker carries: what decodes re-encodes to a value
/// that decodes the same, and adding to it never panics.
fn baseline(data: &[u8]) {
    let mut r = Reader::new(data);
    let Ok(b) = Baseline::decode(&mut r) else {
        return;
    };
    let mut w = Writer::default();
    b.encode(&mut w);
    assert_eq!(w.0.len(), BASELINE_LEN);
    let again = Baseline::decode(&mut Reader::new(&w.0));
    assert_eq!(again.ok(), Some(b), "baseline round trip");
    let mut b = b;
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
    for (i, chunk) in data.chunks(9).take(64).enumerate() {
        let amount = chunk.iter().fold(0i64, |a, &x| a << 8 | i64::from(x));
        let date = day + chrono::Days::new(u64::from(chunk[0] % 4));
        b.add(date, i % 2 == 1, amount);
        let _ = b.totals(date);
    }
}

/// The delta decoder alone: what decodes re-encodes to the same bytes, within the limits.
fn delta(data: &[u8]) {
    if let Ok(d) = blacklist::decode_delta(data) {
        assert!(d.changes.len() <= blacklist::MAX_CHANGES);
        assert_eq!(blacklist::encode_delta(d.from, d.to, &d.changes), data);
    }
}
