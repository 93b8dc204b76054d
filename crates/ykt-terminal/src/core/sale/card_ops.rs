//! Card operations beside the debit: the lock flag of black cards (R-F4.15, R-F4.3), the
//! abnormal record of a card refused for contradicting data (R-F4.3), reversal (冲正, MF1)
//! and collection of on-card records (R-F4.17).

use super::*;

impl<F: Flash> Terminal<F> {
    /// R-F4.15: a listed card gets the lock flag, is refused, and the event is recorded.
    pub(in crate::core) fn black_card(&mut self, reader: &mut dyn Reader, card: &Tapped) -> Res {
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

    /// R-F4.3: a card refused for contradicting data leaves a failed record of the sale
    /// (no money moved), uploaded like any other.
    pub(in crate::core) fn abnormal_record(&mut self, card: &Tapped, sale: Sale) -> Res {
        let base = self.base_record(card, sale, 0, false);
        let rec = Record {
            status: RecordStatus::Failed,
            balance_after: base.balance_before,
            ..base
        };
        self.journal(rec, sale.subject).map(|_| ())
    }

    pub(in crate::core) fn lock_card(
        &mut self,
        reader: &mut dyn Reader,
        card: &Tapped,
    ) -> Res<bool> {
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
    pub(in crate::core) fn reverse(&mut self, reader: &mut dyn Reader, card: &CardRead) -> Res {
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
    pub(in crate::core) fn journal_collected(&mut self, r: Record) -> Res<bool> {
        Ok(self.journal(r, 0)?.is_some())
    }

    pub(in crate::core) fn serve_collect(
        &mut self,
        reader: &mut dyn Reader,
        card: &CardRead,
    ) -> Res {
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
    pub(in crate::core) fn collect_records(
        &mut self,
        reader: &mut dyn Reader,
        card: &CardRead,
        n: u8,
    ) -> Res {
        let Ok(found) = self.app().records(reader, card, usize::from(n)) else {
            return Ok(());
        };
        // Only debits: a credit on the ring is not a consumption record.
        for cr in found.iter().rev().filter(|c| c.kind == TxKind::Purchase) {
            let mut r = cr.to_collected(card.info.card_no, card.wallet_no);
            if cr.device == self.cfg.device {
                // A transaction of this terminal: its merchant is known (the card does not
                // keep it); it goes up under a serial of ours, the card counter ties it to
                // the original at the host.
                r.merchant_no = match self.st.journal.get(cr.serial) {
                    Some(own) => own.merchant_no,
                    None => self.st.params.get().merchant_no,
                };
            } else {
                // Another terminal's: it keeps its maker's identity (device here, serial in
                // `original_serial` while journalled under our serial; `upload_form` puts it
                // back), so the host books it once whoever uploads it first. Merchant 0: the
                // host resolves it from the maker.
                r.original_serial = Some(cr.serial);
            }
            if !self.journal_collected(r)? {
                break;
            }
        }
        Ok(())
    }
}
