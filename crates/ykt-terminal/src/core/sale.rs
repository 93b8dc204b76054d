//! The transaction flows: amount entry (R-F4.10), card checks (chapter 4), online debit
//! (R-P5.2, R-P5.3), offline debit (R-P5.6), write failure and re-tap (R-P5.4, R-P5.7),
//! cancel (R-P5.5, R-P5.8), black cards (R-F4.15), reversal (冲正) and collection (R-F4.17).
//! Rule: a record is journalled and synced before any card write.

use ykt_card::Reader;
use ykt_card::app::{
    AppError, CardRead, LockStatus, Mf1App, Pending, Resolution, TxKind, TxRequest,
};
use ykt_proto::messages::{DebitRequest, DebitResponse, Message};
use ykt_proto::{
    CardType, ConsumptionMode, Fen, Record, RecordKind, RecordStatus, ReturnCode, TerminalSerial,
    WorkMode,
};

use super::checks::{CardFacts, Refusal, check_debit};
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
    card: CardRead,
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
        card: Box<CardRead>,
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

fn facts(c: &CardRead) -> CardFacts {
    let (daily_count, daily_amount) = c.wallet.daily_on(c.wallet.day.unwrap_or_default());
    CardFacts {
        class: c.info.class,
        expiry: c.info.expiry,
        balance: c.wallet.balance,
        daily_count,
        daily_amount,
    }
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
        AppError::NotMf1 => Refusal::Text(texts::CPU_NOT_SUPPORTED),
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
    fn app(&self) -> Mf1App<'_> {
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
        if sale.is_none() && !reversal {
            // No amount yet: serve a pending collection only.
            if let Ok(card) = self.app().read(reader, self.wallet_no()) {
                self.serve_collect(reader, &card)?;
            }
            self.refresh_screen();
            return Ok(());
        }
        let card = match self.app().read(reader, self.wallet_no()) {
            Ok(c) => c,
            Err(AppError::Reader(_)) => return Ok(()), // card gone before it was read
            Err(e) => {
                self.refuse_card(&app_refusal(&e));
                return Ok(());
            }
        };
        // R-F4.15: the flag refuses the card on any terminal, list or not.
        if card.locked() {
            self.refuse_card(&Refusal::Code(ReturnCode::CARD_LOCKED));
            return Ok(());
        }
        if self.st.blacklist.contains(card.info.card_no) {
            return self.black_card(reader, &card);
        }
        self.serve_collect(reader, &card)?;
        if reversal {
            return self.reverse(reader, &card);
        }
        let Some(sale) = sale else { return Ok(()) };
        let Some(p) = self.params() else {
            return Ok(());
        };
        let today = self.wall().date();
        let mut f = facts(&card);
        let (count, amount) = card.wallet.daily_on(today);
        f.daily_count = count;
        f.daily_amount = amount;
        match check_debit(&f, p, today, sale.amount) {
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
        if !self.app().verify_pin(&card, &digits) {
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

    fn base_record(&self, card: &CardRead, sale: Sale, fee: Fen, online: bool) -> Record {
        let total = sale.amount + fee;
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
            card_type: CardType::Mf1,
            card_no: card.info.card_no,
            card_counter: card.wallet.counter,
            wallet_no: card.wallet_no,
            balance_before: card.wallet.balance,
            amount: sale.amount,
            fee,
            balance_after: card.wallet.balance - total,
            time: self.wall(),
            merchant_no: self.st.params.get().merchant_no,
            original_serial: None,
            item_code: sale.item_code,
            tac: 0,
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

    fn debit(&mut self, reader: &mut dyn Reader, card: CardRead, sale: Sale, fee: Fen) -> Res {
        let mode = self.work_mode();
        let offline_only = mode == WorkMode::Offline || !self.link.online_check;
        if !offline_only && self.link.online() {
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
        let rec = self.base_record(&card, sale, fee, false);
        let Some(rec) = self.journal(rec, sale.subject)? else {
            return Ok(());
        };
        self.write(reader, &card, rec, false, true, sale.subject)
    }

    fn online_debit(&mut self, card: CardRead, sale: Sale, fee: Fen) -> Res {
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
            if let Ok(now_card) = self.app().read(reader, card.wallet_no) {
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
    fn write(
        &mut self,
        reader: &mut dyn Reader,
        card: &CardRead,
        mut record: Record,
        authorised: bool,
        rewrite: bool,
        subject: u16,
    ) -> Res {
        match self.app().transact(reader, card, &tx_request(&record)) {
            Ok(_) => self.written(&mut record, authorised, subject),
            Err(e) => {
                self.push(Output::Event(Event::WriteFailed {
                    serial: record.serial,
                    error: e.to_string(),
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
    fn written(&mut self, record: &mut Record, authorised: bool, subject: u16) -> Res {
        let status = match (record.online, authorised, record.kind) {
            (_, _, RecordKind::Reversal) => RecordStatus::Written,
            (true, true, _) => RecordStatus::Success,
            (true, false, _) => RecordStatus::Debited,
            (false, _, _) => RecordStatus::Written,
        };
        self.set_status(record, status, subject)?;
        if status == RecordStatus::Success {
            // R-P5.2: the host booked it when it authorised: 已上传.
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
                self.written(&mut rec, authorised, subject)
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
                self.write(reader, &card, rec, authorised, rewrite, subject)?;
                if let Flow::Retap(r) = &mut self.flow {
                    r.since = since; // the 60 s run from the first prompt
                }
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
    fn black_card(&mut self, reader: &mut dyn Reader, card: &CardRead) -> Res {
        let rec = Record {
            kind: RecordKind::BlackCard,
            amount: 0,
            fee: 0,
            balance_after: card.wallet.balance,
            ..self.base_record(
                card,
                Sale {
                    amount: 0,
                    item_code: 0,
                    subject: 0,
                },
                0,
                false,
            )
        };
        if let Some(mut rec) = self.journal(rec, 0)?
            && self.lock_card(reader, card)?
        {
            self.set_status(&mut rec, RecordStatus::Written, 0)?;
        }
        self.refuse_card(&Refusal::Code(ReturnCode::CARD_LOCKED));
        Ok(())
    }

    fn lock_card(&mut self, reader: &mut dyn Reader, card: &CardRead) -> Res<bool> {
        let lock = LockStatus {
            locked: true,
            blacklist_version: self.st.blacklist.version(),
            changed_at: self.wall(),
            device: self.cfg.device,
        };
        let ok = self.app().set_lock(reader, card, &lock).is_ok();
        if ok {
            self.push(Output::Event(Event::CardLocked {
                card_no: card.info.card_no.get(),
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
        self.write(reader, card, rec, false, true, 0)
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
            if self.journal(r, 0)?.is_none() {
                break;
            }
        }
        Ok(())
    }
}
