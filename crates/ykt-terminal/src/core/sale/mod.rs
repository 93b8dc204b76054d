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
    Screen, Terminal, Timer, texts,
};
use crate::storage::flash::Flash;
use crate::storage::journal::{Journal, JournalError};

mod card_ops;
mod load;
mod online;
mod retap;

pub(super) use load::{Asking, Loading};

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
}

#[derive(Debug)]
pub(super) struct Retap {
    record: Record,
    /// The host authorised this debit (cancel → cancellation record, R-P5.5).
    authorised: bool,
    /// Whether a write that did not land may be written again.
    rewrite: bool,
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
    /// A top-up terminal: the amount taken in cash is keyed, the card is awaited (R-B4).
    TopUpReady {
        amount: Fen,
    },
    /// What waits for the card (0x09) is asked (R-B5); nothing is journalled yet.
    AwaitWaiting(Box<Asking>),
    /// The load's record is journalled; its authorisation (0x08) is asked (R-B4, R-B5).
    AwaitLoad(Box<Loading>),
    /// After power-up: a load whose record is still 发起交易, settled from the card at the
    /// first input if it is on the reader, else uploaded as it is (`docs/loads.md`).
    LoadRecover(Box<Record>),
}

impl Default for Flow {
    fn default() -> Self {
        Flow::Idle {
            digits: String::new(),
        }
    }
}

impl Flow {
    pub(in crate::core) fn in_flight(&self) -> Option<TerminalSerial> {
        match self {
            Flow::AwaitHost(o) => Some(o.record.serial),
            Flow::Retap(r) => Some(r.record.serial),
            Flow::AwaitLoad(l) => Some(l.record.serial),
            Flow::LoadRecover(r) => Some(r.serial),
            _ => None,
        }
    }

    /// Whether the card is asked for again (the continuous beep and the cancel lock).
    pub(in crate::core) fn prompts_retap(&self) -> bool {
        matches!(self, Flow::Retap(_))
    }

    pub(in crate::core) fn is_idle(&self) -> bool {
        matches!(
            self,
            Flow::Idle { .. } | Flow::Ready(_) | Flow::TopUpReady { .. }
        )
    }
}

