//! Loads as a terminal does them (`docs/loads.md`): a cash top-up (0x08, the card write,
//! the record's upload) with a share of torn outcomes, a pick-up of what waits for the card
//! (0x09, 0x08, write, upload) after a debit answered information code 2, and at the end the
//! card's next tap (0x09) that settles a load whose outcome the host never learnt.

use std::time::Instant;

use rand::Rng;
use ykt_proto::*;

use super::stats::LoadTally;
use super::workload::{Plan, SimCard, Worker};

/// The largest balance an MF1 purse holds (24 bits).
const MF1_MAX_BALANCE: Fen = 16_777_215;

/// How a written load ends, as the terminal journals it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The write landed: `Success`, posted by its upload.
    Landed,
    /// The card left before the write: `CardPulled`, voided by its upload.
    Pulled,
    /// The write landed but the terminal lost the outcome (power cut): `Initiated`,
    /// settled by the card's next record.
    Lost,
}

impl Outcome {
    fn status(self) -> RecordStatus {
        match self {
            Outcome::Landed => RecordStatus::Success,
            Outcome::Pulled => RecordStatus::CardPulled,
            Outcome::Lost => RecordStatus::Initiated,
        }
    }
}

impl Worker {
    /// One cash top-up; returns the records booked (0 or 1).
    pub(super) async fn top_up(&mut self, plan: &Plan) -> u64 {
        let amount = self.rng.random_range(1..=plan.amount_max);
        let Some(i) = self.pick_top_up_card(amount) else {
            return 0;
        };
        let outcome = if self.rng.random_bool(plan.tear_rate.clamp(0.0, 1.0)) {
            if self.rng.random_bool(0.5) {
                Outcome::Pulled
            } else {
                Outcome::Lost
            }
        } else {
            Outcome::Landed
        };
        self.load(plan, i, LoadPurpose::TopUpCash, amount, outcome)
            .await
    }

    /// After a debit answered 卡有补助未领: what waits (0x09), then its pick-up.
    pub(super) async fn pick_up(&mut self, plan: &Plan, i: usize) {
        let card = self.cards[i];
        let req = Message::WaitingRequest(waiting_request(&card));
        let sent = Instant::now();
        let amount = match self.term.request(&req).await {
            Ok(Message::WaitingResponse(r)) => {
                self.stats.record(sent.elapsed(), r.code);
                if r.code != ReturnCode::SUCCESS || r.amount == 0 {
                    return;
                }
                r.amount
            }
            Ok(other) => return self.unexpected(sent, &other),
            Err(e) => return self.stats.fail(e.label()),
        };
        self.load(plan, i, LoadPurpose::Pickup, amount, Outcome::Landed)
            .await;
    }

    /// The card's next tap settles a load the host holds pending (0x09 says what the card
    /// shows): done for every such card when the run ends.
    pub(super) async fn settle_all(&mut self) {
        for i in 0..self.cards.len() {
            let card = self.cards[i];
            let Some(load) = card.unsettled else { continue };
            if card.retired {
                continue;
            }
            let req = Message::WaitingRequest(waiting_request(&card));
            let sent = Instant::now();
            match self.term.request(&req).await {
                Ok(Message::WaitingResponse(r)) => {
                    self.stats.record(sent.elapsed(), r.code);
                    if r.code == ReturnCode::SUCCESS {
                        self.cards[i].unsettled = None;
                        self.stats.top_ups.uncertain.remove(load);
                        self.stats.top_ups.posted.add(load);
                    }
                }
                Ok(other) => self.unexpected(sent, &other),
                Err(e) => self.stats.fail(e.label()),
            }
        }
    }

    fn pick_top_up_card(&mut self, amount: Fen) -> Option<usize> {
        let n = self.cards.len();
        let start = self.rng.random_range(0..n.max(1));
        (0..n).map(|k| (start + k) % n).find(|&k| {
            let c = &self.cards[k];
            // One load in doubt per card: the next must not wait on an unsettled one.
            !c.retired && c.unsettled.is_none() && c.balance + amount <= MF1_MAX_BALANCE
        })
    }

