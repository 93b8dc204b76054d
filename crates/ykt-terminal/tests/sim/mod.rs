//! The test rig: a terminal core on `MemFlash`, a simulated reader, the scripted host and a
//! fake clock. Outputs are routed synchronously: a frame sent to the host is answered at once
//! (unless the host is told to drop or hold), timers fire when `advance` passes them.
#![allow(dead_code, clippy::unwrap_used)]

pub mod host;
pub mod loads;

use chrono::{NaiveDate, NaiveDateTime};
use ykt_card::app::issue::{IssueParams, issue};
use ykt_card::app::{Mf1App, TxKind};
use ykt_card::cpu::CpuCard;
use ykt_card::cpu::app::{CpuApp, issue_cpu};
use ykt_card::cpu::psam::{PurchaseFacts, verify_load_tac, verify_purchase_tac};
use ykt_card::keys::SystemKeys;
use ykt_card::mf1::Mf1Card;
use ykt_card::{SimCard, SimulatedReader};
use ykt_proto::*;
use ykt_terminal::*;

pub use host::FakeHost;

pub const DEVICE: PhysicalId = PhysicalId([0xA1, 0xB2, 0xC3, 0xD4]);
pub const CARD: u32 = 4242;
pub const UID: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
pub const PIN: &str = "123456";

pub fn keys() -> SystemKeys {
    let mut m = [0u8; 112];
    for (i, b) in m.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    SystemKeys::from_material(1, &m)
}

pub fn master() -> DeviceKey {
    DeviceKey {
        suite: Suite::Aes128,
        key: Key([7; 16]),
    }
}

pub fn at(d: u32, h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, d)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
}

pub fn params() -> TerminalParams {
    TerminalParams {
        version: 3,
        work_mode: WorkMode::Auto,
        consumption_mode: ConsumptionMode::UnitPrice,
        fixed_amount: 0,
        price_list: vec![],
        allowed_classes: ClassSet::ALL,
        fee_rates: [0; 256],
        max_balance: 0,
        min_balance: 0,
        max_daily_uses: 0,
        single_password_threshold: 0,
        daily_password_threshold: 0,
        wallet_no: 0,
        max_offline_hours: 0,
        working_hours: vec![],
        operator_card: ykt_proto::AuthFunctions::NONE,
    }
}

pub fn card_with(card_no: u32, uid: [u8; 4], balance: Fen, class: u8) -> Mf1Card {
    let p = IssueParams {
        card_no: CardNo::new(card_no).unwrap(),
        display_no: DisplayNo::new(u64::from(card_no) + 2_026_000_000).unwrap(),
        class,
        expiry: NaiveDate::from_ymd_opt(2030, 6, 30).unwrap(),
        balances: vec![balance, 500],
        pin: PIN.into(),
    };
    issue(&keys(), uid, &p).unwrap()
}

pub fn cpu_card(card_no: u32, uid: [u8; 4], balance: Fen, class: u8) -> CpuCard {
    issue_cpu(
        &keys(),
        uid,
        CardNo::new(card_no).unwrap(),
        DisplayNo::new(u64::from(card_no)).unwrap(),
        class,
        NaiveDate::from_ymd_opt(2030, 6, 30).unwrap(),
        balance,
        PIN,
        u64::from(card_no),
    )
    .unwrap()
}

pub fn config() -> TerminalConfig {
    config_as(TerminalRole::Pos)
}

pub fn config_as(role: TerminalRole) -> TerminalConfig {
    TerminalConfig {
        device: DEVICE,
        master: master(),
        card_keys: keys(),
        journal: JournalConfig::with_segment_size(4096, 200),
        entropy: 99,
        role,
    }
}

