//! The transaction flows: amount entry (R-F4.10), card checks (chapter 4), online debit
//! (R-P5.2, R-P5.3), offline debit (R-P5.6), write failure and re-tap (R-P5.4, R-P5.7),
//! cancel (R-P5.5, R-P5.8), black cards (R-F4.15), reversal (冲正) and collection (R-F4.17).
//! Rule: a record is journalled and synced before any card write.

use ykt_card::Reader;
use ykt_card::app::{
    AppError, CardRead, LockStatus, Mf1App, Pending, Resolution, TxKind, TxRequest,
};
use ykt_card::cpu::app::CpuApp;
use ykt_proto::messages::{DebitRequest, DebitResponse, Message};
use ykt_proto::{
    CardType, ConsumptionMode, Fen, Record, RecordKind, RecordStatus, ReturnCode, TerminalSerial,
    WorkMode,
};

use super::checks::{Refusal, check_debit};
use super::cpu::{self, CpuTap, Tapped, cpu_refusal};
use super::io::Key;
use super::{
    BALANCE_HOLD_MS, Beep, CANCEL_LOCK_MS, Event, INFO_HOLD_MS, ONLINE_WAIT_MS, Output, Res,
    Screen, Terminal, texts,
};
use crate::storage::flash::Flash;
use crate::storage::journal::{Journal, JournalError};

/// Digits the operator may key for an amount (fen), item code or PIN.
const MAX_DIGITS: usize = 8;

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sale {
    amount: Fen,
    item_code: u16,
    subject: u16,
}

#[derive(Debug)]
pub(super) struct Online {
    record: Record,
    card: Tapped,
    subject: u16,
    attempts: u8,
    seq: u32,
    deadline: u64,
}

#[derive(Debug)]
pub(super) struct Retap {
    record: Record,
    /// The host authorised this debit (cancel → cancellation record, R-P5.5).
    authorised: bool,
    /// Whether a write that did not land may be written again.
    rewrite: bool,
    since: u64,
    subject: u16,
}

#[derive(Debug)]
pub(super) enum Flow {
    Idle {
        digits: String,
    },
    Ready(Sale),
    Pin {
        sale: Sale,
        card: Box<Tapped>,
        fee: Fen,
        digits: String,
    },
    AwaitHost(Box<Online>),
    Retap(Box<Retap>),
    Reversal,
}

impl Default for Flow {
    fn default() -> Self {
        Flow::Idle {
            digits: String::new(),
        }
    }
}

impl Flow {
    pub(super) fn in_flight(&self) -> Option<TerminalSerial> {
        match self {
            Flow::AwaitHost(o) => Some(o.record.serial),
            Flow::Retap(r) => Some(r.record.serial),
            _ => None,
        }
    }

    pub(super) fn deadline(&self) -> Option<u64> {
        match self {
            Flow::AwaitHost(o) => Some(o.deadline),
            Flow::Retap(r) => Some(r.since + CANCEL_LOCK_MS),
            _ => None,
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        matches!(self, Flow::Idle { .. } | Flow::Ready(_))
    }
}

/// After power-up: the last record, if its card write is unresolved, becomes a re-tap prompt
/// (nothing is appended while a transaction is open, so it is always the newest record).
pub(super) fn resume(journal: &Journal, now: u64) -> Flow {
    let last = journal
        .next_serial()
        .checked_sub(1)
        .and_then(|s| journal.get(s));
    match last {
        Some(r) if card_write_open(r) => {
            Flow::Retap(Box::new(Retap {
                record: r.clone(),
                authorised: false,
                // Unknown whether the host authorised an online debit: never write it now.
                rewrite: r.status == RecordStatus::NotWritten,
                since: now,
                subject: 0,
            }))
        }
        _ => Flow::default(),
    }
}

/// A money record whose card write has not been settled.
fn card_write_open(r: &Record) -> bool {
    matches!(r.kind, RecordKind::Purchase | RecordKind::Reversal)
        && matches!(r.status, RecordStatus::Initiated | RecordStatus::NotWritten)
}

fn app_refusal(e: &AppError) -> Refusal {
    match e {
        AppError::Locked => Refusal::Code(ReturnCode::CARD_LOCKED),
        AppError::WalletDamaged(_) | AppError::Inconsistent(_) => {
            Refusal::Code(ReturnCode::CARD_BALANCE_ABNORMAL)
        }
        AppError::InsufficientBalance { .. } => {
            Refusal::Code(ReturnCode::CARD_INSUFFICIENT_BALANCE)
        }
        _ => Refusal::Code(ReturnCode::CARD_STATUS_ABNORMAL),
    }
}

fn tx_request(r: &Record) -> TxRequest {
    let (kind, amount, fee) = match r.kind {
        // A reversal gives back amount and fee as one credit.
        RecordKind::Reversal => (TxKind::Reversal, r.amount + r.fee, 0),
        _ => (TxKind::Purchase, r.amount, r.fee),
    };
    TxRequest {
        kind,
        amount,
        fee,
        time: r.time,
        device: r.device,
        serial: r.serial,
    }
}

impl<F: Flash> Terminal<F> {
    pub(super) fn app(&self) -> Mf1App<'_> {
        Mf1App::new(&self.cfg.card_keys)
    }