    /// 0x08 (one retry on no answer, as the terminal does), the card write as `outcome`
    /// says, the record's upload; returns the records booked.
    async fn load(
        &mut self,
        plan: &Plan,
        i: usize,
        purpose: LoadPurpose,
        amount: Fen,
        outcome: Outcome,
    ) -> u64 {
        let card = self.cards[i];
        let serial = self.serial();
        let req = LoadRequest {
            purpose,
            card_no: card.no,
            card: LoadCard::Mf1,
            card_counter: card.counter,
            balance_before: card.balance,
            amount,
            subsidy_seq: card.subsidy_seq,
            wallet_no: 1,
            serial,
            time: super::campus_now(),
        };
        let mut record = load_record(plan, &req, self.term.device);
        let mut answer = None;
        for _attempt in 0..2 {
            let sent = Instant::now();
            match self.term.request(&Message::LoadRequest(req.clone())).await {
                Ok(Message::LoadResponse(r)) => {
                    self.stats.record(sent.elapsed(), r.code);
                    self.stats.record_load(sent.elapsed());
                    answer = Some(r);
                    break;
                }
                Ok(other) => {
                    self.unexpected(sent, &other);
                    return 0;
                }
                Err(e) => self.stats.fail(e.label()),
            }
        }
        let Some(r) = answer else {
            // Given up: the record becomes `Failed` and its upload voids what the host may
            // have made pending (the card was never written).
            record.status = RecordStatus::Failed;
            let _ = self.upload_load(record).await;
            return 0;
        };
        if r.code != ReturnCode::SUCCESS {
            return 0;
        }
        if r.amount != amount || r.balance_after != card.balance + amount {
            self.stats.fail("load answer differs from request");
            return 0;
        }
        if outcome != Outcome::Pulled {
            let c = &mut self.cards[i];
            c.counter += 1;
            c.balance += amount;
            c.subsidy_seq = r.subsidy_seq_after;
        }
        record.status = outcome.status();
        match (self.upload_load(record).await, outcome) {
            (Ok(()), Outcome::Landed) => {
                tally(self, purpose).posted.add(amount);
                1
            }
            (Ok(()), Outcome::Pulled) => {
                tally(self, purpose).voided.add(amount);
                0
            }
            (Ok(()), Outcome::Lost) => {
                tally(self, purpose).uncertain.add(amount);
                self.cards[i].unsettled = Some(amount);
                0
            }
            (Err(()), _) => {
                // The host may not know the outcome: the card is not used again.
                tally(self, purpose).uncertain.add(amount);
                self.cards[i].retired = true;
                0
            }
        }
    }

    /// Uploads one load record; Ok when acknowledged with code 0.
    async fn upload_load(&mut self, record: Record) -> Result<(), ()> {
        let req = Message::UploadRequest(UploadRequest {
            records: vec![record],
        });
        let sent = Instant::now();
        match self.term.request(&req).await {
            Ok(Message::UploadResponse(r)) => {
                self.stats.record(sent.elapsed(), r.code);
                match r.results.first() {
                    Some(res)
                        if r.code == ReturnCode::SUCCESS && res.code == ReturnCode::SUCCESS =>
                    {
                        Ok(())
                    }
                    Some(res) => {
                        *self.stats.codes.entry(res.code.0).or_default() += 1;
                        Err(())
                    }
                    None => Err(()),
                }
            }
            Ok(other) => {
                self.unexpected(sent, &other);
                Err(())
            }
            Err(e) => {
                self.stats.fail(e.label());
                Err(())
            }
        }
    }

    fn unexpected(&mut self, sent: Instant, other: &Message) {
        let code = other.codes().map_or(ReturnCode::OTHER_ERROR, |c| c.0);
        self.stats.record(sent.elapsed(), code);
    }
}

fn tally(w: &mut Worker, purpose: LoadPurpose) -> &mut LoadTally {
    match purpose {
        LoadPurpose::Pickup => &mut w.stats.pick_ups,
        LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => &mut w.stats.top_ups,
    }
}

fn waiting_request(card: &SimCard) -> WaitingRequest {
    WaitingRequest {
        card_no: card.no,
        card_type: CardType::Mf1,
        subsidy_seq: card.subsidy_seq,
        card_counter: card.counter,
        balance: card.balance,
    }
}

/// The record the terminal journals for a load before it asks (status set by the outcome).
fn load_record(plan: &Plan, l: &LoadRequest, device: PhysicalId) -> Record {
    Record {
        device,
        serial: l.serial,
        kind: match l.purpose {
            LoadPurpose::Pickup => RecordKind::Subsidy,
            LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => RecordKind::TopUp,
        },
        status: RecordStatus::Initiated,
        online: true,
        card_type: CardType::Mf1,
        card_no: l.card_no,
        card_counter: l.card_counter,
        wallet_no: l.wallet_no,
        balance_before: l.balance_before,
        amount: l.amount,
        fee: 0,
        balance_after: l.balance_before + l.amount,
        time: l.time,
        merchant_no: plan.merchant,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}
