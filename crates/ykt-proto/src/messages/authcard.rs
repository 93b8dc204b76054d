//! Operator authorisation cards (授权卡, R-B11): the online check 0x0A. A terminal asks the
//! host whether the operator card on its reader may authorise one protected function, with
//! the PIN the operator typed, encrypted under the session's PIN key (`crypto::pin_block`).
//! The host answers 0 or one of 80–89 (table 6.1.3).

use chrono::NaiveDateTime;

use super::{read_codes, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Writer};

/// Length of an encrypted PIN block: one cipher block.
pub const PIN_BLOCK_LEN: usize = 16;

/// A terminal function an operator card may authorise; the device parameters name which of
/// them need one (`TerminalParams`), the card and the host which it may authorise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthFunction {
    /// 手工签到.
    ManualSignIn,
    /// 切换工作模式.
    WorkModeChange,
    /// 冲正 / 撤销.
    Reversal,
    /// 统计.
    Statistics,
    /// 清除脱机时间.
    ClearOfflineTime,
}

impl AuthFunction {
    pub const ALL: [AuthFunction; 5] = [
        AuthFunction::ManualSignIn,
        AuthFunction::WorkModeChange,
        AuthFunction::Reversal,
        AuthFunction::Statistics,
        AuthFunction::ClearOfflineTime,
    ];

    /// Wire value 1–5; bit `value − 1` of an [`AuthFunctions`] set.
    pub const fn to_wire(self) -> u8 {
        match self {
            AuthFunction::ManualSignIn => 1,
            AuthFunction::WorkModeChange => 2,
            AuthFunction::Reversal => 3,
            AuthFunction::Statistics => 4,
            AuthFunction::ClearOfflineTime => 5,
        }
    }

    pub fn from_wire(v: u8) -> Result<AuthFunction, DecodeError> {
        AuthFunction::ALL
            .into_iter()
            .find(|f| f.to_wire() == v)
            .ok_or(DecodeError::BadValue {
                field: "auth_function",
                value: i64::from(v),
            })
    }

    /// The name used by the admin API, the CLI and the POS script.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthFunction::ManualSignIn => "manual-sign-in",
            AuthFunction::WorkModeChange => "work-mode",
            AuthFunction::Reversal => "reversal",
            AuthFunction::Statistics => "statistics",
            AuthFunction::ClearOfflineTime => "clear-offline-time",
        }
    }

    pub fn parse(s: &str) -> Option<AuthFunction> {
        AuthFunction::ALL.into_iter().find(|f| f.as_str() == s)
    }

    const fn bit(self) -> u8 {
        1 << (self.to_wire() - 1)
    }
}

/// A set of [`AuthFunction`]s, one bit each (bits 5–7 are always zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AuthFunctions(u8);

impl AuthFunctions {
    pub const NONE: AuthFunctions = AuthFunctions(0);
    pub const ALL: AuthFunctions = AuthFunctions(0x1F);