    pub(super) fn sale_busy(&self) -> bool {
        matches!(self.flow, Flow::AwaitHost(_))
    }

    pub(super) fn sale_awaits(&self, corr: u32) -> bool {
        matches!(&self.flow, Flow::AwaitHost(o) if o.seq == corr)
    }

    /// Whether the terminal may take transactions at all (R-P5.1).
    fn working(&self) -> bool {
        self.link.sign_in_settled()
            && self.link.sign_in_error.is_none()
            && self.st.params.get().merchant_no != 0
    }

    fn fixed_sale(&self) -> Option<Sale> {
        let p = self.params()?;
        (p.consumption_mode == ConsumptionMode::FixedAmount && p.fixed_amount > 0).then_some(Sale {
            amount: p.fixed_amount,
            item_code: 0,
            subject: 0,
        })
    }

    pub(super) fn flow_lines(&self) -> Option<Vec<String>> {
        match &self.flow {
            Flow::Idle { .. } => None,
            Flow::Ready(s) => Some(vec![texts::amount(s.amount), texts::TAP_CARD.into()]),
            Flow::Pin { digits, .. } => {
                Some(vec![texts::ENTER_PIN.into(), "*".repeat(digits.len())])
            }
            Flow::AwaitHost(_) => Some(vec![texts::WAITING_HOST.into()]),
            Flow::Retap(r) => {
                let hint = if self.now >= r.since + CANCEL_LOCK_MS {
                    texts::CANCEL_ALLOWED
                } else {
                    texts::CANCEL_NOT_YET
                };
                Some(vec![texts::RETAP.into(), hint.into()])
            }
            Flow::Reversal => Some(vec![texts::TAP_TO_REVERSE.into()]),
        }
    }

    pub(super) fn idle_lines(&self) -> Vec<String> {
        let Some(p) = self.params() else {
            return vec![texts::NO_PARAMS.into()];
        };
        let digits = match &self.flow {
            Flow::Idle { digits } => digits.clone(),
            _ => String::new(),
        };
        let mode = texts::mode(self.work_mode()).to_owned();
        match p.consumption_mode {
            ConsumptionMode::UnitPrice if digits.is_empty() => {
                vec![mode, texts::ENTER_AMOUNT.into()]
            }
            ConsumptionMode::UnitPrice => {
                vec![mode, texts::amount(digits.parse().unwrap_or(0))]
            }
            ConsumptionMode::Coded => vec![mode, format!("{}{digits}", texts::ENTER_CODE)],
            ConsumptionMode::FixedAmount => {
                vec![mode, texts::amount(p.fixed_amount), texts::TAP_CARD.into()]
            }
        }
    }

