//! [`TerminalParams`] at rest: the host's `devices.params` column and the terminal's flash
//! copy store the same parameter block the wire carries (`docs/protocol.md` §6.15), so one
//! codec ([`crate::encode_params`] / [`crate::decode_params`]) serves all three.
//!
//! - [`encode`] / [`decode`]: the stored form, `FORMAT (0x03) | parameter block`. The block
//!   is checked for layout only (counts, enum values, whole-second times): a store gives back
//!   exactly what it was given, and value rules (money never negative, fee rates 0–100) stay
//!   the writer's policy. [`decode`] also reads format 2 (the block before its operator-card
//!   byte, R-B11: read as "none") and the host's older format 1.
//! - [`decode_flash_v1`]: the parameters inside the terminal's older flash payload (its
//!   format 1), for images written before the codecs were unified.
//!
//! The two legacy layouts (frozen, read-only) held the same fields as the block in another
//! order (price list after the fixed amount) with other widths:
//!
//! | | host format 1 | terminal flash format 1 | block (wire, format 2) |
//! |---|---|---|---|
//! | integers | big-endian | little-endian | big-endian |
//! | time of day | u32 seconds | u32 seconds + u32 nanoseconds | 3 bytes BCD `hh mm ss` |
//! | price items | ≤ 1,000 | ≤ 1,024 | ≤ 1,024 |
//! | windows | ≤ 16 | ≤ 32 | ≤ 16 |
//! | value checks on read | none | none | wire: §6.15; stored: none |
//!
//! Every decoder here returns errors on bad input, never panics, and allocates at most
//! 1,024 price items and 32 windows.

use chrono::NaiveTime;

use crate::error::{DecodeError, EncodeError};
use crate::messages::{
    AuthFunctions, BlockLayout, MAX_PARAMS_LEN, MAX_PRICE_ITEMS, Rules, read_block,
    work_mode_from_wire, write_block,
};
use crate::types::{ClassSet, ConsumptionMode, PriceItem, TerminalParams, WorkingHours};
use crate::wire::{Reader, Writer};

/// The leading byte of the stored form written now: the parameter block follows, ending
/// with the operator-card byte (R-B11).
pub const FORMAT: u8 = 3;
/// The stored form before the operator-card byte: read as "no function needs a card".
pub const FORMAT_V2: u8 = 2;
/// The host's `devices.params` format before the codecs were unified (read only).
pub const HOST_FORMAT_V1: u8 = 1;
/// Largest stored form.
pub const MAX_STORED_LEN: usize = 1 + MAX_PARAMS_LEN;

/// Host format 1 held at most this many price items.
const HOST_V1_MAX_PRICE_ITEMS: usize = 1_000;
const HOST_V1_MAX_WORKING_HOURS: usize = 16;
/// Terminal flash format 1 held at most this many windows.
const FLASH_V1_MAX_WORKING_HOURS: usize = 32;

