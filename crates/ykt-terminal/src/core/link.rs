//! The host side of the core: sign-in (R-P5.1), the session, heartbeat, background upload of
//! pending records (R-P5.9), blacklist (R-F4.21) and parameter downloads, and the host's
//! requests: clock set (R-F4.19), status query (R-F4.20), record collection (R-F4.17),
//! parameter push.

use ykt_card::Reader;
use ykt_proto::messages::{
    BlacklistBulkRequest, BlacklistBulkResponse, BlacklistDeltaRequest, BlacklistDeltaResponse,
    BlacklistOp, ClockSetResponse, CollectResponse, HeartbeatRequest, Message, MsgType,
    OnlineCheck, ParamsPushResponse, ParamsRequest, ParamsResponse, SEGMENT_BYTES, SignInRequest,
    SignInResponse, StatusReport, UploadRequest, UploadResponse,
};
use ykt_proto::{
    FrameDecoder, InfoCode, MAX_FRAME_LEN, RawFrame, Record, RecordKind, ReturnCode, Session,
    TerminalParams, open_sign_in_response, peer_error_code, seal_sign_in,
};

use super::conn::{Busy, Conn, Exchange, Next};
use super::{
    Beep, Event, INFO_HOLD_MS, MAX_COLLECT_REQUESTS, Output, Res, SIGN_IN_TIMEOUT_MS, Terminal,
    Timer, texts,
};
use crate::storage::blacklist::{BlacklistChange, MAX_CHANGES};
use crate::storage::flash::Flash;

/// Retry a failed sign-in this long after.
const SIGN_IN_RETRY_MS: u64 = 30_000;
/// A background request (upload, download, heartbeat) is given up after this.
const BACKGROUND_TIMEOUT_MS: u64 = 5_000;
/// Heartbeat period while the host answers, and while it seems gone (auto mode comes back
/// online by itself when it answers again, R-F4.18).
const HEARTBEAT_MS: u64 = 60_000;
const PROBE_MS: u64 = 5_000;
/// Records per upload message.
const UPLOAD_BATCH: usize = 16;

#[derive(Debug)]
struct Bulk {
    version: u32,
    next: u16,
}

/// The connection and what is outstanding on it. Its deadlines are in the core's timer
/// table (`Timer::SignIn*`, `Exchange*`, `Heartbeat`).
pub(super) struct Link {
    /// Down, signing in, waiting to retry, or up with the session (changed by
    /// `Terminal::enter` only).
    pub(super) conn: Conn,
    decoder: FrameDecoder,
    /// The first sign-in after power-up finished (answered or timed out).
    settled: bool,
    pub(super) sign_in_error: Option<ReturnCode>,
    /// Sign-in's work mode bit: 1 有联机校验.
    pub(super) online_check: bool,
    /// The host stopped answering (auto mode works offline until it answers again).
    pub(super) degraded: bool,
    /// What `Event::Online` last said.
    reported_online: Option<bool>,
    host_blacklist: u32,
    host_params: Option<u32>,
    /// `Timer::Heartbeat` fired: send one when the link is free.
    pub(super) heartbeat_due: bool,
    bulk: Option<Bulk>,
}

impl Link {
    pub(super) fn new() -> Link {
        Link {
            conn: Conn::Down,
            decoder: FrameDecoder::new(MAX_FRAME_LEN),
            settled: false,
            sign_in_error: None,
            online_check: true,
            degraded: false,
            reported_online: None,
            host_blacklist: 0,
            host_params: None,
            heartbeat_due: false,
            bulk: None,
        }
    }

    pub(super) fn sign_in_settled(&self) -> bool {
        self.settled
    }

    pub(super) fn has_session(&self) -> bool {
        self.conn.session().is_some()
    }

    /// A session exists and the host answers.
    pub(super) fn online(&self) -> bool {
        self.has_session() && !self.degraded
    }
}