    pub(super) fn sale_key(&mut self, key: Key, reader: &mut dyn Reader) -> Res {
        let _ = reader;
        match (&mut self.flow, key) {
            (Flow::Retap(r), Key::Cancel) => {
                if self.now < r.since + CANCEL_LOCK_MS {
                    self.flash_text(vec![texts::CANCEL_NOT_YET.into()], INFO_HOLD_MS);
                    return Ok(());
                }
                self.cancel_retap()
            }
            (Flow::Retap(_) | Flow::AwaitHost(_), _) => Ok(()),
            (Flow::Pin { digits, .. }, Key::Digit(d)) => {
                if digits.len() < 12 && d < 10 {
                    digits.push(char::from(b'0' + d));
                }
                self.refresh_screen();
                Ok(())
            }
            (Flow::Pin { .. }, Key::Enter) => self.pin_entered(reader),
            (Flow::Idle { digits }, Key::Digit(d)) => {
                if digits.len() < MAX_DIGITS && d < 10 {
                    digits.push(char::from(b'0' + d));
                }
                self.refresh_screen();
                Ok(())
            }
            (Flow::Idle { .. }, Key::Enter) => self.amount_entered(),
            (Flow::Idle { .. }, Key::Reversal) => {
                if self.working() {
                    self.flow = Flow::Reversal;
                }
                self.refresh_screen();
                Ok(())
            }
            (_, Key::Cancel) => {
                self.flow = Flow::default();
                self.screen_until = None;
                self.refresh_screen();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn amount_entered(&mut self) -> Res {
        let Flow::Idle { digits } = &self.flow else {
            return Ok(());
        };
        let n: i64 = digits.parse().unwrap_or(0);
        let Some(p) = self.params() else {
            return Ok(());
        };
        let sale = match p.consumption_mode {
            ConsumptionMode::UnitPrice => Sale {
                amount: n,
                item_code: 0,
                subject: 0,
            },
            ConsumptionMode::Coded => match p.price_list.iter().find(|i| i64::from(i.code) == n) {
                Some(i) => Sale {
                    amount: i.price,
                    item_code: i.code,
                    subject: i.subject,
                },
                None => {
                    self.flow = Flow::default();
                    self.refuse(None, texts::NO_ITEM.into());
                    return Ok(());
                }
            },
            ConsumptionMode::FixedAmount => return Ok(()),
        };
        if sale.amount <= 0 {
            self.flow = Flow::default();
            self.refresh_screen();
            return Ok(());
        }
        self.flow = Flow::Ready(sale);
        self.screen_until = None;
        self.refresh_screen();
        Ok(())
    }

    pub(super) fn on_card(&mut self, reader: &mut dyn Reader) -> Res {
        if matches!(self.flow, Flow::Retap(_)) {
            return self.retap(reader);
        }
        if !self.working() || self.params().is_none() {
            self.refresh_screen();
            return Ok(());
        }
        let sale = match &self.flow {
            Flow::Ready(s) => Some(*s),
            Flow::Idle { .. } => self.fixed_sale(),
            Flow::Reversal => None,
            _ => return Ok(()),
        };
        let reversal = matches!(self.flow, Flow::Reversal);
        let card = match self.read_tapped(reader) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()), // card gone before it was read
            Err(r) => {
                if sale.is_some() || reversal {
                    self.refuse_card(&r);
                }
                return Ok(());
            }
        };
        if sale.is_none() && !reversal {
            // No amount yet: only what the card itself asks for (found debits, collection).
            self.recover_landed(reader, &card)?;
            if let (Tapped::Mf1(c), false) = (&card, card.locked()) {
                self.serve_collect(reader, c)?;
            }
            self.refresh_screen();
            return Ok(());
        }
        self.recover_landed(reader, &card)?;
        // R-F4.15: the flag refuses the card on any terminal, list or not.
        if card.locked() {
            self.refuse_card(&Refusal::Code(ReturnCode::CARD_LOCKED));
            return Ok(());
        }
        if self.st.blacklist.contains(card.card_no()) {
            return self.black_card(reader, &card);
        }
        if let Tapped::Mf1(c) = &card {
            self.serve_collect(reader, c)?;
            if reversal {
                return self.reverse(reader, c);
            }
        } else if reversal {
            // Reversal is for MF1 cards only (R-F4.22).
            self.flow = Flow::default();
            self.refuse(None, texts::NO_CPU_REVERSAL.into());
            return Ok(());
        }
        let Some(sale) = sale else { return Ok(()) };
        let Some(p) = self.params() else {
            return Ok(());
        };
        let now = self.wall();
        if !super::checks::within_hours(p, now.time()) {
            let code = ReturnCode::POS_OUTSIDE_WORKING_HOURS;
            self.refuse_card(&Refusal::Code(code));
            return Ok(());
        }
        let today = now.date();
        match check_debit(&card.facts(today), p, today, sale.amount) {
            Err(r) => {
                self.refuse_card(&r);
                Ok(())
            }
            Ok(a) if a.needs_pin => {
                // R-F4.11, R-F4.12.
                self.flow = Flow::Pin {
                    sale,
                    card: Box::new(card),
                    fee: a.fee,
                    digits: String::new(),
                };
                self.refresh_screen();
                Ok(())
            }
            Ok(a) => self.debit(reader, card, sale, a.fee),
        }
    }

    /// Reads the card in the field, MF1 or CPU. `Ok(None)`: it left before it was read.
    fn read_tapped(&mut self, reader: &mut dyn Reader) -> Result<Option<Tapped>, Refusal> {
        match self.app().read(reader, self.wallet_no()) {
            Ok(c) => Ok(Some(Tapped::Mf1(Box::new(c)))),
            Err(AppError::NotMf1) => match CpuApp::read(reader) {
                Ok(c) => Ok(Some(Tapped::Cpu(Box::new(CpuTap {
                    read: c,
                    init: None,
                })))),
                Err(ykt_card::cpu::app::CpuError::Reader(_)) => Ok(None),
                Err(e) => Err(cpu_refusal(&e)),
            },
            Err(AppError::Reader(_)) => Ok(None),
            Err(e) => Err(app_refusal(&e)),
        }
    }

    fn wallet_no(&self) -> u8 {
        self.params().map_or(0, |p| p.wallet_no)
    }

    fn refuse_card(&mut self, r: &Refusal) {
        if !matches!(self.flow, Flow::Ready(_) | Flow::Pin { .. }) {
            self.flow = Flow::default();
        } else if let Flow::Pin { sale, .. } = &self.flow {
            self.flow = Flow::Ready(*sale);
        }
        self.refuse(r.code(), r.screen());
    }

    fn pin_entered(&mut self, reader: &mut dyn Reader) -> Res {
        let Flow::Pin {
            sale,
            card,
            fee,
            digits,
        } = std::mem::take(&mut self.flow)
        else {
            return Ok(());
        };
        self.flow = Flow::Ready(sale);
        let right = match card.as_ref() {
            Tapped::Mf1(c) => self.app().verify_pin(c, &digits),
            Tapped::Cpu(_) => CpuApp::verify_pin(reader, &digits).unwrap_or(false),
        };
        if !right {
            self.refuse(
                Some(ReturnCode::CARD_PASSWORD_WRONG),
                ReturnCode::CARD_PASSWORD_WRONG.screen_text(),
            );
            return Ok(());
        }
        self.debit(reader, *card, sale, fee)
    }

    /// Whether the offline-time limit forbids offline transactions (R-F4.18).
    fn offline_exceeded(&self) -> bool {
        let max = self.params().map_or(0, |p| p.max_offline_hours);
        self.st.state.offline().exceeded(max, self.now)
    }

    fn base_record(&self, card: &Tapped, sale: Sale, fee: Fen, online: bool) -> Record {
        let total = sale.amount + fee;
        let (counter, wallet_no, balance) = match card {
            Tapped::Mf1(c) => (c.wallet.counter, c.wallet_no, c.wallet.balance),
            // The purse's offline sequence number is its lifetime purchase counter.
            Tapped::Cpu(c) => match &c.init {
                Some(i) => (u32::from(i.offline_seq), 0, i.balance),
                None => (0, 0, c.read.balance),
            },
        };
        Record {
            device: self.cfg.device,
            serial: 0,
            kind: RecordKind::Purchase,
            status: if online {
                RecordStatus::Initiated
            } else {
                RecordStatus::NotWritten
            },
            online,
            card_type: card.card_type(),
            card_no: card.card_no(),
            card_counter: counter,
            wallet_no,
            balance_before: balance,
            amount: sale.amount,
            fee,
            balance_after: balance - total,
            time: self.record_time(),
            merchant_no: self.st.params.get().merchant_no,
            original_serial: None,
            item_code: sale.item_code,
            tac: 0,
        }
    }

    /// The terminal clock to the second, as cards and the wire keep it.
    fn record_time(&self) -> chrono::NaiveDateTime {
        let t = self.wall();
        chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t)
    }

