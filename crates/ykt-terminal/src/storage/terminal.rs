//! All of a terminal's stores on one flash device, opened together at power-up.

use chrono::NaiveDateTime;

use super::blacklist::{BlacklistError, BlacklistStore};
use super::flash::Flash;
use super::journal::{Journal, JournalConfig, JournalError, RecoveryReport};
use super::params::{ParamsError, ParamsStore};
use super::state::{StateError, StateStore, StatusReport};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("blacklist: {0}")]
    Blacklist(#[from] BlacklistError),
    #[error("parameters: {0}")]
    Params(#[from] ParamsError),
    #[error("terminal state: {0}")]
    State(#[from] StateError),
}

/// The flash device and every store on it. Fields are public so that a flow can borrow a
/// store and the device at once: `s.journal.append(&mut s.flash, record)`.
#[derive(Debug)]
pub struct TerminalStorage<F> {
    pub flash: F,
    pub journal: Journal,
    pub blacklist: BlacklistStore,
    pub params: ParamsStore,
    pub state: StateStore,
}

impl<F: Flash> TerminalStorage<F> {
    /// Recovers every store at power-up (`now_ms` monotonic, `now` the terminal clock).
    pub fn open(
        mut flash: F,
        journal: JournalConfig,
        now_ms: u64,
        now: NaiveDateTime,
    ) -> Result<(Self, RecoveryReport), StorageError> {
        let (journal, report) = Journal::open(&mut flash, journal)?;
        let blacklist = BlacklistStore::open(&mut flash)?;
        let params = ParamsStore::open(&mut flash)?;
        let state = StateStore::open(&mut flash, now_ms, now)?;
        Ok((
            TerminalStorage {
                flash,
                journal,
                blacklist,
                params,
                state,
            },
            report,
        ))
    }

    /// What the host reads (R-F4.20), with the terminal clock derived from the RTC.
    pub fn status_report(&self, rtc: NaiveDateTime) -> StatusReport {
        StatusReport::new(&self.journal, &self.blacklist, self.state.clock().now(rtc))
    }

    pub fn into_flash(self) -> F {
        self.flash
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::storage::mem_flash::MemFlash;
    use chrono::NaiveDate;

    // R-F4.20: after a power cycle the report shows the same pending count and version.
    #[test]
    fn opens_every_store_and_reports_status() {
        let now = NaiveDate::from_ymd_opt(2026, 3, 1)
            .unwrap()
            .and_hms_opt(7, 0, 0)
            .unwrap();
        let cfg = JournalConfig::with_segment_size(1024, 8);
        let (mut s, report) = TerminalStorage::open(MemFlash::new(), cfg, 0, now).unwrap();
        assert!(report.formatted);
        s.blacklist
            .apply_incremental(&mut s.flash, 0, 4, &[])
            .unwrap();
        s.params
            .update(&mut s.flash, |p| p.merchant_no = 9)
            .unwrap();
        let flash = s.into_flash().power_cycle(0);
        let (s, _) = TerminalStorage::open(flash, cfg, 0, now).unwrap();
        let status = s.status_report(now);
        assert_eq!(
            (
                status.pending_records,
                status.blacklist_version,
                status.clock
            ),
            (0, 4, now)
        );
        assert_eq!(s.params.get().merchant_no, 9);
    }
}
