//! Every message of the protocol: the type byte, the Rust value and its body layout.
//! Layout tables are in `docs/protocol.md` §5; each module here follows them field by field.

mod authcard;
mod blacklist;
mod debit;
mod host;
mod load;
mod params;
mod records;
mod sign_in;

pub use authcard::*;
pub use blacklist::*;
pub use debit::*;
pub use host::*;
pub use load::*;
pub use params::*;
pub use records::*;
pub use sign_in::*;

use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Writer};

/// The message type byte. Terminal-initiated requests are 0x01–0x3F, host-initiated ones
/// 0x41–0x7E; a response has the type of its request and the response flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    SignIn = 0x01,
    Heartbeat = 0x02,
    Debit = 0x03,
    Upload = 0x04,
    BlacklistDelta = 0x05,
    BlacklistBulk = 0x06,
    Params = 0x07,
    /// Load authorisation (圈存授权, `docs/loads.md`).
    LoadAuth = 0x08,
    /// What waits for a card (查询待领).
    Waiting = 0x09,
    /// Operator authorisation card check (授权卡校验, R-B11).
    AuthCheck = 0x0A,
    ClockSet = 0x41,
    StatusQuery = 0x42,
    Collect = 0x43,
    ParamsPush = 0x44,
    /// Response only: the receiver could not process a frame.
    Error = 0x7F,
}

impl MsgType {
    pub const ALL: [MsgType; 15] = [
        MsgType::SignIn,
        MsgType::Heartbeat,
        MsgType::Debit,
        MsgType::Upload,
        MsgType::BlacklistDelta,
        MsgType::BlacklistBulk,
        MsgType::Params,
        MsgType::LoadAuth,
        MsgType::Waiting,
        MsgType::AuthCheck,
        MsgType::ClockSet,
        MsgType::StatusQuery,
        MsgType::Collect,
        MsgType::ParamsPush,
        MsgType::Error,
    ];

    pub fn from_wire(v: u8) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| *t as u8 == v)
    }

    /// Whether the host sends the request of this type (the terminal answers).
    pub const fn host_initiated(self) -> bool {
        matches!(
            self,
            MsgType::ClockSet | MsgType::StatusQuery | MsgType::Collect | MsgType::ParamsPush
        )
    }
}

/// Every message. A request and its response are separate variants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // parameters are inline; a message lives briefly on the stack
pub enum Message {
    SignInRequest(SignInRequest),
    SignInResponse(SignInResponse),
    HeartbeatRequest(HeartbeatRequest),
    HeartbeatResponse(HeartbeatResponse),
    DebitRequest(DebitRequest),
    DebitResponse(DebitResponse),
    UploadRequest(UploadRequest),
    UploadResponse(UploadResponse),
    BlacklistDeltaRequest(BlacklistDeltaRequest),
    BlacklistDeltaResponse(BlacklistDeltaResponse),
    BlacklistBulkRequest(BlacklistBulkRequest),
    BlacklistBulkResponse(BlacklistBulkResponse),
    ParamsRequest(ParamsRequest),
    ParamsResponse(ParamsResponse),
    LoadRequest(LoadRequest),
    LoadResponse(LoadResponse),
    WaitingRequest(WaitingRequest),
    WaitingResponse(WaitingResponse),
    AuthCheckRequest(AuthCheckRequest),
    AuthCheckResponse(AuthCheckResponse),
    ClockSetRequest(ClockSetRequest),
    ClockSetResponse(ClockSetResponse),
    StatusQuery(StatusQuery),
    StatusReport(StatusReport),
    CollectRequest(CollectRequest),
    CollectResponse(CollectResponse),
    ParamsPushRequest(ParamsPushRequest),
    ParamsPushResponse(ParamsPushResponse),
    Error(ErrorResponse),
}