impl<F: Flash> Terminal<F> {
    /// The one way the connection changes state: the deadlines of the state left go with it,
    /// those of the state entered are armed.
    fn enter(&mut self, next: Next) {
        debug_assert!(
            next.allowed_from(&self.link.conn),
            "connection: transition not allowed from this state"
        );
        self.timers.clear(Timer::SignInReply);
        self.timers.clear(Timer::SignInRetry);
        self.timers.clear(Timer::Exchange);
        self.link.conn = match next {
            Next::Down => Conn::Down,
            Next::SigningIn { nonce, deadline } => {
                self.timers.set(Timer::SignInReply, deadline);
                Conn::SigningIn { nonce }
            }
            Next::WaitingToRetry { retry_at } => {
                self.timers.set(Timer::SignInRetry, retry_at);
                Conn::WaitingToRetry
            }
            Next::Up(session) => Conn::Up {
                session,
                exchange: None,
            },
        };
    }

    pub(super) fn on_link_up(&mut self) -> Res {
        self.link.decoder = FrameDecoder::new(MAX_FRAME_LEN);
        self.start_sign_in()
    }

    pub(super) fn on_link_down(&mut self, reader: &mut dyn Reader) -> Res {
        self.enter(Next::Down);
        self.auth_link_lost();
        if self.link.bulk.take().is_some() {
            self.st.blacklist.abort_bulk();
        }
        self.host_unreachable(reader)?;
        self.track_offline()
    }

    pub(super) fn manual_sign_in(&mut self) -> Res {
        if self.link.conn.connected() {
            self.start_sign_in()?;
        }
        self.refresh_screen();
        Ok(())
    }

    fn start_sign_in(&mut self) -> Res {
        let mut nonce = [0u8; 8];
        self.rng.fill(&mut nonce);
        let req = SignInRequest {
            suite: self.cfg.master.suite,
            clock: self.wall(),
            blacklist_version: self.st.blacklist.version(),
            params_version: self.params().map_or(0, |p| p.version),
            nonce,
        };
        let mut buf = Vec::new();
        if seal_sign_in(self.cfg.device, &self.cfg.master, &req, &mut buf).is_ok() {
            self.push(Output::Send(buf));
            let deadline = self.now + SIGN_IN_TIMEOUT_MS;
            self.enter(Next::SigningIn { nonce, deadline });
        } else {
            let retry_at = self.now + SIGN_IN_RETRY_MS;
            self.enter(Next::WaitingToRetry { retry_at });
        }
        Ok(())
    }

    /// The first sign-in is over, answered or not (`Timer::SignInSettle` is then moot).
    fn settle_sign_in(&mut self) {
        self.link.settled = true;
        self.timers.clear(Timer::SignInSettle);
    }

    /// `Timer::SignInSettle`: 5 s after power-up without an answer (R-P5.1): work with the
    /// saved merchant number.
    pub(super) fn sign_in_settle_passed(&mut self) {
        self.link.settled = true;
        self.refresh_screen();
    }

    /// `Timer::SignInReply`: the sign-in timed out (R-P5.1). The saved merchant number stays
    /// in use; after a refusal it is 0, and the screen says 请设置商户号 instead of the old
    /// error. Retried later.
    pub(super) fn sign_in_timed_out(&mut self) {
        if self.link.conn.nonce().is_none() {
            return;
        }
        let retry_at = self.now + SIGN_IN_RETRY_MS;
        self.enter(Next::WaitingToRetry { retry_at });
        self.settle_sign_in();
        self.link.sign_in_error = None;
        self.push(Output::Event(Event::SignInFailed { code: None }));
        self.refresh_screen();
    }

    /// `Timer::SignInRetry`.
    pub(super) fn retry_sign_in(&mut self) -> Res {
        if matches!(self.link.conn, Conn::WaitingToRetry) {
            self.start_sign_in()?;
        }
        Ok(())
    }

    /// `Timer::Exchange`: the background exchange in flight got no answer.
    pub(super) fn exchange_timed_out(&mut self) {
        let Some(exchange) = self.link.conn.end_exchange() else {
            return;
        };
        if matches!(exchange.busy, Busy::Heartbeat) {
            // The host is gone: probe it often so auto mode comes back by itself.
            self.link.degraded = true;
            self.timers.set(Timer::Heartbeat, self.now + PROBE_MS);
        }
        self.retry_exchanges_later();
        if self.link.bulk.take().is_some() {
            self.st.blacklist.abort_bulk();
        }
    }

    /// Ends the background exchange in flight, if any.
    fn end_exchange(&mut self) -> Option<Busy> {
        self.timers.clear(Timer::Exchange);
        self.link.conn.end_exchange().map(|e| e.busy)
    }

