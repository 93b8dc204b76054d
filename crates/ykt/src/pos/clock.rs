//! The driver's clock: monotonic milliseconds for the core's timers and the RTC reading it
//! takes at power-up. Real time for the TUI; a virtual clock for scripts, which moves only
//! when told to (`advance`), so the 60 s cancel rule is tested without waiting 60 s.

use std::time::Instant;

use chrono::{NaiveDateTime, TimeDelta};

pub enum Clock {
    Real {
        start: Instant,
        utc_offset_secs: i64,
    },
    Virtual {
        mono_ms: u64,
        /// The RTC reading at `mono_ms` = 0.
        rtc_base: NaiveDateTime,
    },
}

/// Monotonic time starts here, not at 0, so "never" and "at boot" never collide.
const MONO_START_MS: u64 = 1_000;
/// `advance` moves at most a year at once.
pub const MAX_ADVANCE_MS: u64 = 366 * 24 * 3_600_000;

/// Local wall time from the system clock (terminals keep local time).
pub fn local_now(utc_offset_secs: i64) -> NaiveDateTime {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let now = chrono::DateTime::from_timestamp(secs, since.subsec_nanos())
        .unwrap_or_default()
        .naive_utc();
    now.checked_add_signed(TimeDelta::seconds(utc_offset_secs))
        .unwrap_or(now)
}

impl Clock {
    pub fn real(utc_offset_secs: i64) -> Clock {
        Clock::Real {
            start: Instant::now(),
            utc_offset_secs,
        }
    }

    pub fn virtual_at(rtc: NaiveDateTime) -> Clock {
        Clock::Virtual {
            mono_ms: MONO_START_MS,
            rtc_base: rtc - TimeDelta::milliseconds(MONO_START_MS as i64),
        }
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::Real { start, .. } => MONO_START_MS
                .saturating_add(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)),
            Clock::Virtual { mono_ms, .. } => *mono_ms,
        }
    }

    pub fn rtc(&self) -> NaiveDateTime {
        match self {
            Clock::Real {
                utc_offset_secs, ..
            } => local_now(*utc_offset_secs),
            Clock::Virtual { mono_ms, rtc_base } => {
                let ms = i64::try_from(*mono_ms).unwrap_or(i64::MAX);
                rtc_base
                    .checked_add_signed(TimeDelta::milliseconds(ms))
                    .unwrap_or(*rtc_base)
            }
        }
    }

    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual { .. })
    }

    /// Moves virtual time forward to `to_ms` (never back).
    pub fn advance_to(&mut self, to_ms: u64) {
        if let Clock::Virtual { mono_ms, .. } = self {
            *mono_ms = (*mono_ms).max(to_ms);
        }
    }

    /// Sets the virtual RTC (the battery clock; the core reads it at power-up).
    pub fn set_rtc(&mut self, rtc: NaiveDateTime) {
        if let Clock::Virtual { mono_ms, rtc_base } = self {
            let ms = i64::try_from(*mono_ms).unwrap_or(i64::MAX);
            *rtc_base = rtc - TimeDelta::milliseconds(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward_and_only_when_told() {
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
            .unwrap()
            .and_hms_opt(23, 59, 0)
            .unwrap();
        let mut c = Clock::virtual_at(t0);
        assert_eq!(c.rtc(), t0);
        let start = c.now_ms();
        c.advance_to(start + 61_000);
        c.advance_to(start);
        assert_eq!(c.now_ms(), start + 61_000);
        assert_eq!(c.rtc(), t0 + TimeDelta::seconds(61));
        c.set_rtc(t0);
        assert_eq!(c.rtc(), t0);
        assert_eq!(c.now_ms(), start + 61_000);
    }
}
