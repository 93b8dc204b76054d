//! Primitive field codecs: big-endian integers, money, BCD date-times and a bounds-checked
//! reader. Every read checks the remaining length first, so no input can panic.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::error::{DecodeError, EncodeError};

/// Length of a date-time on the wire: 7 bytes of packed BCD, `YY YY MM DD hh mm ss`.
pub const DATETIME_LEN: usize = 7;
/// Length of a time of day on the wire: 3 bytes of packed BCD, `hh mm ss`.
pub const TIME_LEN: usize = 3;

/// Appends fields to a caller's buffer.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    /// Money: 8-byte signed big-endian fen.
    pub(crate) fn fen(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }
    pub(crate) fn datetime(&mut self, t: &NaiveDateTime) -> Result<(), EncodeError> {
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return Err(EncodeError::DateOutOfRange);
        }
        let year = year as u32;
        self.out.extend_from_slice(&[
            bcd((year / 100) as u8),
            bcd((year % 100) as u8),
            bcd(t.month() as u8),
            bcd(t.day() as u8),
        ]);
        self.time(&t.time());
        Ok(())
    }
    pub(crate) fn time(&mut self, t: &NaiveTime) {
        // Leap seconds (chrono's second 60) are written as 59.
        self.out.extend_from_slice(&[
            bcd(t.hour() as u8),
            bcd(t.minute() as u8),
            bcd(t.second().min(59) as u8),
        ]);
    }
}

fn bcd(v: u8) -> u8 {
    debug_assert!(v < 100);
    ((v / 10) << 4) | (v % 10)
}

fn unbcd(b: u8) -> Result<u32, DecodeError> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    if hi > 9 || lo > 9 {
        return Err(DecodeError::BadBcd(b));
    }
    Ok(u32::from(hi) * 10 + u32::from(lo))
}

/// Reads fields from a body; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn fen(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadValue {
                field: "flag",
                value: i64::from(v),
            }),
        }
    }

    pub(crate) fn datetime(&mut self) -> Result<NaiveDateTime, DecodeError> {
        let b: [u8; 4] = self.array()?;
        let year = unbcd(b[0])? * 100 + unbcd(b[1])?;
        let date = NaiveDate::from_ymd_opt(year as i32, unbcd(b[2])?, unbcd(b[3])?)
            .ok_or(DecodeError::BadDate)?;
        Ok(date.and_time(self.time()?))
    }

    pub(crate) fn time(&mut self) -> Result<NaiveTime, DecodeError> {
        let b: [u8; 3] = self.array()?;
        NaiveTime::from_hms_opt(unbcd(b[0])?, unbcd(b[1])?, unbcd(b[2])?)
            .ok_or(DecodeError::BadDate)
    }

    /// Fails unless every byte was consumed: trailing bytes mean a layout mismatch.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}
