//! The simulated host's side of loads, as `docs/loads.md` says: 0x09 answers what waits for
//! a card, 0x08 books a pending load (a top-up from cash, a pick-up claiming what waits) and
//! answers a repeat as the first time, the record's upload posts (交易成功) or voids (中途拔卡,
//! failed) it, and one uploaded 发起交易 (unknown) is settled by the card's next record.

use std::collections::BTreeMap;

use ykt_card::cpu::apdu::{bcd_date, bcd_time};
use ykt_card::cpu::app::serial_for;
use ykt_card::cpu::crypto::tx_type;
use ykt_card::cpu::psam::{LoadInit, host_load_mac2};
use ykt_proto::messages::*;
use ykt_proto::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadState {
    Pending,
    Posted,
    Voided,
}

#[derive(Clone, Debug)]
pub struct Load {
    pub request: LoadRequest,
    pub state: LoadState,
    /// Uploaded as 发起交易: the card's next record settles it.
    pub unknown: bool,
}

/// The host's books of loads.
#[derive(Default)]
pub struct LoadBooks {
    pub loads: BTreeMap<TerminalSerial, Load>,
    /// Money waiting per card (deposits, subsidies), not yet claimed by a pick-up.
    pub waiting: BTreeMap<u32, Fen>,
    /// What waited at the start, per card.
    pub waiting_at_start: BTreeMap<u32, Fen>,
    /// Posted pick-ups per card: the host's count, the card's subsidy sequence.
    pub picked_up: BTreeMap<u32, u16>,
    /// Cash the top-up operators took, for the top-ups not voided.
    pub cash_in: Fen,
    /// A final code for every 0x08 (scripted refusals).
    pub load_code: Option<ReturnCode>,
    /// Lose this many 0x08 requests (no answer).
    pub drop_loads: u32,
    /// Uploads that contradict the books (e.g. 交易成功 for a voided load): must stay 0.
    pub conflicts: Vec<String>,
}

fn same_load(a: &LoadRequest, b: &LoadRequest) -> bool {
    // A CPU card's repeat may come with a fresh INITIALIZE FOR LOAD: same load otherwise.
    LoadRequest {
        card: b.card,
        ..a.clone()
    } == *b
        && a.card.card_type() == b.card.card_type()
}

impl LoadBooks {
    /// Gives `amount` to `card` to pick up.
    pub fn deposit(&mut self, card: u32, amount: Fen) {
        *self.waiting.entry(card).or_default() += amount;
        *self.waiting_at_start.entry(card).or_default() += amount;
    }

    pub fn posted(&self) -> Fen {
        self.loads
            .values()
            .filter(|l| l.state == LoadState::Posted)
            .map(|l| l.request.amount)
            .sum()
    }

    pub fn pending(&self) -> impl Iterator<Item = &Load> {
        self.loads
            .values()
            .filter(|l| l.state == LoadState::Pending)
    }

    fn post(&mut self, serial: TerminalSerial) {
        let Some(l) = self.loads.get_mut(&serial) else {
            return;
        };
        debug_assert_eq!(l.state, LoadState::Pending);
        l.state = LoadState::Posted;
        if l.request.purpose == LoadPurpose::Pickup {
            *self.picked_up.entry(l.request.card_no.get()).or_default() += 1;
        }
    }

    fn void(&mut self, serial: TerminalSerial) {
        let Some(l) = self.loads.get_mut(&serial) else {
            return;
        };
        debug_assert_eq!(l.state, LoadState::Pending);
        l.state = LoadState::Voided;
        let (card, amount) = (l.request.card_no.get(), l.request.amount);
        match l.request.purpose {
            LoadPurpose::Pickup => *self.waiting.entry(card).or_default() += amount,
            LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => self.cash_in -= amount,
        }
    }

    /// 63 unless the card's sequence is the host's; a pending pick-up that landed explains
    /// a card one ahead, and is posted then and there.
    fn check_seq(&mut self, card: u32, on_card: u16) -> Result<(), ReturnCode> {
        let host = self.picked_up.get(&card).copied().unwrap_or(0);
        if on_card == host.wrapping_add(1) {
            let landed = self
                .loads
                .iter()
                .find(|(_, l)| {
                    l.state == LoadState::Pending
                        && l.request.purpose == LoadPurpose::Pickup
                        && l.request.card_no.get() == card
                })
                .map(|(s, _)| *s);
            if let Some(s) = landed {
                self.post(s);
                return Ok(());
            }
        }
        if on_card == host {
            Ok(())
        } else {
            Err(ReturnCode::CARD_SUBSIDY_SEQ_ABNORMAL)
        }
    }

