//! What one simulated terminal does during the measured phase. Each terminal owns a
//! disjoint set of cards, so the card's lifetime counter and balance that loadgen tracks
//! are exact (one card on one reader at a time, as in a canteen).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ykt_proto::*;

use super::Scenario;
use super::stats::Stats;
use super::terminal::SimTerminal;

/// A card as loadgen knows it: what the card itself would hold after each write.
#[derive(Clone, Copy, Debug)]
pub struct SimCard {
    pub no: CardNo,
    pub counter: u32,
    pub balance: Fen,
    /// A debit went unanswered: the card's state is unknown, so it is not used again.
    pub retired: bool,
    /// The card's subsidy sequence (pick-ups written to it).
    pub subsidy_seq: u16,
    /// A load written to the card whose record reached the host as `Initiated` (the outcome
    /// was lost): the host holds it pending until the card's next record settles it.
    pub unsettled: Option<Fen>,
}

/// Shared between every terminal task and the progress display.
pub struct Control {
    pub stop: AtomicBool,
    /// Operations started (bounded by `limit` when set).
    pub started: AtomicU64,
    /// Operations finished, and records among them.
    pub done: AtomicU64,
    pub records: AtomicU64,
    pub limit: Option<u64>,
}

impl Control {
    fn take_ticket(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match self.limit {
            Some(k) => self.started.fetch_add(1, Ordering::Relaxed) < k,
            None => true,
        }
    }
}

pub struct Plan {
    pub scenario: Scenario,
    pub merchant: u32,
    pub think: Duration,
    pub amount_max: Fen,
    /// Records per upload.
    pub batch: usize,
    /// Share of top-ups whose outcome is torn (topup scenario), 0.0 ..= 1.0.
    pub tear_rate: f64,
}

pub struct Worker {
    pub term: SimTerminal,
    pub cards: Vec<SimCard>,
    pub next_serial: u32,
    pub rng: StdRng,
    pub stats: Stats,
}

impl Worker {
    pub fn new(term: SimTerminal, cards: Vec<SimCard>, seed: u64) -> Worker {
        Worker {
            term,
            cards,
            next_serial: 1,
            rng: StdRng::seed_from_u64(seed),
            stats: Stats::default(),
        }
    }

    /// Runs transactions until the deadline, the request limit or a stop.
    pub async fn run(mut self, plan: Arc<Plan>, ctl: Arc<Control>) -> Stats {
        while ctl.take_ticket() {
            let records = match plan.scenario {
                Scenario::Online => self.online(&plan).await,
                Scenario::Offline | Scenario::Upload => self.offline(&plan, plan.batch).await,
                Scenario::Mixed => match self.rng.random_range(0..100) {
                    0..70 => self.online(&plan).await,
                    70..95 => self.offline(&plan, 1).await,
                    _ => self.heartbeat().await,
                },
                Scenario::Topup => match self.rng.random_range(0..100) {
                    0..75 => self.top_up(&plan).await,
                    _ => self.online(&plan).await,
                },
                Scenario::Pickup => self.online(&plan).await,
                Scenario::SigninStorm | Scenario::BlacklistInit => 0,
            };
            ctl.done.fetch_add(1, Ordering::Relaxed);
            ctl.records.fetch_add(records, Ordering::Relaxed);
            if records == 0 && self.cards.iter().all(|c| c.retired) {
                break; // nothing left to spend
            }
            if !plan.think.is_zero() {
                tokio::time::sleep(plan.think).await;
            }
        }
        self.settle_all().await;
        self.stats
    }

    /// A usable card with enough balance for `amount`, round-robin from a random start.
    fn pick_card(&mut self, amount: Fen) -> Option<usize> {
        let n = self.cards.len();
        if n == 0 {
            return None;
        }
        let start = self.rng.random_range(0..n);
        (0..n).map(|i| (start + i) % n).find(|&i| {
            let c = &self.cards[i];
            !c.retired && c.balance >= amount
        })
    }

    pub(super) fn serial(&mut self) -> u32 {
        let s = self.next_serial;
        self.next_serial += 1;
        s
    }

    /// One online debit (R-P5.2); returns the records booked (0 or 1).
    async fn online(&mut self, plan: &Plan) -> u64 {
        let amount = self.rng.random_range(1..=plan.amount_max);
        let Some(i) = self.pick_card(amount) else {
            self.retire_all();
            return 0;
        };
        let card = self.cards[i];
        let serial = self.serial();
        let req = Message::DebitRequest(DebitRequest {
            card_no: card.no,
            card_type: CardType::Mf1,
            card_counter: card.counter,
            balance_before: card.balance,
            amount,
            fee: 0,
            wallet_no: 1,
            item_code: 0,
            serial,
            time: super::campus_now(),
        });
        let sent = Instant::now();
        match self.term.request(&req).await {
            Ok(Message::DebitResponse(r)) => {
                self.stats.record(sent.elapsed(), r.code);
                if r.code == ReturnCode::SUCCESS {
                    self.stats.acked.add(amount);
                    let c = &mut self.cards[i];
                    c.counter += 1;
                    c.balance -= amount;
                    // The debit's record settled a load the host held pending (docs/loads.md).
                    if let Some(load) = c.unsettled.take() {
                        self.stats.top_ups.uncertain.remove(load);
                        self.stats.top_ups.posted.add(load);
                    }
                    if r.info == InfoCode::SUBSIDY_WAITING && plan.scenario == Scenario::Pickup {
                        self.pick_up(plan, i).await;
                    }
                    return 1;
                }
                0
            }
            Ok(other) => {
                let code = other.codes().map_or(ReturnCode::OTHER_ERROR, |c| c.0);
                self.stats.record(sent.elapsed(), code);
                0
            }
            Err(e) => {
                self.stats.fail(e.label());
                self.stats.uncertain.add(amount);
                self.cards[i].retired = true;
                0
            }
        }
    }

