//! The terminal as one object, shared by the TUI and the headless driver: the core
//! (`ykt_terminal::Terminal`) on the file flash, the reader holding a card image from disk,
//! the clock, and what a cashier sees (screen, beeps, link, mode, pending records).
//! Network I/O stays outside: frames to send come back as [`Output::Send`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDateTime;
use ykt_card::keys::SystemKeys;
use ykt_card::{Fault, SimulatedReader};
use ykt_proto::WorkMode;
use ykt_terminal::{
    Beep, Event, Input, JournalConfig, Key, Output, Terminal, TerminalConfig, TerminalRole,
};

use super::card_file;
use super::clock::Clock;
use super::file_flash::FileFlash;
use super::provision::Provision;

/// At most this many timer ticks per `advance` (a day offline is 1 440 checkpoints).
const MAX_TICKS_PER_ADVANCE: usize = 100_000;
/// The amount echo never grows past this many digits (the core bounds the amount itself).
const MAX_KEYED: usize = 12;

/// What the cashier sees besides the LCD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub screen: Vec<String>,
    pub last_beep: Option<Beep>,
    /// Continuous beeping (re-tap prompt) is on.
    pub beeping: bool,
    /// The TCP connection is up.
    pub link: bool,
    /// Signed in with online verification (from the core's `Online` event).
    pub online: bool,
    pub mode: Option<WorkMode>,
    pub pending: usize,
    /// The digits keyed since the last Enter / Cancel.
    pub keyed: String,
    /// The card image on the reader, if any.
    pub card: Option<PathBuf>,
    pub powered: bool,
}

pub struct Driver {
    journal_dir: PathBuf,
    provision: Provision,
    card_keys: SystemKeys,
    journal: JournalConfig,
    pub clock: Clock,
    term: Option<Terminal<FileFlash>>,
    reader: SimulatedReader,
    /// The image as last written, to skip rewriting an unchanged card.
    card_saved: Option<Vec<u8>>,
    timer: Option<u64>,
    ops_at_place: u64,
    pub view: View,
}

/// Where a fault goes: the k-th card operation after the card is placed.
#[derive(Clone, Copy, Debug)]
pub struct PlannedFault {
    pub op: u64,
    pub fault: Fault,
}

impl Driver {
    pub fn new(
        provision: Provision,
        card_keys: SystemKeys,
        journal_dir: &Path,
        clock: Clock,
    ) -> Driver {
        Driver {
            journal_dir: journal_dir.to_path_buf(),
            provision,
            card_keys,
            journal: JournalConfig::default(),
            clock,
            term: None,
            reader: SimulatedReader::new(rand::random()),
            card_saved: None,
            timer: None,
            ops_at_place: 0,
            view: View::default(),
        }
    }

    /// The physical ID (8 hex digits), terminal and merchant number, for display; a top-up
    /// terminal says so.
    pub fn device_id(&self) -> String {
        let role = match self.provision.role {
            TerminalRole::Pos => "",
            TerminalRole::TopUp => " 充值机",
        };
        format!(
            "{} 终端号 {} 商户 {}{role}",
            hex::encode_upper(self.provision.device.0),
            self.provision.terminal_no,
            self.provision.merchant_no
        )
    }

    pub fn role(&self) -> TerminalRole {
        self.provision.role
    }

    pub fn host(&self) -> &str {
        &self.provision.host
    }

    /// Powers up from the journal directory (as after a power cut or SIGKILL).
    pub fn power_on(&mut self) -> anyhow::Result<Vec<Output>> {
        if self.term.is_some() {
            return Ok(Vec::new());
        }
        let flash = FileFlash::open(&self.journal_dir).with_context(|| {
            format!("cannot open the journal in {}", self.journal_dir.display())
        })?;
        let config = TerminalConfig {
            device: self.provision.device,
            master: self.provision.master,
            card_keys: self.card_keys.clone(),
            journal: self.journal,
            entropy: rand::random(),
            role: self.provision.role,
        };
        let (term, out) = Terminal::power_on(flash, config, self.clock.now_ms(), self.clock.rtc())
            .context("the terminal's storage cannot be recovered")?;
        self.term = Some(term);
        self.timer = None;
        self.view.powered = true;
        self.view.link = false;
        self.view.online = false;
        self.observe(&out);
        Ok(out)
    }

    /// Power lost: the core goes away with whatever it had not synced.
    pub fn power_off(&mut self) {
        self.term = None;
        self.timer = None;
        self.view = View {
            card: self.view.card.clone(),
            ..View::default()
        };
    }

    pub fn terminal(&self) -> Option<&Terminal<FileFlash>> {
        self.term.as_ref()
    }

    /// Feeds one input at the clock's current time; the card image is saved afterwards.
    pub fn feed(&mut self, input: Input) -> anyhow::Result<Vec<Output>> {
        let now = self.clock.now_ms();
        self.feed_at(input, now)
    }