/// Money that left the card per the journal: debited purchases and debits found on the card
/// (`Collected`), once per card counter, minus reversals.
pub fn net_debits(records: &[Record]) -> Fen {
    let mut by_counter = std::collections::BTreeMap::new();
    let mut reversed = 0;
    for r in records {
        match r.kind {
            RecordKind::Purchase if r.status.card_debited() => {
                by_counter.insert(
                    (r.card_type == CardType::Cpu, r.card_counter),
                    r.amount + r.fee,
                );
            }
            RecordKind::Reversal if r.status.card_debited() => reversed += r.amount + r.fee,
            _ => {}
        }
    }
    for r in records
        .iter()
        .filter(|r| r.kind == RecordKind::Collected && r.status.card_debited())
    {
        by_counter
            .entry((r.card_type == CardType::Cpu, r.card_counter))
            .or_insert(r.amount + r.fee);
    }
    by_counter.values().sum::<Fen>() - reversed
}

/// Whether a record closed as not written was found on the card afterwards: a `Collected`
/// record naming it, or (reversals) a later written record of the same kind and counter.
fn found_later(records: &[Record], serial: u32) -> bool {
    let Some(rec) = records.iter().find(|x| x.serial == serial) else {
        return false;
    };
    records.iter().any(|x| {
        (x.kind == RecordKind::Collected && x.original_serial == Some(serial))
            || (x.kind == RecordKind::Reversal
                && rec.kind == RecordKind::Reversal
                && x.serial > serial
                && x.card_counter == rec.card_counter
                && x.status.card_debited())
    })
}

pub struct Rig {
    pub term: Option<Terminal<MemFlash>>,
    pub reader: SimulatedReader,
    pub host: FakeHost,
    pub now: u64,
    pub link: bool,
    pub timer: Option<u64>,
    pub screens: Vec<Screen>,
    pub events: Vec<Event>,
    pub beeps: Vec<Beep>,
    /// Every frame the terminal sent.
    pub sent: Vec<Vec<u8>>,
    /// Every input fed to the core, with its time (to replay it).
    pub inputs: Vec<(u64, Input)>,
    pub rtc: NaiveDateTime,
    /// Flash of a terminal that lost power, waiting for `power_up`.
    pub dead_flash: Option<MemFlash>,
    pub cut_seed: u64,
    pub role: TerminalRole,
}

impl Rig {
    /// A terminal on blank flash, not yet connected.
    pub fn blank(p: TerminalParams) -> Rig {
        Rig::blank_as(p, TerminalRole::Pos)
    }

    /// A top-up terminal (R-B4), signed in.
    pub fn top_up(p: TerminalParams) -> Rig {
        let mut rig = Rig::blank_as(p, TerminalRole::TopUp);
        rig.link_up();
        rig
    }

    pub fn blank_as(p: TerminalParams, role: TerminalRole) -> Rig {
        let rtc = at(2, 11, 0);
        let host = FakeHost::new(DEVICE, master(), p, at(2, 11, 30));
        let mut rig = Rig {
            term: None,
            reader: SimulatedReader::new(7),
            host,
            now: 1_000,
            link: false,
            timer: None,
            screens: vec![],
            events: vec![],
            beeps: vec![],
            sent: vec![],
            inputs: vec![],
            rtc,
            dead_flash: Some(MemFlash::new()),
            cut_seed: 1,
            role,
        };
        rig.power_up();
        rig
    }

    /// Signed in, with the host's parameters and a card on the reader's desk (not placed).
    pub fn new(p: TerminalParams) -> Rig {
        let mut rig = Rig::blank(p);
        rig.link_up();
        rig
    }

    pub fn power_up(&mut self) {
        let flash = self.dead_flash.take().unwrap();
        let (t, out) = Terminal::power_on(flash, config_as(self.role), self.now, self.rtc).unwrap();
        self.term = Some(t);
        self.timer = None;
        self.route(out);
    }

    /// Power fails now; the flash keeps what was synced (and a seeded part of the rest).
    pub fn power_off(&mut self) {
        let t = self.term.take().unwrap();
        let flash = t.into_flash();
        self.dead_flash = Some(flash.power_cycle(self.cut_seed));
        self.host.connection_reset();
        self.link = false;
        // The RTC keeps running while the power is off.
        self.rtc += chrono::TimeDelta::milliseconds(self.now as i64 - 1_000);
        self.now = 1_000;
    }

    pub fn term(&self) -> &Terminal<MemFlash> {
        self.term.as_ref().unwrap()
    }

    pub fn halted(&self) -> bool {
        self.term().is_halted()
    }

