//! Sign-in (0x01, R-P5.1) and heartbeat (0x02).

use chrono::NaiveDateTime;

use super::params::{read_opt_params, write_opt_params};
use super::{read_codes, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::crypto::{KCV_LEN, KEY_LEN, Suite};
use crate::error::{DecodeError, EncodeError};
use crate::types::{MerchantNo, TerminalParams};
use crate::wire::{Reader, Writer};

/// Longest merchant name in UTF-8 bytes.
pub const MAX_MERCHANT_NAME: usize = 64;
/// Length of the terminal's sign-in nonce.
pub const NONCE_LEN: usize = 8;

/// 0x01 request, MAC'd under the device master key. The physical ID (R-P5.1 input) is the
/// header's; the body carries the terminal clock and blacklist version (the other inputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInRequest {
    /// The suite of the device's master key; the host refuses a mismatch with code 14.
    pub suite: Suite,
    pub clock: NaiveDateTime,
    pub blacklist_version: u32,
    pub params_version: u32,
    /// Fresh random bytes per sign-in; the response must echo them.
    pub nonce: [u8; NONCE_LEN],
}

/// The sign-in work mode of R-P5.1 (工作模式).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnlineCheck {
    /// 0 无联机校验
    NotRequired = 0,
    /// 1 有联机校验
    Required = 1,
}

/// 0x01 response, MAC'd under the device master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    /// The request's nonce, echoed: a replayed old response does not match.
    pub nonce: [u8; NONCE_LEN],
    /// 0 = no merchant: the terminal shows 请设置商户号 and refuses to work.
    pub merchant_no: MerchantNo,
    pub merchant_name: String,
    pub online_check: OnlineCheck,
    pub blacklist_version: u32,
    pub clock: NaiveDateTime,
    /// The session key encrypted under the master key (all zero on error).
    pub wrapped_key: [u8; KEY_LEN],
    /// First 4 bytes of E(session key, 0¹²⁸) (all zero on error).
    pub kcv: [u8; KCV_LEN],
    /// The terminal's parameters; `None` on error.
    pub params: Option<TerminalParams>,
}

/// 0x02 request: the terminal is alive and tells its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub clock: NaiveDateTime,
    pub blacklist_version: u32,
    pub params_version: u32,
    /// Records not yet uploaded.
    pub pending_records: u32,
}

/// 0x02 response: what the terminal should fetch, and the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub blacklist_version: u32,
    pub params_version: u32,
    pub clock: NaiveDateTime,
}

impl SignInRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.suite as u8);
        w.datetime(&self.clock)?;
        w.u32(self.blacklist_version);
        w.u32(self.params_version);
        w.bytes(&self.nonce);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = r.u8()?;
        let suite = Suite::from_wire(s).ok_or(DecodeError::BadValue {
            field: "suite",
            value: i64::from(s),
        })?;
        Ok(SignInRequest {
            suite,
            clock: r.datetime()?,
            blacklist_version: r.u32()?,
            params_version: r.u32()?,
            nonce: r.array()?,
        })
    }
}

impl SignInResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        super::check_count("merchant_name", self.merchant_name.len(), MAX_MERCHANT_NAME)?;
        write_codes(w, self.code, self.info);
        w.bytes(&self.nonce);
        w.u32(self.merchant_no);
        w.u8(self.merchant_name.len() as u8);
        w.bytes(self.merchant_name.as_bytes());
        w.u8(self.online_check as u8);
        w.u32(self.blacklist_version);
        w.datetime(&self.clock)?;
        w.bytes(&self.wrapped_key);
        w.bytes(&self.kcv);
        write_opt_params(w, self.params.as_ref())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        let nonce = r.array()?;
        let merchant_no = r.u32()?;
        let n = super::read_count("merchant_name", usize::from(r.u8()?), MAX_MERCHANT_NAME)?;
        let merchant_name = std::str::from_utf8(r.take(n)?)
            .map_err(|_| DecodeError::BadUtf8)?
            .to_owned();
        let online_check = match r.u8()? {
            0 => OnlineCheck::NotRequired,
            1 => OnlineCheck::Required,
            v => {
                return Err(DecodeError::BadValue {
                    field: "online_check",
                    value: i64::from(v),
                });
            }
        };
        Ok(SignInResponse {
            code,
            info,
            nonce,
            merchant_no,
            merchant_name,
            online_check,
            blacklist_version: r.u32()?,
            clock: r.datetime()?,
            wrapped_key: r.array()?,
            kcv: r.array()?,
            params: read_opt_params(r)?,
        })
    }
}

impl HeartbeatRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.datetime(&self.clock)?;
        w.u32(self.blacklist_version);
        w.u32(self.params_version);
        w.u32(self.pending_records);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(HeartbeatRequest {
            clock: r.datetime()?,
            blacklist_version: r.u32()?,
            params_version: r.u32()?,
            pending_records: r.u32()?,
        })
    }
}

impl HeartbeatResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.blacklist_version);
        w.u32(self.params_version);
        w.datetime(&self.clock)
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(HeartbeatResponse {
            code,
            info,
            blacklist_version: r.u32()?,
            params_version: r.u32()?,
            clock: r.datetime()?,
        })
    }
}
