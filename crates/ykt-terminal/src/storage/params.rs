//! The parameters the host downloads (chapter 4, R-P5.1), persisted atomically in A/B slots
//! with our own compact encoding (the terminal's flash format, independent of the wire).

use chrono::NaiveTime;
use ykt_proto::{
    ClassSet, ConsumptionMode, Fen, MerchantNo, PriceItem, TerminalParams, WorkMode, WorkingHours,
};

use super::codec::{DecodeError, Reader, Writer};
use super::flash::{Flash, FlashError, Region};
use super::slots::SlotStore;

/// Longest price list a terminal keeps (keyboard-coded mode, R-F4.10).
pub const MAX_PRICE_ITEMS: usize = 1024;
/// Most working-hours windows.
pub const MAX_WORKING_HOURS: usize = 32;
/// Longest merchant name in bytes (UTF-8).
pub const MAX_MERCHANT_NAME: usize = 64;

const SLOTS: SlotStore = SlotStore {
    region: Region::Params,
    magic: *b"YKP1",
    base: 0,
    slot_size: 16 * 1024,
};
const FORMAT: u8 = 1;

/// Everything the terminal keeps between power cycles about its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedParams {
    /// The host's parameters; `None` until the first successful download.
    pub params: Option<TerminalParams>,
    /// Saved at sign-in and used when a later sign-in times out; 0 after an error (R-P5.1).
    pub merchant_no: MerchantNo,
    pub merchant_name: String,
    /// A work mode set by hand on the terminal, overriding the host's (R-F4.18).
    pub manual_work_mode: Option<WorkMode>,
}