    /// The timer table's invariant (issue 10.13): the next timer is the earliest pending
    /// deadline, later than the last input, and the driver was told of it.
    pub fn check_timers(&self) {
        let Some(t) = self.term.as_ref().filter(|t| !t.is_halted()) else {
            return;
        };
        let next = t.next_timer();
        assert_eq!(next, t.timers().iter().map(|&(_, at)| at).min());
        if let Some(n) = next {
            assert!(n > self.now, "next timer {n} not after now {}", self.now);
            assert_eq!(
                self.timer,
                Some(n),
                "the driver was not told: {:?}",
                t.timers()
            );
        }
    }

    pub fn feed(&mut self, input: Input) {
        let Some(t) = self.term.as_mut() else { return };
        self.inputs.push((self.now, input.clone()));
        let out = t.handle(input, &mut self.reader, self.now);
        self.route(out);
    }

    fn route(&mut self, out: Vec<Output>) {
        let mut replies = Vec::new();
        for o in out {
            match o {
                Output::Screen(s) => self.screens.push(s),
                Output::Beep(b) => self.beeps.push(b),
                Output::SetTimer(t) => self.timer = Some(t),
                Output::Reconnect => self.link = false,
                Output::Event(e) => self.events.push(e),
                Output::Send(bytes) => {
                    self.sent.push(bytes.clone());
                    if self.link {
                        replies.extend(self.host.receive(&bytes));
                    }
                }
            }
        }
        for r in replies {
            if self.link {
                self.feed(Input::FromHost(r));
            }
        }
    }

    pub fn link_up(&mut self) {
        self.link = true;
        self.host.connection_reset();
        self.feed(Input::LinkUp);
    }

    pub fn link_down(&mut self) {
        self.link = false;
        self.feed(Input::LinkDown);
    }