    /// The set of these bits; `None` when a bit names no function.
    pub const fn from_bits(bits: u8) -> Option<AuthFunctions> {
        if bits & !Self::ALL.0 == 0 {
            Some(AuthFunctions(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, f: AuthFunction) -> bool {
        self.0 & f.bit() != 0
    }

    #[must_use]
    pub const fn with(self, f: AuthFunction) -> AuthFunctions {
        AuthFunctions(self.0 | f.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = AuthFunction> {
        AuthFunction::ALL
            .into_iter()
            .filter(move |f| self.contains(*f))
    }
}

impl FromIterator<AuthFunction> for AuthFunctions {
    fn from_iter<I: IntoIterator<Item = AuthFunction>>(iter: I) -> Self {
        iter.into_iter()
            .fold(AuthFunctions::NONE, AuthFunctions::with)
    }
}

/// 0x0A request: may the operator card `card_no` authorise `function` now?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCheckRequest {
    /// The authorisation card's number (its own number space, 1 … 2³²−1).
    pub card_no: u32,
    pub function: AuthFunction,
    /// The terminal's clock, for the card's validity (85, 86).
    pub time: NaiveDateTime,
    /// The terminal's counter of checks, bound into the PIN block so that a block is never
    /// sent twice in one session.
    pub nonce: u32,
    /// The PIN under the session's PIN key (`Session::seal_pin`).
    pub pin_block: [u8; PIN_BLOCK_LEN],
}

/// 0x0A response: 0 = the function may run; 80–89 = refused; 1–9 = no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCheckResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub card_no: u32,
    pub function: AuthFunction,
    /// The operator the card belongs to (0 when refused).
    pub operator: u32,
    /// PIN attempts left before the card locks (0 when locked or refused otherwise).
    pub tries_left: u8,
}

fn read_card(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.u32()? {
        0 => Err(DecodeError::BadValue {
            field: "auth_card_no",
            value: 0,
        }),
        v => Ok(v),
    }
}

impl AuthCheckRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.card_no);
        w.u8(self.function.to_wire());
        w.datetime(&self.time)?;
        w.u32(self.nonce);
        w.bytes(&self.pin_block);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AuthCheckRequest {
            card_no: read_card(r)?,
            function: AuthFunction::from_wire(r.u8()?)?,
            time: r.datetime()?,
            nonce: r.u32()?,
            pin_block: r.array()?,
        })
    }
}

impl AuthCheckResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.card_no);
        w.u8(self.function.to_wire());
        w.u32(self.operator);
        w.u8(self.tries_left);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(AuthCheckResponse {
            code,
            info,
            card_no: read_card(r)?,
            function: AuthFunction::from_wire(r.u8()?)?,
            operator: r.u32()?,
            tries_left: r.u8()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, MsgType};

    fn body(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_body(&mut out).unwrap_or_default();
        out
    }

    // R-B11: the documented sizes (docs/protocol.md §6.18).
    #[test]
    fn layouts_have_the_documented_sizes() {
        use crate::test_vectors as tv;
        assert_eq!(
            body(&Message::AuthCheckRequest(tv::auth_check_request())).len(),
            32
        );
        assert_eq!(
            body(&Message::AuthCheckResponse(tv::auth_check_response())).len(),
            12
        );
    }

    // R-B11: a function byte outside 1–5 and card number 0 are malformed, not guessed.
    #[test]
    fn strict_decoding() {
        use crate::test_vectors as tv;
        let mut b = body(&Message::AuthCheckRequest(tv::auth_check_request()));
        assert!(Message::decode(MsgType::AuthCheck, false, &b).is_ok());
        for bad in [0u8, 6, 0xFF] {
            b[4] = bad;
            assert!(Message::decode(MsgType::AuthCheck, false, &b).is_err());
        }
        b[4] = 3;
        b[..4].copy_from_slice(&[0; 4]);
        assert!(Message::decode(MsgType::AuthCheck, false, &b).is_err());
        let mut r = body(&Message::AuthCheckResponse(tv::auth_check_response()));
        r[6] = 9;
        assert!(Message::decode(MsgType::AuthCheck, true, &r).is_err());
        r[6] = 3;
        r.push(0);
        assert!(Message::decode(MsgType::AuthCheck, true, &r).is_err());
    }

    // R-B11: a set's bits are exactly its functions; bits 5–7 name none.
    #[test]
    fn function_sets() {
        assert_eq!(AuthFunctions::from_bits(0x20), None);
        let all: AuthFunctions = AuthFunction::ALL.into_iter().collect();
        assert_eq!(all, AuthFunctions::ALL);
        for f in AuthFunction::ALL {
            assert_eq!(AuthFunction::parse(f.as_str()), Some(f));
            assert!(AuthFunctions::NONE.with(f).contains(f));
            assert_eq!(
                AuthFunctions::NONE.with(f).iter().collect::<Vec<_>>(),
                vec![f]
            );
        }
    }
}