    pub fn what_waits(&mut self, q: &WaitingRequest) -> WaitingResponse {
        let card = q.card_no.get();
        let mut resp = WaitingResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            card_no: q.card_no,
            amount: 0,
            loads: 0,
            subsidy_seq_after: q.subsidy_seq.wrapping_add(1),
        };
        if let Err(code) = self.check_seq(card, q.subsidy_seq) {
            resp.code = code;
            return resp;
        }
        resp.amount = self.waiting.get(&card).copied().unwrap_or(0);
        resp.loads = u16::from(resp.amount > 0);
        resp
    }

    /// 0x08: books the load pending and answers (a CPU card gets the MAC2 for its session).
    pub fn authorize(
        &mut self,
        keys: &ykt_card::keys::SystemKeys,
        q: &LoadRequest,
    ) -> LoadResponse {
        let pick_up = q.purpose == LoadPurpose::Pickup;
        let mut resp = LoadResponse {
            code: ReturnCode::SUCCESS,
            info: InfoCode::NONE,
            serial: q.serial,
            card_no: q.card_no,
            amount: q.amount,
            balance_after: q.balance_before + q.amount,
            subsidy_seq_after: q.subsidy_seq.wrapping_add(u16::from(pick_up)),
            mac2: [0; 4],
            account_balance: q.balance_before + q.amount,
        };
        if let Some(code) = self.load_code {
            resp.code = code;
            return resp;
        }
        if let LoadCard::Cpu(i) = q.card {
            let init = LoadInit {
                serial: serial_for(q.card_no),
                balance: q.balance_before as u32,
                online_seq: i.online_seq,
                random: i.random,
                mac1: i.mac1,
                amount: q.amount as u32,
                ty: tx_type::LOAD_EP,
                term_id: i.terminal_id,
            };
            match host_load_mac2(keys, &init, &bcd_date(q.time), &bcd_time(q.time)) {
                Some(m) => resp.mac2 = m,
                None => {
                    resp.code = ReturnCode::OTHER_ERROR;
                    return resp;
                }
            }
        }
        match self.loads.get(&q.serial) {
            Some(l) if same_load(&l.request, q) && l.state == LoadState::Pending => return resp,
            Some(_) => {
                resp.code = ReturnCode::POS_SERIAL_DUPLICATE;
                return resp;
            }
            None => {}
        }
        let card = q.card_no.get();
        if pick_up {
            if let Err(code) = self.check_seq(card, q.subsidy_seq) {
                resp.code = code;
                return resp;
            }
            let waits = self.waiting.entry(card).or_default();
            if *waits != q.amount || q.amount <= 0 {
                resp.code = ReturnCode::AMOUNT_ERROR;
                return resp;
            }
            *waits = 0;
        } else {
            self.cash_in += q.amount;
        }
        self.loads.insert(
            q.serial,
            Load {
                request: q.clone(),
                state: LoadState::Pending,
                unknown: false,
            },
        );
        resp
    }

    /// The upload of a load's record: the confirmation (R-B4).
    pub fn upload(&mut self, r: &Record) -> ReturnCode {
        let Some(l) = self.loads.get(&r.serial).cloned() else {
            // Never authorised: nothing reached the card (the terminal writes only after).
            if r.status.card_debited() {
                self.conflicts
                    .push(format!("written load {} never authorised", r.serial));
            }
            return ReturnCode::RECORD_NOT_FOUND;
        };
        let q = &l.request;
        if q.card_no != r.card_no || q.amount != r.amount || q.card_counter != r.card_counter {
            return ReturnCode::POS_SERIAL_DUPLICATE;
        }
        match (l.state, r.status) {
            (LoadState::Pending, RecordStatus::Success) => self.post(r.serial),
            (LoadState::Pending, RecordStatus::CardPulled | RecordStatus::Failed) => {
                self.void(r.serial)
            }
            (LoadState::Pending, RecordStatus::Initiated) => {
                if let Some(l) = self.loads.get_mut(&r.serial) {
                    l.unknown = true;
                }
            }
            (LoadState::Posted, RecordStatus::Success | RecordStatus::Initiated)
            | (LoadState::Voided, RecordStatus::CardPulled | RecordStatus::Failed) => {}
            (state, status) => self.conflicts.push(format!(
                "load {} is {state:?}, uploaded {status:?}",
                r.serial
            )),
        }
        ReturnCode::SUCCESS
    }

    /// Any later record of the card settles an unknown load made just before it: counter and
    /// balance before show whether the load landed (`docs/loads.md`).
    pub fn settle_by(&mut self, r: &Record) {
        if matches!(r.kind, RecordKind::Collected | RecordKind::Cancellation) {
            return;
        }
        let latest = self
            .loads
            .iter()
            .filter(|(s, l)| {
                **s < r.serial
                    && l.unknown
                    && l.state == LoadState::Pending
                    && l.request.card_no == r.card_no
                    && l.request.card.card_type() == r.card_type
            })
            .map(|(s, l)| (*s, l.request.clone()))
            .next_back();
        let Some((serial, q)) = latest else { return };
        // A CPU card's purchases count on another sequence than its loads: balance only.
        let mf1 = r.card_type == CardType::Mf1;
        let counts_load = !mf1 && r.kind.is_load();
        let after = q.balance_before + q.amount;
        if r.balance_before == after
            && (!(mf1 || counts_load) || r.card_counter == q.card_counter + 1)
        {
            self.post(serial);
        } else if r.balance_before == q.balance_before
            && (!(mf1 || counts_load) || r.card_counter == q.card_counter)
        {
            self.void(serial);
        }
    }
}
