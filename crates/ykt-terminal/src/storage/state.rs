//! Small terminal state in A/B slots: the offline-time counter (R-F4.18) and the clock
//! offset set by the host (R-F4.19); plus the status report the host reads (R-F4.20).
//!
//! Granularity of the offline counter: it is saved on every transition (offline, online,
//! operator reset) and at most every [`CHECKPOINT_MS`] of monotonic time while offline, so
//! a power cut loses at most one minute of counted offline time. Time spent powered off
//! while offline counts as offline, measured with the terminal clock (when it moved forward).

use chrono::{NaiveDateTime, TimeDelta};
use ykt_proto::TerminalSerial;

use super::codec::{DecodeError, Reader, Writer};
use super::flash::{Flash, FlashError, Region};
use super::slots::SlotStore;

/// Offline time is checkpointed to flash at least this often (monotonic milliseconds).
pub const CHECKPOINT_MS: u64 = 60_000;

pub(super) const SLOTS: SlotStore = SlotStore {
    region: Region::State,
    magic: *b"YKS1",
    base: 0,
    slot_size: 256,
};
const FORMAT: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("stored terminal state is unreadable: {0}")]
    Corrupt(#[from] DecodeError),
    #[error(transparent)]
    Flash(#[from] FlashError),
}

/// The accumulated offline time (R-F4.18), in memory; [`StateStore`] persists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfflineTimer {
    /// Offline milliseconds counted up to `since` (or in total when online).
    counted_ms: u64,
    /// Monotonic time from which the current offline stretch is being counted.
    since: Option<u64>,
}

impl OfflineTimer {
    pub fn is_offline(&self) -> bool {
        self.since.is_some()
    }

    /// Accumulated offline time at monotonic `now_ms`.
    pub fn offline_ms(&self, now_ms: u64) -> u64 {
        self.counted_ms
            .saturating_add(self.since.map_or(0, |s| now_ms.saturating_sub(s)))
    }

    /// Past the maximum (hours; 0 = no limit) transactions are refused (R-F4.18).
    pub fn exceeded(&self, max_offline_hours: u16, now_ms: u64) -> bool {
        max_offline_hours != 0
            && self.offline_ms(now_ms) >= u64::from(max_offline_hours) * 3_600_000
    }

    /// Folds the running stretch into `counted_ms`.
    fn settle(&mut self, now_ms: u64) {
        if self.since.is_some() {
            self.counted_ms = self.offline_ms(now_ms);
            self.since = Some(now_ms);
        }
    }
}

/// The terminal clock as an offset from the device's real-time clock, set by the host
/// (R-F4.19, R-P5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockOffset {
    /// Terminal time minus RTC time.
    pub offset: TimeDelta,
    /// Terminal time when the host last set the clock.
    pub last_set: Option<NaiveDateTime>,
}

impl ClockOffset {
    /// The terminal's clock given the RTC reading.
    pub fn now(&self, rtc: NaiveDateTime) -> NaiveDateTime {
        rtc.checked_add_signed(self.offset).unwrap_or(rtc)
    }
}

/// What the host can read of a terminal (R-F4.20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusReport {
    pub pending_records: u32,
    pub clock: NaiveDateTime,
    pub blacklist_version: u32,
    pub next_serial: TerminalSerial,
}

