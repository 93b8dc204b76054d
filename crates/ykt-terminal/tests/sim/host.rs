//! A scripted in-process host: the real `ykt_proto` session on the host side, a tiny book of
//! records keyed by (device, serial) like the real host's (R-H2), and knobs to drop, hold or
//! refuse answers.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use ykt_proto::messages::*;
use ykt_proto::*;

use super::loads::LoadBooks;

#[derive(Clone, Debug)]
pub struct Stored {
    pub record: Record,
    pub booked: bool,
    pub reversed: bool,
}

pub struct FakeHost {
    pub device: PhysicalId,
    pub master: DeviceKey,
    session: Option<Session>,
    decoder: FrameDecoder,
    pub merchant_no: MerchantNo,
    pub online_check: OnlineCheck,
    pub sign_in_code: ReturnCode,
    pub clock: NaiveDateTime,
    pub params: TerminalParams,
    /// Blacklist history: version n is reached by change n − 1 → n.
    pub blacklist: Vec<BlacklistEntry>,
    pub records: BTreeMap<TerminalSerial, Stored>,
    /// (card, counter) → serial of the booked debit (R-H5).
    pub counters: BTreeMap<(u32, u32), TerminalSerial>,
    /// Net fen debited per card as booked.
    pub debited: BTreeMap<u32, Fen>,
    /// Every booking ever made (serial), to prove none is made twice.
    pub bookings: Vec<TerminalSerial>,
    // script
    pub silent: bool,
    pub drop_debits: u32,
    pub debit_code: Option<ReturnCode>,
    pub info: InfoCode,
    pub collect_last: u8,
    pub hold_debits: bool,
    /// Hold every answer (sign-in included) until `Rig::release_held`.
    pub hold_all: bool,
    /// Refuse blacklist deltas (the terminal must fall back to the bulk bitmap).
    pub refuse_delta: bool,
    /// Book uploads but lose this many acknowledgements.
    pub drop_upload_acks: u32,
    pub held: Vec<Vec<u8>>,
    pub received: Vec<Message>,
    /// Serials sent again with other content (code 30): a reused serial.
    pub duplicates: u32,
    pub reports: Vec<Message>,
    /// Loads (0x08, 0x09, `docs/loads.md`).
    pub loads: LoadBooks,
    /// The system keys, for a CPU card's load MAC2.
    pub keys: ykt_card::keys::SystemKeys,
    /// Operator cards the host knows (R-B11): card number → (PIN, functions it authorises).
    pub auth_cards: BTreeMap<u32, (String, AuthFunctions)>,
    /// Answer every operator card check with this code instead (81–87).
    pub auth_code: Option<ReturnCode>,
    /// Leave operator card checks unanswered.
    pub auth_silent: bool,
}

impl FakeHost {
    pub fn new(
        device: PhysicalId,
        master: DeviceKey,
        params: TerminalParams,
        clock: NaiveDateTime,
    ) -> Self {
        FakeHost {
            device,
            master,
            session: None,
            decoder: FrameDecoder::new(MAX_FRAME_LEN),
            merchant_no: 1001,
            online_check: OnlineCheck::Required,
            sign_in_code: ReturnCode::SUCCESS,
            clock,
            params,
            blacklist: Vec::new(),
            records: BTreeMap::new(),
            counters: BTreeMap::new(),
            debited: BTreeMap::new(),
            bookings: Vec::new(),
            silent: false,
            drop_debits: 0,
            debit_code: None,
            info: InfoCode::NONE,
            collect_last: 0,
            hold_debits: false,
            hold_all: false,
            refuse_delta: false,
            drop_upload_acks: 0,
            held: Vec::new(),
            received: Vec::new(),
            duplicates: 0,
            reports: Vec::new(),
            loads: LoadBooks::default(),
            keys: super::keys(),
            auth_cards: BTreeMap::new(),
            auth_code: None,
            auth_silent: false,
        }
    }

    pub fn blacklist_version(&self) -> u32 {
        self.blacklist.len() as u32
    }

    pub fn connection_reset(&mut self) {
        self.session = None;
        self.decoder = FrameDecoder::new(MAX_FRAME_LEN);
        self.held.clear();
    }

