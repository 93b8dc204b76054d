//! The campus clock. Terminals keep local time (as the spec's cards do); the host reads the
//! system clock once per request and passes it down as a value.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::NaiveDateTime;

/// Local time = UTC + a fixed offset (campuses do not observe daylight saving in China).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub utc_offset_secs: i32,
}

impl Clock {
    /// China Standard Time, UTC+8.
    pub const fn china() -> Clock {
        Clock {
            utc_offset_secs: 8 * 3600,
        }
    }

    pub fn now(&self) -> NaiveDateTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let local = i64::try_from(secs).unwrap_or(0) + i64::from(self.utc_offset_secs);
        chrono::DateTime::from_timestamp(local, 0)
            .map(|t| t.naive_utc())
            .unwrap_or_default()
    }
}