impl StatusReport {
    pub fn new(
        journal: &super::journal::Journal,
        blacklist: &super::blacklist::BlacklistStore,
        clock: NaiveDateTime,
    ) -> StatusReport {
        StatusReport {
            pending_records: journal.pending_count() as u32,
            clock,
            blacklist_version: blacklist.version(),
            next_serial: journal.next_serial(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Persisted {
    offline_ms: u64,
    offline: bool,
    /// Terminal clock at the last save, to count time powered off while offline.
    saved_at: Option<NaiveDateTime>,
    clock: ClockOffset,
}

/// The state store. Every mutating call takes the monotonic time and the terminal clock.
#[derive(Debug)]
pub struct StateStore {
    generation: u64,
    timer: OfflineTimer,
    clock: ClockOffset,
    last_checkpoint_ms: u64,
}

impl StateStore {
    /// Loads the state at power-up. If the terminal was offline when power went, it is still
    /// offline and the time it was off (by the terminal clock `now`) is added.
    pub fn open<F: Flash + ?Sized>(
        flash: &mut F,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<StateStore, StateError> {
        let (generation, p) = match SLOTS.load(flash)? {
            Some(loaded) => (loaded.generation, decode(&loaded.payload)?),
            None => (0, Persisted::default()),
        };
        let mut timer = OfflineTimer {
            counted_ms: p.offline_ms,
            since: None,
        };
        if p.offline {
            let off = p
                .saved_at
                .map_or(0, |t| (now - t).num_milliseconds().max(0) as u64);
            timer = OfflineTimer {
                counted_ms: p.offline_ms.saturating_add(off),
                since: Some(now_ms),
            };
        }
        Ok(StateStore {
            generation,
            timer,
            clock: p.clock,
            last_checkpoint_ms: now_ms,
        })
    }

    pub fn offline(&self) -> &OfflineTimer {
        &self.timer
    }

    pub fn clock(&self) -> &ClockOffset {
        &self.clock
    }

    /// The host or the network failed: start counting (no-op when already offline).
    pub fn went_offline<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<(), StateError> {
        if self.timer.is_offline() {
            return Ok(());
        }
        let mut timer = self.timer;
        timer.since = Some(now_ms);
        self.persist(flash, timer, self.clock, now_ms, now)
    }

    /// Back online: the counter is cleared (R-F4.18).
    pub fn came_online<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<(), StateError> {
        if !self.timer.is_offline() && self.timer.counted_ms == 0 {
            return Ok(());
        }
        self.persist(flash, OfflineTimer::default(), self.clock, now_ms, now)
    }

    /// The operator resets the counter; the terminal stays offline, counting from zero.
    pub fn reset_offline<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<(), StateError> {
        let timer = OfflineTimer {
            counted_ms: 0,
            since: self.timer.since.map(|_| now_ms),
        };
        self.persist(flash, timer, self.clock, now_ms, now)
    }

    /// When `tick` saves the next checkpoint: while offline, a minute after the last save.
    pub fn checkpoint_due(&self) -> Option<u64> {
        self.timer
            .is_offline()
            .then(|| self.last_checkpoint_ms.saturating_add(CHECKPOINT_MS))
    }

    /// Call on every timer tick; saves a checkpoint once a minute while offline.
    pub fn tick<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<(), StateError> {
        if self.timer.is_offline()
            && now_ms.saturating_sub(self.last_checkpoint_ms) >= CHECKPOINT_MS
        {
            self.persist(flash, self.timer, self.clock, now_ms, now)?;
        }
        Ok(())
    }

    /// The host sets the clock (R-F4.19): `host_time` is the new terminal time at RTC `rtc`.
    pub fn set_clock<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        host_time: NaiveDateTime,
        rtc: NaiveDateTime,
        now_ms: u64,
    ) -> Result<(), StateError> {
        // Whole milliseconds: what the flash format keeps.
        let offset =
            TimeDelta::try_milliseconds((host_time - rtc).num_milliseconds()).unwrap_or_default();
        let clock = ClockOffset {
            offset,
            last_set: Some(host_time),
        };
        self.persist(flash, self.timer, clock, now_ms, host_time)
    }

    fn persist<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        mut timer: OfflineTimer,
        clock: ClockOffset,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<(), StateError> {
        timer.settle(now_ms);
        let p = Persisted {
            offline_ms: timer.counted_ms,
            offline: timer.is_offline(),
            saved_at: Some(now),
            clock,
        };
        SLOTS.replace(flash, &mut self.generation, &encode(&p))?;
        self.timer = timer;
        self.clock = clock;
        self.last_checkpoint_ms = now_ms;
        Ok(())
    }
}

fn encode(p: &Persisted) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(FORMAT);
    w.u64(p.offline_ms);
    w.bool(p.offline);
    w.bool(p.saved_at.is_some());
    w.datetime(p.saved_at.unwrap_or_default());
    w.i64(p.clock.offset.num_milliseconds());
    w.bool(p.clock.last_set.is_some());
    w.datetime(p.clock.last_set.unwrap_or_default());
    w.0
}

fn decode(bytes: &[u8]) -> Result<Persisted, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.u8()? != FORMAT {
        return Err(DecodeError::Invalid("state format"));
    }
    let offline_ms = r.u64()?;
    let offline = r.bool()?;
    let has_saved = r.bool()?;
    let saved_at = r.datetime()?;
    let offset =
        TimeDelta::try_milliseconds(r.i64()?).ok_or(DecodeError::Invalid("clock offset"))?;
    let has_set = r.bool()?;
    let last_set = r.datetime()?;
    r.finish()?;
    Ok(Persisted {
        offline_ms,
        offline,
        saved_at: has_saved.then_some(saved_at),
        clock: ClockOffset {
            offset,
            last_set: has_set.then_some(last_set),
        },
    })
}