macro_rules! dispatch {
    ($($req:ident / $resp:ident => $ty:ident),* ; error => $errv:ident($err:ident)) => {
        impl Message {
            /// The type byte and whether this is a response.
            pub const fn kind(&self) -> (MsgType, bool) {
                match self {
                    $(Message::$req(_) => (MsgType::$ty, false), Message::$resp(_) => (MsgType::$ty, true),)*
                    Message::$errv(_) => (MsgType::Error, true),
                }
            }

            /// Appends the body (no envelope) to `out`.
            pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                let mut w = Writer { out };
                match self {
                    $(Message::$req(m) => m.write(&mut w), Message::$resp(m) => m.write(&mut w),)*
                    Message::$errv(m) => m.write(&mut w),
                }
            }

            /// Decodes a body of the given type; every byte must be consumed.
            pub fn decode(ty: MsgType, response: bool, body: &[u8]) -> Result<Message, DecodeError> {
                let mut r = Reader::new(body);
                let msg = match (ty, response) {
                    $((MsgType::$ty, false) => Message::$req($req::read(&mut r)?),
                      (MsgType::$ty, true) => Message::$resp($resp::read(&mut r)?),)*
                    (MsgType::Error, true) => Message::$errv($err::read(&mut r)?),
                    (MsgType::Error, false) => return Err(DecodeError::BadFlags(0)),
                };
                r.finish()?;
                Ok(msg)
            }

            /// The return and information codes, for a response.
            pub fn codes(&self) -> Option<(ReturnCode, InfoCode)> {
                match self {
                    $(Message::$resp(m) => Some((m.code, m.info)),)*
                    Message::$errv(m) => Some((m.code, m.info)),
                    _ => None,
                }
            }
        }
    };
}

dispatch! {
    SignInRequest / SignInResponse => SignIn,
    HeartbeatRequest / HeartbeatResponse => Heartbeat,
    DebitRequest / DebitResponse => Debit,
    UploadRequest / UploadResponse => Upload,
    BlacklistDeltaRequest / BlacklistDeltaResponse => BlacklistDelta,
    BlacklistBulkRequest / BlacklistBulkResponse => BlacklistBulk,
    ParamsRequest / ParamsResponse => Params,
    LoadRequest / LoadResponse => LoadAuth,
    WaitingRequest / WaitingResponse => Waiting,
    AuthCheckRequest / AuthCheckResponse => AuthCheck,
    ClockSetRequest / ClockSetResponse => ClockSet,
    StatusQuery / StatusReport => StatusQuery,
    CollectRequest / CollectResponse => Collect,
    ParamsPushRequest / ParamsPushResponse => ParamsPush;
    error => Error(ErrorResponse)
}

/// Reads the two bytes every response body starts with (R-C6.1, R-C6.2).
pub(crate) fn read_codes(r: &mut Reader<'_>) -> Result<(ReturnCode, InfoCode), DecodeError> {
    Ok((ReturnCode(r.u8()?), InfoCode(r.u8()?)))
}

pub(crate) fn write_codes(w: &mut Writer<'_>, code: ReturnCode, info: InfoCode) {
    w.u8(code.0);
    w.u8(info.0);
}

/// Fails when a list is longer than its documented limit.
pub(crate) fn check_count(
    field: &'static str,
    count: usize,
    max: usize,
) -> Result<(), EncodeError> {
    if count > max {
        Err(EncodeError::TooMany { field, count, max })
    } else {
        Ok(())
    }
}

pub(crate) fn read_count(
    field: &'static str,
    count: usize,
    max: usize,
) -> Result<usize, DecodeError> {
    if count > max {
        Err(DecodeError::TooMany { field, count, max })
    } else {
        Ok(count)
    }
}

pub(crate) fn read_card_no(r: &mut Reader<'_>) -> Result<crate::CardNo, DecodeError> {
    let v = r.u32()?;
    crate::CardNo::new(v).ok_or(DecodeError::BadValue {
        field: "card_no",
        value: i64::from(v),
    })
}
