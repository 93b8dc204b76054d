//! The POS terminal core: every flow of chapters 4–5 as a sans-I/O state machine
//! (`docs/terminal.md`). [`Terminal::handle`] takes one [`Input`] with the monotonic time and
//! the reader, and returns [`Output`]s. The core never reads a clock: the terminal's wall
//! clock is the RTC reading at power-up plus elapsed monotonic time plus the offset the host
//! set (R-F4.19), persisted in the state store.

mod authorise;
pub mod checks;
mod conn;
mod cpu;
pub mod io;
mod link;
mod recover;
mod sale;
pub mod texts;
mod timers;

use chrono::{NaiveDateTime, TimeDelta};
use ykt_card::Reader;
use ykt_card::keys::SystemKeys;
use ykt_card::rng::SplitMix64;
use ykt_proto::{CardNo, DeviceKey, PhysicalId, Record, TerminalParams, TerminalSerial, WorkMode};

use crate::storage::blacklist::BlacklistError;
use crate::storage::flash::Flash;
use crate::storage::journal::{JournalConfig, JournalError};
use crate::storage::params::ParamsError;
use crate::storage::state::StateError;
use crate::storage::terminal::{StorageError, TerminalStorage};
use authorise::Authorising;
pub use authorise::{AUTH_REPLY_MS, AUTH_STEP_MS};
pub use io::{Beep, Event, Input, Key, Output, Screen};
use link::Link;
use sale::Flow;
pub use timers::Timer;
use timers::Timers;

/// How long the balance stays on screen after a debit (R-P5.2, R-P5.6).
pub const BALANCE_HOLD_MS: u64 = 2_000;
/// How long an information or error text stays (R-C6.2: 1–2 s).
pub const INFO_HOLD_MS: u64 = 1_500;
/// Online reply wait per attempt (R-P5.3).
pub const ONLINE_WAIT_MS: u64 = 500;
/// Load authorisation (0x08) and what-waits (0x09) reply wait per attempt: the host makes the
/// pending load durable before it answers (`docs/loads.md`).
pub const LOAD_WAIT_MS: u64 = 2_000;
/// Sign-in timeout (R-P5.1), for POS and top-up terminals alike.
pub const SIGN_IN_TIMEOUT_MS: u64 = 5_000;
/// Cancel is impossible for this long after a write failure (R-P5.5, R-P5.8).
pub const CANCEL_LOCK_MS: u64 = 60_000;
/// Statistics stay on screen this long (R-F4.22).
pub const STATS_HOLD_MS: u64 = 5_000;
/// At most this many collection requests (R-F4.17) wait for their card.
pub const MAX_COLLECT_REQUESTS: usize = 16;
/// A bound on the deadlines fired for one input (each firing re-arms only later ones).
const MAX_FIRED_PER_INPUT: usize = 100_000;

/// What a terminal is for, set when it is provisioned (a terminal-local setting: the host
/// does not download it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TerminalRole {
    /// A POS (消费机): sales; it offers the pick-up of what waits for a card (R-B5).
    #[default]
    Pos,
    /// A top-up terminal (充值机, the card office's writer): the operator keys an amount
    /// taken in cash and the card is loaded (R-B4); a tap without an amount picks up what
    /// waits. It never works offline.
    TopUp,
}

/// What the terminal is, fixed at manufacture and provisioning.
#[derive(Clone)]
pub struct TerminalConfig {
    pub device: PhysicalId,
    /// The device master key for sign-in (R-C6.3).
    pub master: DeviceKey,
    /// The card keys the terminal's SAM holds.
    pub card_keys: SystemKeys,
    pub journal: JournalConfig,
    /// Seed for sign-in nonces; the driver draws it from the OS at every power-up.
    pub entropy: u64,
    pub role: TerminalRole,
}

