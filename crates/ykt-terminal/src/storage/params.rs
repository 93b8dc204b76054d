//! The parameters the host downloads (chapter 4, R-P5.1), persisted atomically in A/B slots.
//! The host's parameters are stored as the wire's parameter block (`ykt_proto::encode_params`,
//! `docs/protocol.md` §6.15): the one encoding of `TerminalParams`. Payloads of the older
//! format 1 (our own little-endian layout) are still read; every save writes format 2.

use chrono::Timelike;
use ykt_proto::{MerchantNo, TerminalParams, WorkMode, stored_params};

use super::codec::{DecodeError, Reader, Writer};
use super::flash::{Flash, FlashError, Region};
use super::slots::SlotStore;

/// Longest price list a terminal keeps (keyboard-coded mode, R-F4.10): the wire's bound.
pub const MAX_PRICE_ITEMS: usize = ykt_proto::MAX_PRICE_ITEMS;
/// Most working-hours windows: the wire's bound (format 1 payloads held up to 32).
pub const MAX_WORKING_HOURS: usize = ykt_proto::MAX_WORKING_HOURS;
/// Longest merchant name in bytes (UTF-8).
pub const MAX_MERCHANT_NAME: usize = 64;

pub(super) const SLOTS: SlotStore = SlotStore {
    region: Region::Params,
    magic: *b"YKP1",
    base: 0,
    slot_size: 16 * 1024,
};
/// Payload format written now: the parameters as the wire's block (with its operator-card
/// byte, R-B11).
const FORMAT: u8 = 3;
/// The block before its operator-card byte: read as "no function needs a card".
const FORMAT_V2: u8 = 2;
/// The older payload format: the parameters in our own layout (read only).
const FORMAT_V1: u8 = 1;

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
    Invalid(String),
    #[error("stored parameters are unreadable: {0}")]
    Corrupt(#[from] DecodeError),
    #[error("stored parameters are unreadable: {0}")]
    CorruptParams(#[from] ykt_proto::DecodeError),
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
        SLOTS.replace(flash, &mut self.generation, &payload)?;
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

/// Payload (format 3, integers little-endian): `FORMAT | merchant_no u32 | name length u8 |
/// name | hand-set work mode u8 (0xFF none) | parameters present u8 | parameter block`.
/// Refuses what the wire could not have carried: the block's own checks (counts, whole-second
/// times, money never negative, fee rates 0–100) and a merchant name over 64 bytes.
pub(crate) fn encode(saved: &SavedParams) -> Result<Vec<u8>, ParamsError> {
    if saved.merchant_name.len() > MAX_MERCHANT_NAME {
        return Err(ParamsError::Invalid(format!(
            "merchant name longer than {MAX_MERCHANT_NAME} bytes"
        )));
    }
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
            ykt_proto::encode_params(p, &mut w.0)
                .map_err(|e| ParamsError::Invalid(e.to_string()))?;
        }
    }
    debug_assert!(w.0.len() <= SLOTS.max_payload());
    Ok(w.0)
}

/// Format-1 parameters as format 2 holds them, so that the next save (every sign-in saves)
/// cannot fail: times of day cut to whole seconds (a fraction means nothing for working
/// hours). Parameters no download could carry even so (more windows than the wire's 16, …)
/// are dropped: the terminal has none until the host sends them again, at the next sign-in.
fn carried_forward(mut p: TerminalParams) -> Option<TerminalParams> {
    for w in &mut p.working_hours {
        w.start = w.start.with_nanosecond(0).unwrap_or(w.start);
        w.end = w.end.with_nanosecond(0).unwrap_or(w.end);
    }
    ykt_proto::encode_params(&p, &mut Vec::new())
        .is_ok()
        .then_some(p)
}

/// Reads a payload of format 3, 2 or 1.
pub(crate) fn decode(bytes: &[u8]) -> Result<SavedParams, ParamsError> {
    let mut r = Reader::new(bytes);
    let format = r.u8()?;
    if ![FORMAT, FORMAT_V2, FORMAT_V1].contains(&format) {
        return Err(DecodeError::Invalid("parameters format").into());
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
        0 => {
            r.finish()?;
            None
        }
        1 => {
            // The parameters fill the rest of the payload.
            let rest = r.take(r.remaining())?;
            if format == FORMAT {
                Some(ykt_proto::decode_params(rest)?)
            } else if format == FORMAT_V2 {
                Some(ykt_proto::decode_params_before_operator_card(rest)?)
            } else {
                carried_forward(stored_params::decode_flash_v1(rest)?)
            }
        }
        _ => return Err(DecodeError::Invalid("parameters flag").into()),
    };
    Ok(SavedParams {
        params,
        merchant_no,
        merchant_name,
        manual_work_mode,
    })
}
