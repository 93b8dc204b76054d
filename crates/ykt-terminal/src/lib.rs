//! The POS terminal core of ykt, sans-I/O.
//!
//! - [`Terminal`]: every flow of chapters 4–5 as a state machine driven by [`Input`]s and
//!   answering with [`Output`]s (`docs/terminal.md`). Cards are reached through the
//!   [`ykt_card::Reader`] passed with each input; persistence through [`Flash`].
//! - Storage: the transaction [`Journal`], the [`BlacklistStore`], the [`ParamsStore`] and
//!   the [`StateStore`] (offline-time counter, clock offset), opened together as
//!   [`TerminalStorage`] (`docs/storage.md`).
//!
//! No I/O and no clock reads here: time comes in as arguments.

pub mod core;
pub mod storage;

pub use core::checks::{
    Approved, CardFacts, NumberBinding, Refusal, check_debit, check_load, fee, number_matches_keys,
    within_hours,
};
pub use core::io::{Beep, Event, Input, Key, Output, Screen};
pub use core::{
    AUTH_REPLY_MS, AUTH_STEP_MS, CoreError, Terminal, TerminalConfig, TerminalRole, Timer,
};
pub use storage::blacklist::{BlacklistChange, BlacklistError, BlacklistStore};
pub use storage::flash::{Flash, FlashError, Region};
pub use storage::fuzzing::flash_stores as fuzz_flash_stores;
pub use storage::journal::{
    FUZZ_CONFIG, Journal, JournalConfig, JournalError, RecoveryReport, fuzz_journal_image,
};
pub use storage::mem_flash::MemFlash;
pub use storage::params::{ParamsError, ParamsStore, SavedParams};
pub use storage::state::{ClockOffset, OfflineTimer, StateError, StateStore, StatusReport};
pub use storage::stats::{DayTotals, Stats};
pub use storage::terminal::{StorageError, TerminalStorage};
