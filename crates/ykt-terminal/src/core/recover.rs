//! A cancel without the card (R-P5.5, R-P5.8) may close a transaction whose write did land
//! (the card was torn after the wallet was written and never shown again). When that card
//! comes back, its own transaction log tells: the terminal then journals the debit it finds
//! as a `Collected` record (R-F4.17), so that no card debit stays without a record and the
//! host books it (the cancellation released its counter). A reversal's credit found that way
//! becomes a new reversal record with the same card counter.

use ykt_card::Reader;
use ykt_card::app::{CardRead, Resolution};
use ykt_card::cpu::app::CpuApp;
use ykt_proto::{CardType, Record, RecordKind, RecordStatus};

use super::cpu::{self, Tapped};
use super::sale::{Flow, pending_of};
use super::{Res, Terminal};
use crate::storage::flash::Flash;

/// What the card on the reader says about a load journalled before a power cut.
enum LoadSeen {
    /// On the card (a CPU card's TAC when it proved it).
    Landed(Option<u32>),
    NotLanded,
    /// No card, another card, or no proof either way.
    Unknown,
}

/// At most this many closed records are checked per tap.
const MAX_CHECKS: usize = 8;

impl<F: Flash> Terminal<F> {
    /// Records of this card closed as "not written" without the card to prove it, and not yet
    /// found on the card.
    fn closed_blind(&self, card: &Tapped) -> Vec<Record> {
        let j = &self.st.journal;
        let cancelled: Vec<_> = j
            .records()
            .filter(|r| r.kind == RecordKind::Cancellation)
            .filter_map(|r| r.original_serial)
            .collect();
        // A later record made from the same card counter proves the earlier write did not
        // land: the card's counter had not moved.
        let reused = |r: &Record| {
            j.records().any(|x| {
                x.serial > r.serial
                    && x.card_no == r.card_no
                    && x.card_type == r.card_type
                    && x.kind == r.kind
                    && x.card_counter == r.card_counter
            })
        };
        let found: Vec<_> = j
            .records()
            .filter(|r| r.kind == RecordKind::Collected && r.device == self.cfg.device)
            .filter_map(|r| r.original_serial)
            .collect();
        let mut all: Vec<Record> = j
            .records()
            .filter(|r| {
                r.card_no == card.card_no()
                    && r.card_type == card.card_type()
                    && matches!(r.kind, RecordKind::Purchase | RecordKind::Reversal)
                    && (r.status == RecordStatus::CardPulled
                        || (r.status == RecordStatus::Initiated && cancelled.contains(&r.serial)))
                    && !found.contains(&r.serial)
                    && !reused(r)
            })
            .cloned()
            .collect();
        // The newest first: an older one would be out of the card's reach sooner anyway.
        all.reverse();
        all.truncate(MAX_CHECKS);
        all
    }

    pub(super) fn recover_landed(&mut self, reader: &mut dyn Reader, card: &Tapped) -> Res {
        for rec in self.closed_blind(card) {
            let landed = match card {
                Tapped::Mf1(c) => self.mf1_has(reader, c, &rec),
                Tapped::Cpu(_) => {
                    let seq = u16::try_from(rec.card_counter).unwrap_or(u16::MAX);
                    match CpuApp::prove(reader, seq) {
                        Ok(Some(p)) => Some(u32::from_be_bytes(p.tac)),
                        _ => cpu::in_log(reader, seq, self.cfg.device).then_some(0),
                    }
                }
            };
            let Some(tac) = landed else { continue };
            let found = if rec.kind == RecordKind::Reversal {
                // A credit that landed: a reversal record of its own (the original purchase
                // stays its `original_serial`); the same card counter marks it as found.
                Record {
                    status: RecordStatus::Written,
                    ..rec
                }
            } else {
                Record {
                    kind: RecordKind::Collected,
                    status: RecordStatus::Written,
                    original_serial: Some(rec.serial),
                    tac,
                    ..rec
                }
            };
            self.journal_collected(found)?;
        }
        Ok(())
    }

    /// `Some(0)` when the card's ring holds the record's transaction.
    fn mf1_has(&self, reader: &mut dyn Reader, c: &CardRead, rec: &Record) -> Option<u32> {
        let back = c.wallet.counter.checked_sub(rec.card_counter)?;
        if back == 0 || back > c.dir.ring_capacity() {
            return None;
        }
        let ring = self.app().records(reader, c, back as usize).ok()?;
        ring.iter()
            .any(|r| {
                r.counter_before == rec.card_counter
                    && r.device == rec.device
                    && r.serial == rec.serial
            })
            .then_some(0)
    }

    /// After power-up, at the first input: a load still 发起交易 (the host may have
    /// authorised it and the card may hold it) is settled from the card when it is on the
    /// reader: landed → 交易成功, provably not landed → 中途拔卡. Otherwise it stays 发起交易
    /// and is uploaded as it is: the host keeps it pending and settles it by the card's next
    /// record (`docs/loads.md`). Never written again.
    pub(super) fn settle_boot_load(&mut self, reader: &mut dyn Reader) -> Res {
        if !matches!(self.flow, Flow::LoadRecover(_)) {
            return Ok(());
        }
        let Flow::LoadRecover(rec) = std::mem::take(&mut self.flow) else {
            return Ok(());
        };
        let mut rec = *rec;
        match self.load_on_card(reader, &rec) {
            LoadSeen::Landed(tac) => self.written(&mut rec, true, 0, tac)?,
            LoadSeen::NotLanded => self.set_status(&mut rec, RecordStatus::CardPulled, 0)?,
            LoadSeen::Unknown => {}
        }
        self.refresh_screen();
        Ok(())
    }

    fn load_on_card(&self, reader: &mut dyn Reader, rec: &Record) -> LoadSeen {
        if rec.card_type == CardType::Mf1 {
            return match self.app().resolve(reader, &pending_of(rec)) {
                Ok((_, Resolution::Landed(_))) => LoadSeen::Landed(None),
                Ok((card, Resolution::NotLanded))
                    if card.wallet.counter == rec.card_counter
                        && card.wallet.balance == rec.balance_before =>
                {
                    LoadSeen::NotLanded
                }
                _ => LoadSeen::Unknown,
            };
        }
        let Ok(read) = CpuApp::read(reader) else {
            return LoadSeen::Unknown;
        };
        if read.card_no != rec.card_no {
            return LoadSeen::Unknown;
        }
        let seq = u16::try_from(rec.card_counter).unwrap_or(u16::MAX);
        match CpuApp::prove_load(reader, seq) {
            Ok(Some(p)) => return LoadSeen::Landed(Some(u32::from_be_bytes(p.tac))),
            Ok(None) if cpu::load_in_log(reader, seq, self.cfg.device) => {
                return LoadSeen::Landed(None);
            }
            Ok(None) => {}
            Err(_) => return LoadSeen::Unknown,
        }
        // The purse's online sequence and balance as they are now (INITIALIZE FOR LOAD
        // changes nothing on the card).
        let term = cpu::terminal_id(self.cfg.device);
        match CpuApp::init_load(reader, &read, term, rec.amount) {
            Ok(i)
                if u32::from(i.online_seq) == rec.card_counter
                    && ykt_proto::Fen::from(i.balance) == rec.balance_before =>
            {
                LoadSeen::NotLanded
            }
            _ => LoadSeen::Unknown,
        }
    }
}
