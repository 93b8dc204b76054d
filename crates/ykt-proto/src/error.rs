//! Typed errors of the codec and the session, and the return code each maps to.

use crate::codes::ReturnCode;
use crate::messages::ErrorReason;

/// A frame or body that does not follow `docs/protocol.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input ends before the field it should contain")]
    Truncated,
    #[error("{0} bytes left over after the last field")]
    TrailingBytes(usize),
    #[error("frame length {0} is outside the allowed range")]
    BadLength(usize),
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("reserved flag bits set: {0:#04x}")]
    BadFlags(u8),
    #[error("byte {0:#04x} is not packed BCD")]
    BadBcd(u8),
    #[error("not a calendar date or time")]
    BadDate,
    #[error("field {field} has invalid value {value}")]
    BadValue { field: &'static str, value: i64 },
    #[error("{field}: count {count} exceeds the limit {max}")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("merchant name is not UTF-8")]
    BadUtf8,
}

/// A message that cannot be put on the wire as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("year outside 0000–9999 cannot be written in BCD")]
    DateOutOfRange,
    #[error("{field}: count {count} exceeds the limit {max}")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("field {field} has invalid value {value}")]
    BadValue { field: &'static str, value: i64 },
    #[error("the frame would be {0} bytes, above the maximum")]
    FrameTooLarge(usize),
    #[error("the send counter is exhausted; sign in again")]
    SequenceExhausted,
}

/// Why a received frame was refused. Each maps to a return code for the error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("protocol version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("MAC does not verify")]
    BadMac,
    #[error("sequence number {got} is not above the last accepted {last}: replay or stale")]
    Replay { got: u32, last: u32 },
    #[error("frame came from the wrong side of the connection")]
    WrongDirection,
    #[error("frame is for physical ID {got}, session is for {expected}")]
    WrongDevice {
        got: crate::PhysicalId,
        expected: crate::PhysicalId,
    },
    #[error("message type not allowed here")]
    Unexpected,
    #[error("sign-in response does not echo our nonce")]
    NonceMismatch,
    #[error("session key check value does not match")]
    BadKeyCheck,
    #[error("peer reported error {code} ({reason:?}) without a valid MAC")]
    UnauthenticatedError {
        code: ReturnCode,
        reason: ErrorReason,
    },
    #[error("peer reported error {code} ({reason:?})")]
    PeerError {
        code: ReturnCode,
        reason: ErrorReason,
    },
}

impl ProtoError {
    /// The return code the error response carries (documented in `docs/protocol.md` §7).
    pub const fn return_code(&self) -> ReturnCode {
        match self {
            ProtoError::BadMac
            | ProtoError::Replay { .. }
            | ProtoError::WrongDirection
            | ProtoError::NonceMismatch
            | ProtoError::BadKeyCheck => ReturnCode::FEP_KEY_ERROR,
            ProtoError::UnsupportedVersion(_) | ProtoError::Decode(DecodeError::UnknownType(_)) => {
                ReturnCode::FEP_NO_SUCH_FUNCTION
            }
            ProtoError::WrongDevice { .. } => ReturnCode::POS_TERMINAL_NO_ERROR,
            ProtoError::Unexpected => ReturnCode::POS_NO_SUCH_FUNCTION,
            ProtoError::Decode(_) => ReturnCode::OTHER_ERROR,
            // Never answered (no error response to an error); kept for completeness.
            ProtoError::UnauthenticatedError { code, .. } | ProtoError::PeerError { code, .. } => {
                *code
            }
        }
    }

    /// The detail byte of the error response.
    pub const fn reason(&self) -> ErrorReason {
        match self {
            ProtoError::Decode(DecodeError::UnknownType(_)) => ErrorReason::UnknownType,
            ProtoError::Decode(_) => ErrorReason::Malformed,
            ProtoError::UnsupportedVersion(_) => ErrorReason::UnsupportedVersion,
            ProtoError::BadMac
            | ProtoError::WrongDirection
            | ProtoError::NonceMismatch
            | ProtoError::BadKeyCheck => ErrorReason::BadMac,
            ProtoError::Replay { .. } => ErrorReason::Replay,
            ProtoError::WrongDevice { .. } => ErrorReason::WrongDevice,
            ProtoError::Unexpected => ErrorReason::Unexpected,
            ProtoError::UnauthenticatedError { reason, .. }
            | ProtoError::PeerError { reason, .. } => *reason,
        }
    }
}