/// Why the core stopped: storage failed (power lost, I/O error). It halts until power-up.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for CoreError {
            fn from(e: $t) -> Self {
                CoreError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(JournalError, ParamsError, StateError, BlacklistError);

type Res<T = ()> = Result<T, CoreError>;

/// The POS terminal core over a flash device `F`.
pub struct Terminal<F> {
    cfg: TerminalConfig,
    st: TerminalStorage<F>,
    boot_ms: u64,
    rtc_at_boot: NaiveDateTime,
    rng: SplitMix64,
    link: Link,
    flow: Flow,
    halted: bool,
    now: u64,
    out: Vec<Output>,
    /// Every pending deadline, by name: the one place time is scheduled.
    timers: Timers,
    /// What the last `Output::SetTimer` said.
    last_timer: Option<u64>,
    /// Host requests to collect a card's last records (R-F4.17), served on its next tap.
    collect: Vec<(CardNo, u8)>,
    /// The operator card step of a protected function (R-B11).
    auth: Authorising,
    /// Counts the operator card checks sent, bound into each PIN block.
    auth_nonce: u32,
}

impl<F: Flash> Terminal<F> {
    /// Powers the terminal up: recovers storage, shows 待签到 and starts the sign-in timer
    /// (R-P5.1). A transaction a power cut interrupted is resumed as a re-tap prompt.
    pub fn power_on(
        flash: F,
        cfg: TerminalConfig,
        now_ms: u64,
        rtc: NaiveDateTime,
    ) -> Result<(Terminal<F>, Vec<Output>), StorageError> {
        let (st, _report) = TerminalStorage::open(flash, cfg.journal, now_ms, rtc)?;
        let rng = SplitMix64::new(cfg.entropy ^ now_ms.rotate_left(17));
        let mut t = Terminal {
            cfg,
            st,
            boot_ms: now_ms,
            rtc_at_boot: rtc,
            rng,
            link: Link::new(),
            flow: Flow::default(),
            halted: false,
            now: now_ms,
            out: Vec::new(),
            timers: Timers::default(),
            last_timer: None,
            collect: Vec::new(),
            auth: Authorising::default(),
            auth_nonce: 0,
        };
        t.timers.set(
            Timer::SignInSettle,
            now_ms.saturating_add(SIGN_IN_TIMEOUT_MS),
        );
        t.flow = sale::resume(&t.st.journal);
        if t.flow.prompts_retap() {
            t.timers
                .set(Timer::CancelLock, now_ms.saturating_add(CANCEL_LOCK_MS));
            t.push(Output::Beep(Beep::Continuous));
        }
        t.sync_checkpoint_timer();
        t.refresh_screen();
        t.set_timer();
        let out = std::mem::take(&mut t.out);
        Ok((t, out))
    }

    /// Handles one input at monotonic time `now_ms`; `reader` is the card reader. Every
    /// deadline up to `now_ms` is fired first, each at its own time, so the outcome is the
    /// same whether or not ticks came in between (a late host answer is a timeout, R-P5.3).
    pub fn handle(&mut self, input: Input, reader: &mut dyn Reader, now_ms: u64) -> Vec<Output> {
        let now = now_ms.max(self.now);
        if !self.halted {
            // A load a power cut interrupted: settled from the card if it is on the reader.
            let r = self
                .settle_boot_load(reader)
                .and_then(|()| self.fire_due(reader, now))
                .and_then(|()| {
                    self.now = now;
                    self.dispatch(input, reader)
                })
                .and_then(|()| self.after_input())
                .and_then(|()| self.fire_due(reader, now));
            if let Err(e) = r {
                self.halt(&e);
            }
            self.set_timer();
        }
        std::mem::take(&mut self.out)
    }

    /// Fires, oldest first and each at its own time, every deadline up to `now`.
    fn fire_due(&mut self, reader: &mut dyn Reader, now: u64) -> Res {
        for _ in 0..MAX_FIRED_PER_INPUT {
            let Some((timer, at)) = self.timers.take_due(now) else {
                return Ok(());
            };
            self.now = self.now.max(at);
            self.fire(timer, reader)?;
            self.after_input()?;
        }
        Ok(())
    }

    fn fire(&mut self, timer: Timer, reader: &mut dyn Reader) -> Res {
        match timer {
            Timer::ScreenHold => {
                self.refresh_screen();
                Ok(())
            }
            Timer::SignInSettle => {
                self.sign_in_settle_passed();
                Ok(())
            }
            Timer::SignInReply => {
                self.sign_in_timed_out();
                Ok(())
            }
            Timer::SignInRetry => self.retry_sign_in(),
            Timer::Exchange => {
                self.exchange_timed_out();
                Ok(())
            }
            Timer::Heartbeat => {
                self.link.heartbeat_due = true;
                Ok(())
            }
            Timer::OnlineReply => self.online_timeout(reader),
            Timer::LoadReply => self.load_timeout(),
            Timer::CancelLock => {
                self.cancel_unlocked();
                Ok(())
            }
            // Their work is done after every input: background requests, the checkpoint.
            Timer::ExchangeRetry | Timer::OfflineCheckpoint => Ok(()),
            Timer::AuthStep => {
                self.auth_step_timed_out();
                Ok(())
            }
            Timer::AuthReply => {
                self.auth_reply_timed_out();
                Ok(())
            }
        }
    }

    /// After every input and every fired deadline.
    fn after_input(&mut self) -> Res {
        self.background()?;
        self.housekeeping()
    }

    fn dispatch(&mut self, input: Input, reader: &mut dyn Reader) -> Res {
        match input {
            // Its work, firing the deadlines due, is done before every input.
            Input::Tick => Ok(()),
            Input::Key(k) => self.on_key(k, reader),
            Input::CardPresent if self.auth.is_active() => self.auth_card(reader),
            Input::CardPresent => self.on_card(reader),
            Input::CardRemoved => Ok(()),
            Input::FromHost(bytes) => self.on_bytes(&bytes, reader),
            Input::LinkUp => self.on_link_up(),
            Input::LinkDown => self.on_link_down(reader),
        }
    }

    /// After every input: the offline state and its checkpoint (R-F4.18).
    fn housekeeping(&mut self) -> Res {
        self.track_offline()?;
        let (now, wall) = (self.now, self.wall());
        self.st.state.tick(&mut self.st.flash, now, wall)?;
        self.sync_checkpoint_timer();
        Ok(())
    }

    /// The offline counter's next checkpoint, as the state store schedules it.
    fn sync_checkpoint_timer(&mut self) {
        match self.st.state.checkpoint_due() {
            Some(at) => self.timers.set(Timer::OfflineCheckpoint, at),
            None => self.timers.clear(Timer::OfflineCheckpoint),
        }
    }

    fn on_key(&mut self, key: Key, reader: &mut dyn Reader) -> Res {
        if self.auth.is_active() {
            return self.auth_key(key, reader);
        }
        if let Some(function) = authorise::function_of(key)
            && self.needs_operator_card(function)
            && self.flow.is_idle()
            && self.flow.in_flight().is_none()
        {
            // R-B11: the operator card and its PIN first, then the function.
            self.start_authorising(function);
            return Ok(());
        }
        self.run_key(key, reader)
    }

    /// A protected function the host authorised (R-B11): runs as its key would.
    fn run_protected(&mut self, function: ykt_proto::AuthFunction, reader: &mut dyn Reader) -> Res {
        let key = match function {
            ykt_proto::AuthFunction::ManualSignIn => Key::SignIn,
            ykt_proto::AuthFunction::WorkModeChange => Key::Mode,
            ykt_proto::AuthFunction::Reversal => Key::Reversal,
            ykt_proto::AuthFunction::Statistics => Key::Stats,
            ykt_proto::AuthFunction::ClearOfflineTime => Key::ResetOffline,
        };
        self.run_key(key, reader)
    }

    fn run_key(&mut self, key: Key, reader: &mut dyn Reader) -> Res {
        match key {
            Key::SignIn => self.manual_sign_in(),
            Key::Stats => {
                self.show_stats();
                Ok(())
            }
            Key::Mode => self.cycle_mode(),
            Key::ResetOffline => {
                let (now, wall) = (self.now, self.wall());
                self.st.state.reset_offline(&mut self.st.flash, now, wall)?;
                self.flash_text(vec![texts::OFFLINE_RESET.into()], INFO_HOLD_MS);
                Ok(())
            }
            _ => {
                // The operator's key ends a text on hold (except during the re-tap prompt,
                // whose refusal texts must stay readable).
                if self.flow.in_flight().is_none() {
                    self.timers.clear(Timer::ScreenHold);
                }
                self.sale_key(key, reader)
            }
        }
    }

    fn halt(&mut self, e: &CoreError) {
        self.halted = true;
        self.push(Output::Event(Event::StorageFailed(e.to_string())));
        self.push(Output::Beep(Beep::Error));
        self.push(Output::Screen(Screen {
            lines: vec![texts::STORAGE_FAILED.into()],
            hold_ms: None,
        }));
    }

    /// Whether the core halted after a storage failure (power it up again).
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// The terminal's wall clock (R-F4.19) when it last handled an input.
    pub fn wall(&self) -> NaiveDateTime {
        self.wall_at(self.now)
    }

    /// The terminal's wall clock at monotonic time `now_ms` (a driver showing the clock
    /// between inputs); never before the last input's.
    pub fn wall_at(&self, now_ms: u64) -> NaiveDateTime {
        self.st.state.clock().now(self.rtc_at(now_ms.max(self.now)))
    }

    /// The earliest pending deadline: call `handle(Input::Tick, …)` then (the last
    /// `Output::SetTimer` said the same). Always later than the last input.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.next()
    }

    /// Every pending deadline by name, for diagnostics and tests.
    pub fn timers(&self) -> Vec<(Timer, u64)> {
        self.timers.pending().collect()
    }

    fn rtc(&self) -> NaiveDateTime {
        self.rtc_at(self.now)
    }

    fn rtc_at(&self, now_ms: u64) -> NaiveDateTime {
        let elapsed = i64::try_from(now_ms.saturating_sub(self.boot_ms)).unwrap_or(i64::MAX);
        self.rtc_at_boot
            .checked_add_signed(TimeDelta::try_milliseconds(elapsed).unwrap_or_default())
            .unwrap_or(self.rtc_at_boot)
    }

    /// The storage, for inspection by drivers and tests.
    pub fn storage(&self) -> &TerminalStorage<F> {
        &self.st
    }

    /// The flash device, for drivers and fault-injection tests (e.g. `MemFlash::cut_power_after`).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.st.flash
    }

    /// Gives the flash back (e.g. to power-cycle it in a test).
    pub fn into_flash(self) -> F {
        self.st.into_flash()
    }

    /// The serial of the transaction in progress whose record may still change, if any.
    pub fn in_flight(&self) -> Option<TerminalSerial> {
        self.flow.in_flight()
    }

    /// Whether the terminal has a session with the host right now.
    pub fn is_connected(&self) -> bool {
        self.link.has_session()
    }

    fn params(&self) -> Option<&TerminalParams> {
        self.st.params.get().params.as_ref()
    }

    fn work_mode(&self) -> WorkMode {
        self.st.params.get().work_mode()
    }

    fn cycle_mode(&mut self) -> Res {
        let next = match self.work_mode() {
            WorkMode::FullOnline => WorkMode::Auto,
            WorkMode::Auto => WorkMode::Offline,
            WorkMode::Offline => WorkMode::FullOnline,
        };
        self.st
            .params
            .update(&mut self.st.flash, |p| p.manual_work_mode = Some(next))?;
        self.push(Output::Event(Event::ModeChanged(next)));
        self.flash_text(vec![texts::mode(next).into()], INFO_HOLD_MS);
        Ok(())
    }

    fn show_stats(&mut self) {
        let today = self.wall().date();
        let s = self.st.journal.stats(today);
        let line = |name: &str, t: &crate::DayTotals| {
            format!(
                "{name} 消费{}笔 {}元 冲正{}笔 {}元",
                t.debits,
                texts::yuan(t.debit_amount),
                t.reversals,
                texts::yuan(t.reversal_amount)
            )
        };
        let lines = vec![line("今日", &s.today), line("昨日", &s.yesterday)];
        self.flash_text(lines, STATS_HOLD_MS);
    }

    // ---- outputs -------------------------------------------------------------------------

    fn push(&mut self, o: Output) {
        self.out.push(o);
    }

    /// Shows `lines` for `hold_ms`, then the idle screen again.
    fn flash_text(&mut self, lines: Vec<String>, hold_ms: u64) {
        self.timers
            .set(Timer::ScreenHold, self.now.saturating_add(hold_ms));
        self.push(Output::Screen(Screen {
            lines,
            hold_ms: Some(hold_ms),
        }));
    }

    fn refuse(&mut self, code: Option<ykt_proto::ReturnCode>, text: String) {
        self.push(Output::Event(Event::Refused {
            code,
            text: text.clone(),
        }));
        self.push(Output::Beep(Beep::Error));
        self.flash_text(vec![text], INFO_HOLD_MS);
    }

    fn record_event(&mut self, r: &Record, subject: u16) {
        self.push(Output::Event(Event::Record {
            serial: r.serial,
            kind: r.kind,
            status: r.status,
            amount: r.amount,
            fee: r.fee,
            subject,
        }));
    }

    /// The screen for the current state, with the pending-records indicator (R-P5.6).
    fn refresh_screen(&mut self) {
        if self.timers.is_set(Timer::ScreenHold) {
            return;
        }
        let mut lines = self.state_lines();
        let pending = self.st.journal.pending_count();
        if pending > 0 {
            lines.push(texts::pending(pending));
        }
        self.push(Output::Screen(Screen {
            lines,
            hold_ms: None,
        }));
    }

    fn state_lines(&self) -> Vec<String> {
        if let Some(lines) = self.auth_lines() {
            return lines;
        }
        if let Some(lines) = self.flow_lines() {
            return lines;
        }
        if let Some((_, reason)) = self.not_working() {
            return vec![reason];
        }
        self.idle_lines()
    }

    /// Why the terminal may not sell now (R-P5.1): its text, with the host's code when there
    /// is one. `None`: it may.
    fn not_working(&self) -> Option<(Option<ykt_proto::ReturnCode>, String)> {
        if !self.link.sign_in_settled() {
            return Some((None, texts::WAITING_SIGN_IN.into()));
        }
        if let Some(code) = self.link.sign_in_error {
            return Some((Some(code), code.screen_text()));
        }
        if self.st.params.get().merchant_no == 0 {
            return Some((None, texts::SET_MERCHANT.into()));
        }
        None
    }

    /// Tells the driver when to tick next, when that changed.
    fn set_timer(&mut self) {
        let next = self.timers.next();
        if next != self.last_timer {
            self.last_timer = next;
            if let Some(t) = next {
                self.push(Output::SetTimer(t));
            }
        }
    }
}
