//! The parameter block (every parameter of chapter 4, `docs/protocol.md` §6.15) and the
//! messages that carry it: download on request (0x07) and push from the host (0x44).
//!
//! The block is THE binary encoding of [`TerminalParams`]: the wire carries it, and the
//! host's `devices.params` column and the terminal's flash store it ([`crate::stored_params`]).
//! [`encode_params`] / [`decode_params`] are its public entry points.

use super::{AuthFunctions, check_count, read_codes, read_count, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::types::{ClassSet, ConsumptionMode, PriceItem, TerminalParams, WorkMode, WorkingHours};
use crate::wire::{Reader, Writer};

/// At most this many items in the price list of keyboard-coded mode.
pub const MAX_PRICE_ITEMS: usize = 1024;
/// At most this many working-hours windows.
pub const MAX_WORKING_HOURS: usize = 16;
/// Largest encoded parameter block: 343 bytes + 6 per window + 12 per price item.
pub const MAX_PARAMS_LEN: usize = 343 + 6 * MAX_WORKING_HOURS + 12 * MAX_PRICE_ITEMS;

/// Which layout a stored block has: the current one ends with the operator-card byte
/// (R-B11); blocks stored before it existed end with the price list and read as "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockLayout {
    Current,
    BeforeOperatorCard,
}

/// Which checks a block codec applies. The layout (counts within their limits, enum values,
/// times of day in whole seconds, no truncation) is always checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rules {
    /// §6.15 in full: money never negative, fee rates 0–100.
    Wire,
    /// Layout only: a store keeps exactly the values it was given (value rules are the
    /// writer's policy: the host's admin validation, the wire encoder on download).
    Layout,
}

pub(crate) fn work_mode_to_wire(m: WorkMode) -> u8 {
    match m {
        WorkMode::FullOnline => 0,
        WorkMode::Auto => 1,
        WorkMode::Offline => 2,
    }
}

pub(crate) fn work_mode_from_wire(v: u8) -> Result<WorkMode, DecodeError> {
    match v {
        0 => Ok(WorkMode::FullOnline),
        1 => Ok(WorkMode::Auto),
        2 => Ok(WorkMode::Offline),
        _ => Err(DecodeError::BadValue {
            field: "work_mode",
            value: i64::from(v),
        }),
    }
}

fn non_negative(field: &'static str, v: i64) -> Result<(), EncodeError> {
    if v < 0 {
        Err(EncodeError::BadValue { field, value: v })
    } else {
        Ok(())
    }
}

fn read_non_negative(r: &mut Reader<'_>, field: &'static str) -> Result<i64, DecodeError> {
    let v = r.fen()?;
    if v < 0 {
        return Err(DecodeError::BadValue { field, value: v });
    }
    Ok(v)
}

pub(crate) fn write_params(w: &mut Writer<'_>, p: &TerminalParams) -> Result<(), EncodeError> {
    write_block(w, p, Rules::Wire)
}

/// Fails unless a time of day is whole seconds: the block holds `hh mm ss`, and a codec that
/// silently dropped fractions (or a leap second) would not give back what it was given.
fn whole_seconds(t: &chrono::NaiveTime) -> Result<(), EncodeError> {
    match chrono::Timelike::nanosecond(t) {
        0 => Ok(()),
        n => Err(EncodeError::BadValue {
            field: "working_hours",
            value: i64::from(n),
        }),
    }
}

pub(crate) fn write_block(
    w: &mut Writer<'_>,
    p: &TerminalParams,
    rules: Rules,
) -> Result<(), EncodeError> {
    check_count("price_list", p.price_list.len(), MAX_PRICE_ITEMS)?;
    check_count("working_hours", p.working_hours.len(), MAX_WORKING_HOURS)?;
    for h in &p.working_hours {
        whole_seconds(&h.start)?;
        whole_seconds(&h.end)?;
    }
    if rules == Rules::Wire {
        check_values(p)?;
    }
    w.u32(p.version);
    w.u8(work_mode_to_wire(p.work_mode));
    w.u8(match p.consumption_mode {
        ConsumptionMode::UnitPrice => 0,
        ConsumptionMode::FixedAmount => 1,
        ConsumptionMode::Coded => 2,
    });
    w.fen(p.fixed_amount);
    w.bytes(&p.allowed_classes.0);
    w.bytes(&p.fee_rates);
    w.fen(p.max_balance);
    w.fen(p.min_balance);
    w.u16(p.max_daily_uses);
    w.fen(p.single_password_threshold);
    w.fen(p.daily_password_threshold);
    w.u8(p.wallet_no);
    w.u16(p.max_offline_hours);
    w.u8(p.working_hours.len() as u8);
    for h in &p.working_hours {
        w.time(&h.start);
        w.time(&h.end);
    }
    w.u16(p.price_list.len() as u16);
    for item in &p.price_list {
        w.u16(item.code);
        w.fen(item.price);
        w.u16(item.subject);
    }
    w.u8(p.operator_card.bits());
    Ok(())
}

/// The value rules of §6.15: money never negative, fee rates 0–100.
pub(crate) fn check_values(p: &TerminalParams) -> Result<(), EncodeError> {
    if let Some(rate) = p.fee_rates.iter().find(|r| **r > 100) {
        return Err(EncodeError::BadValue {
            field: "fee_rate",
            value: i64::from(*rate),
        });
    }
    for (field, v) in [
        ("fixed_amount", p.fixed_amount),
        ("max_balance", p.max_balance),
        ("min_balance", p.min_balance),
        ("single_password_threshold", p.single_password_threshold),
        ("daily_password_threshold", p.daily_password_threshold),
    ] {
        non_negative(field, v)?;
    }
    for item in &p.price_list {
        non_negative("price", item.price)?;
    }
    Ok(())
}