    /// `batch` offline debits written to cards (R-P5.6), uploaded in one request (R-P5.9);
    /// returns the records booked.
    async fn offline(&mut self, plan: &Plan, batch: usize) -> u64 {
        let mut records = Vec::with_capacity(batch);
        for _ in 0..batch {
            let amount = self.rng.random_range(1..=plan.amount_max);
            let Some(i) = self.pick_card(amount) else {
                break;
            };
            let serial = self.serial();
            let c = &mut self.cards[i];
            records.push(Record {
                device: self.term.device,
                serial,
                kind: RecordKind::Purchase,
                status: RecordStatus::Written,
                online: false,
                card_type: CardType::Mf1,
                card_no: c.no,
                card_counter: c.counter,
                wallet_no: 1,
                balance_before: c.balance,
                amount,
                fee: 0,
                balance_after: c.balance - amount,
                time: super::campus_now(),
                merchant_no: plan.merchant,
                original_serial: None,
                item_code: 0,
                tac: 0,
            });
            // The card is written before the upload, whatever the host says later.
            c.counter += 1;
            c.balance -= amount;
        }
        if records.is_empty() {
            self.retire_all();
            return 0;
        }
        let amounts: Vec<(u32, Fen)> = records.iter().map(|r| (r.serial, r.amount)).collect();
        let sent = Instant::now();
        let req = Message::UploadRequest(UploadRequest { records });
        match self.term.request(&req).await {
            Ok(Message::UploadResponse(r)) => {
                self.stats.record(sent.elapsed(), r.code);
                let mut booked = 0;
                for (res, (serial, amount)) in r.results.iter().zip(&amounts) {
                    if res.serial != *serial {
                        self.stats.fail("upload result out of order");
                        continue;
                    }
                    if res.code == ReturnCode::SUCCESS {
                        self.stats.acked.add(*amount);
                        booked += 1;
                    } else {
                        *self.stats.codes.entry(res.code.0).or_default() += 1;
                    }
                }
                if r.results.len() != amounts.len() {
                    self.stats.fail("upload result count differs");
                }
                booked
            }
            Ok(other) => {
                let code = other.codes().map_or(ReturnCode::OTHER_ERROR, |c| c.0);
                self.stats.record(sent.elapsed(), code);
                0
            }
            Err(e) => {
                self.stats.fail(e.label());
                for (_, amount) in amounts {
                    self.stats.uncertain.add(amount);
                }
                0
            }
        }
    }

    async fn heartbeat(&mut self) -> u64 {
        let req = Message::HeartbeatRequest(HeartbeatRequest {
            clock: super::campus_now(),
            blacklist_version: 0,
            params_version: 1,
            pending_records: 0,
        });
        let sent = Instant::now();
        match self.term.request(&req).await {
            Ok(m) => {
                let code = m.codes().map_or(ReturnCode::OTHER_ERROR, |c| c.0);
                self.stats.record(sent.elapsed(), code);
            }
            Err(e) => self.stats.fail(e.label()),
        }
        0
    }

    fn retire_all(&mut self) {
        for c in &mut self.cards {
            c.retired = true;
        }
    }
}

/// Downloads the whole blacklist in bulk (R-F4.21) as a fresh terminal does; returns the
/// version and the number of listed cards among `expect`.
pub async fn bulk_blacklist(
    term: &mut SimTerminal,
    expect: &[CardNo],
) -> Result<(u32, usize), String> {
    // Restart from segment 0 when the list changes meanwhile (§6.8); bounded.
    for _attempt in 0..5 {
        let mut version = 0u32;
        let mut segments: Vec<Option<Segment>> = Vec::new();
        let mut seg = 0u16;
        let mut count = 1u16;
        let mut changed = false;
        while seg < count {
            let req = Message::BlacklistBulkRequest(BlacklistBulkRequest {
                version,
                segment: seg,
            });
            let r = match term.request(&req).await {
                Ok(Message::BlacklistBulkResponse(r)) => r,
                Ok(other) => return Err(format!("unexpected answer {:?}", other.codes())),
                Err(e) => return Err(e.to_string()),
            };
            if r.code != ReturnCode::SUCCESS {
                return Err(format!("code {}: {}", r.code.0, r.code.text()));
            }
            if seg == 0 {
                version = r.version;
                count = r.segments.max(1);
            } else if r.version != version {
                changed = true;
                break;
            }
            segments.push(r.bitmap);
            seg += 1;
        }
        if changed {
            continue;
        }
        let listed = expect
            .iter()
            .filter(|c| {
                let (s, off) = (c.get() / CARDS_PER_SEGMENT, c.get() % CARDS_PER_SEGMENT);
                segments
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|b| b.contains(off))
            })
            .count();
        return Ok((version, listed));
    }
    Err("the blacklist kept changing during the download".into())
}