/// After power-up: the last record, if its card write is unresolved, becomes a re-tap prompt
/// (nothing is appended while a transaction is open, so it is always the newest record).
pub(super) fn resume(journal: &Journal) -> Flow {
    let last = journal
        .next_serial()
        .checked_sub(1)
        .and_then(|s| journal.get(s));
    match last {
        // Not uploaded yet: once the host has it as 发起交易 the record never changes again.
        Some(r)
            if r.kind.is_load()
                && r.status == RecordStatus::Initiated
                && journal.is_uploaded(r.serial) == Some(false) =>
        {
            Flow::LoadRecover(Box::new(r.clone()))
        }
        Some(r) if card_write_open(r) => {
            Flow::Retap(Box::new(Retap {
                record: r.clone(),
                authorised: false,
                // Unknown whether the host authorised an online debit: never write it now.
                rewrite: r.status == RecordStatus::NotWritten,
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

/// What `Mf1App::resolve` needs to tell whether a record's card write landed.
pub(in crate::core) fn pending_of(r: &Record) -> Pending {
    Pending {
        card_no: r.card_no,
        wallet_no: r.wallet_no,
        counter_before: r.card_counter,
        device: r.device,
        serial: r.serial,
    }
}

fn tx_request(r: &Record) -> TxRequest {
    let (kind, amount, fee) = match r.kind {
        // A reversal gives back amount and fee as one credit.
        RecordKind::Reversal => (TxKind::Reversal, r.amount + r.fee, 0),
        // A load (top-up or pick-up) is a credit of the amount.
        RecordKind::TopUp | RecordKind::Subsidy => (TxKind::TopUp, r.amount, 0),
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
    pub(in crate::core) fn app(&self) -> Mf1App<'_> {
        Mf1App::new(&self.cfg.card_keys)
    }

    pub(in crate::core) fn sale_busy(&self) -> bool {
        matches!(
            self.flow,
            Flow::AwaitHost(_) | Flow::AwaitLoad(_) | Flow::AwaitWaiting(_)
        )
    }

    pub(in crate::core) fn sale_awaits(&self, corr: u32) -> bool {
        matches!(&self.flow, Flow::AwaitHost(o) if o.seq == corr)
    }

    pub(in crate::core) fn is_top_up_terminal(&self) -> bool {
        self.cfg.role == super::TerminalRole::TopUp
    }

    /// Whether the terminal may take transactions at all (R-P5.1).
    pub(in crate::core) fn working(&self) -> bool {
        self.not_working().is_none()
    }

    /// R-P5.1: the terminal stops working (refused sign-in, merchant 0): an amount or PIN
    /// keyed before is dropped, so it cannot be charged later. A transaction in flight goes on.
    pub(in crate::core) fn stop_working(&mut self) {
        if self.flow.in_flight().is_none() {
            self.flow = Flow::default();
        }
    }

    pub(in crate::core) fn fixed_sale(&self) -> Option<Sale> {
        let p = self.params()?;
        (p.consumption_mode == ConsumptionMode::FixedAmount && p.fixed_amount > 0).then_some(Sale {
            amount: p.fixed_amount,
            item_code: 0,
            subject: 0,
        })
    }

    pub(in crate::core) fn flow_lines(&self) -> Option<Vec<String>> {
        match &self.flow {
            Flow::Idle { .. } => None,
            Flow::Ready(s) => Some(vec![texts::amount(s.amount), texts::TAP_CARD.into()]),
            Flow::Pin { digits, .. } => {
                Some(vec![texts::ENTER_PIN.into(), "*".repeat(digits.len())])
            }
            Flow::AwaitHost(_) => Some(vec![texts::WAITING_HOST.into()]),
            Flow::Retap(_) => {
                let hint = if self.timers.is_set(Timer::CancelLock) {
                    texts::CANCEL_NOT_YET
                } else {
                    texts::CANCEL_ALLOWED
                };
                Some(vec![texts::RETAP.into(), hint.into()])
            }
            Flow::Reversal => Some(vec![texts::TAP_TO_REVERSE.into()]),
            Flow::TopUpReady { amount } => {
                Some(vec![texts::top_up(*amount), texts::TAP_CARD.into()])
            }
            Flow::AwaitWaiting(_) | Flow::AwaitLoad(_) | Flow::LoadRecover(_) => {
                Some(vec![texts::WAITING_HOST.into()])
            }
        }
    }

    pub(in crate::core) fn idle_lines(&self) -> Vec<String> {
        let Some(p) = self.params() else {
            return vec![texts::NO_PARAMS.into()];
        };
        let digits = match &self.flow {
            Flow::Idle { digits } => digits.clone(),
            _ => String::new(),
        };
        if self.is_top_up_terminal() {
            let entry = if digits.is_empty() {
                texts::ENTER_TOP_UP.to_owned()
            } else {
                texts::top_up(digits.parse().unwrap_or(0))
            };
            return vec![texts::TOP_UP.into(), entry];
        }
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

    pub(in crate::core) fn sale_key(&mut self, key: Key, reader: &mut dyn Reader) -> Res {
        if matches!(key, Key::Digit(_) | Key::Enter | Key::Reversal)
            && self.flow.in_flight().is_none()
            && let Some((code, reason)) = self.not_working()
        {
            // R-P5.1: no work: the key is answered with the reason and nothing keyed is kept.
            self.flow = Flow::default();
            self.refuse(code, reason);
            return Ok(());
        }
        match (&mut self.flow, key) {
            (Flow::Retap(_), Key::Cancel) => {
                if self.timers.is_set(Timer::CancelLock) {
                    self.flash_text(vec![texts::CANCEL_NOT_YET.into()], INFO_HOLD_MS);
                    return Ok(());
                }
                self.cancel_retap()
            }
            (
                Flow::Retap(_)
                | Flow::AwaitHost(_)
                | Flow::AwaitLoad(_)
                | Flow::AwaitWaiting(_)
                | Flow::LoadRecover(_),
                _,
            ) => Ok(()),
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
                if self.working() && !self.is_top_up_terminal() {
                    self.flow = Flow::Reversal;
                }
                self.refresh_screen();
                Ok(())
            }
            (_, Key::Cancel) => {
                self.flow = Flow::default();
                self.timers.clear(Timer::ScreenHold);
                self.refresh_screen();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(in crate::core) fn amount_entered(&mut self) -> Res {
        let Flow::Idle { digits } = &self.flow else {
            return Ok(());
        };
        let n: i64 = digits.parse().unwrap_or(0);
        if self.is_top_up_terminal() {
            // R-B4: the cash taken is keyed; the card is asked for.
            self.flow = if n > 0 {
                Flow::TopUpReady { amount: n }
            } else {
                Flow::default()
            };
            self.timers.clear(Timer::ScreenHold);
            self.refresh_screen();
            return Ok(());
        }
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
        self.timers.clear(Timer::ScreenHold);
        self.refresh_screen();
        Ok(())
    }

    pub(in crate::core) fn on_card(&mut self, reader: &mut dyn Reader) -> Res {
        if matches!(self.flow, Flow::Retap(_)) {
            return self.retap(reader);
        }
        if self.is_top_up_terminal() && self.working() && self.params().is_some() {
            return self.load_tap(reader);
        }
        if !self.working() || self.params().is_none() {
            // No sales now, but a debit the card shows and the journal lacks is still found.
            if let Ok(Some(card)) = self.read_tapped(reader) {
                self.recover_landed(reader, &card)?;
            }
            if let Some((code, reason)) = self.not_working() {
                // R-P5.1: the card is refused with the reason.
                self.refuse(code, reason);
            }
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
                if r.is_abnormal() {
                    self.abnormal_record(&card, sale)?;
                }
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
    pub(in crate::core) fn read_tapped(
        &mut self,
        reader: &mut dyn Reader,
    ) -> Result<Option<Tapped>, Refusal> {
        match self.app().read(reader, self.wallet_no()) {
            Ok(c) => Ok(Some(Tapped::Mf1(Box::new(c)))),
            Err(AppError::NotMf1) => match CpuApp::read(reader) {
                Ok(c) => Ok(Some(Tapped::Cpu(Box::new(CpuTap {
                    read: c,
                    init: None,
                    load_mac2: None,
                })))),
                Err(ykt_card::cpu::app::CpuError::Reader(_)) => Ok(None),
                Err(e) => Err(cpu_refusal(&e)),
            },
            Err(AppError::Reader(_)) => Ok(None),
            Err(e) => Err(app_refusal(&e)),
        }
    }

    pub(in crate::core) fn wallet_no(&self) -> u8 {
        self.params().map_or(0, |p| p.wallet_no)
    }

    pub(in crate::core) fn refuse_card(&mut self, r: &Refusal) {
        if !matches!(self.flow, Flow::Ready(_) | Flow::Pin { .. }) {
            self.flow = Flow::default();
        } else if let Flow::Pin { sale, .. } = &self.flow {
            self.flow = Flow::Ready(*sale);
        }
        self.refuse(r.code(), r.screen());
    }

    pub(in crate::core) fn pin_entered(&mut self, reader: &mut dyn Reader) -> Res {
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
    pub(in crate::core) fn offline_exceeded(&self) -> bool {
        let max = self.params().map_or(0, |p| p.max_offline_hours);
        self.st.state.offline().exceeded(max, self.now)
    }

    pub(in crate::core) fn base_record(
        &self,
        card: &Tapped,
        sale: Sale,
        fee: Fen,
        online: bool,
    ) -> Record {
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
    pub(in crate::core) fn record_time(&self) -> chrono::NaiveDateTime {
        let t = self.wall();
        chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t)
    }

    /// Opens the CPU purse's purchase session (balance and offline sequence number are then
    /// known for the record). `false`: refused, shown.
    pub(in crate::core) fn prepare(
        &mut self,
        reader: &mut dyn Reader,
        card: &mut Tapped,
        total: Fen,
    ) -> bool {
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
    pub(in crate::core) fn journal(&mut self, mut r: Record, subject: u16) -> Res<Option<Record>> {
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

    pub(in crate::core) fn set_status(
        &mut self,
        r: &mut Record,
        status: RecordStatus,
        subject: u16,
    ) -> Res {
        self.st
            .journal
            .set_status(&mut self.st.flash, r.serial, status)?;
        r.status = status;
        self.record_event(r, subject);
        Ok(())
    }
}
