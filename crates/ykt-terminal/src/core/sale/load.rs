//! Money onto the card (`docs/loads.md`, R-B4, R-B5): a top-up of cash keyed on a top-up
//! terminal, and the pick-up of what waits for the card (asked with 0x09 after an online debit
//! answered 卡有补助未领, or at a tap without an amount on a top-up terminal). One flow for both:
//! the record is journalled (发起交易) and synced, the host authorises it (0x08; a CPU card's
//! INITIALIZE FOR LOAD answer goes with it, MAC2 comes back), then the card is written and
//! the record, 交易成功 or 中途拔卡, goes up at once. No answer: asked once more, then given
//! up with no card write. A load is never made offline.

use ykt_card::app::format::MAX_FEN;
use ykt_card::cpu::card::MAX_BALANCE;
use ykt_card::cpu::psam::LoadInit;
use ykt_proto::InfoCode;
use ykt_proto::messages::{
    CpuLoadInit, LoadCard, LoadPurpose, LoadRequest, LoadResponse, WaitingRequest, WaitingResponse,
};

use super::super::LOAD_WAIT_MS;
use super::super::checks::check_load;
use super::super::cpu::terminal_id;
use super::*;

/// 0x09 in flight: what waits for this card.
#[derive(Debug)]
pub(in crate::core) struct Asking {
    card: Tapped,
    request: WaitingRequest,
    seq: u32,
    attempts: u8,
}

/// 0x08 in flight for a journalled load record.
#[derive(Debug)]
pub(in crate::core) struct Loading {
    pub(super) record: Record,
    card: Tapped,
    /// The request as sent (a CPU card's INITIALIZE FOR LOAD answer inside), sent again
    /// unchanged on a retry.
    request: LoadRequest,
    seq: u32,
    attempts: u8,
}

impl Loading {
    /// The subsidy sequence the host must answer: a pick-up steps it, a top-up does not.
    fn subsidy_seq_after(&self) -> Option<u16> {
        match self.request.purpose {
            LoadPurpose::Pickup => self.request.subsidy_seq.checked_add(1),
            LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => Some(self.request.subsidy_seq),
        }
    }
}

/// The card's subsidy sequence as read (MF1: `None` when its block is damaged).
fn subsidy_seq(card: &Tapped) -> Option<u16> {
    match card {
        Tapped::Mf1(c) => c.subsidy_seq,
        Tapped::Cpu(c) => Some(c.read.subsidy_seq),
    }
}

/// The most the card's purse holds.
fn card_limit(card: &Tapped) -> Fen {
    match card {
        Tapped::Mf1(_) => MAX_FEN,
        Tapped::Cpu(_) => Fen::from(MAX_BALANCE),
    }
}