/// Appends the stored form of `p` (`FORMAT | block`) to `out`. Refuses only what the block's
/// layout cannot hold exactly (see [`crate::encode_params`]), not out-of-policy values.
/// `out` is unchanged on error.
pub fn encode(p: &TerminalParams, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.push(FORMAT);
    let result = write_block(&mut Writer { out: &mut *out }, p, Rules::Layout);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes a stored form that fills `bytes` exactly: format 2 (the block, layout checks
/// only) or the host's format 1.
pub fn decode(bytes: &[u8]) -> Result<TerminalParams, DecodeError> {
    let mut r = Reader::new(bytes);
    let p = match r.u8()? {
        FORMAT => read_block(&mut r, Rules::Layout, BlockLayout::Current)?,
        FORMAT_V2 => read_block(&mut r, Rules::Layout, BlockLayout::BeforeOperatorCard)?,
        HOST_FORMAT_V1 => {
            let mut legacy = Legacy {
                r,
                little_endian: false,
            };
            let p = legacy.params(
                HOST_V1_MAX_PRICE_ITEMS,
                HOST_V1_MAX_WORKING_HOURS,
                Legacy::seconds,
            )?;
            r = legacy.r;
            p
        }
        v => {
            return Err(DecodeError::BadValue {
                field: "params format",
                value: i64::from(v),
            });
        }
    };
    r.finish()?;
    Ok(p)
}

/// Decodes the parameters of a terminal flash payload of format 1: everything after its
/// presence byte, which they must fill exactly.
pub fn decode_flash_v1(bytes: &[u8]) -> Result<TerminalParams, DecodeError> {
    let mut legacy = Legacy {
        r: Reader::new(bytes),
        little_endian: true,
    };
    let p = legacy.params(
        MAX_PRICE_ITEMS,
        FLASH_V1_MAX_WORKING_HOURS,
        Legacy::seconds_and_nanos,
    )?;
    legacy.r.finish()?;
    Ok(p)
}

/// A reader of the two legacy layouts (same field order, different widths).
struct Legacy<'a> {
    r: Reader<'a>,
    little_endian: bool,
}

impl Legacy<'_> {
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.r.array()?;
        Ok(if self.little_endian {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.r.array()?;
        Ok(if self.little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.r.array()?;
        Ok(if self.little_endian {
            i64::from_le_bytes(b)
        } else {
            i64::from_be_bytes(b)
        })
    }
    fn seconds(&mut self) -> Result<NaiveTime, DecodeError> {
        let secs = self.u32()?;
        NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).ok_or(DecodeError::BadDate)
    }
    fn seconds_and_nanos(&mut self) -> Result<NaiveTime, DecodeError> {
        let (secs, nanos) = (self.u32()?, self.u32()?);
        NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos).ok_or(DecodeError::BadDate)
    }

    fn params(
        &mut self,
        max_items: usize,
        max_windows: usize,
        time: fn(&mut Self) -> Result<NaiveTime, DecodeError>,
    ) -> Result<TerminalParams, DecodeError> {
        let version = self.u32()?;
        let work_mode = work_mode_from_wire(self.r.u8()?)?;
        let consumption_mode = match self.r.u8()? {
            0 => ConsumptionMode::UnitPrice,
            1 => ConsumptionMode::FixedAmount,
            2 => ConsumptionMode::Coded,
            v => {
                return Err(DecodeError::BadValue {
                    field: "consumption_mode",
                    value: i64::from(v),
                });
            }
        };
        let fixed_amount = self.i64()?;
        let n = usize::from(self.u16()?);
        if n > max_items {
            return Err(DecodeError::TooMany {
                field: "price_list",
                count: n,
                max: max_items,
            });
        }
        let mut price_list = Vec::with_capacity(n);
        for _ in 0..n {
            price_list.push(PriceItem {
                code: self.u16()?,
                price: self.i64()?,
                subject: self.u16()?,
            });
        }
        let allowed_classes = ClassSet(self.r.array()?);
        let fee_rates = self.r.array::<256>()?;
        let max_balance = self.i64()?;
        let min_balance = self.i64()?;
        let max_daily_uses = self.u16()?;
        let single_password_threshold = self.i64()?;
        let daily_password_threshold = self.i64()?;
        let wallet_no = self.r.u8()?;
        let max_offline_hours = self.u16()?;
        let n = usize::from(self.r.u8()?);
        if n > max_windows {
            return Err(DecodeError::TooMany {
                field: "working_hours",
                count: n,
                max: max_windows,
            });
        }
        let mut working_hours = Vec::with_capacity(n);
        for _ in 0..n {
            working_hours.push(WorkingHours {
                start: time(self)?,
                end: time(self)?,
            });
        }
        Ok(TerminalParams {
            version,
            work_mode,
            consumption_mode,
            fixed_amount,
            price_list,
            allowed_classes,
            fee_rates,
            max_balance,
            min_balance,
            max_daily_uses,
            single_password_threshold,
            daily_password_threshold,
            wallet_no,
            max_offline_hours,
            working_hours,
            operator_card: AuthFunctions::NONE,
        })
    }
}
