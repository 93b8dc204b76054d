//! The POS terminal core of ykt, sans-I/O.
//!
//! So far: everything the terminal persists (its flash), behind the [`Flash`] trait:
//! the transaction [`Journal`], the [`BlacklistStore`], the [`ParamsStore`] and the small
//! [`StateStore`] (offline-time counter, clock offset). The POS flows of chapters 4–5 will be
//! built on top of these. No I/O and no clock reads here: time comes in as arguments.

pub mod storage;

pub use storage::blacklist::{BlacklistChange, BlacklistError, BlacklistStore};
pub use storage::flash::{Flash, FlashError, Region};
pub use storage::journal::{
    FUZZ_CONFIG, Journal, JournalConfig, JournalError, RecoveryReport, fuzz_journal_image,
};
pub use storage::mem_flash::MemFlash;
pub use storage::params::{ParamsError, ParamsStore, SavedParams};
pub use storage::state::{ClockOffset, OfflineTimer, StateError, StateStore, StatusReport};
pub use storage::stats::{DayTotals, Stats};
pub use storage::terminal::{StorageError, TerminalStorage};