    /// Background requests pause after a failure (R-P5.9).
    fn retry_exchanges_later(&mut self) {
        self.timers
            .set(Timer::ExchangeRetry, self.now + BACKGROUND_TIMEOUT_MS);
    }

    /// R-F4.18: the offline-time counter runs while no host answers; cleared when online.
    pub(super) fn track_offline(&mut self) -> Res {
        let (now, wall) = (self.now, self.wall());
        // Observers see "online" = the host answers and verifies online.
        let online = self.link.online() && self.link.online_check;
        if self.link.reported_online != Some(online) {
            self.link.reported_online = Some(online);
            self.push(Output::Event(Event::Online(online)));
        }
        if self.link.online() {
            self.st.state.came_online(&mut self.st.flash, now, wall)?;
        } else if self.link.settled {
            self.st.state.went_offline(&mut self.st.flash, now, wall)?;
        }
        Ok(())
    }

    pub(super) fn on_bytes(&mut self, mut bytes: &[u8], reader: &mut dyn Reader) -> Res {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            match self.link.decoder.decode(&mut bytes) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    // A broken stream cannot be resynchronised: wait for a new connection.
                    self.push(Output::Event(Event::ProtocolError(e.to_string())));
                    self.push(Output::Reconnect);
                    self.enter(Next::Down);
                    self.host_unreachable(reader)?;
                    break;
                }
            }
        }
        for f in frames {
            self.on_frame(&f, reader)?;
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: &[u8], reader: &mut dyn Reader) -> Res {
        let Ok(raw) = RawFrame::parse(frame) else {
            return Ok(());
        };
        let is_sign_in = raw.header.msg_type == MsgType::SignIn as u8;
        if let (true, Some(nonce)) = (is_sign_in, self.link.conn.nonce()) {
            let r = open_sign_in_response(self.cfg.device, &self.cfg.master, &nonce, frame);
            return match r {
                Ok((resp, session)) => self.on_sign_in(resp, session),
                Err(e) => match peer_error_code(&e) {
                    Some((code, _)) => self.sign_in_refused(code),
                    None => {
                        self.push(Output::Event(Event::ProtocolError(e.to_string())));
                        Ok(())
                    }
                },
            };
        }
        let Some(session) = self.link.conn.session_mut() else {
            if let Some((code, _)) = ykt_proto::peek_error(frame).map(|e| (e.code, ()))
                && self.link.conn.nonce().is_some()
            {
                return self.sign_in_refused(code);
            }
            return Ok(());
        };
        match session.open(frame) {
            Ok(opened) => {
                self.link.degraded = false;
                self.on_message(
                    opened.message,
                    opened.header.seq,
                    opened.header.corr,
                    reader,
                )
            }
            Err(e) => {
                self.push(Output::Event(Event::ProtocolError(e.to_string())));
                if let Some((code, _)) = peer_error_code(&e)
                    && matches!(
                        code,
                        ReturnCode::POS_NOT_SIGNED_IN
                            | ReturnCode::FEP_NOT_SIGNED_IN
                            | ReturnCode::FEP_KEY_ERROR
                    )
                {
                    // The host lost our session: the debit waiting gets no answer; sign in
                    // again.
                    self.host_unreachable(reader)?;
                    self.start_sign_in()?;
                }
                Ok(())
            }
        }
    }

    fn on_sign_in(&mut self, resp: SignInResponse, session: Option<Session>) -> Res {
        let Some(session) = session else {
            return self.sign_in_refused(resp.code);
        };
        self.enter(Next::Up(Box::new(session)));
        self.settle_sign_in();
        self.link.sign_in_error = None;
        self.link.degraded = false;
        self.link.online_check = resp.online_check == OnlineCheck::Required;
        self.link.host_blacklist = resp.blacklist_version;
        self.timers.clear(Timer::ExchangeRetry);
        self.link.heartbeat_due = false;
        self.timers.set(Timer::Heartbeat, self.now + HEARTBEAT_MS);
        let rtc = self.rtc();
        self.st
            .state
            .set_clock(&mut self.st.flash, resp.clock, rtc, self.now)?;
        let name = resp.merchant_name.clone();
        let params = resp.params.clone();
        if let Some(p) = &params {
            self.link.host_params = Some(p.version);
        }
        self.st.params.update(&mut self.st.flash, |s| {
            s.merchant_no = resp.merchant_no;
            s.merchant_name = name;
            if params.is_some() {
                s.params = params;
            }
        })?;
        self.push(Output::Event(Event::SignedIn {
            merchant_no: resp.merchant_no,
        }));
        if resp.merchant_no == 0 {
            // R-P5.1: merchant 0 → 请设置商户号, no work.
            self.stop_working();
            self.push(Output::Beep(Beep::Error));
            self.refresh_screen();
        } else {
            self.push(Output::Beep(Beep::Ok));
            self.flash_text(vec![texts::SIGNED_IN.into()], INFO_HOLD_MS);
        }
        self.track_offline()
    }

    /// R-P5.1: an error code shows its text and sets the saved merchant number to 0; the
    /// terminal refuses to work, and nothing keyed before survives.
    fn sign_in_refused(&mut self, code: ReturnCode) -> Res {
        let retry_at = self.now + SIGN_IN_RETRY_MS;
        self.enter(Next::WaitingToRetry { retry_at });
        self.settle_sign_in();
        self.link.sign_in_error = Some(code);
        self.st
            .params
            .update(&mut self.st.flash, |s| s.merchant_no = 0)?;
        self.stop_working();
        self.push(Output::Event(Event::SignInFailed { code: Some(code) }));
        self.push(Output::Beep(Beep::Error));
        self.timers.clear(Timer::ScreenHold);
        self.refresh_screen();
        Ok(())
    }

    /// Seals and queues a message; `None` without a session.
    pub(super) fn send(&mut self, msg: &Message, corr: u32) -> Option<u32> {
        let session = self.link.conn.session_mut()?;
        let mut buf = Vec::new();
        let seq = session.seal(msg, corr, &mut buf).ok()?;
        self.push(Output::Send(buf));
        Some(seq)
    }

    fn on_message(&mut self, msg: Message, seq: u32, corr: u32, reader: &mut dyn Reader) -> Res {
        let busy_matches = self.link.conn.exchange().is_some_and(|e| e.seq == corr);
        match msg {
            Message::DebitResponse(r) => self.sale_debit_response(r, corr, reader),
            Message::LoadResponse(r) => self.load_response(r, corr, reader),
            Message::WaitingResponse(r) => self.waiting_response(r, corr, reader),
            Message::AuthCheckResponse(r) if self.auth_awaits(corr) => {
                self.auth_response(r, reader)
            }
            Message::Error(e) => {
                if self.sale_awaits(corr) {
                    self.sale_debit_error(e.code, reader)
                } else if self.load_awaits(corr) {
                    self.load_refused(e.code)
                } else {
                    if busy_matches {
                        self.end_exchange();
                        self.retry_exchanges_later();
                    }
                    Ok(())
                }
            }
            Message::UploadResponse(r) if busy_matches => self.on_upload_response(r),
            Message::HeartbeatResponse(r) if busy_matches => {
                self.end_exchange();
                if r.code.is_success() {
                    self.link.host_blacklist = r.blacklist_version;
                    self.link.host_params = Some(r.params_version);
                }
                Ok(())
            }
            Message::BlacklistDeltaResponse(r) if busy_matches => self.on_delta(r),
            Message::BlacklistBulkResponse(r) if busy_matches => self.on_bulk(r),
            Message::ParamsResponse(r) if busy_matches => self.on_params(r),
            Message::ClockSetRequest(r) => {
                // R-F4.19.
                let rtc = self.rtc();
                self.st
                    .state
                    .set_clock(&mut self.st.flash, r.clock, rtc, self.now)?;
                self.push(Output::Event(Event::ClockSet));
                let resp = ClockSetResponse {
                    code: ReturnCode::SUCCESS,
                    info: InfoCode::NONE,
                    clock: self.wall(),
                };
                self.send(&Message::ClockSetResponse(resp), seq);
                Ok(())
            }
            Message::StatusQuery(_) => {
                // R-F4.20.
                let status = self.st.status_report(self.rtc());
                let resp = StatusReport {
                    code: ReturnCode::SUCCESS,
                    info: InfoCode::NONE,
                    pending_records: status.pending_records,
                    clock: status.clock,
                    blacklist_version: status.blacklist_version,
                    params_version: self.params().map_or(0, |p| p.version),
                    work_mode: self.work_mode(),
                    offline_minutes: u32::try_from(
                        self.st.state.offline().offline_ms(self.now) / 60_000,
                    )
                    .unwrap_or(u32::MAX),
                };
                self.send(&Message::StatusReport(resp), seq);
                Ok(())
            }
            Message::CollectRequest(r) => {
                // R-F4.17: served on the card's next tap.
                let code = if self.collect.len() < MAX_COLLECT_REQUESTS {
                    self.collect.retain(|(c, _)| *c != r.card_no);
                    self.collect.push((r.card_no, r.count));
                    ReturnCode::SUCCESS
                } else {
                    ReturnCode::OTHER_ERROR
                };
                let resp = CollectResponse {
                    code,
                    info: InfoCode::NONE,
                };
                self.send(&Message::CollectResponse(resp), seq);
                Ok(())
            }
            Message::ParamsPushRequest(r) => {
                let version = r.params.version;
                let code = match self.save_params(r.params) {
                    Ok(()) => ReturnCode::SUCCESS,
                    Err(_) => ReturnCode::OTHER_ERROR,
                };
                let resp = ParamsPushResponse {
                    code,
                    info: InfoCode::NONE,
                    version,
                };
                self.send(&Message::ParamsPushResponse(resp), seq);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn save_params(&mut self, p: TerminalParams) -> Res {
        let version = p.version;
        self.link.host_params = Some(version);
        self.st
            .params
            .update(&mut self.st.flash, |s| s.params = Some(p))?;
        self.push(Output::Event(Event::ParamsUpdated { version }));
        self.refresh_screen();
        Ok(())
    }

    /// Starts one background exchange when the link is free (R-P5.9 first, then downloads,
    /// then the heartbeat).
    pub(super) fn background(&mut self) -> Res {
        if !self.link.has_session() || self.link.conn.exchange().is_some() || self.sale_busy() {
            return Ok(());
        }
        let now = self.now;
        let in_flight = self.flow.in_flight();
        let pause = self.timers.is_set(Timer::ExchangeRetry);
        if !pause {
            let batch: Vec<_> = self
                .st
                .journal
                .pending()
                .filter(|r| Some(r.serial) != in_flight)
                .take(UPLOAD_BATCH)
                .cloned()
                .collect();
            if !batch.is_empty() {
                let serials = batch.iter().map(|r| r.serial).collect();
                let records = batch.into_iter().map(|r| self.upload_form(r)).collect();
                let msg = Message::UploadRequest(UploadRequest { records });
                self.start(Busy::Upload(serials), &msg);
                return Ok(());
            }
        }
        let ours = self.params().map_or(0, |p| p.version);
        if self.link.host_params.is_some_and(|v| v != ours) && !pause {
            let msg = Message::ParamsRequest(ParamsRequest { version: ours });
            self.start(Busy::Params, &msg);
            return Ok(());
        }
        // R-P5.1: a newer blacklist is downloaded while idle; the terminal stays usable.
        if self.link.host_blacklist > self.st.blacklist.version() && self.flow.is_idle() && !pause {
            let msg = match &self.link.bulk {
                Some(b) => Message::BlacklistBulkRequest(BlacklistBulkRequest {
                    version: b.version,
                    segment: b.next,
                }),
                None => Message::BlacklistDeltaRequest(BlacklistDeltaRequest {
                    since: self.st.blacklist.version(),
                    max_entries: MAX_CHANGES as u16,
                }),
            };
            let busy = if self.link.bulk.is_some() {
                Busy::Bulk
            } else {
                Busy::Delta
            };
            self.start(busy, &msg);
            return Ok(());
        }
        if self.link.heartbeat_due {
            let msg = Message::HeartbeatRequest(HeartbeatRequest {
                clock: self.wall(),
                blacklist_version: self.st.blacklist.version(),
                params_version: ours,
                pending_records: self.st.journal.pending_count() as u32,
            });
            self.link.heartbeat_due = false;
            let period = if self.link.degraded {
                PROBE_MS
            } else {
                HEARTBEAT_MS
            };
            self.timers.set(Timer::Heartbeat, now + period);
            self.start(Busy::Heartbeat, &msg);
        }
        Ok(())
    }

    /// A journal record as it goes up: one collected from the card that another terminal
    /// made carries its maker's (device, serial), the record's identity everywhere (R-F4.17).
    fn upload_form(&self, r: Record) -> Record {
        match r.original_serial {
            Some(serial) if r.kind == RecordKind::Collected && r.device != self.cfg.device => {
                Record {
                    serial,
                    original_serial: None,
                    ..r
                }
            }
            _ => r,
        }
    }

    fn start(&mut self, busy: Busy, msg: &Message) {
        if let Some(seq) = self.send(msg, 0) {
            self.link.conn.begin_exchange(Exchange { busy, seq });
            self.timers
                .set(Timer::Exchange, self.now + BACKGROUND_TIMEOUT_MS);
        }
    }

    fn on_upload_response(&mut self, r: UploadResponse) -> Res {
        let Some(Busy::Upload(serials)) = self.end_exchange() else {
            return Ok(());
        };
        if !r.code.is_success() {
            self.retry_exchanges_later();
            return Ok(());
        }
        // Results come in request order; matched by position, since a collected record
        // carries its maker's serial, which may equal one of ours (docs/protocol.md 6.6).
        if r.results.len() != serials.len() {
            self.retry_exchanges_later();
            return Ok(());
        }
        let mut retry = false;
        for (&serial, res) in serials.iter().zip(&r.results) {
            if res.code.is_success() {
                self.st.journal.mark_uploaded(&mut self.st.flash, serial)?;
                self.push(Output::Event(Event::Uploaded { serial }));
            } else if res.code.is_handled_as_timeout() {
                retry = true;
            } else {
                // Refused for good: keep the record, stop resending it (docs/spec-notes.md).
                self.st.journal.mark_uploaded(&mut self.st.flash, serial)?;
                self.push(Output::Event(Event::UploadRejected {
                    serial,
                    code: res.code,
                }));
            }
        }
        if retry {
            self.retry_exchanges_later();
        } else {
            self.timers.clear(Timer::ExchangeRetry);
        }
        self.refresh_screen();
        Ok(())
    }

    fn on_delta(&mut self, r: BlacklistDeltaResponse) -> Res {
        self.end_exchange();
        let ours = self.st.blacklist.version();
        if !r.code.is_success() || r.from != ours {
            // The host cannot give a delta from our version: load the whole list (R-F4.21).
            self.link.bulk = Some(Bulk {
                version: self.link.host_blacklist,
                next: 0,
            });
            return Ok(());
        }
        if r.to > r.from {
            let changes: Vec<_> = r
                .entries
                .iter()
                .map(|e| BlacklistChange {
                    card: e.card_no,
                    listed: e.op == BlacklistOp::Add,
                })
                .collect();
            self.st
                .blacklist
                .apply_incremental(&mut self.st.flash, r.from, r.to, &changes)?;
            self.push(Output::Event(Event::BlacklistUpdated { version: r.to }));
        }
        if r.to <= r.from && !r.more {
            // Nothing newer after all: believe the host's list as it is.
            self.link.host_blacklist = self.st.blacklist.version();
        }
        Ok(())
    }

    fn on_bulk(&mut self, r: BlacklistBulkResponse) -> Res {
        self.end_exchange();
        let Some(bulk) = self.link.bulk.as_mut() else {
            return Ok(());
        };
        if !r.code.is_success() || r.segment != bulk.next || r.version != bulk.version {
            self.link.bulk = None;
            self.st.blacklist.abort_bulk();
            self.retry_exchanges_later();
            return Ok(());
        }
        if r.segment == 0 {
            self.st.blacklist.begin_bulk(r.version);
        }
        if let Some(seg) = &r.bitmap {
            let offset = u32::from(r.segment) * SEGMENT_BYTES as u32;
            self.st.blacklist.bulk_page_bitmap(offset, &seg.0[..])?;
        }
        bulk.next += 1;
        if bulk.next >= r.segments {
            self.link.bulk = None;
            self.st.blacklist.finish_bulk(&mut self.st.flash)?;
            self.link.host_blacklist = self.st.blacklist.version();
            self.push(Output::Event(Event::BlacklistUpdated {
                version: r.version,
            }));
        }
        Ok(())
    }

    fn on_params(&mut self, r: ParamsResponse) -> Res {
        self.end_exchange();
        match r.params {
            Some(p) if r.code.is_success() => self.save_params(p),
            _ => {
                // The host has nothing newer: stop asking until the next heartbeat says so.
                self.link.host_params = self.params().map(|p| p.version);
                Ok(())
            }
        }
    }
}