    /// Opens the CPU purse's purchase session (balance and offline sequence number are then
    /// known for the record). `false`: refused, shown.
    fn prepare(&mut self, reader: &mut dyn Reader, card: &mut Tapped, total: Fen) -> bool {
        let Tapped::Cpu(c) = card else { return true };
        match cpu::init_purchase(reader, total, self.cfg.device) {
            Ok(init) => {
                c.init = Some(init);
                true
            }
            Err(e) => {
                self.flow = Flow::default();
                let r = cpu_refusal(&e);
                self.refuse(r.code(), r.screen());
                false
            }
        }
    }

    /// Journals (synced) and returns the record with its serial; `None` when the journal is
    /// full (shown to the operator).
    fn journal(&mut self, mut r: Record, subject: u16) -> Res<Option<Record>> {
        match self.st.journal.append(&mut self.st.flash, r.clone()) {
            Ok(serial) => {
                r.serial = serial;
                self.record_event(&r, subject);
                Ok(Some(r))
            }
            Err(JournalError::Full { .. }) => {
                self.flow = Flow::default();
                self.refuse(None, texts::JOURNAL_FULL.into());
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn set_status(&mut self, r: &mut Record, status: RecordStatus, subject: u16) -> Res {
        self.st
            .journal
            .set_status(&mut self.st.flash, r.serial, status)?;
        r.status = status;
        self.record_event(r, subject);
        Ok(())
    }

    fn debit(&mut self, reader: &mut dyn Reader, mut card: Tapped, sale: Sale, fee: Fen) -> Res {
        let mode = self.work_mode();
        let offline_only = mode == WorkMode::Offline || !self.link.online_check;
        if !offline_only && self.link.online() {
            if !self.prepare(reader, &mut card, sale.amount + fee) {
                return Ok(());
            }
            return self.online_debit(card, sale, fee);
        }
        if mode == WorkMode::FullOnline && !offline_only {
            // R-F4.18: full online never works offline.
            self.flow = Flow::default();
            self.refuse(
                Some(ReturnCode::NETWORK_FAILURE),
                ReturnCode::NETWORK_FAILURE.screen_text(),
            );
            return Ok(());
        }
        if self.offline_exceeded() {
            self.flow = Flow::default();
            self.refuse(None, texts::OFFLINE_TOO_LONG.into());
            return Ok(());
        }
        if !self.prepare(reader, &mut card, sale.amount + fee) {
            return Ok(());
        }
        let rec = self.base_record(&card, sale, fee, false);
        let Some(rec) = self.journal(rec, sale.subject)? else {
            return Ok(());
        };
        self.write(reader, &card, rec, false, true, sale.subject)
    }

    fn online_debit(&mut self, card: Tapped, sale: Sale, fee: Fen) -> Res {
        let rec = self.base_record(&card, sale, fee, true);
        let Some(rec) = self.journal(rec, sale.subject)? else {
            return Ok(());
        };
        let Some(seq) = self.send_debit(&rec) else {
            // The session vanished between the check and now: the host never saw it.
            let mut rec = rec;
            self.set_status(&mut rec, RecordStatus::Failed, sale.subject)?;
            self.flow = Flow::default();
            self.refuse(None, texts::NOT_ONLINE.into());
            return Ok(());
        };
        self.flow = Flow::AwaitHost(Box::new(Online {
            record: rec,
            card,
            subject: sale.subject,
            attempts: 1,
            seq,
            deadline: self.now + ONLINE_WAIT_MS,
        }));
        self.refresh_screen();
        Ok(())
    }

    fn send_debit(&mut self, r: &Record) -> Option<u32> {
        let req = DebitRequest {
            card_no: r.card_no,
            card_type: r.card_type,
            card_counter: r.card_counter,
            balance_before: r.balance_before,
            amount: r.amount,
            fee: r.fee,
            wallet_no: r.wallet_no,
            item_code: r.item_code,
            serial: r.serial,
            time: r.time,
        };
        self.send(&Message::DebitRequest(req), 0)
    }

    pub(super) fn sale_debit_response(
        &mut self,
        resp: DebitResponse,
        corr: u32,
        reader: &mut dyn Reader,
    ) -> Res {
        let Flow::AwaitHost(o) = &self.flow else {
            return Ok(());
        };
        let r = &o.record;
        let matches = resp.serial == r.serial && resp.card_no == r.card_no;
        if !matches || (o.seq != corr && o.attempts == 1) {
            return Ok(());
        }
        if resp.code.is_success() && (resp.amount != r.amount || resp.fee != r.fee) {
            // An authorisation for other figures is no authorisation: wait for the timeout.
            return Ok(());
        }
        if !resp.code.is_success() {
            return self.sale_debit_error(resp.code, reader);
        }
        let Flow::AwaitHost(o) = std::mem::take(&mut self.flow) else {
            return Ok(());
        };
        let Online {
            record,
            card,
            subject,
            ..
        } = *o;
        let balance_after = record.balance_after;
        self.write(reader, &card, record, true, true, subject)?;
        // R-C6.2: the information code after the balance.
        if let Some(text) = resp.info.screen_text()
            && !matches!(self.flow, Flow::Retap(_))
        {
            self.push(Output::Screen(Screen {
                lines: vec![texts::balance(balance_after), text],
                hold_ms: Some(BALANCE_HOLD_MS),
            }));
        }
        if resp.collect_last > 0 && !matches!(self.flow, Flow::Retap(_)) {
            // R-F4.17: the host asks for the card's last records during the exchange.
            if let Tapped::Mf1(c) = &card
                && let Ok(now_card) = self.app().read(reader, c.wallet_no)
            {
                self.collect_records(reader, &now_card, resp.collect_last)?;
            }
        }
        Ok(())
    }

    /// A refusal of the online debit (an error code in the response).
    pub(super) fn sale_debit_error(&mut self, code: ReturnCode, reader: &mut dyn Reader) -> Res {
        if code.is_handled_as_timeout() {
            // R-P5.3: codes 1–9 count as a timeout.
            return self.online_timeout(reader);
        }
        let Flow::AwaitHost(o) = std::mem::take(&mut self.flow) else {
            return Ok(());
        };
        let Online {
            mut record,
            card,
            subject,
            ..
        } = *o;
        self.set_status(&mut record, RecordStatus::Failed, subject)?;
        if code.is_card_status_error() {
            // R-P5.2: the host says the card must not be used: lock it (R-F4.15).
            self.lock_card(reader, &card)?;
        }
        self.refuse(Some(code), code.screen_text());
        Ok(())
    }

    pub(super) fn sale_tick(&mut self, reader: &mut dyn Reader) -> Res {
        match &self.flow {
            Flow::AwaitHost(o) if self.now >= o.deadline => self.online_timeout(reader),
            Flow::Retap(r) if self.now >= r.since + CANCEL_LOCK_MS => {
                self.refresh_screen();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The host cannot answer (link down, session lost): no retry is possible.
    pub(super) fn host_unreachable(&mut self, reader: &mut dyn Reader) -> Res {
        if let Flow::AwaitHost(o) = &mut self.flow {
            o.attempts = 2;
            return self.online_timeout(reader);
        }
        Ok(())
    }

    /// R-P5.3: 500 ms, one retry, then offline (auto) or refusal (full online).
    fn online_timeout(&mut self, reader: &mut dyn Reader) -> Res {
        let Flow::AwaitHost(o) = &mut self.flow else {
            return Ok(());
        };
        if o.attempts < 2 && self.link.session.is_some() {
            let record = o.record.clone();
            if let Some(seq) = self.send_debit(&record)
                && let Flow::AwaitHost(o) = &mut self.flow
            {
                o.attempts = 2;
                o.seq = seq;
                o.deadline = self.now + ONLINE_WAIT_MS;
                return Ok(());
            }
        }
        let Flow::AwaitHost(o) = std::mem::take(&mut self.flow) else {
            return Ok(());
        };
        let Online {
            mut record,
            card,
            subject,
            ..
        } = *o;
        self.link.degraded = true;
        self.track_offline()?;
        if self.work_mode() == WorkMode::FullOnline || self.offline_exceeded() {
            self.set_status(&mut record, RecordStatus::Failed, subject)?;
            let text = if self.work_mode() == WorkMode::FullOnline {
                ReturnCode::NETWORK_FAILURE.screen_text()
            } else {
                texts::OFFLINE_TOO_LONG.into()
            };
            self.refuse(None, text);
            return Ok(());
        }
        // Auto mode: debit by the terminal's own calculation (扣款成功).
        self.write(reader, &card, record, false, true, subject)
    }

    /// Writes the card for a journalled record; on failure, the re-tap prompt.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        reader: &mut dyn Reader,
        card: &Tapped,
        mut record: Record,
        authorised: bool,
        rewrite: bool,
        subject: u16,
    ) -> Res {
        let result = match card {
            Tapped::Mf1(c) => self
                .app()
                .transact(reader, c, &tx_request(&record))
                .map(|_| None)
                .map_err(|e| e.to_string()),
            Tapped::Cpu(c) => match &c.init {
                Some(init) => cpu::debit(
                    reader,
                    &self.cfg.card_keys,
                    &c.read,
                    init,
                    self.cfg.device,
                    record.serial,
                    record.time,
                )
                .map(Some)
                .map_err(|e| e.to_string()),
                None => Err("no purchase session".to_owned()),
            },
        };
        match result {
            Ok(tac) => self.written(&mut record, authorised, subject, tac),
            Err(error) => {
                self.push(Output::Event(Event::WriteFailed {
                    serial: record.serial,
                    error,
                }));
                self.flow = Flow::Retap(Box::new(Retap {
                    record,
                    authorised,
                    rewrite,
                    since: self.now,
                    subject,
                }));
                self.push(Output::Beep(Beep::Continuous));
                self.screen_until = None;
                self.refresh_screen();
                Ok(())
            }
        }
    }

    /// The card holds the transaction: final status, balance for 2 s.
    fn written(
        &mut self,
        record: &mut Record,
        authorised: bool,
        subject: u16,
        tac: Option<u32>,
    ) -> Res {
        let status = match (record.online, authorised, record.kind) {
            (_, _, RecordKind::Reversal) => RecordStatus::Written,
            (true, true, _) => RecordStatus::Success,
            (true, false, _) => RecordStatus::Debited,
            (false, _, _) => RecordStatus::Written,
        };
        match tac {
            Some(tac) => {
                self.st
                    .journal
                    .set_status_tac(&mut self.st.flash, record.serial, status, tac)?;
                record.status = status;
                record.tac = tac;
                self.record_event(record, subject);
            }
            None => self.set_status(record, status, subject)?,
        }
        if status == RecordStatus::Success && record.card_type == CardType::Mf1 {
            // R-P5.2: the host booked it when it authorised: 已上传. A CPU record still
            // goes up, for the host to check its TAC.
            self.st
                .journal
                .mark_uploaded(&mut self.st.flash, record.serial)?;
        }
        let was_retap = matches!(self.flow, Flow::Retap(_));
        self.flow = Flow::default();
        if was_retap {
            self.push(Output::Beep(Beep::Stop));
        }
        self.push(Output::Beep(Beep::Ok));
        let mut lines = vec![texts::balance(record.balance_after)];
        if record.kind == RecordKind::Reversal {
            lines.insert(0, texts::REVERSED.into());
        }
        self.flash_text(lines, BALANCE_HOLD_MS);
        Ok(())
    }

    /// A card tapped during the re-tap prompt: did the write land? (R-P5.4, R-P5.7)
    fn retap(&mut self, reader: &mut dyn Reader) -> Res {
        let Flow::Retap(r) = &self.flow else {
            return Ok(());
        };
        let rec = r.record.clone();
        let (authorised, rewrite, subject) = (r.authorised, r.rewrite, r.subject);
        if rec.card_type == CardType::Cpu {
            return self.retap_cpu(reader, rec, authorised, rewrite, subject);
        }
        let pending = Pending {
            card_no: rec.card_no,
            wallet_no: rec.wallet_no,
            counter_before: rec.card_counter,
            device: rec.device,
            serial: rec.serial,
        };
        let (card, res) = match self.app().resolve(reader, &pending) {
            Ok(x) => x,
            Err(_) => return Ok(()), // unreadable this time: keep asking
        };
        match res {
            Resolution::Landed(_) => {
                let mut rec = rec;
                self.written(&mut rec, authorised, subject, None)
            }
            Resolution::NotLanded
                if rewrite
                    && card.wallet.counter == rec.card_counter
                    && card.wallet.balance == rec.balance_before =>
            {
                let since = match &self.flow {
                    Flow::Retap(r) => r.since,
                    _ => self.now,
                };
                let card = Tapped::Mf1(Box::new(card));
                self.write(reader, &card, rec, authorised, rewrite, subject)?;
                self.keep_since(since);
                Ok(())
            }
            Resolution::NotLanded => {
                // Not written and not to be written now: close it as not written.
                self.close_unwritten()?;
                self.flash_text(vec![texts::RETRY_TRANSACTION.into()], INFO_HOLD_MS);
                Ok(())
            }
            Resolution::OtherCard => {
                self.flash_text(vec![texts::OTHER_CARD.into()], INFO_HOLD_MS);
                Ok(())
            }
            Resolution::Unknown => Ok(()),
        }
    }

    /// The 60 s run from the first prompt, also after a failed rewrite.
    fn keep_since(&mut self, since: u64) {
        if let Flow::Retap(r) = &mut self.flow {
            r.since = since;
        }
    }

    /// The re-tap of a CPU card: GET TRANSACTION PROVE says whether the debit happened.
    fn retap_cpu(
        &mut self,
        reader: &mut dyn Reader,
        mut rec: Record,
        authorised: bool,
        rewrite: bool,
        subject: u16,
    ) -> Res {
        let since = match &self.flow {
            Flow::Retap(r) => r.since,
            _ => self.now,
        };
        let Ok(read) = CpuApp::read(reader) else {
            return Ok(()); // unreadable this time: keep asking
        };
        if read.card_no != rec.card_no {
            self.flash_text(vec![texts::OTHER_CARD.into()], INFO_HOLD_MS);
            return Ok(());
        }
        let seq = u16::try_from(rec.card_counter).unwrap_or(u16::MAX);
        match CpuApp::prove(reader, seq) {
            Ok(Some(proof)) => {
                let tac = u32::from_be_bytes(proof.tac);
                return self.written(&mut rec, authorised, subject, Some(tac));
            }
            Ok(None) => {}
            Err(_) => return Ok(()),
        }
        let total = rec.amount + rec.fee;
        match cpu::init_purchase(reader, total, self.cfg.device) {
            Ok(init)
                if rewrite
                    && u32::from(init.offline_seq) == rec.card_counter
                    && init.balance == rec.balance_before =>
            {
                let card = Tapped::Cpu(Box::new(CpuTap {
                    read,
                    init: Some(init),
                }));
                self.write(reader, &card, rec, authorised, rewrite, subject)?;
                self.keep_since(since);
                Ok(())
            }
            Ok(init) if u32::from(init.offline_seq) == rec.card_counter => {
                self.close_unwritten()?;
                self.flash_text(vec![texts::RETRY_TRANSACTION.into()], INFO_HOLD_MS);
                Ok(())
            }
            // The purse moved on: its log tells whether our purchase is among the moves.
            _ if cpu::in_log(reader, seq, self.cfg.device) => {
                self.written(&mut rec, authorised, subject, None)
            }
            _ => {
                self.close_unwritten()?;
                self.flash_text(vec![texts::RETRY_TRANSACTION.into()], INFO_HOLD_MS);
                Ok(())
            }
        }
    }

    /// R-P5.5 / R-P5.8: cancel after 60 s.
    fn cancel_retap(&mut self) -> Res {
        self.close_unwritten()?;
        self.flash_text(vec![texts::CANCELLED.into()], INFO_HOLD_MS);
        Ok(())
    }

    /// Ends an open transaction whose card write did not happen: an authorised online debit
    /// gets a cancellation record (serial + 1, R-P5.5); anything else is marked 中途拔卡
    /// (R-P5.8). Either is uploaded (R-F4.3).
    fn close_unwritten(&mut self) -> Res {
        let Flow::Retap(r) = std::mem::take(&mut self.flow) else {
            return Ok(());
        };
        let Retap {
            mut record,
            authorised,
            subject,
            ..
        } = *r;
        self.push(Output::Beep(Beep::Stop));
        if authorised && self.st.journal.next_serial() == record.serial + 1 {
            let cancel = Record {
                kind: RecordKind::Cancellation,
                original_serial: Some(record.serial),
                ..record.clone()
            };
            if let Some(c) = self.journal(cancel, subject)? {
                debug_assert_eq!(c.serial, record.serial + 1);
            }
        } else {
            self.set_status(&mut record, RecordStatus::CardPulled, subject)?;
        }
        Ok(())
    }

    /// R-F4.15: a listed card gets the lock flag, is refused, and the event is recorded.
    fn black_card(&mut self, reader: &mut dyn Reader, card: &Tapped) -> Res {
        let base = self.base_record(
            card,
            Sale {
                amount: 0,
                item_code: 0,
                subject: 0,
            },
            0,
            false,
        );
        let rec = Record {
            kind: RecordKind::BlackCard,
            amount: 0,
            fee: 0,
            balance_after: base.balance_before,
            ..base
        };
        if let Some(mut rec) = self.journal(rec, 0)?
            && self.lock_card(reader, card)?
        {
            self.set_status(&mut rec, RecordStatus::Written, 0)?;
        }
        self.refuse_card(&Refusal::Code(ReturnCode::CARD_LOCKED));
        Ok(())
    }

    fn lock_card(&mut self, reader: &mut dyn Reader, card: &Tapped) -> Res<bool> {
        let ok = match card {
            Tapped::Mf1(c) => {
                let lock = LockStatus {
                    locked: true,
                    blacklist_version: self.st.blacklist.version(),
                    changed_at: self.wall(),
                    device: self.cfg.device,
                };
                self.app().set_lock(reader, c, &lock).is_ok()
            }
            Tapped::Cpu(c) => CpuApp::set_lock(reader, &self.cfg.card_keys, &c.read, true).is_ok(),
        };
        if ok {
            self.push(Output::Event(Event::CardLocked {
                card_no: card.card_no().get(),
            }));
        }
        Ok(ok)
    }

    /// 冲正 of the newest debit of this card on this terminal that is not reversed yet.
    fn reverse(&mut self, reader: &mut dyn Reader, card: &CardRead) -> Res {
        let reversed: Vec<_> = self
            .st
            .journal
            .records()
            .filter(|r| r.kind == RecordKind::Reversal && r.status != RecordStatus::CardPulled)
            .filter_map(|r| r.original_serial)
            .collect();
        let original = self
            .st
            .journal
            .records()
            .filter(|r| {
                r.kind == RecordKind::Purchase
                    && r.status.card_debited()
                    && r.card_no == card.info.card_no
                    && r.wallet_no == card.wallet_no
                    && !reversed.contains(&r.serial)
            })
            .last()
            .cloned();
        let Some(o) = original else {
            self.flow = Flow::default();
            self.refuse(None, texts::NOTHING_TO_REVERSE.into());
            return Ok(());
        };
        let rec = Record {
            kind: RecordKind::Reversal,
            status: RecordStatus::NotWritten,
            online: false,
            card_counter: card.wallet.counter,
            balance_before: card.wallet.balance,
            balance_after: card.wallet.balance + o.amount + o.fee,
            time: self.wall(),
            original_serial: Some(o.serial),
            serial: 0,
            ..o
        };
        let Some(rec) = self.journal(rec, 0)? else {
            return Ok(());
        };
        let card = Tapped::Mf1(Box::new(card.clone()));
        self.write(reader, &card, rec, false, true, 0)
    }

    /// Journals a record found on the card; `false` when the journal is full.
    pub(super) fn journal_collected(&mut self, r: Record) -> Res<bool> {
        Ok(self.journal(r, 0)?.is_some())
    }

    fn serve_collect(&mut self, reader: &mut dyn Reader, card: &CardRead) -> Res {
        let Some(pos) = self
            .collect
            .iter()
            .position(|(c, _)| *c == card.info.card_no)
        else {
            return Ok(());
        };
        let (_, n) = self.collect.remove(pos);
        self.collect_records(reader, card, n)
    }

    /// R-F4.17: the card's last `n` records, journalled as `Collected` for upload.
    fn collect_records(&mut self, reader: &mut dyn Reader, card: &CardRead, n: u8) -> Res {
        let Ok(found) = self.app().records(reader, card, usize::from(n)) else {
            return Ok(());
        };
        // Only debits: a credit on the ring is not a consumption record.
        for cr in found.iter().rev().filter(|c| c.kind == TxKind::Purchase) {
            let mut r = cr.to_collected(card.info.card_no, card.wallet_no);
            // Our own device and serial identify the upload; the card counter identifies
            // the transaction at the host.
            r.device = self.cfg.device;
            if !self.journal_collected(r)? {
                break;
            }
        }
        Ok(())
    }
}
