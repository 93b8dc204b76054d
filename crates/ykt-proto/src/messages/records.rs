//! The fixed 75-byte record layout and record upload (0x04). Records carry no CRC of their
//! own: the frame MAC covers them on the wire.

use super::{check_count, read_card_no, read_codes, read_count, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::types::{CardType, PhysicalId, Record, RecordKind, RecordStatus, TerminalSerial};
use crate::wire::{DATETIME_LEN, Reader, Writer};

/// Bytes of one record on the wire.
pub const RECORD_LEN: usize =
    4 + 4 + 1 + 1 + 1 + 1 + 4 + 4 + 1 + 8 * 4 + DATETIME_LEN + 4 + 1 + 4 + 2 + 4;
/// At most this many records in one upload.
pub const MAX_UPLOAD_BATCH: usize = 64;

pub(crate) fn card_type_to_wire(t: CardType) -> u8 {
    match t {
        CardType::Mf1 => 1,
        CardType::Cpu => 2,
    }
}

pub(crate) fn card_type_from_wire(v: u8) -> Result<CardType, DecodeError> {
    match v {
        1 => Ok(CardType::Mf1),
        2 => Ok(CardType::Cpu),
        _ => Err(DecodeError::BadValue {
            field: "card_type",
            value: i64::from(v),
        }),
    }
}

fn to_wire<T: PartialEq>(table: &[T], v: &T) -> u8 {
    // Wire values are 1-based positions in `RecordKind::ALL` / `RecordStatus::ALL`.
    table.iter().position(|t| t == v).map_or(0, |i| i as u8 + 1)
}

fn from_wire<T: Copy>(table: &[T], field: &'static str, v: u8) -> Result<T, DecodeError> {
    usize::from(v)
        .checked_sub(1)
        .and_then(|i| table.get(i))
        .copied()
        .ok_or(DecodeError::BadValue {
            field,
            value: i64::from(v),
        })
}

/// Appends one record in the 75-byte layout.
pub fn write_record(out: &mut Vec<u8>, rec: &Record) -> Result<(), EncodeError> {
    let mut w = Writer { out };
    write_rec(&mut w, rec)
}

/// Reads one record from exactly [`RECORD_LEN`] bytes.
pub fn read_record(bytes: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader::new(bytes);
    let rec = read_rec(&mut r)?;
    r.finish()?;
    Ok(rec)
}

fn write_rec(w: &mut Writer<'_>, rec: &Record) -> Result<(), EncodeError> {
    w.bytes(&rec.device.0);
    w.u32(rec.serial);
    w.u8(to_wire(&RecordKind::ALL, &rec.kind));
    w.u8(to_wire(&RecordStatus::ALL, &rec.status));
    w.bool(rec.online);
    w.u8(card_type_to_wire(rec.card_type));
    w.u32(rec.card_no.get());
    w.u32(rec.card_counter);
    w.u8(rec.wallet_no);
    w.fen(rec.balance_before);
    w.fen(rec.amount);
    w.fen(rec.fee);
    w.fen(rec.balance_after);
    w.datetime(&rec.time)?;
    w.u32(rec.merchant_no);
    w.bool(rec.original_serial.is_some());
    w.u32(rec.original_serial.unwrap_or(0));
    w.u16(rec.item_code);
    w.u32(rec.tac);
    Ok(())
}

fn read_rec(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
    let device = PhysicalId(r.array()?);
    let serial = r.u32()?;
    let kind = from_wire(&RecordKind::ALL, "record_kind", r.u8()?)?;
    let status = from_wire(&RecordStatus::ALL, "record_status", r.u8()?)?;
    let online = r.bool()?;
    let card_type = card_type_from_wire(r.u8()?)?;
    let card_no = read_card_no(r)?;
    let card_counter = r.u32()?;
    let wallet_no = r.u8()?;
    let balance_before = r.fen()?;
    let amount = r.fen()?;
    let fee = r.fen()?;
    let balance_after = r.fen()?;
    let time = r.datetime()?;
    let merchant_no = r.u32()?;
    let has_original = r.bool()?;
    let original = r.u32()?;
    if !has_original && original != 0 {
        return Err(DecodeError::BadValue {
            field: "original_serial",
            value: i64::from(original),
        });
    }
    Ok(Record {
        device,
        serial,
        kind,
        status,
        online,
        card_type,
        card_no,
        card_counter,
        wallet_no,
        balance_before,
        amount,
        fee,
        balance_after,
        time,
        merchant_no,
        original_serial: has_original.then_some(original),
        item_code: r.u16()?,
        tac: r.u32()?,
    })
}

/// 0x04 request: a batch of records, oldest first (R-P5.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRequest {
    pub records: Vec<Record>,
}

/// The host's verdict on one uploaded record: 0 booked (also for an identical repeat),
/// 30 same serial with different content, or any other return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordResult {
    pub serial: TerminalSerial,
    pub code: ReturnCode,
}

/// 0x04 response: one result per uploaded record, in the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub results: Vec<RecordResult>,
}

impl UploadRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        check_count("records", self.records.len(), MAX_UPLOAD_BATCH)?;
        w.u8(self.records.len() as u8);
        self.records.iter().try_for_each(|rec| write_rec(w, rec))
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = read_count("records", usize::from(r.u8()?), MAX_UPLOAD_BATCH)?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            records.push(read_rec(r)?);
        }
        Ok(UploadRequest { records })
    }
}

impl UploadResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        check_count("results", self.results.len(), MAX_UPLOAD_BATCH)?;
        write_codes(w, self.code, self.info);
        w.u8(self.results.len() as u8);
        for res in &self.results {
            w.u32(res.serial);
            w.u8(res.code.0);
        }
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        let n = read_count("results", usize::from(r.u8()?), MAX_UPLOAD_BATCH)?;
        let mut results = Vec::with_capacity(n);
        for _ in 0..n {
            results.push(RecordResult {
                serial: r.u32()?,
                code: ReturnCode(r.u8()?),
            });
        }
        Ok(UploadResponse {
            code,
            info,
            results,
        })
    }
}
