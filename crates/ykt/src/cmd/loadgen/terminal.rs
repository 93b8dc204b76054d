//! One simulated terminal: a TCP connection with a `ykt_proto::Session`. It signs in under
//! its master key, sends requests one at a time, and answers the host's own requests
//! (clock set, status query, collection order, parameter push) as a real terminal would.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::NaiveDateTime;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use ykt_proto::*;

/// Why an exchange failed without a response from the host.
#[derive(Debug, Error)]
pub enum Transport {
    #[error("timeout")]
    Timeout,
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the host")]
    Closed,
    #[error("protocol: {0}")]
    Proto(#[from] ProtoError),
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    #[error("not signed in")]
    NoSession,
}

impl Transport {
    /// A short label for the error table.
    pub fn label(&self) -> &'static str {
        match self {
            Transport::Timeout => "timeout",
            Transport::Io(_) => "connection error",
            Transport::Closed => "connection closed",
            Transport::Proto(_) => "protocol error",
            Transport::Encode(_) => "encode error",
            Transport::NoSession => "no session",
        }
    }
}

pub struct SimTerminal {
    pub device: PhysicalId,
    key: DeviceKey,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    session: Option<Session>,
    timeout: Duration,
    out: Vec<u8>,
    frame: Vec<u8>,
}

impl SimTerminal {
    pub async fn connect(
        addr: SocketAddr,
        device: PhysicalId,
        key: DeviceKey,
        timeout: Duration,
    ) -> Result<SimTerminal, Transport> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Transport::Timeout)??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(SimTerminal {
            device,
            key,
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            session: None,
            timeout,
            out: Vec::with_capacity(1024),
            frame: Vec::with_capacity(1024),
        })
    }

    /// Signs in (R-P5.1); the session starts on code 0, which is returned with any other.
    pub async fn sign_in(
        &mut self,
        clock: NaiveDateTime,
        blacklist_version: u32,
    ) -> Result<ReturnCode, Transport> {
        let nonce: [u8; 8] = rand::random();
        let req = SignInRequest {
            suite: self.key.suite,
            clock,
            blacklist_version,
            params_version: 0,
            nonce,
        };
        self.out.clear();
        seal_sign_in(self.device, &self.key, &req, &mut self.out)?;
        self.writer.write_all(&self.out).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        tokio::time::timeout_at(deadline, read_frame(&mut self.reader, &mut self.frame))
            .await
            .map_err(|_| Transport::Timeout)??;
        if let Some(err) = peek_error(&self.frame) {
            return Ok(err.code);
        }
        let (resp, session) = open_sign_in_response(self.device, &self.key, &nonce, &self.frame)?;
        self.session = session;
        Ok(resp.code)
    }

    /// Sends `msg` and waits for its response, answering host requests meanwhile.
    pub async fn request(&mut self, msg: &Message) -> Result<Message, Transport> {
        let session = self.session.as_mut().ok_or(Transport::NoSession)?;
        self.out.clear();
        let seq = session.seal(msg, 0, &mut self.out)?;
        self.writer.write_all(&self.out).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            tokio::time::timeout_at(deadline, read_frame(&mut self.reader, &mut self.frame))
                .await
                .map_err(|_| Transport::Timeout)??;
            let session = self.session.as_mut().ok_or(Transport::NoSession)?;
            let opened = match session.open(&self.frame) {
                Ok(o) => o,
                // An unauthenticated error answering our request (e.g. 21 after a restart).
                Err(_) if peek_error(&self.frame).is_some() => {
                    let e = peek_error(&self.frame).ok_or(Transport::Closed)?;
                    return Ok(Message::Error(e));
                }
                Err(e) => return Err(e.into()),
            };
            if opened.header.is_response() {
                if opened.header.corr == seq {
                    return Ok(opened.message);
                }
                continue; // a late answer to a request we gave up on
            }
            self.answer_host(opened.header.seq, &opened.message).await?;
        }
    }

    async fn answer_host(&mut self, seq: u32, msg: &Message) -> Result<(), Transport> {
        let ok = (ReturnCode::SUCCESS, InfoCode::NONE);
        let reply = match msg {
            Message::ClockSetRequest(r) => Message::ClockSetResponse(ClockSetResponse {
                code: ok.0,
                info: ok.1,
                clock: r.clock,
            }),
            Message::StatusQuery(_) => Message::StatusReport(StatusReport {
                code: ok.0,
                info: ok.1,
                pending_records: 0,
                clock: super::campus_now(),
                blacklist_version: 0,
                params_version: 1,
                work_mode: WorkMode::Auto,
                offline_minutes: 0,
            }),
            Message::ParamsPushRequest(r) => Message::ParamsPushResponse(ParamsPushResponse {
                code: ok.0,
                info: ok.1,
                version: r.params.version,
            }),
            Message::CollectRequest(_) => Message::CollectResponse(CollectResponse {
                code: ok.0,
                info: ok.1,
            }),
            _ => return Ok(()),
        };
        let session = self.session.as_mut().ok_or(Transport::NoSession)?;
        self.out.clear();
        session.seal(&reply, seq, &mut self.out)?;
        self.writer.write_all(&self.out).await?;
        Ok(())
    }
}

/// Reads one whole frame into `buf` (length-checked before anything is read into it).
async fn read_frame(r: &mut BufReader<OwnedReadHalf>, buf: &mut Vec<u8>) -> Result<(), Transport> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Transport::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = usize::from(u16::from_be_bytes(head));
    if len + 2 > MAX_FRAME_LEN || len < 25 {
        return Err(Transport::Closed);
    }
    buf.clear();
    buf.extend_from_slice(&head);
    buf.resize(len + 2, 0);
    r.read_exact(&mut buf[2..]).await?;
    Ok(())
}