pub(crate) fn read_params(r: &mut Reader<'_>) -> Result<TerminalParams, DecodeError> {
    read_block(r, Rules::Wire, BlockLayout::Current)
}

pub(crate) fn read_block(
    r: &mut Reader<'_>,
    rules: Rules,
    layout: BlockLayout,
) -> Result<TerminalParams, DecodeError> {
    let read_money = |r: &mut Reader<'_>, field| match rules {
        Rules::Wire => read_non_negative(r, field),
        Rules::Layout => r.fen(),
    };
    let version = r.u32()?;
    let work_mode = work_mode_from_wire(r.u8()?)?;
    let consumption_mode = match r.u8()? {
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
    let fixed_amount = read_money(r, "fixed_amount")?;
    let allowed_classes = ClassSet(r.array()?);
    let fee_rates: [u8; 256] = r.array()?;
    if let Some(rate) = fee_rates.iter().find(|r| **r > 100 && rules == Rules::Wire) {
        return Err(DecodeError::BadValue {
            field: "fee_rate",
            value: i64::from(*rate),
        });
    }
    let max_balance = read_money(r, "max_balance")?;
    let min_balance = read_money(r, "min_balance")?;
    let max_daily_uses = r.u16()?;
    let single_password_threshold = read_money(r, "single_password_threshold")?;
    let daily_password_threshold = read_money(r, "daily_password_threshold")?;
    let wallet_no = r.u8()?;
    let max_offline_hours = r.u16()?;
    let n = read_count("working_hours", usize::from(r.u8()?), MAX_WORKING_HOURS)?;
    let mut working_hours = Vec::with_capacity(n);
    for _ in 0..n {
        working_hours.push(WorkingHours {
            start: r.time()?,
            end: r.time()?,
        });
    }
    let n = read_count("price_list", usize::from(r.u16()?), MAX_PRICE_ITEMS)?;
    let mut price_list = Vec::with_capacity(n);
    for _ in 0..n {
        let code = r.u16()?;
        let price = read_money(r, "price")?;
        price_list.push(PriceItem {
            code,
            price,
            subject: r.u16()?,
        });
    }
    let operator_card = match layout {
        BlockLayout::Current => {
            let bits = r.u8()?;
            AuthFunctions::from_bits(bits).ok_or(DecodeError::BadValue {
                field: "operator_card",
                value: i64::from(bits),
            })?
        }
        BlockLayout::BeforeOperatorCard => AuthFunctions::NONE,
    };
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
        operator_card,
    })
}

/// Encodes `p` as the parameter block of §6.15, appended to `out` (at most
/// [`MAX_PARAMS_LEN`] bytes). Refuses what the block cannot carry exactly: more than
/// [`MAX_PRICE_ITEMS`] items or [`MAX_WORKING_HOURS`] windows, a time of day with a fraction of
/// a second, negative money, a fee rate above 100. `out` is unchanged on error.
pub fn encode_params(p: &TerminalParams, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let result = write_block(&mut Writer { out: &mut *out }, p, Rules::Wire);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes one parameter block of §6.15 that fills `bytes` exactly. Never panics; allocates
/// at most [`MAX_PRICE_ITEMS`] items and [`MAX_WORKING_HOURS`] windows.
pub fn decode_params(bytes: &[u8]) -> Result<TerminalParams, DecodeError> {
    let mut r = Reader::new(bytes);
    let p = read_block(&mut r, Rules::Wire, BlockLayout::Current)?;
    r.finish()?;
    Ok(p)
}

/// Decodes a parameter block stored before the operator-card byte existed (the terminal's
/// flash format 2): the same checks as [`decode_params`]; no function needs an operator card.
pub fn decode_params_before_operator_card(bytes: &[u8]) -> Result<TerminalParams, DecodeError> {
    let mut r = Reader::new(bytes);
    let p = read_block(&mut r, Rules::Wire, BlockLayout::BeforeOperatorCard)?;
    r.finish()?;
    Ok(p)
}

/// Optional parameter block: a presence byte (0 absent, 1 present) then the block.
pub(crate) fn write_opt_params(
    w: &mut Writer<'_>,
    p: Option<&TerminalParams>,
) -> Result<(), EncodeError> {
    match p {
        None => {
            w.u8(0);
            Ok(())
        }
        Some(p) => {
            w.u8(1);
            write_params(w, p)
        }
    }
}

pub(crate) fn read_opt_params(r: &mut Reader<'_>) -> Result<Option<TerminalParams>, DecodeError> {
    if r.bool()? {
        Ok(Some(read_params(r)?))
    } else {
        Ok(None)
    }
}

/// 0x07 request: the terminal's parameter version; the host sends newer parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsRequest {
    pub version: u32,
}

/// 0x07 response: `params` is `None` when the terminal's version is current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub params: Option<TerminalParams>,
}

/// 0x44 request (host → terminal): new parameters to apply now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsPushRequest {
    pub params: TerminalParams,
}

/// 0x44 response: the version the terminal now holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamsPushResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub version: u32,
}

impl ParamsRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.version);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ParamsRequest { version: r.u32()? })
    }
}

impl ParamsResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        write_opt_params(w, self.params.as_ref())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(ParamsResponse {
            code,
            info,
            params: read_opt_params(r)?,
        })
    }
}

impl ParamsPushRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_params(w, &self.params)
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ParamsPushRequest {
            params: read_params(r)?,
        })
    }
}

impl ParamsPushResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.version);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(ParamsPushResponse {
            code,
            info,
            version: r.u32()?,
        })
    }
}
