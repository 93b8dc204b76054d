//! One terminal connection: an actor that owns the session, reads frames (with a deadline
//! for incomplete ones), hands requests to handler tasks (pipelined, bounded), seals their
//! answers in order, and sends the host's own requests (clock, status, pushes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::TryRngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use ykt_proto::{
    ClockSetRequest, CollectRequest, DeviceKey, ErrorReason, ErrorResponse, FrameDecoder, Header,
    InfoCode, Key, Message, MsgType, OnlineCheck, ParamsPushRequest, PhysicalId, ProtoError,
    RawFrame, ReturnCode, Session, SignInRequest, SignInResponse, StatusQuery, VERSION, WorkMode,
    seal_sign_in_response, seal_unauthenticated_error,
};

use super::registry::Command;
use super::signin_gate::{self, Counted};
use super::{Shared, handlers, jobs, metrics};
use crate::domain::checks::Origin;
use crate::domain::signin;
use crate::error::HostError;
use crate::model::DeviceReport;

/// Frames waiting for the socket; a client that does not read stalls only itself.
const OUT_QUEUE: usize = 64;
/// A write that makes no progress for this long drops the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Host requests awaiting the terminal's answer at most.
const MAX_HOST_REQUESTS: usize = 32;

/// What a handler task returns: the answer to the request numbered `corr`.
struct Reply {
    corr: u32,
    kind: &'static str,
    message: Option<Message>,
}

pub(crate) struct Conn {
    shared: Arc<Shared>,
    id: u64,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    session: Option<Session>,
    /// The device signed in on this connection and whether it is in the registry.
    device: Option<PhysicalId>,
    out: Option<mpsc::Sender<Vec<u8>>>,
    cmd_tx: mpsc::Sender<Command>,
    cmd_rx: mpsc::Receiver<Command>,
    /// Host requests sent, by sequence number, awaiting the terminal's response.
    host_requests: HashMap<u32, MsgType>,
    in_flight: JoinSet<Reply>,
}

enum Flow {
    Continue,
    Close,
}

fn msg_name(t: u8) -> &'static str {
    match MsgType::from_wire(t) {
        Some(MsgType::SignIn) => "sign_in",
        Some(MsgType::Heartbeat) => "heartbeat",
        Some(MsgType::Debit) => "debit",
        Some(MsgType::Upload) => "upload",
        Some(MsgType::BlacklistDelta) => "blacklist_delta",
        Some(MsgType::BlacklistBulk) => "blacklist_bulk",
        Some(MsgType::Params) => "params",
        Some(MsgType::LoadAuth) => "load",
        Some(MsgType::Waiting) => "waiting",
        Some(MsgType::AuthCheck) => "auth_check",
        Some(_) => "host_request",
        None => "unknown",
    }
}

impl Conn {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: u64,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Conn {
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        Conn {
            shared,
            id,
            peer,
            stop,
            session: None,
            device: None,
            out: None,
            cmd_tx,
            cmd_rx,
            host_requests: HashMap::new(),
            in_flight: JoinSet::new(),
        }
    }