impl SavedParams {
    /// The mode the terminal works in: the hand-set one, else the host's, else full online.
    pub fn work_mode(&self) -> WorkMode {
        self.manual_work_mode
            .or(self.params.as_ref().map(|p| p.work_mode))
            .unwrap_or(WorkMode::FullOnline)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("parameters rejected: {0}")]
    Invalid(&'static str),
    #[error("stored parameters are unreadable: {0}")]
    Corrupt(#[from] DecodeError),
    #[error(transparent)]
    Flash(#[from] FlashError),
}

/// The parameter store: the current value in memory, the truth on flash.
#[derive(Debug)]
pub struct ParamsStore {
    generation: u64,
    saved: SavedParams,
}

impl ParamsStore {
    /// Loads the newest intact copy; blank flash gives the defaults.
    pub fn open<F: Flash + ?Sized>(flash: &mut F) -> Result<ParamsStore, ParamsError> {
        Ok(match SLOTS.load(flash)? {
            Some(loaded) => ParamsStore {
                generation: loaded.generation,
                saved: decode(&loaded.payload)?,
            },
            None => ParamsStore {
                generation: 0,
                saved: SavedParams::default(),
            },
        })
    }

    pub fn get(&self) -> &SavedParams {
        &self.saved
    }

    /// Replaces the saved parameters atomically; returns once they are durable.
    pub fn save<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        saved: SavedParams,
    ) -> Result<(), ParamsError> {
        let payload = encode(&saved)?;
        SLOTS.store(flash, self.generation + 1, &payload)?;
        self.generation += 1;
        self.saved = saved;
        Ok(())
    }

    /// Changes some fields and saves, e.g. `store.update(flash, |p| p.merchant_no = 0)`.
    pub fn update<F: Flash + ?Sized>(
        &mut self,
        flash: &mut F,
        change: impl FnOnce(&mut SavedParams),
    ) -> Result<(), ParamsError> {
        let mut next = self.saved.clone();
        change(&mut next);
        self.save(flash, next)
    }
}

fn work_mode_code(m: WorkMode) -> u8 {
    match m {
        WorkMode::FullOnline => 0,
        WorkMode::Auto => 1,
        WorkMode::Offline => 2,
    }
}

fn work_mode_from(code: u8) -> Result<WorkMode, DecodeError> {
    Ok(match code {
        0 => WorkMode::FullOnline,
        1 => WorkMode::Auto,
        2 => WorkMode::Offline,
        _ => return Err(DecodeError::Invalid("work mode")),
    })
}

fn check_money(v: Fen, what: &'static str) -> Result<(), ParamsError> {
    if v < 0 {
        Err(ParamsError::Invalid(what))
    } else {
        Ok(())
    }
}

fn validate(saved: &SavedParams) -> Result<(), ParamsError> {
    if saved.merchant_name.len() > MAX_MERCHANT_NAME {
        return Err(ParamsError::Invalid("merchant name longer than 64 bytes"));
    }
    let Some(p) = &saved.params else {
        return Ok(());
    };
    if p.price_list.len() > MAX_PRICE_ITEMS {
        return Err(ParamsError::Invalid("more than 1024 price items"));
    }
    if p.working_hours.len() > MAX_WORKING_HOURS {
        return Err(ParamsError::Invalid("more than 32 working-hours windows"));
    }
    if p.fee_rates.iter().any(|&r| r > 100) {
        return Err(ParamsError::Invalid("fee rate above 100 %"));
    }
    check_money(p.fixed_amount, "negative fixed amount")?;
    check_money(p.max_balance, "negative maximum balance")?;
    check_money(p.min_balance, "negative minimum balance")?;
    check_money(p.single_password_threshold, "negative password threshold")?;
    check_money(p.daily_password_threshold, "negative password threshold")?;
    if p.price_list.iter().any(|i| i.price < 0) {
        return Err(ParamsError::Invalid("negative price"));
    }
    Ok(())
}

fn encode_time(w: &mut Writer, t: NaiveTime) {
    w.u32(chrono::Timelike::num_seconds_from_midnight(&t));
    w.u32(chrono::Timelike::nanosecond(&t));
}

fn decode_time(r: &mut Reader<'_>) -> Result<NaiveTime, DecodeError> {
    let (secs, nanos) = (r.u32()?, r.u32()?);
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
        .ok_or(DecodeError::Invalid("time of day"))
}

pub(crate) fn encode(saved: &SavedParams) -> Result<Vec<u8>, ParamsError> {
    validate(saved)?;
    let mut w = Writer::default();
    w.u8(FORMAT);
    w.u32(saved.merchant_no);
    w.u8(saved.merchant_name.len() as u8);
    w.bytes(saved.merchant_name.as_bytes());
    w.u8(saved.manual_work_mode.map_or(0xFF, work_mode_code));
    match &saved.params {
        None => w.u8(0),
        Some(p) => {
            w.u8(1);
            w.u32(p.version);
            w.u8(work_mode_code(p.work_mode));
            w.u8(match p.consumption_mode {
                ConsumptionMode::UnitPrice => 0,
                ConsumptionMode::FixedAmount => 1,
                ConsumptionMode::Coded => 2,
            });
            w.i64(p.fixed_amount);
            w.u16(p.price_list.len() as u16);
            for item in &p.price_list {
                w.u16(item.code);
                w.i64(item.price);
                w.u16(item.subject);
            }
            w.bytes(&p.allowed_classes.0);
            w.bytes(&p.fee_rates);
            w.i64(p.max_balance);
            w.i64(p.min_balance);
            w.u16(p.max_daily_uses);
            w.i64(p.single_password_threshold);
            w.i64(p.daily_password_threshold);
            w.u8(p.wallet_no);
            w.u16(p.max_offline_hours);
            w.u8(p.working_hours.len() as u8);
            for h in &p.working_hours {
                encode_time(&mut w, h.start);
                encode_time(&mut w, h.end);
            }
        }
    }
    debug_assert!(w.0.len() <= SLOTS.max_payload());
    Ok(w.0)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<SavedParams, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.u8()? != FORMAT {
        return Err(DecodeError::Invalid("parameters format"));
    }
    let merchant_no = r.u32()?;
    let name_len = r.u8()? as usize;
    let merchant_name = String::from_utf8(r.take(name_len)?.to_vec())
        .map_err(|_| DecodeError::Invalid("merchant name"))?;
    let manual_work_mode = match r.u8()? {
        0xFF => None,
        code => Some(work_mode_from(code)?),
    };
    let params = match r.u8()? {
        0 => None,
        1 => Some(decode_params(&mut r)?),
        _ => return Err(DecodeError::Invalid("parameters flag")),
    };
    r.finish()?;
    Ok(SavedParams {
        params,
        merchant_no,
        merchant_name,
        manual_work_mode,
    })
}

fn decode_params(r: &mut Reader<'_>) -> Result<TerminalParams, DecodeError> {
    let version = r.u32()?;
    let work_mode = work_mode_from(r.u8()?)?;
    let consumption_mode = match r.u8()? {
        0 => ConsumptionMode::UnitPrice,
        1 => ConsumptionMode::FixedAmount,
        2 => ConsumptionMode::Coded,
        _ => return Err(DecodeError::Invalid("consumption mode")),
    };
    let fixed_amount = r.i64()?;
    let items = r.u16()? as usize;
    if items > MAX_PRICE_ITEMS {
        return Err(DecodeError::Invalid("price list length"));
    }
    let mut price_list = Vec::with_capacity(items);
    for _ in 0..items {
        price_list.push(PriceItem {
            code: r.u16()?,
            price: r.i64()?,
            subject: r.u16()?,
        });
    }
    let allowed_classes = ClassSet(r.bytes()?);
    let fee_rates: [u8; 256] = r.bytes()?;
    let max_balance = r.i64()?;
    let min_balance = r.i64()?;
    let max_daily_uses = r.u16()?;
    let single_password_threshold = r.i64()?;
    let daily_password_threshold = r.i64()?;
    let wallet_no = r.u8()?;
    let max_offline_hours = r.u16()?;
    let windows = r.u8()? as usize;
    if windows > MAX_WORKING_HOURS {
        return Err(DecodeError::Invalid("working hours count"));
    }
    let mut working_hours = Vec::with_capacity(windows);
    for _ in 0..windows {
        working_hours.push(WorkingHours {
            start: decode_time(r)?,
            end: decode_time(r)?,
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
    })
}
