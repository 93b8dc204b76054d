//! Authenticated channels: sign-in under the device master key, then a [`Session`] per
//! connection side that MACs every frame under the session key and refuses replays.

use crate::PhysicalId;
use crate::crypto::{Key, MacKey, Suite, key_check_value, unwrap_key, wrap_key};
use crate::error::{EncodeError, ProtoError};
use crate::frame::{Header, RawFrame, VERSION, encode_frame};
use crate::messages::{
    ErrorReason, ErrorResponse, Message, MsgType, SignInRequest, SignInResponse,
};
use crate::{InfoCode, ReturnCode};

/// Which end of the connection a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Terminal,
    Host,
}

/// A device's master key, provisioned at registration, with its suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceKey {
    pub suite: Suite,
    pub key: Key,
}

/// A frame that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub header: Header,
    pub message: Message,
}

impl ProtoError {
    /// The error response to send back for this error.
    pub const fn to_response(&self) -> ErrorResponse {
        ErrorResponse {
            code: self.return_code(),
            info: InfoCode::NONE,
            reason: self.reason(),
            min_version: VERSION,
            max_version: VERSION,
        }
    }
}

/// One side of an authenticated connection after sign-in.
#[derive(Clone)]
pub struct Session {
    role: Role,
    device: PhysicalId,
    suite: Suite,
    mac: MacKey,
    /// Encrypts PIN blocks (0x0A); derived from the session key, never the MAC key.
    pin: Key,
    /// Sequence number of the next frame we send; starts at 1 (0 is sign-in's).
    next_seq: u32,
    /// Highest sequence number accepted from the peer.
    last_rx: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("device", &self.device)
            .field("suite", &self.suite)
            .field("next_seq", &self.next_seq)
            .field("last_rx", &self.last_rx)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(role: Role, device: PhysicalId, suite: Suite, session_key: &Key) -> Session {
        Session {
            role,
            device,
            suite,
            mac: MacKey::new(suite, session_key),
            pin: crate::crypto::pin_key(suite, session_key),
            next_seq: 1,
            last_rx: 0,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }
    pub fn device(&self) -> PhysicalId {
        self.device
    }
    pub fn suite(&self) -> Suite {
        self.suite
    }
    /// The PIN block of an authorisation check (0x0A) for this session.
    pub fn seal_pin(&self, card_no: u32, nonce: u32, pin: &crate::crypto::Pin) -> [u8; 16] {
        crate::crypto::seal_pin_block(self.suite, &self.pin, card_no, nonce, pin)
    }

    /// The PIN in an authorisation check's block, if it opens for this card and nonce.
    pub fn open_pin(
        &self,
        card_no: u32,
        nonce: u32,
        block: &[u8; 16],
    ) -> Option<crate::crypto::Pin> {
        crate::crypto::open_pin_block(self.suite, &self.pin, card_no, nonce, block)
    }

    /// The highest sequence number accepted from the peer so far.
    pub fn last_received(&self) -> u32 {
        self.last_rx
    }

    /// Appends a MAC'd frame carrying `msg` to `out` and returns its sequence number.
    /// `corr` is the request's sequence number for a response, 0 for a request.
    pub fn seal(
        &mut self,
        msg: &Message,
        corr: u32,
        out: &mut Vec<u8>,
    ) -> Result<u32, EncodeError> {
        let seq = self.next_seq;
        if seq == u32::MAX {
            return Err(EncodeError::SequenceExhausted);
        }
        encode_frame(
            out,
            self.device,
            self.role == Role::Host,
            seq,
            corr,
            msg,
            Some(&self.mac),
        )?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// An error response to the frame numbered `corr`.
    pub fn seal_error(
        &mut self,
        err: &ProtoError,
        corr: u32,
        out: &mut Vec<u8>,
    ) -> Result<u32, EncodeError> {
        self.seal(&Message::Error(err.to_response()), corr, out)
    }

    /// Checks and decodes one complete frame from the peer: version, direction, device,
    /// MAC, then sequence number (must exceed every one accepted before), then the body.
    pub fn open(&mut self, frame: &[u8]) -> Result<Opened, ProtoError> {
        let raw = RawFrame::parse(frame)?;
        raw.check_version()?;
        let h = raw.header;
        if h.from_host() == (self.role == Role::Host) {
            return Err(ProtoError::WrongDirection);
        }
        if h.device != self.device {
            return Err(ProtoError::WrongDevice {
                got: h.device,
                expected: self.device,
            });
        }
        if raw.verify(&self.mac).is_err() {
            // An error frame from a peer that lost our session comes without a valid MAC.
            if let Some(e) = unauthenticated_error(&raw) {
                return Err(ProtoError::UnauthenticatedError {
                    code: e.code,
                    reason: e.reason,
                });
            }
            return Err(ProtoError::BadMac);
        }
        if h.seq <= self.last_rx {
            return Err(ProtoError::Replay {
                got: h.seq,
                last: self.last_rx,
            });
        }
        // The MAC is good: this number is burnt even if the body turns out malformed.
        self.last_rx = h.seq;
        let message = raw.message()?;
        if message.kind().0 == MsgType::SignIn {
            return Err(ProtoError::Unexpected);
        }
        Ok(Opened { header: h, message })
    }
}

fn unauthenticated_error(raw: &RawFrame<'_>) -> Option<ErrorResponse> {
    if raw.header.msg_type != MsgType::Error as u8 {
        return None;
    }
    match raw.message() {
        Ok(Message::Error(e)) => Some(e),
        _ => None,
    }
}

/// An error response without a MAC (eight zero bytes), for when the sender holds no key
/// for the peer: unknown device, no session, unreadable frame. It carries no authority.
pub fn seal_unauthenticated_error(
    device: PhysicalId,
    from_host: bool,
    corr: u32,
    err: &ErrorResponse,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_frame(
        out,
        device,
        from_host,
        0,
        corr,
        &Message::Error(err.clone()),
        None,
    )
}

/// Reads an error frame whatever its MAC; for diagnostics only, it proves nothing.
pub fn peek_error(frame: &[u8]) -> Option<ErrorResponse> {
    unauthenticated_error(&RawFrame::parse(frame).ok()?)
}

/// Terminal: the sign-in request, sequence number 0, MAC'd under the master key.
pub fn seal_sign_in(
    device: PhysicalId,
    master: &DeviceKey,
    req: &SignInRequest,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mac = MacKey::new(master.suite, &master.key);
    encode_frame(
        out,
        device,
        false,
        0,
        0,
        &Message::SignInRequest(req.clone()),
        Some(&mac),
    )
}

/// Host: checks a sign-in request under the device's master key (look it up by
/// `RawFrame::parse(frame)?.header.device`).
pub fn open_sign_in(
    master: &DeviceKey,
    frame: &[u8],
) -> Result<(Header, SignInRequest), ProtoError> {
    let raw = RawFrame::parse(frame)?;
    raw.check_version()?;
    if raw.header.from_host() || raw.header.is_response() {
        return Err(ProtoError::WrongDirection);
    }
    raw.verify(&MacKey::new(master.suite, &master.key))?;
    match raw.message()? {
        Message::SignInRequest(req) if req.suite == master.suite => Ok((raw.header, req)),
        Message::SignInRequest(_) => Err(ProtoError::BadMac),
        _ => Err(ProtoError::Unexpected),
    }
}

/// Host: the sign-in response, MAC'd under the master key. On success (`resp.code` 0 and
/// a session key given) it fills the wrapped key and KCV and returns the host's session;
/// otherwise both fields are zero and no session starts.
pub fn seal_sign_in_response(
    device: PhysicalId,
    master: &DeviceKey,
    session_key: Option<&Key>,
    mut resp: SignInResponse,
    out: &mut Vec<u8>,
) -> Result<Option<Session>, EncodeError> {
    let session = match session_key {
        Some(k) if resp.code.is_success() => {
            resp.wrapped_key = wrap_key(master.suite, &master.key, k);
            resp.kcv = key_check_value(master.suite, k);
            Some(Session::new(Role::Host, device, master.suite, k))
        }
        _ => {
            resp.wrapped_key = [0; 16];
            resp.kcv = [0; 4];
            None
        }
    };
    let mac = MacKey::new(master.suite, &master.key);
    encode_frame(
        out,
        device,
        true,
        0,
        0,
        &Message::SignInResponse(resp),
        Some(&mac),
    )?;
    Ok(session)
}

/// Terminal: checks the sign-in response against the master key and the request's nonce.
/// On return code 0 it unwraps the session key, checks its KCV and returns the session.
pub fn open_sign_in_response(
    device: PhysicalId,
    master: &DeviceKey,
    nonce: &[u8; 8],
    frame: &[u8],
) -> Result<(SignInResponse, Option<Session>), ProtoError> {
    let raw = RawFrame::parse(frame)?;
    raw.check_version()?;
    let h = raw.header;
    if !h.from_host() || !h.is_response() {
        return Err(ProtoError::WrongDirection);
    }
    if h.device != device {
        return Err(ProtoError::WrongDevice {
            got: h.device,
            expected: device,
        });
    }
    if raw.verify(&MacKey::new(master.suite, &master.key)).is_err() {
        if let Some(e) = unauthenticated_error(&raw) {
            return Err(ProtoError::UnauthenticatedError {
                code: e.code,
                reason: e.reason,
            });
        }
        return Err(ProtoError::BadMac);
    }
    let resp = match raw.message()? {
        Message::SignInResponse(r) => r,
        Message::Error(e) => {
            return Err(ProtoError::PeerError {
                code: e.code,
                reason: e.reason,
            });
        }
        _ => return Err(ProtoError::Unexpected),
    };
    if &resp.nonce != nonce {
        return Err(ProtoError::NonceMismatch);
    }
    if !resp.code.is_success() {
        return Ok((resp, None));
    }
    let key = unwrap_key(master.suite, &master.key, &resp.wrapped_key);
    if key_check_value(master.suite, &key) != resp.kcv {
        return Err(ProtoError::BadKeyCheck);
    }
    let session = Session::new(Role::Terminal, device, master.suite, &key);
    Ok((resp, Some(session)))
}

/// The error a peer reported, for callers matching on it.
pub const fn peer_error_code(e: &ProtoError) -> Option<(ReturnCode, ErrorReason)> {
    match e {
        ProtoError::UnauthenticatedError { code, reason }
        | ProtoError::PeerError { code, reason } => Some((*code, *reason)),
        _ => None,
    }
}