    /// Lets `ms` pass, firing every timer on the way.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        let mut guard = 0;
        while let Some(t) = self.timer.filter(|t| *t <= end && *t >= self.now) {
            self.now = t;
            self.timer = None;
            self.feed(Input::Tick);
            guard += 1;
            if guard > 10_000 || self.term.is_none() || self.halted() {
                break;
            }
        }
        self.now = end;
        self.feed(Input::Tick);
    }

    pub fn release_held(&mut self) {
        for f in std::mem::take(&mut self.host.held) {
            self.feed(Input::FromHost(f));
        }
    }

    pub fn host_request(&mut self, msg: Message) {
        if let Some(f) = self.host.request(msg) {
            self.feed(Input::FromHost(f));
        }
    }

    pub fn key(&mut self, k: ykt_terminal::Key) {
        self.feed(Input::Key(k));
    }

    pub fn type_digits(&mut self, s: &str) {
        for c in s.chars() {
            self.key(ykt_terminal::Key::Digit(c.to_digit(10).unwrap() as u8));
        }
    }

    /// Keys an amount in fen and confirms it.
    pub fn amount(&mut self, fen: Fen) {
        self.type_digits(&fen.to_string());
        self.key(ykt_terminal::Key::Enter);
    }

    pub fn place(&mut self, card: Mf1Card) {
        self.reader.place(SimCard::Mf1(card));
        self.feed(Input::CardPresent);
    }

    pub fn place_cpu(&mut self, card: CpuCard) {
        self.reader.place(SimCard::Cpu(card));
        self.feed(Input::CardPresent);
    }

    pub fn is_cpu(&self) -> bool {
        matches!(self.reader.card(), Some(SimCard::Cpu(_)))
    }

    pub fn retap(&mut self) {
        self.reader.retap();
        self.feed(Input::CardPresent);
    }

    pub fn lift(&mut self) {
        self.reader.lift();
        self.feed(Input::CardRemoved);
    }

    pub fn card(&self) -> &Mf1Card {
        match self.reader.card().unwrap() {
            SimCard::Mf1(c) => c,
            SimCard::Cpu(_) => panic!("not MF1"),
        }
    }

    /// The card's balance, read through a spare reader (no faults, no side effects).
    pub fn balance(&self) -> Fen {
        let mut r = SimulatedReader::new(1);
        if let Some(SimCard::Cpu(c)) = self.reader.card() {
            r.place(SimCard::Cpu(c.clone()));
            return CpuApp::read(&mut r).unwrap().balance;
        }
        r.place(SimCard::Mf1(self.card().clone()));
        let k = keys();
        Mf1App::new(&k).read(&mut r, 0).unwrap().wallet.balance
    }

    /// The card's lock flag (R-F4.15).
    pub fn locked(&self) -> bool {
        let mut r = SimulatedReader::new(1);
        if let Some(SimCard::Cpu(c)) = self.reader.card() {
            r.place(SimCard::Cpu(c.clone()));
            return CpuApp::read(&mut r).unwrap().locked;
        }
        r.place(SimCard::Mf1(self.card().clone()));
        let k = keys();
        Mf1App::new(&k).read(&mut r, 0).unwrap().locked()
    }

    pub fn screen(&self) -> String {
        self.screens
            .last()
            .map(|s| s.lines.join("|"))
            .unwrap_or_default()
    }

    /// How many of the core's pending deadlines are `t` (0 or 1).
    pub fn timers_named(&self, t: Timer) -> usize {
        self.term().timers().iter().filter(|(n, _)| *n == t).count()
    }

    pub fn saw_screen(&self, text: &str) -> bool {
        self.screens
            .iter()
            .any(|s| s.lines.iter().any(|l| l.contains(text)))
    }

    pub fn records(&self) -> Vec<Record> {
        self.term().storage().journal.records().cloned().collect()
    }

    pub fn last_record(&self) -> Record {
        self.records().last().cloned().unwrap()
    }

    pub fn pending(&self) -> usize {
        self.term().storage().journal.pending_count()
    }

    pub fn refused_codes(&self) -> Vec<Option<ReturnCode>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Refused { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// Invariants of issue 4, point 4, for one card starting at `start`.
    pub fn check_invariants(&self, start: Fen) {
        let records = self.records();
        // No serial reused: strictly increasing, unique.
        for w in records.windows(2) {
            assert!(w[0].serial < w[1].serial, "serials not increasing");
        }
        // Card balance + successful debits − reversals − loads = starting balance.
        let debited: Fen = net_debits(&records);
        let loaded: Fen = records
            .iter()
            .filter(|r| self.load_landed(r))
            .map(|r| r.amount)
            .sum();
        assert_eq!(
            self.balance() + debited,
            start + loaded,
            "card balance vs journal: {records:#?}"
        );
        if self.is_cpu() {
            self.check_cpu_card(&records);
            return;
        }
        // No card debit without a record: every ring entry of ours is a debited record.
        let mut r = SimulatedReader::new(1);
        r.place(SimCard::Mf1(self.card().clone()));
        let k = keys();
        let app = Mf1App::new(&k);
        let c = app.read(&mut r, 0).unwrap();
        for cr in app.records(&mut r, &c, 64).unwrap() {
            let rec = records
                .iter()
                .find(|x| x.serial == cr.serial && cr.device == DEVICE);
            let rec = rec.unwrap_or_else(|| panic!("card transaction {cr:?} without a record"));
            assert!(
                rec.status.card_debited()
                    || found_later(&records, rec.serial)
                    || self.load_landed(rec),
                "card written but record says {:?}",
                rec.status
            );
            let kind = match rec.kind {
                RecordKind::Reversal => TxKind::Reversal,
                RecordKind::TopUp | RecordKind::Subsidy => TxKind::TopUp,
                _ => TxKind::Purchase,
            };
            assert_eq!(cr.kind, kind);
        }
    }

    /// CPU purse: every purchase of ours in the card's log is a debited record, and every
    /// debited record's TAC verifies as the host checks it.
    fn check_cpu_card(&self, records: &[Record]) {
        let Some(SimCard::Cpu(c)) = self.reader.card() else {
            unreachable!()
        };
        let mut r = SimulatedReader::new(1);
        r.place(SimCard::Cpu(c.clone()));
        CpuApp::read(&mut r).unwrap();
        let term = [0, 0, DEVICE.0[0], DEVICE.0[1], DEVICE.0[2], DEVICE.0[3]];
        for log in CpuApp::records(&mut r, 10).unwrap() {
            if log[10..16] != term {
                continue;
            }
            let seq = u32::from(u16::from_be_bytes([log[0], log[1]]));
            if log[9] == ykt_card::cpu::crypto::tx_type::LOAD_EP {
                // A credit of ours: exactly one load record of that online sequence landed.
                let landed = records
                    .iter()
                    .filter(|x| x.card_type == CardType::Cpu && x.kind.is_load())
                    .filter(|x| x.card_counter == seq && self.load_landed(x))
                    .count();
                assert_eq!(landed, 1, "purse load {seq}: {records:#?}");
                continue;
            }
            // Several records may carry the sequence number of a purchase that did not happen
            // (the next one reuses it): exactly one of them must account for the debit.
            let candidates: Vec<_> = records
                .iter()
                .filter(|x| {
                    x.card_type == CardType::Cpu
                        && x.card_counter == seq
                        && x.kind == RecordKind::Purchase
                })
                .collect();
            assert!(
                !candidates.is_empty(),
                "purse purchase {seq} without a record"
            );
            let accounted = candidates
                .iter()
                .filter(|x| x.status.card_debited() || found_later(records, x.serial))
                .count();
            assert_eq!(
                accounted, 1,
                "purse purchase {seq}: records {candidates:#?}"
            );
        }
        let k = keys();
        for rec in records
            .iter()
            .filter(|x| x.card_type == CardType::Cpu && x.kind.is_load() && x.status.card_debited())
        {
            let init = ykt_card::cpu::psam::LoadInit {
                serial: ykt_card::cpu::app::serial_for(rec.card_no),
                balance: rec.balance_before as u32,
                online_seq: rec.card_counter as u16,
                random: [0; 4],
                mac1: [0; 4],
                amount: rec.amount as u32,
                ty: ykt_card::cpu::crypto::tx_type::LOAD_EP,
                term_id: term,
            };
            let (d, t) = (
                ykt_card::cpu::apdu::bcd_date(rec.time),
                ykt_card::cpu::apdu::bcd_time(rec.time),
            );
            assert!(
                rec.tac == 0 || verify_load_tac(&k, &init, &d, &t, &rec.tac.to_be_bytes()),
                "load TAC of {rec:?}"
            );
        }
        for rec in records
            .iter()
            .filter(|x| x.card_type == CardType::Cpu && x.status.card_debited())
            .filter(|x| !x.kind.is_load())
            .filter(|x| x.kind == RecordKind::Purchase || x.tac != 0)
        {
            let f = PurchaseFacts {
                serial: ykt_card::cpu::app::serial_for(rec.card_no),
                amount: (rec.amount + rec.fee) as u32,
                ty: ykt_card::cpu::crypto::tx_type::PURCHASE_EP,
                term_id: term,
                // A debit found later keeps the TAC of its own purchase: the original serial.
                term_seq: rec
                    .original_serial
                    .filter(|_| rec.kind == RecordKind::Collected)
                    .unwrap_or(rec.serial),
                date: ykt_card::cpu::apdu::bcd_date(rec.time),
                time: ykt_card::cpu::apdu::bcd_time(rec.time),
            };
            assert!(
                verify_purchase_tac(&k, &f, &rec.tac.to_be_bytes()),
                "TAC of {rec:?}"
            );
        }
    }

    /// Whether a load record's credit is on the card: 交易成功 in the journal, or uploaded
    /// unknown (发起交易) and posted by the host from the card's next record.
    pub fn load_landed(&self, r: &Record) -> bool {
        if !r.kind.is_load() {
            return false;
        }
        r.status == RecordStatus::Success
            || (r.status == RecordStatus::Initiated
                && self
                    .host
                    .loads
                    .loads
                    .get(&r.serial)
                    .is_some_and(|l| l.state == loads::LoadState::Posted))
    }

    /// R-B4, R-B5: every load settled once, none against the books; the money that waited
    /// is on the cards or waits still, the cash taken is on the cards.
    pub fn check_loads(&self) {
        let l = &self.host.loads;
        assert!(l.conflicts.is_empty(), "{:?}", l.conflicts);
        assert_eq!(l.pending().count(), 0, "loads left pending: {:#?}", l.loads);
        let posted = |pick_up: bool| -> Fen {
            l.loads
                .values()
                .filter(|x| x.state == loads::LoadState::Posted)
                .filter(|x| (x.request.purpose == LoadPurpose::Pickup) == pick_up)
                .map(|x| x.request.amount)
                .sum()
        };
        let waits: Fen = l.waiting.values().sum();
        let waited: Fen = l.waiting_at_start.values().sum();
        assert_eq!(waits + posted(true), waited, "waiting money not conserved");
        assert_eq!(l.cash_in, posted(false), "cash taken vs top-ups posted");
        // Each load posted is one journal record whose credit is on the card, once.
        let records = self.records();
        let posted_serials = l
            .loads
            .iter()
            .filter(|(_, x)| x.state == loads::LoadState::Posted)
            .map(|(s, _)| *s);
        for serial in posted_serials {
            let r = records.iter().find(|r| r.serial == serial).unwrap();
            assert!(
                self.load_landed(r),
                "posted load {serial} not landed: {r:?}"
            );
        }
    }

    /// Once everything is uploaded: the host booked exactly what the card lost, once each.
    pub fn check_host_books(&self) {
        assert_eq!(self.pending(), 0, "records left to upload");
        self.check_loads();
        let records = self.records();
        let debited: Fen = net_debits(&records);
        assert_eq!(
            self.host.duplicates, 0,
            "a serial was reused with other content"
        );
        let host: Fen = self.host.debited.values().sum();
        assert_eq!(
            host, debited,
            "host books vs card: {:#?}",
            self.host.records
        );
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.host.bookings {
            assert!(
                seen.insert(*s)
                    || self
                        .host
                        .records
                        .get(s)
                        .is_some_and(|x| !x.booked || x.reversed),
                "record {s} booked twice"
            );
        }
    }

    /// Lets every flow finish: re-tap, cancel after 60 s, reconnect, upload.
    pub fn settle(&mut self) {
        for _ in 0..3 {
            if self.term().in_flight().is_some() {
                self.reader.clear_faults();
                if self.reader.card().is_some() {
                    self.retap();
                }
            }
            if self.term().in_flight().is_some() {
                self.advance(60_000);
                self.key(ykt_terminal::Key::Cancel);
            }
        }
        // The card shown once more, idle: debits a blind cancel missed are found (R-F4.17).
        if self.reader.card().is_some() && self.term().in_flight().is_none() {
            self.reader.clear_faults();
            self.key(ykt_terminal::Key::Cancel);
            self.retap();
        }
        self.host.silent = false;
        self.host.drop_debits = 0;
        self.host.hold_debits = false;
        if !self.link {
            self.link_up();
        }
        self.upload_all();
        // A load uploaded unknown (发起交易) is settled by the card's next record: one more
        // transaction of 1 fen with the card makes it.
        if self.host.loads.pending().any(|l| l.unknown) && self.reader.card().is_some() {
            self.reader.clear_faults();
            self.key(ykt_terminal::Key::Cancel);
            self.amount(1);
            self.retap();
            self.upload_all();
        }
    }

    fn upload_all(&mut self) {
        for _ in 0..20 {
            if self.pending() == 0 {
                break;
            }
            self.advance(6_000);
        }
    }
}

/// Reader operations of one whole tap-and-debit on a fresh card (read + write sequence).
pub fn ops_of_debit() -> u64 {
    let mut rig = Rig::new(params());
    rig.amount(100);
    let before = rig.reader.op_count();
    rig.place(card_with(CARD, UID, 10_000, 1));
    rig.reader.op_count() - before
}

impl Rig {
    /// Taps the card with a tear at the `from_end`-th last operation of the debit
    /// (3 = the main wallet write: `Old` leaves the debit not landed, `New` landed).
    pub fn place_torn(&mut self, card: Mf1Card, from_end: u64, outcome: ykt_card::TearOutcome) {
        let at = self.reader.op_count() + ops_of_debit() - from_end;
        self.reader.inject(at, ykt_card::Fault::Tear(outcome));
        self.place(card);
    }
}