    pub(crate) async fn run(mut self, stream: TcpStream) {
        metrics::connections(1.0);
        tracing::debug!(peer = %self.peer, conn = self.id, "connected");
        let (mut rd, wr) = stream.into_split();
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        self.out = Some(out_tx);
        let writer = tokio::spawn(write_loop(wr, out_rx, self.peer));
        let cfg = self.shared.config.clone();
        let mut decoder = FrameDecoder::new(cfg.max_frame);
        let mut buf = vec![0u8; 16 * 1024];
        let mut last_activity = Instant::now();
        let mut frame_started: Option<Instant> = None;
        let mut status_tick = tokio::time::interval(cfg.status_interval);
        let mut clock_tick = tokio::time::interval(cfg.clock_interval);
        status_tick.reset();
        clock_tick.reset();
        loop {
            let deadline = match frame_started {
                Some(t) => t + cfg.frame_deadline,
                None => last_activity + cfg.idle_timeout,
            };
            let can_read = self.in_flight.len() < cfg.max_in_flight;
            tokio::select! {
                biased;
                _ = self.stop.changed() => break,
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok(reply) = done {
                        self.answer(reply).await;
                    }
                }
                Some(cmd) = self.cmd_rx.recv() => self.host_request(cmd).await,
                _ = status_tick.tick(), if self.session.is_some() => {
                    self.host_request(Command::QueryStatus).await;
                }
                _ = clock_tick.tick(), if self.session.is_some() => {
                    self.host_request(Command::SetClock).await;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if frame_started.is_some() {
                        tracing::warn!(peer = %self.peer, device = ?self.device, buffered = decoder.buffered(),
                            "incomplete frame not finished in time; dropping the connection");
                        metrics::refused("frame_deadline");
                    } else {
                        tracing::info!(peer = %self.peer, device = ?self.device, "idle connection closed");
                    }
                    break;
                }
                read = rd.read(&mut buf), if can_read => {
                    let n = match read {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => {
                            tracing::debug!(peer = %self.peer, error = %e, "read failed");
                            break;
                        }
                    };
                    last_activity = Instant::now();
                    if matches!(self.feed(&mut decoder, &buf[..n]).await, Flow::Close) {
                        break;
                    }
                    frame_started = match (decoder.buffered(), frame_started) {
                        (0, _) => None,
                        (_, Some(t)) => Some(t),
                        (_, None) => Some(last_activity),
                    };
                }
            }
        }
        // Let every request in flight finish (its job commits) and send its answer.
        while let Some(done) = self.in_flight.join_next().await {
            if let Ok(reply) = done {
                self.answer(reply).await;
            }
        }
        self.unregister();
        drop(self.out.take());
        let _ = writer.await;
        metrics::connections(-1.0);
        tracing::debug!(peer = %self.peer, conn = self.id, "closed");
    }

    fn unregister(&mut self) {
        if let Some(d) = self.device.take()
            && self.shared.registry.remove(d, self.id)
        {
            metrics::terminals(-1.0);
        }
    }

    async fn send(&mut self, bytes: Vec<u8>) {
        if let Some(out) = &self.out
            && out.send(bytes).await.is_err()
        {
            self.out = None;
        }
    }

    /// An unauthenticated error (no MAC): for frames we hold no key for.
    async fn send_plain_error(&mut self, device: PhysicalId, corr: u32, err: ErrorResponse) {
        let mut out = Vec::new();
        if seal_unauthenticated_error(device, true, corr, &err, &mut out).is_ok() {
            self.send(out).await;
        }
    }

    /// Feeds bytes into the decoder and handles every complete frame.
    async fn feed(&mut self, decoder: &mut FrameDecoder, mut input: &[u8]) -> Flow {
        loop {
            let frame = match decoder.decode(&mut input) {
                Ok(Some(f)) => f.to_vec(),
                Ok(None) => return Flow::Continue,
                Err(e) => {
                    // The stream cannot be resynchronised: answer once and close (§2).
                    tracing::warn!(peer = %self.peer, device = ?self.device, error = %e,
                        "unreadable stream; closing");
                    metrics::refused("unreadable");
                    let err = ErrorResponse {
                        code: e.return_code(),
                        info: InfoCode::NONE,
                        reason: ErrorReason::Malformed,
                        min_version: VERSION,
                        max_version: VERSION,
                    };
                    self.send_plain_error(PhysicalId([0; 4]), 0, err).await;
                    return Flow::Close;
                }
            };
            self.on_frame(frame).await;
        }
    }

    async fn on_frame(&mut self, frame: Vec<u8>) {
        let header = match RawFrame::parse(&frame) {
            Ok(raw) => raw.header,
            Err(e) => {
                let e = ProtoError::from(e);
                tracing::warn!(peer = %self.peer, error = %e, "malformed frame refused");
                metrics::refused("malformed");
                self.send_plain_error(PhysicalId([0; 4]), 0, e.to_response())
                    .await;
                return;
            }
        };
        if header.msg_type == MsgType::Error as u8 && self.session.is_none() {
            return; // never answer an error with an error
        }
        if header.msg_type == MsgType::SignIn as u8 && !header.is_response() {
            // Sign-in (again) replaces this connection's session (§4.4).
            self.sign_in(header, frame).await;
            return;
        }
        let Some(session) = self.session.as_mut() else {
            tracing::info!(peer = %self.peer, device = %header.device, msg = msg_name(header.msg_type),
                "frame before sign-in refused (21)");
            metrics::refused("not_signed_in");
            self.send_plain_error(header.device, header.seq, ErrorResponse::not_signed_in())
                .await;
            return;
        };
        match session.open(&frame) {
            Ok(opened) if opened.header.is_response() => {
                self.on_response(opened.header, opened.message).await
            }
            Ok(opened) => self.dispatch(opened.header, opened.message),
            Err(
                ProtoError::UnauthenticatedError { code, reason }
                | ProtoError::PeerError { code, reason },
            ) => {
                tracing::info!(device = %header.device, code = code.0, reason = reason.to_wire(), "terminal reported an error");
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, device = %header.device, seq = header.seq,
                    code = e.return_code().0, error = %e, "frame refused");
                metrics::refused(match e.reason() {
                    ErrorReason::BadMac => "bad_mac",
                    ErrorReason::Replay => "replay",
                    _ => "other",
                });
                let mut out = Vec::new();
                if session.seal_error(&e, header.seq, &mut out).is_ok() {
                    self.send(out).await;
                }
            }
        }
    }

    fn dispatch(&mut self, header: Header, message: Message) {
        let shared = Arc::clone(&self.shared);
        let device = header.device;
        let kind = msg_name(header.msg_type);
        // The PIN block opens only under this connection's session (R-B11).
        let pin = match (&message, self.session.as_ref()) {
            (Message::AuthCheckRequest(r), Some(s)) => s.open_pin(r.card_no, r.nonce, &r.pin_block),
            _ => None,
        };
        self.in_flight.spawn(async move {
            let message = handlers::handle(shared, device, message, pin).await;
            Reply {
                corr: header.seq,
                kind,
                message,
            }
        });
    }

    async fn answer(&mut self, reply: Reply) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let message = match reply.message {
            Some(m) => m,
            None => {
                // A host-only message sent by the terminal.
                let e = ProtoError::Unexpected;
                let mut out = Vec::new();
                if session.seal_error(&e, reply.corr, &mut out).is_ok() {
                    self.send(out).await;
                }
                return;
            }
        };
        let code = message.codes().map_or(0, |(c, _)| c.0);
        metrics::request(reply.kind, code);
        let mut out = Vec::new();
        match session.seal(&message, reply.corr, &mut out) {
            Ok(_) => self.send(out).await,
            Err(e) => {
                tracing::error!(device = %session.device(), error = %e, "cannot encode a response")
            }
        }
    }

    async fn on_response(&mut self, header: Header, message: Message) {
        let Some(kind) = self.host_requests.remove(&header.corr) else {
            tracing::info!(device = %header.device, corr = header.corr, "response to no request of ours");
            return;
        };
        let device = header.device;
        match message {
            Message::StatusReport(r) => {
                let now = self.shared.config.clock.now();
                let report = DeviceReport {
                    at: now,
                    pending_records: r.pending_records,
                    terminal_clock: r.clock,
                    blacklist_version: r.blacklist_version,
                };
                tracing::debug!(%device, pending = r.pending_records, blacklist = r.blacklist_version,
                    params = r.params_version, "status report");
                let store = self.shared.store.clone();
                tokio::spawn(async move {
                    let res = jobs::write(&store, move |tx| {
                        crate::domain::admin::report_device_status(tx, device, report)
                    })
                    .await;
                    if let Err(e) = res {
                        tracing::warn!(%device, error = %e, "status report not stored");
                    }
                });
            }
            Message::ClockSetResponse(r) => {
                tracing::debug!(%device, code = r.code.0, clock = %r.clock, "clock set")
            }
            Message::ParamsPushResponse(r) => {
                tracing::info!(%device, code = r.code.0, version = r.version, "parameters pushed")
            }
            Message::CollectResponse(r) => {
                tracing::info!(%device, code = r.code.0, "collection order answered")
            }
            Message::Error(e) => {
                tracing::info!(%device, ?kind, code = e.code.0, "terminal refused our request")
            }
            other => tracing::info!(%device, ?kind, msg = ?other.kind(), "unexpected response"),
        }
    }

    /// Sends a host-initiated request (R-F4.17, R-F4.19, R-F4.20, parameter push).
    async fn host_request(&mut self, cmd: Command) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if self.host_requests.len() >= MAX_HOST_REQUESTS {
            tracing::warn!(device = %session.device(), "terminal does not answer our requests; skipping one");
            return;
        }
        let message = match cmd {
            Command::SetClock => Message::ClockSetRequest(ClockSetRequest {
                clock: self.shared.config.clock.now(),
            }),
            Command::QueryStatus => Message::StatusQuery(StatusQuery),
            Command::Collect { card, count } => Message::CollectRequest(CollectRequest {
                card_no: card,
                count,
            }),
            Command::PushParams(p) => Message::ParamsPushRequest(ParamsPushRequest { params: *p }),
        };
        let mut out = Vec::new();
        match session.seal(&message, 0, &mut out) {
            Ok(seq) => {
                self.host_requests.insert(seq, message.kind().0);
                self.send(out).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a host request"),
        }
    }

    /// Sign-in (R-P5.1): the frame is verified on this connection (the device's row from a
    /// reader, the MAC, the nonce: `signin_gate`) and only a genuine, fresh one is submitted
    /// to the writer, as ONE job (its checks and its status report).
    async fn sign_in(&mut self, header: Header, frame: Vec<u8>) {
        let device = header.device;
        let (fep, now) = (self.shared.config.fep_id, self.shared.config.clock.now());
        let row = match jobs::read(&self.shared.store, move |tx| tx.device(device)).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(%device, error = %e, "sign-in: device not readable");
                // Without the device's key there is no MAC to answer under: an error frame.
                let err = ErrorResponse {
                    code: e.return_code(),
                    ..ErrorResponse::not_signed_in()
                };
                self.send_plain_error(device, 0, err).await;
                return;
            }
        };
        let v = match signin_gate::verify(row.as_ref(), &frame, &self.shared.nonces, now) {
            Ok(v) => v,
            Err(refused) => {
                let (err, counted) = refused.response();
                tracing::warn!(peer = %self.peer, %device, ?refused, code = err.code.0,
                    "sign-in refused before the store");
                match counted {
                    Counted::Answered(code) => metrics::request("sign_in", code),
                    Counted::Frame(reason) => metrics::refused(reason),
                }
                self.send_plain_error(device, 0, err).await;
                return;
            }
        };
        let origin = Origin {
            fep,
            device,
            terminal_no: v.terminal_no,
        };
        let (key, clock, blacklist) = (v.master.key.0, v.req.clock, v.req.blacklist_version);
        let result = jobs::write(&self.shared.store, move |tx| {
            signin::key_still_current(tx, device, &key)?;
            signin::sign_in(tx, &origin, clock, blacklist, now)
        })
        .await;
        match result {
            Ok(s) => {
                metrics::request("sign_in", 0);
                self.respond_sign_in(device, &v.master, &v.req, ReturnCode::SUCCESS, Some(s))
                    .await;
            }
            Err(e) => {
                // A refusal (22, 40, …) or a store failure (1–9, the terminal retries),
                // answered under the master key with the request's nonce.
                let code = e.return_code();
                if matches!(e, HostError::Refused(_)) {
                    tracing::warn!(peer = %self.peer, %device, code = code.0, "sign-in refused");
                } else {
                    tracing::warn!(%device, error = %e, "sign-in failed in the store");
                }
                metrics::request("sign_in", code.0);
                self.respond_sign_in(device, &v.master, &v.req, code, None)
                    .await;
            }
        }
    }

    async fn respond_sign_in(
        &mut self,
        device: PhysicalId,
        master: &DeviceKey,
        req: &SignInRequest,
        code: ReturnCode,
        ok: Option<signin::SignIn>,
    ) {
        let mut key = [0u8; 16];
        let key = match (&ok, rand::rngs::OsRng.try_fill_bytes(&mut key)) {
            (Some(_), Ok(())) => Some(Key(key)),
            (Some(_), Err(e)) => {
                tracing::error!(error = %e, "OS random generator failed");
                None
            }
            _ => None,
        };
        let code = if ok.is_some() && key.is_none() {
            ReturnCode::SYSTEM_FAILURE
        } else {
            code
        };
        let resp = match &ok {
            Some(s) if key.is_some() => SignInResponse {
                code,
                info: InfoCode::NONE,
                nonce: req.nonce,
                merchant_no: s.merchant_no,
                merchant_name: s.merchant_name.clone(),
                online_check: if s.params.work_mode == WorkMode::Offline {
                    OnlineCheck::NotRequired
                } else {
                    OnlineCheck::Required
                },
                blacklist_version: s.blacklist_version,
                clock: s.clock,
                wrapped_key: [0; 16],
                kcv: [0; 4],
                params: Some(s.params.clone()),
            },
            _ => SignInResponse {
                code,
                info: InfoCode::NONE,
                nonce: req.nonce,
                merchant_no: 0,
                merchant_name: String::new(),
                online_check: OnlineCheck::NotRequired,
                blacklist_version: 0,
                clock: self.shared.config.clock.now(),
                wrapped_key: [0; 16],
                kcv: [0; 4],
                params: None,
            },
        };
        let mut out = Vec::new();
        let session = match seal_sign_in_response(device, master, key.as_ref(), resp, &mut out) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%device, error = %e, "cannot encode the sign-in response");
                return;
            }
        };
        self.send(out).await;
        if let Some(session) = session {
            // A new session: old host requests can no longer be answered.
            self.host_requests.clear();
            self.session = Some(session);
            if self.device != Some(device) {
                self.unregister();
                self.device = Some(device);
                metrics::terminals(1.0);
            }
            self.shared
                .registry
                .insert(device, self.id, self.cmd_tx.clone());
            tracing::info!(peer = %self.peer, %device, "terminal signed in");
            // Set its clock now (R-F4.19) and read its status (R-F4.20).
            self.host_request(Command::SetClock).await;
            self.host_request(Command::QueryStatus).await;
        }
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>, peer: SocketAddr) {
    while let Some(bytes) = rx.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "write failed");
                break;
            }
            Err(_) => {
                tracing::warn!(%peer, "client does not read; dropping the connection");
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}
