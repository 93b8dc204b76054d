//! The card write and its failure: re-tap prompt, resolution of the torn write (R-P5.4,
//! R-P5.7), cancel after 60 s (R-P5.5, R-P5.8).

use super::*;
use ykt_card::cpu::app::CpuLoad;

/// How a transaction closed without its card write is known not to be on the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::core) enum Unwritten {
    /// The re-tapped card shows it did not land.
    Proven,
    /// Cancelled without the card: it may have landed (a load then stays 发起交易, unknown,
    /// for the host to settle by the card's next record, `docs/loads.md`).
    Blind,
}

/// What CREDIT FOR LOAD does for a load record's kind.
fn cpu_load(kind: RecordKind) -> CpuLoad {
    if kind == RecordKind::Subsidy {
        CpuLoad::PickUp
    } else {
        CpuLoad::TopUp
    }
}

impl<F: Flash> Terminal<F> {
    /// Writes the card for a journalled record; on failure, the re-tap prompt.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::core) fn write(
        &mut self,
        reader: &mut dyn Reader,
        card: &Tapped,
        mut record: Record,
        authorised: bool,
        rewrite: bool,
        subject: u16,
    ) -> Res {
        let result = match card {
            Tapped::Mf1(c) => {
                let (app, req) = (self.app(), tx_request(&record));
                // R-B5: a pick-up steps the card's subsidy sequence with the credit.
                let done = if record.kind == RecordKind::Subsidy {
                    app.pick_up(reader, c, &req)
                } else {
                    app.transact(reader, c, &req)
                };
                done.map(|_| None).map_err(|e| e.to_string())
            }
            Tapped::Cpu(c) if record.kind.is_load() => match &c.load_mac2 {
                Some(mac2) => CpuApp::credit_load(reader, cpu_load(record.kind), record.time, mac2)
                    .map(|tac| Some(u32::from_be_bytes(tac)))
                    .map_err(|e| e.to_string()),
                None => Err("no load session".to_owned()),
            },
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
                if !matches!(self.flow, Flow::Retap(_)) {
                    // The 60 s run from the first prompt, also after a failed rewrite.
                    self.timers
                        .set(Timer::CancelLock, self.now + CANCEL_LOCK_MS);
                }
                self.flow = Flow::Retap(Box::new(Retap {
                    record,
                    authorised,
                    rewrite,
                    subject,
                }));
                self.push(Output::Beep(Beep::Continuous));
                self.timers.clear(Timer::ScreenHold);
                self.refresh_screen();
                Ok(())
            }
        }
    }

    /// The card holds the transaction: final status, balance for 2 s.
    pub(in crate::core) fn written(
        &mut self,
        record: &mut Record,
        authorised: bool,
        subject: u16,
        tac: Option<u32>,
    ) -> Res {
        let status = match (record.online, authorised, record.kind) {
            (_, _, RecordKind::TopUp | RecordKind::Subsidy) => RecordStatus::Success,
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
        if status == RecordStatus::Success
            && record.card_type == CardType::Mf1
            && !record.kind.is_load()
        {
            // R-P5.2: the host booked it when it authorised: 已上传. A CPU record still
            // goes up, for the host to check its TAC; a load's upload is its confirmation.
            self.st
                .journal
                .mark_uploaded(&mut self.st.flash, record.serial)?;
        }
        let was_retap = matches!(self.flow, Flow::Retap(_));
        self.flow = Flow::default();
        self.timers.clear(Timer::CancelLock);
        if was_retap {
            self.push(Output::Beep(Beep::Stop));
        }
        self.push(Output::Beep(Beep::Ok));
        let mut lines = vec![texts::balance(record.balance_after)];
        match record.kind {
            RecordKind::Reversal => lines.insert(0, texts::REVERSED.into()),
            RecordKind::TopUp => lines.insert(0, texts::TOPPED_UP.into()),
            RecordKind::Subsidy => lines.insert(0, texts::PICKED_UP.into()),
            _ => {}
        }
        self.flash_text(lines, BALANCE_HOLD_MS);
        Ok(())
    }

    /// A card tapped during the re-tap prompt: did the write land? (R-P5.4, R-P5.7)
    pub(in crate::core) fn retap(&mut self, reader: &mut dyn Reader) -> Res {
        let Flow::Retap(r) = &self.flow else {
            return Ok(());
        };
        let rec = r.record.clone();
        let (authorised, rewrite, subject) = (r.authorised, r.rewrite, r.subject);
        if rec.card_type == CardType::Cpu {
            return self.retap_cpu(reader, rec, authorised, rewrite, subject);
        }
        let (card, res) = match self.app().resolve(reader, &pending_of(&rec)) {
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
                let card = Tapped::Mf1(Box::new(card));
                self.write(reader, &card, rec, authorised, rewrite, subject)
            }
            Resolution::NotLanded => {
                // Not written and not to be written now: close it as not written.
                self.close_unwritten(Unwritten::Proven)?;
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

    /// `Timer::CancelLock` (R-P5.5, R-P5.8): 60 s are over; whatever text was on hold, the
    /// prompt comes back and says cancel is possible now.
    pub(in crate::core) fn cancel_unlocked(&mut self) {
        if matches!(self.flow, Flow::Retap(_)) {
            self.timers.clear(Timer::ScreenHold);
            self.refresh_screen();
        }
    }

    /// The re-tap of a CPU card: GET TRANSACTION PROVE says whether the debit happened.
    pub(in crate::core) fn retap_cpu(
        &mut self,
        reader: &mut dyn Reader,
        mut rec: Record,
        authorised: bool,
        rewrite: bool,
        subject: u16,
    ) -> Res {
        let Ok(read) = CpuApp::read(reader) else {
            return Ok(()); // unreadable this time: keep asking
        };
        if read.card_no != rec.card_no {
            self.flash_text(vec![texts::OTHER_CARD.into()], INFO_HOLD_MS);
            return Ok(());
        }
        let seq = u16::try_from(rec.card_counter).unwrap_or(u16::MAX);
        if rec.kind.is_load() {
            return self.retap_cpu_load(reader, rec, seq, subject);
        }
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
                    load_mac2: None,
                }));
                self.write(reader, &card, rec, authorised, rewrite, subject)
            }
            Ok(init) if u32::from(init.offline_seq) == rec.card_counter => {
                self.close_unwritten(Unwritten::Proven)?;
                self.flash_text(vec![texts::RETRY_TRANSACTION.into()], INFO_HOLD_MS);
                Ok(())
            }
            // The purse moved on: its log tells whether our purchase is among the moves.
            _ if cpu::in_log(reader, seq, self.cfg.device) => {
                self.written(&mut rec, authorised, subject, None)
            }
            _ => {
                self.close_unwritten(Unwritten::Proven)?;
                self.flash_text(vec![texts::RETRY_TRANSACTION.into()], INFO_HOLD_MS);
                Ok(())
            }
        }
    }

    /// The re-tap of a CPU card after a load's CREDIT FOR LOAD failed: GET TRANSACTION PROVE
    /// on its online sequence says whether it credited. A load is never written again (its
    /// MAC2 was for the session that is gone): not landed, it is closed as 中途拔卡.
    fn retap_cpu_load(
        &mut self,
        reader: &mut dyn Reader,
        mut rec: Record,
        seq: u16,
        subject: u16,
    ) -> Res {
        match CpuApp::prove_load(reader, seq) {
            Ok(Some(proof)) => {
                let tac = u32::from_be_bytes(proof.tac);
                self.written(&mut rec, true, subject, Some(tac))
            }
            Ok(None) if cpu::load_in_log(reader, seq, self.cfg.device) => {
                self.written(&mut rec, true, subject, None)
            }
            Ok(None) => {
                self.close_unwritten(Unwritten::Proven)?;
                self.flash_text(vec![texts::RETRY_TRANSACTION.into()], INFO_HOLD_MS);
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    /// R-P5.5 / R-P5.8: cancel after 60 s.
    pub(in crate::core) fn cancel_retap(&mut self) -> Res {
        self.close_unwritten(Unwritten::Blind)?;
        self.flash_text(vec![texts::CANCELLED.into()], INFO_HOLD_MS);
        Ok(())
    }

    /// Ends an open transaction whose card write did not happen: an authorised online debit
    /// gets a cancellation record (serial + 1, R-P5.5); anything else is marked 中途拔卡
    /// (R-P5.8). Either is uploaded (R-F4.3).
    pub(in crate::core) fn close_unwritten(&mut self, how: Unwritten) -> Res {
        if !matches!(self.flow, Flow::Retap(_)) {
            return Ok(());
        }
        self.timers.clear(Timer::CancelLock);
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
        if record.kind.is_load() {
            // A load never gets a cancellation: the host voids it on 中途拔卡, and settles an
            // unknown one (still 发起交易) by the card's next record.
            if how == Unwritten::Proven {
                self.set_status(&mut record, RecordStatus::CardPulled, subject)?;
            }
            return Ok(());
        }
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
}