    fn feed_at(&mut self, input: Input, now: u64) -> anyhow::Result<Vec<Output>> {
        match &input {
            Input::LinkUp => self.view.link = true,
            Input::LinkDown => {
                self.view.link = false;
                self.view.online = false;
            }
            Input::Key(Key::Digit(d)) if self.view.keyed.len() < MAX_KEYED => {
                self.view.keyed.push(char::from(b'0' + d % 10));
            }
            Input::Key(Key::Enter | Key::Cancel) | Input::CardPresent => self.view.keyed.clear(),
            _ => {}
        }
        let Some(term) = self.term.as_mut() else {
            return Ok(Vec::new());
        };
        let out = term.handle(input, &mut self.reader, now);
        self.observe(&out);
        self.save_card()?;
        Ok(out)
    }

    /// The deadline of the core's next timer.
    pub fn next_timer(&self) -> Option<u64> {
        self.timer
    }

    /// Fires the timer if it is due (real-time mode calls this when the deadline passes).
    pub fn tick_if_due(&mut self) -> anyhow::Result<Vec<Output>> {
        match self.timer {
            Some(t) if t <= self.clock.now_ms() => {
                self.timer = None;
                self.feed(Input::Tick)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Virtual time: moves `ms` forward, firing every timer that falls due on the way at its
    /// own deadline, as a real terminal would have.
    pub fn advance(&mut self, ms: u64) -> anyhow::Result<Vec<Output>> {
        let target = self.clock.now_ms().saturating_add(ms);
        let mut out = Vec::new();
        for _ in 0..MAX_TICKS_PER_ADVANCE {
            match self.timer {
                Some(t) if t <= target => {
                    self.clock.advance_to(t);
                    self.timer = None;
                    out.extend(self.feed_at(Input::Tick, t)?);
                }
                _ => break,
            }
        }
        self.clock.advance_to(target);
        Ok(out)
    }

    /// Puts the card of `path` on the reader (replacing any card there, which is saved).
    pub fn place(
        &mut self,
        path: &Path,
        fault: Option<PlannedFault>,
    ) -> anyhow::Result<Vec<Output>> {
        self.take_card()?;
        let card = card_file::load(path)?;
        self.card_saved = Some(card_file::image(&card));
        self.reader.clear_faults();
        self.reader.place(card);
        self.ops_at_place = self.reader.op_count();
        if let Some(f) = fault {
            self.reader
                .inject(self.ops_at_place.saturating_add(f.op), f.fault);
        }
        self.view.card = Some(path.to_path_buf());
        self.feed(Input::CardPresent)
    }

    /// Takes the card off the reader (its image is saved).
    pub fn remove(&mut self) -> anyhow::Result<Vec<Output>> {
        if self.take_card()? {
            self.feed(Input::CardRemoved)
        } else {
            Ok(Vec::new())
        }
    }

    /// Card operations since the card was placed (to aim a fault plan).
    pub fn card_ops(&self) -> u64 {
        self.reader.op_count().saturating_sub(self.ops_at_place)
    }

    /// Whether the card is still in the reader's field (a fault may have lifted it).
    pub fn card_in_field(&self) -> bool {
        self.reader.in_field()
    }

    fn take_card(&mut self) -> anyhow::Result<bool> {
        self.save_card()?;
        let had = self.reader.take().is_some();
        self.reader.clear_faults();
        self.view.card = None;
        self.card_saved = None;
        Ok(had)
    }

    fn save_card(&mut self) -> anyhow::Result<()> {
        let (Some(card), Some(path)) = (self.reader.card(), self.view.card.as_ref()) else {
            return Ok(());
        };
        let bytes = card_file::image(card);
        if self.card_saved.as_ref() != Some(&bytes) {
            card_file::save_atomic(path, &bytes)?;
            self.card_saved = Some(bytes);
        }
        Ok(())
    }

    /// The terminal's wall clock now (R-F4.19), also between inputs; the RTC when powered off.
    pub fn wall(&self) -> NaiveDateTime {
        self.term
            .as_ref()
            .map_or_else(|| self.clock.rtc(), |t| t.wall_at(self.clock.now_ms()))
    }

    fn observe(&mut self, out: &[Output]) {
        for o in out {
            match o {
                Output::Screen(s) => self.view.screen.clone_from(&s.lines),
                Output::Beep(b) => {
                    self.view.last_beep = Some(*b);
                    match b {
                        Beep::Continuous => self.view.beeping = true,
                        Beep::Stop => self.view.beeping = false,
                        _ => {}
                    }
                }
                Output::SetTimer(t) => self.timer = Some(*t),
                Output::Event(Event::Online(on)) => self.view.online = *on,
                // The core keeps nothing keyed when it refuses (R-P5.1): neither does the echo.
                Output::Event(Event::Refused { .. }) => self.view.keyed.clear(),
                Output::Event(Event::ModeChanged(m)) => self.view.mode = Some(*m),
                Output::Send(_) | Output::Reconnect | Output::Event(_) => {}
            }
        }
        if let Some(t) = &self.term {
            let st = t.storage();
            self.view.pending = st.journal.pending_count();
            self.view.mode = Some(st.params.get().work_mode());
        }
    }
}
