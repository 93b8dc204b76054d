//! Host-initiated requests (clock set 0x41, status query 0x42 R-F4.20, record collection
//! 0x43 R-F4.17) and the error response (0x7F).

use chrono::NaiveDateTime;

use super::params::{work_mode_from_wire, work_mode_to_wire};
use super::{read_card_no, read_codes, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::types::{CardNo, WorkMode};
use crate::wire::{Reader, Writer};

/// 0x41 request (host → terminal): set the clock (R-F4.19).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockSetRequest {
    pub clock: NaiveDateTime,
}

/// 0x41 response: the terminal's clock after setting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockSetResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub clock: NaiveDateTime,
}

/// 0x42 request (host → terminal): report your state. Empty body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusQuery;

/// 0x42 response (R-F4.20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub pending_records: u32,
    pub clock: NaiveDateTime,
    pub blacklist_version: u32,
    pub params_version: u32,
    pub work_mode: WorkMode,
    /// Accumulated offline time in minutes (R-F4.18); 0 while online.
    pub offline_minutes: u32,
}

/// 0x43 request (host → terminal): collect the last `count` records of card `card_no`
/// the next time it is on the reader, and upload them (kind Collected, R-F4.17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectRequest {
    pub card_no: CardNo,
    pub count: u8,
}

/// 0x43 response: the terminal accepted (0) or refused the collection order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
}

/// Why a frame could not be processed (detail of the error response).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    Malformed,
    UnknownType,
    UnsupportedVersion,
    BadMac,
    Replay,
    WrongDevice,
    Unexpected,
    NotSignedIn,
    /// The physical ID is not registered (sent with code 20, no MAC).
    UnknownDevice,
    /// A reason a later version defined.
    Other(u8),
}

impl ErrorReason {
    pub const fn to_wire(self) -> u8 {
        match self {
            ErrorReason::Malformed => 1,
            ErrorReason::UnknownType => 2,
            ErrorReason::UnsupportedVersion => 3,
            ErrorReason::BadMac => 4,
            ErrorReason::Replay => 5,
            ErrorReason::WrongDevice => 6,
            ErrorReason::Unexpected => 7,
            ErrorReason::NotSignedIn => 8,
            ErrorReason::UnknownDevice => 9,
            ErrorReason::Other(v) => v,
        }
    }
    pub const fn from_wire(v: u8) -> ErrorReason {
        match v {
            1 => ErrorReason::Malformed,
            2 => ErrorReason::UnknownType,
            3 => ErrorReason::UnsupportedVersion,
            4 => ErrorReason::BadMac,
            5 => ErrorReason::Replay,
            6 => ErrorReason::WrongDevice,
            7 => ErrorReason::Unexpected,
            8 => ErrorReason::NotSignedIn,
            9 => ErrorReason::UnknownDevice,
            v => ErrorReason::Other(v),
        }
    }
}

/// 0x7F response: the receiver could not process the frame whose sequence number is in the
/// header's correlation field. Its layout is frozen for every version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub reason: ErrorReason,
    /// The protocol versions the sender speaks.
    pub min_version: u8,
    pub max_version: u8,
}

impl ErrorResponse {
    /// For a frame other than sign-in on a connection without a session: code 21.
    pub const fn not_signed_in() -> ErrorResponse {
        ErrorResponse::host_state(ReturnCode::POS_NOT_SIGNED_IN, ErrorReason::NotSignedIn)
    }

    /// For a sign-in from a physical ID the host does not know: code 20.
    pub const fn unknown_device() -> ErrorResponse {
        ErrorResponse::host_state(ReturnCode::POS_NOT_REGISTERED, ErrorReason::UnknownDevice)
    }

    const fn host_state(code: ReturnCode, reason: ErrorReason) -> ErrorResponse {
        ErrorResponse {
            code,
            info: InfoCode::NONE,
            reason,
            min_version: crate::frame::VERSION,
            max_version: crate::frame::VERSION,
        }
    }
}

impl ClockSetRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.datetime(&self.clock)
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClockSetRequest {
            clock: r.datetime()?,
        })
    }
}

impl ClockSetResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.datetime(&self.clock)
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(ClockSetResponse {
            code,
            info,
            clock: r.datetime()?,
        })
    }
}

impl StatusQuery {
    pub(crate) fn write(&self, _: &mut Writer<'_>) -> Result<(), EncodeError> {
        Ok(())
    }
    pub(crate) fn read(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StatusQuery)
    }
}

impl StatusReport {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.pending_records);
        w.datetime(&self.clock)?;
        w.u32(self.blacklist_version);
        w.u32(self.params_version);
        w.u8(work_mode_to_wire(self.work_mode));
        w.u32(self.offline_minutes);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(StatusReport {
            code,
            info,
            pending_records: r.u32()?,
            clock: r.datetime()?,
            blacklist_version: r.u32()?,
            params_version: r.u32()?,
            work_mode: work_mode_from_wire(r.u8()?)?,
            offline_minutes: r.u32()?,
        })
    }
}

impl CollectRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.card_no.get());
        w.u8(self.count);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CollectRequest {
            card_no: read_card_no(r)?,
            count: r.u8()?,
        })
    }
}

impl CollectResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(CollectResponse { code, info })
    }
}

impl ErrorResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u8(self.reason.to_wire());
        w.u8(self.min_version);
        w.u8(self.max_version);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(ErrorResponse {
            code,
            info,
            reason: ErrorReason::from_wire(r.u8()?),
            min_version: r.u8()?,
            max_version: r.u8()?,
        })
    }
}