    /// A host-initiated request, sealed.
    pub fn request(&mut self, msg: Message) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.session.as_mut()?.seal(&msg, 0, &mut out).ok()?;
        Some(out)
    }

    /// Bytes from the terminal; returns the frames to send back.
    pub fn receive(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            match self.decoder.decode(&mut bytes) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                _ => break,
            }
        }
        let mut out = Vec::new();
        for f in frames {
            if self.silent {
                continue;
            }
            if let Some(r) = self.on_frame(&f) {
                out.push(r);
            }
        }
        if self.hold_all {
            self.held.append(&mut out);
        }
        out
    }

    fn on_frame(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let raw = RawFrame::parse(frame).ok()?;
        if raw.header.msg_type == MsgType::SignIn as u8 {
            let (_, req) = open_sign_in(&self.master, frame).ok()?;
            let params = (req.params_version != self.params.version).then(|| self.params.clone());
            let resp = SignInResponse {
                code: self.sign_in_code,
                info: InfoCode::NONE,
                nonce: req.nonce,
                merchant_no: self.merchant_no,
                merchant_name: "一食堂".into(),
                online_check: self.online_check,
                blacklist_version: self.blacklist_version(),
                clock: self.clock,
                wrapped_key: [0; 16],
                kcv: [0; 4],
                params,
            };
            let mut out = Vec::new();
            self.session = seal_sign_in_response(
                self.device,
                &self.master,
                Some(&Key([0x42; 16])),
                resp,
                &mut out,
            )
            .ok()?;
            return Some(out);
        }
        let opened = self.session.as_mut()?.open(frame).ok()?;
        let seq = opened.header.seq;
        self.received.push(opened.message.clone());
        let reply = match opened.message {
            Message::DebitRequest(r) => {
                if self.drop_debits > 0 {
                    self.drop_debits -= 1;
                    return None;
                }
                let resp = self.authorize(&r);
                if self.hold_debits {
                    let mut out = Vec::new();
                    self.session
                        .as_mut()?
                        .seal(&Message::DebitResponse(resp), seq, &mut out)
                        .ok()?;
                    self.held.push(out);
                    return None;
                }
                Message::DebitResponse(resp)
            }
            Message::LoadRequest(q) => {
                if self.loads.drop_loads > 0 {
                    self.loads.drop_loads -= 1;
                    return None;
                }
                Message::LoadResponse(self.loads.authorize(&self.keys, &q))
            }
            Message::WaitingRequest(q) => Message::WaitingResponse(self.loads.what_waits(&q)),
            Message::AuthCheckRequest(q) => {
                if self.auth_silent {
                    return None;
                }
                let pin = self
                    .session
                    .as_ref()?
                    .open_pin(q.card_no, q.nonce, &q.pin_block);
                let code = match (self.auth_code, self.auth_cards.get(&q.card_no)) {
                    (Some(c), _) => c,
                    (None, None) => ReturnCode::AUTH_CARD_NOT_FOUND,
                    (None, Some((_, f))) if !f.contains(q.function) => {
                        ReturnCode::AUTH_CARD_NO_PERMISSION
                    }
                    (None, Some((p, _))) if pin.as_ref().map(|x| x.as_str()) != Some(p) => {
                        ReturnCode::AUTH_CARD_PASSWORD_WRONG
                    }
                    (None, Some(_)) => ReturnCode::SUCCESS,
                };
                let ok = code == ReturnCode::SUCCESS;
                Message::AuthCheckResponse(AuthCheckResponse {
                    code,
                    info: InfoCode::NONE,
                    card_no: q.card_no,
                    function: q.function,
                    operator: if ok { 3 } else { 0 },
                    tries_left: if ok { 5 } else { 0 },
                })
            }
            Message::UploadRequest(u) => {
                let results = u
                    .records
                    .iter()
                    .map(|r| RecordResult {
                        serial: r.serial,
                        code: self.upload(r),
                    })
                    .collect();
                if self.drop_upload_acks > 0 {
                    self.drop_upload_acks -= 1;
                    return None;
                }
                Message::UploadResponse(UploadResponse {
                    code: ReturnCode::SUCCESS,
                    info: InfoCode::NONE,
                    results,
                })
            }
            Message::HeartbeatRequest(_) => Message::HeartbeatResponse(HeartbeatResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                blacklist_version: self.blacklist_version(),
                params_version: self.params.version,
                clock: self.clock,
            }),
            Message::BlacklistDeltaRequest(_) if self.refuse_delta => {
                Message::BlacklistDeltaResponse(BlacklistDeltaResponse {
                    code: ReturnCode::OTHER_ERROR,
                    info: InfoCode::NONE,
                    from: 0,
                    to: 0,
                    more: false,
                    entries: vec![],
                })
            }
            Message::BlacklistDeltaRequest(r) => {
                let to = self.blacklist_version();
                let entries = self
                    .blacklist
                    .iter()
                    .skip(r.since as usize)
                    .copied()
                    .collect();
                Message::BlacklistDeltaResponse(BlacklistDeltaResponse {
                    code: ReturnCode::SUCCESS,
                    info: InfoCode::NONE,
                    from: r.since,
                    to,
                    more: false,
                    entries,
                })
            }
            Message::BlacklistBulkRequest(r) => {
                let mut seg = Segment::empty();
                for e in &self.blacklist {
                    let n = e.card_no.get();
                    if n / CARDS_PER_SEGMENT == u32::from(r.segment) {
                        seg.insert(n % CARDS_PER_SEGMENT);
                    }
                }
                Message::BlacklistBulkResponse(BlacklistBulkResponse {
                    code: ReturnCode::SUCCESS,
                    info: InfoCode::NONE,
                    version: self.blacklist_version(),
                    segment: r.segment,
                    segments: MAX_SEGMENTS,
                    bitmap: Some(seg),
                })
            }
            Message::ParamsRequest(_) => Message::ParamsResponse(ParamsResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                params: Some(self.params.clone()),
            }),
            m @ (Message::StatusReport(_)
            | Message::ClockSetResponse(_)
            | Message::CollectResponse(_)
            | Message::ParamsPushResponse(_)) => {
                self.reports.push(m);
                return None;
            }
            _ => return None,
        };
        let mut out = Vec::new();
        self.session.as_mut()?.seal(&reply, seq, &mut out).ok()?;
        Some(out)
    }

    fn book(&mut self, r: &Record, sign: Fen) {
        *self.debited.entry(r.card_no.get()).or_default() += sign * (r.amount + r.fee);
        self.bookings.push(r.serial);
    }

    fn authorize(&mut self, q: &DebitRequest) -> DebitResponse {
        // R-B5: while money waits for the card, the answer says so (卡有补助未领).
        let waits = self
            .loads
            .waiting
            .get(&q.card_no.get())
            .is_some_and(|w| *w > 0);
        let mut resp = DebitResponse {
            code: ReturnCode::SUCCESS,
            info: if waits {
                InfoCode::SUBSIDY_WAITING
            } else {
                self.info
            },
            serial: q.serial,
            card_no: q.card_no,
            amount: q.amount,
            fee: q.fee,
            balance: q.balance_before - q.amount - q.fee,
            collect_last: self.collect_last,
        };
        if let Some(code) = self.debit_code {
            resp.code = code;
            return resp;
        }
        let record = Record {
            device: self.device,
            serial: q.serial,
            kind: RecordKind::Purchase,
            status: RecordStatus::Initiated,
            online: true,
            card_type: q.card_type,
            card_no: q.card_no,
            card_counter: q.card_counter,
            wallet_no: q.wallet_no,
            balance_before: q.balance_before,
            amount: q.amount,
            fee: q.fee,
            balance_after: q.balance_before - q.amount - q.fee,
            time: q.time,
            merchant_no: self.merchant_no,
            original_serial: None,
            item_code: q.item_code,
            tac: 0,
        };
        match self.records.get(&q.serial) {
            Some(s) if s.record == record => resp,
            Some(_) => {
                resp.code = ReturnCode::POS_SERIAL_DUPLICATE;
                resp
            }
            None => {
                // The card's next record settles a load left unknown (docs/loads.md).
                self.loads.settle_by(&record);
                self.book(&record, 1);
                self.counters
                    .insert((q.card_no.get(), q.card_counter), q.serial);
                self.records.insert(
                    q.serial,
                    Stored {
                        record,
                        booked: true,
                        reversed: false,
                    },
                );
                resp
            }
        }
    }

    fn store(&mut self, r: &Record, booked: bool) {
        self.records.insert(
            r.serial,
            Stored {
                record: r.clone(),
                booked,
                reversed: false,
            },
        );
    }

    fn upload(&mut self, r: &Record) -> ReturnCode {
        if !self.records.contains_key(&r.serial) {
            self.loads.settle_by(r);
        }
        let code = self.upload_inner(r);
        if code == ReturnCode::POS_SERIAL_DUPLICATE {
            self.duplicates += 1;
        }
        code
    }

    fn upload_inner(&mut self, r: &Record) -> ReturnCode {
        if let Some(e) = self.records.get(&r.serial).cloned() {
            if e.record == *r {
                return ReturnCode::SUCCESS;
            }
            let mut same = r.clone();
            same.status = e.record.status;
            same.tac = e.record.tac;
            let authorised =
                e.record.online && e.record.status == RecordStatus::Initiated && e.booked;
            if !authorised || same != e.record {
                return ReturnCode::POS_SERIAL_DUPLICATE;
            }
            if e.reversed {
                return ReturnCode::SUCCESS;
            }
            let s = self.records.get_mut(&r.serial).map(|s| {
                s.record.status = r.status;
                s.record.tac = r.tac;
                s.clone()
            });
            if matches!(r.status, RecordStatus::CardPulled | RecordStatus::Failed)
                && let Some(s) = s
            {
                self.book(&s.record, -1);
                self.counters.remove(&(r.card_no.get(), r.card_counter));
                if let Some(x) = self.records.get_mut(&r.serial) {
                    x.booked = false;
                }
            }
            return ReturnCode::SUCCESS;
        }
        match r.kind {
            RecordKind::Purchase | RecordKind::Collected => {
                let owned = self
                    .counters
                    .contains_key(&(r.card_no.get(), r.card_counter));
                let book = r.status.card_debited() && !(r.kind == RecordKind::Collected && owned);
                if book {
                    if owned {
                        return ReturnCode::CARD_COUNTER_REPEATED;
                    }
                    self.book(r, 1);
                    self.counters
                        .insert((r.card_no.get(), r.card_counter), r.serial);
                }
                self.store(r, book);
                ReturnCode::SUCCESS
            }
            RecordKind::BlackCard => {
                self.store(r, false);
                ReturnCode::SUCCESS
            }
            RecordKind::Cancellation => {
                let Some(o) = r
                    .original_serial
                    .and_then(|s| self.records.get(&s))
                    .cloned()
                else {
                    self.store(r, false);
                    return ReturnCode::SUCCESS;
                };
                if o.reversed {
                    return ReturnCode::ALREADY_REVERSED;
                }
                if !(o.booked && o.record.online && o.record.status == RecordStatus::Initiated) {
                    return ReturnCode::TRANSACTION_TYPE_ERROR;
                }
                self.book(&o.record, -1);
                self.counters
                    .remove(&(o.record.card_no.get(), o.record.card_counter));
                if let Some(x) = self.records.get_mut(&o.record.serial) {
                    x.reversed = true;
                }
                self.store(r, false);
                ReturnCode::SUCCESS
            }
            RecordKind::Reversal => {
                if !r.status.card_debited() {
                    self.store(r, false);
                    return ReturnCode::SUCCESS;
                }
                let Some(o) = r
                    .original_serial
                    .and_then(|s| self.records.get(&s))
                    .cloned()
                else {
                    return ReturnCode::RECORD_NOT_FOUND;
                };
                if o.reversed {
                    return ReturnCode::ALREADY_REVERSED;
                }
                if !o.booked {
                    return ReturnCode::RECORD_NOT_FOUND;
                }
                self.book(r, -1);
                self.counters
                    .insert((r.card_no.get(), r.card_counter), r.serial);
                if let Some(x) = self.records.get_mut(&o.record.serial) {
                    x.reversed = true;
                }
                self.store(r, false);
                ReturnCode::SUCCESS
            }
            RecordKind::TopUp | RecordKind::Subsidy => {
                let code = self.loads.upload(r);
                if code.is_success() {
                    self.store(r, false);
                }
                code
            }
        }
    }
}
