//! The debit itself: offline (R-P5.6) or online with its request, answers, timeout and
//! retry, fallback or refusal (R-P5.2, R-P5.3).

use super::*;

impl<F: Flash> Terminal<F> {
    pub(in crate::core) fn debit(
        &mut self,
        reader: &mut dyn Reader,
        mut card: Tapped,
        sale: Sale,
        fee: Fen,
    ) -> Res {
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

    pub(in crate::core) fn online_debit(&mut self, card: Tapped, sale: Sale, fee: Fen) -> Res {
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
        }));
        self.timers
            .set(Timer::OnlineReply, self.now + ONLINE_WAIT_MS);
        self.refresh_screen();
        Ok(())
    }

    pub(in crate::core) fn send_debit(&mut self, r: &Record) -> Option<u32> {
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

    pub(in crate::core) fn sale_debit_response(
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
        let Some(o) = self.end_await() else {
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
        if resp.info == ykt_proto::InfoCode::SUBSIDY_WAITING {
            // R-B5: money waits for the card: the pick-up is offered while it is here.
            self.offer_pick_up(reader, card.card_no())?;
        }
        Ok(())
    }

    /// A refusal of the online debit (an error code in the response).
    pub(in crate::core) fn sale_debit_error(
        &mut self,
        code: ReturnCode,
        reader: &mut dyn Reader,
    ) -> Res {
        if code.is_handled_as_timeout() {
            // R-P5.3: codes 1–9 count as a timeout.
            return self.online_timeout(reader);
        }
        let Some(o) = self.end_await() else {
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

    /// Leaves `AwaitHost` (answer, refusal or timeout), with its reply timer.
    fn end_await(&mut self) -> Option<Box<Online>> {
        if !matches!(self.flow, Flow::AwaitHost(_)) {
            return None;
        }
        self.timers.clear(Timer::OnlineReply);
        match std::mem::take(&mut self.flow) {
            Flow::AwaitHost(o) => Some(o),
            _ => None,
        }
    }

    /// The host cannot answer (link down, session lost): no retry is possible.
    pub(in crate::core) fn host_unreachable(&mut self, reader: &mut dyn Reader) -> Res {
        if let Flow::AwaitHost(o) = &mut self.flow {
            o.attempts = 2;
            return self.online_timeout(reader);
        }
        self.load_host_unreachable()
    }

    /// R-P5.3 (`Timer::OnlineReply`, codes 1–9, link lost): 500 ms, one retry, then offline
    /// (auto) or refusal (full online).
    pub(in crate::core) fn online_timeout(&mut self, reader: &mut dyn Reader) -> Res {
        let Flow::AwaitHost(o) = &mut self.flow else {
            return Ok(());
        };
        if o.attempts < 2 && self.link.has_session() {
            let record = o.record.clone();
            if let Some(seq) = self.send_debit(&record)
                && let Flow::AwaitHost(o) = &mut self.flow
            {
                o.attempts = 2;
                o.seq = seq;
                self.timers
                    .set(Timer::OnlineReply, self.now + ONLINE_WAIT_MS);
                return Ok(());
            }
        }
        let Some(o) = self.end_await() else {
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
}