impl<F: Flash> Terminal<F> {
    /// A tap on a top-up terminal: the keyed top-up, or (no amount) the pick-up of what waits.
    pub(in crate::core) fn load_tap(&mut self, reader: &mut dyn Reader) -> Res {
        let top_up = match &self.flow {
            Flow::TopUpReady { amount } => Some(*amount),
            Flow::Idle { .. } => None,
            _ => return Ok(()),
        };
        let card = match self.read_tapped(reader) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(r) => {
                self.refuse_card(&r);
                return Ok(());
            }
        };
        if card.locked() {
            self.refuse_card(&Refusal::Code(ReturnCode::CARD_LOCKED));
            return Ok(());
        }
        if self.st.blacklist.contains(card.card_no()) {
            return self.black_card(reader, &card);
        }
        match top_up {
            Some(amount) => self.start_load(reader, card, LoadPurpose::TopUpCash, amount),
            None => self.ask_waiting(card),
        }
    }

    /// R-B5: asks what waits for the card on the reader (0x09). Without a session nothing is
    /// asked.
    pub(in crate::core) fn ask_waiting(&mut self, card: Tapped) -> Res {
        let Some(seq_now) = subsidy_seq(&card) else {
            let code = ReturnCode::CARD_SUBSIDY_SEQ_ABNORMAL;
            self.refuse_card(&Refusal::Code(code));
            return Ok(());
        };
        let (counter, balance) = match &card {
            Tapped::Mf1(c) => (c.wallet.counter, c.wallet.balance),
            // The purse's sequence numbers come with INITIALIZE, not with a read.
            Tapped::Cpu(c) => (0, c.read.balance),
        };
        let request = WaitingRequest {
            card_no: card.card_no(),
            card_type: card.card_type(),
            subsidy_seq: seq_now,
            card_counter: counter,
            balance,
        };
        let Some(seq) = self.send(&Message::WaitingRequest(request.clone()), 0) else {
            self.flow = Flow::default();
            self.refresh_screen();
            return Ok(());
        };
        let asking = Asking {
            card,
            request,
            seq,
            attempts: 1,
        };
        self.await_host(Flow::AwaitWaiting(Box::new(asking)));
        Ok(())
    }

    /// Enters a state that waits for the host's answer (`Timer::LoadReply`).
    fn await_host(&mut self, flow: Flow) {
        self.flow = flow;
        self.timers.set(Timer::LoadReply, self.now + LOAD_WAIT_MS);
        self.refresh_screen();
    }

    pub(in crate::core) fn waiting_response(
        &mut self,
        resp: WaitingResponse,
        corr: u32,
        reader: &mut dyn Reader,
    ) -> Res {
        let Flow::AwaitWaiting(a) = &self.flow else {
            return Ok(());
        };
        if resp.card_no != a.card.card_no() || (a.seq != corr && a.attempts == 1) {
            return Ok(());
        }
        if resp.code.is_handled_as_timeout() {
            return self.load_timeout();
        }
        self.timers.clear(Timer::LoadReply);
        let Flow::AwaitWaiting(a) = std::mem::take(&mut self.flow) else {
            return Ok(());
        };
        if !resp.code.is_success() {
            // 63 卡补助序号异常 and the like: shown, nothing written.
            self.refuse(Some(resp.code), resp.code.screen_text());
            return Ok(());
        }
        if resp.amount <= 0 {
            self.refresh_screen();
            return Ok(());
        }
        // The card must still be on the reader, unchanged since it was asked about.
        let card = match self.read_tapped(reader) {
            Ok(Some(c)) if c.card_no() == a.card.card_no() => c,
            _ => {
                self.refresh_screen();
                return Ok(());
            }
        };
        let next = a.request.subsidy_seq.checked_add(1);
        if subsidy_seq(&card) != Some(a.request.subsidy_seq) || Some(resp.subsidy_seq_after) != next
        {
            let code = ReturnCode::CARD_SUBSIDY_SEQ_ABNORMAL;
            self.refuse(Some(code), code.screen_text());
            return Ok(());
        }
        self.push(Output::Screen(Screen {
            lines: vec![texts::pick_up(resp.amount), texts::WAITING_HOST.into()],
            hold_ms: None,
        }));
        self.start_load(reader, card, LoadPurpose::Pickup, resp.amount)
    }

    /// Checks the card, opens a CPU card's load session, journals the record (synced) and
    /// asks the host to authorise it (0x08).
    pub(in crate::core) fn start_load(
        &mut self,
        reader: &mut dyn Reader,
        card: Tapped,
        purpose: LoadPurpose,
        amount: Fen,
    ) -> Res {
        if !self.link.has_session() {
            // Never offline (docs/loads.md).
            self.flow = Flow::default();
            self.refuse(None, texts::NOT_ONLINE.into());
            return Ok(());
        }
        let today = self.wall().date();
        if let Err(r) = check_load(&card.facts(today), today, amount, card_limit(&card)) {
            self.refuse_card(&r);
            return Ok(());
        }
        let seq_now = match (subsidy_seq(&card), purpose) {
            (Some(s), _) => s,
            (None, LoadPurpose::Pickup) => {
                let code = ReturnCode::CARD_SUBSIDY_SEQ_ABNORMAL;
                self.refuse_card(&Refusal::Code(code));
                return Ok(());
            }
            // A top-up does not touch the sequence: the host learns it is unknown (0).
            (None, _) => 0,
        };
        let cpu = match &card {
            Tapped::Mf1(_) => None,
            Tapped::Cpu(c) => {
                let term = terminal_id(self.cfg.device);
                match CpuApp::init_load(reader, &c.read, term, amount) {
                    Ok(init) => Some(init),
                    Err(e) => {
                        self.refuse_card(&cpu_refusal(&e));
                        return Ok(());
                    }
                }
            }
        };
        let rec = self.load_record(&card, cpu.as_ref(), purpose, amount);
        let Some(record) = self.journal(rec, 0)? else {
            return Ok(());
        };
        let request = LoadRequest {
            purpose,
            card_no: record.card_no,
            card: match &cpu {
                None => LoadCard::Mf1,
                Some(i) => LoadCard::Cpu(CpuLoadInit {
                    online_seq: i.online_seq,
                    random: i.random,
                    mac1: i.mac1,
                    terminal_id: i.term_id,
                }),
            },
            card_counter: record.card_counter,
            balance_before: record.balance_before,
            amount,
            subsidy_seq: seq_now,
            wallet_no: record.wallet_no,
            serial: record.serial,
            time: record.time,
        };
        let Some(seq) = self.send(&Message::LoadRequest(request.clone()), 0) else {
            let mut record = record;
            self.set_status(&mut record, RecordStatus::Failed, 0)?;
            self.flow = Flow::default();
            self.refuse(None, texts::NOT_ONLINE.into());
            return Ok(());
        };
        let loading = Loading {
            record,
            card,
            request,
            seq,
            attempts: 1,
        };
        self.await_host(Flow::AwaitLoad(Box::new(loading)));
        Ok(())
    }

    /// The load's record before it is journalled. A CPU card's counter is the purse's online
    /// sequence number (its load counter), its balance the one INITIALIZE FOR LOAD answered.
    fn load_record(
        &self,
        card: &Tapped,
        cpu: Option<&LoadInit>,
        purpose: LoadPurpose,
        amount: Fen,
    ) -> Record {
        let (counter, wallet_no, balance) = match (card, cpu) {
            (Tapped::Cpu(_), Some(i)) => (u32::from(i.online_seq), 0, Fen::from(i.balance)),
            (Tapped::Cpu(c), None) => (0, 0, c.read.balance),
            (Tapped::Mf1(c), _) => (c.wallet.counter, c.wallet_no, c.wallet.balance),
        };
        Record {
            device: self.cfg.device,
            serial: 0,
            kind: match purpose {
                LoadPurpose::Pickup => RecordKind::Subsidy,
                LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => RecordKind::TopUp,
            },
            status: RecordStatus::Initiated,
            online: true,
            card_type: card.card_type(),
            card_no: card.card_no(),
            card_counter: counter,
            wallet_no,
            balance_before: balance,
            amount,
            fee: 0,
            balance_after: balance + amount,
            time: self.record_time(),
            merchant_no: self.st.params.get().merchant_no,
            original_serial: None,
            item_code: 0,
            tac: 0,
        }
    }

    pub(in crate::core) fn load_response(
        &mut self,
        resp: LoadResponse,
        corr: u32,
        reader: &mut dyn Reader,
    ) -> Res {
        let Flow::AwaitLoad(l) = &self.flow else {
            return Ok(());
        };
        let r = &l.record;
        if resp.serial != r.serial || resp.card_no != r.card_no {
            return Ok(());
        }
        if l.seq != corr && l.attempts == 1 {
            return Ok(());
        }
        let as_asked = resp.amount == r.amount
            && resp.balance_after == r.balance_after
            && Some(resp.subsidy_seq_after) == l.subsidy_seq_after();
        if resp.code.is_success() && !as_asked {
            // An authorisation for other figures is no authorisation: wait for the timeout.
            return Ok(());
        }
        if !resp.code.is_success() {
            return self.load_refused(resp.code);
        }
        let Some(l) = self.end_load_await() else {
            return Ok(());
        };
        let Loading { record, card, .. } = *l;
        let card = match card {
            Tapped::Cpu(mut c) => {
                c.load_mac2 = Some(resp.mac2);
                Tapped::Cpu(c)
            }
            card => card,
        };
        // MF1: a write that did not land may be written again under the same authorisation
        // (same counter, same balance); a CPU card's MAC2 was for this session only.
        let rewrite = record.card_type == CardType::Mf1;
        self.write(reader, &card, record, true, rewrite, 0)?;
        if resp.info != InfoCode::NONE
            && let Some(text) = resp.info.screen_text()
            && !matches!(self.flow, Flow::Retap(_))
        {
            self.flash_text(vec![text], INFO_HOLD_MS);
        }
        Ok(())
    }

    /// A final code for the load (or for what-waits): the record fails, the text is shown.
    pub(in crate::core) fn load_refused(&mut self, code: ReturnCode) -> Res {
        if code.is_handled_as_timeout() {
            return self.load_timeout();
        }
        if let Flow::AwaitWaiting(_) = &self.flow {
            self.timers.clear(Timer::LoadReply);
            self.flow = Flow::default();
            self.refuse(Some(code), code.screen_text());
            return Ok(());
        }
        let Some(l) = self.end_load_await() else {
            return Ok(());
        };
        let mut record = l.record;
        self.set_status(&mut record, RecordStatus::Failed, 0)?;
        self.refuse(Some(code), code.screen_text());
        Ok(())
    }

    /// Whether a frame with correlation `corr` answers the load flow's request.
    pub(in crate::core) fn load_awaits(&self, corr: u32) -> bool {
        match &self.flow {
            Flow::AwaitLoad(l) => l.seq == corr,
            Flow::AwaitWaiting(a) => a.seq == corr,
            _ => false,
        }
    }

    fn end_load_await(&mut self) -> Option<Box<Loading>> {
        if !matches!(self.flow, Flow::AwaitLoad(_)) {
            return None;
        }
        self.timers.clear(Timer::LoadReply);
        match std::mem::take(&mut self.flow) {
            Flow::AwaitLoad(l) => Some(l),
            _ => None,
        }
    }

    /// `Timer::LoadReply`, codes 1–9, the link lost: the same request once more (same
    /// serial: the host answers a repeat as the first time), then given up: no card write,
    /// the record fails (the host voids what it made pending).
    pub(in crate::core) fn load_timeout(&mut self) -> Res {
        let session = self.link.has_session();
        let resend = match &self.flow {
            Flow::AwaitLoad(l) if l.attempts < 2 && session => {
                Some(Message::LoadRequest(l.request.clone()))
            }
            Flow::AwaitWaiting(a) if a.attempts < 2 && session => {
                Some(Message::WaitingRequest(a.request.clone()))
            }
            _ => None,
        };
        if let Some(msg) = resend
            && let Some(seq) = self.send(&msg, 0)
        {
            match &mut self.flow {
                Flow::AwaitLoad(l) => (l.seq, l.attempts) = (seq, 2),
                Flow::AwaitWaiting(a) => (a.seq, a.attempts) = (seq, 2),
                _ => {}
            }
            self.timers.set(Timer::LoadReply, self.now + LOAD_WAIT_MS);
            return Ok(());
        }
        if let Flow::AwaitWaiting(_) = &self.flow {
            // Nothing was journalled: the pick-up is offered again at a later tap.
            self.timers.clear(Timer::LoadReply);
            self.flow = Flow::default();
            self.refresh_screen();
            return Ok(());
        }
        let Some(l) = self.end_load_await() else {
            return Ok(());
        };
        let mut record = l.record;
        self.set_status(&mut record, RecordStatus::Failed, 0)?;
        let code = ReturnCode::NETWORK_FAILURE;
        self.refuse(Some(code), code.screen_text());
        Ok(())
    }

    /// The link is gone: no retry of a load request is possible.
    pub(in crate::core) fn load_host_unreachable(&mut self) -> Res {
        match &mut self.flow {
            Flow::AwaitLoad(l) => l.attempts = 2,
            Flow::AwaitWaiting(a) => a.attempts = 2,
            _ => return Ok(()),
        }
        self.load_timeout()
    }

    /// R-B5 on a POS: after an online debit answered 卡有补助未领, what waits is asked while
    /// the card is still on the reader.
    pub(in crate::core) fn offer_pick_up(
        &mut self,
        reader: &mut dyn Reader,
        card_no: ykt_proto::CardNo,
    ) -> Res {
        if !matches!(self.flow, Flow::Idle { .. }) || !self.link.has_session() {
            return Ok(());
        }
        match self.read_tapped(reader) {
            Ok(Some(card)) if card.card_no() == card_no && !card.locked() => self.ask_waiting(card),
            _ => Ok(()),
        }
    }
}
