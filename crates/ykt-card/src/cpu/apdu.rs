//! Command and response APDU helpers and the PBOC data encodings (BCD date and time).

use chrono::{Datelike, NaiveDateTime, Timelike};

/// Status words the card answers with.
pub mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_NOT_SATISFIED: u16 = 0x6982;
    pub const PIN_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const WRONG_DATA: u16 = 0x6A80;
    pub const FILE_NOT_FOUND: u16 = 0x6A82;
    pub const RECORD_NOT_FOUND: u16 = 0x6A83;
    pub const WRONG_P1P2: u16 = 0x6A86;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    pub const APP_BLOCKED_SELECT: u16 = 0x6283;
    /// A wrong PIN, with the tries left in the low nibble.
    pub const PIN_WRONG: u16 = 0x63C0;
    pub const MAC_INVALID: u16 = 0x9302;
    pub const APP_LOCKED: u16 = 0x9303;
    pub const INSUFFICIENT_BALANCE: u16 = 0x9401;
    pub const NO_SUCH_TRANSACTION: u16 = 0x9406;
}

/// A parsed command APDU (short form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    pub le: Option<u8>,
}

impl<'a> Command<'a> {
    /// Parses cases 1–4 of ISO 7816-4 short APDUs; `None` if the lengths do not add up.
    pub fn parse(apdu: &'a [u8]) -> Option<Command<'a>> {
        let (&[cla, ins, p1, p2], rest) = apdu.split_first_chunk::<4>()?;
        let (data, le): (&[u8], Option<u8>) = match rest.len() {
            0 => (&[], None),
            1 => (&[], Some(rest[0])),
            n => {
                let lc = usize::from(rest[0]);
                if n == 1 + lc {
                    (&rest[1..], None)
                } else if n == 2 + lc {
                    (&rest[1..1 + lc], Some(rest[1 + lc]))
                } else {
                    return None;
                }
            }
        };
        Some(Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }
}

/// Builds a command APDU.
pub fn command(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut v = vec![cla, ins, p1, p2];
    if !data.is_empty() {
        v.push(data.len() as u8);
        v.extend_from_slice(data);
    }
    if let Some(le) = le {
        v.push(le);
    }
    v
}

/// Splits a response APDU into data and status word.
pub fn split_response(resp: &[u8]) -> Option<(&[u8], u16)> {
    let (data, sw) = resp.split_last_chunk::<2>()?;
    Some((data, u16::from_be_bytes(*sw)))
}

fn bcd(v: u32) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

/// `YYYYMMDD` as 4 BCD bytes.
pub fn bcd_date(t: NaiveDateTime) -> [u8; 4] {
    let y = t.year().clamp(0, 9999) as u32;
    [bcd(y / 100), bcd(y % 100), bcd(t.month()), bcd(t.day())]
}

/// `HHMMSS` as 3 BCD bytes.
pub fn bcd_time(t: NaiveDateTime) -> [u8; 3] {
    [bcd(t.hour()), bcd(t.minute()), bcd(t.second())]
}

/// Decodes `YYYYMMDD` BCD.
pub fn from_bcd_date(b: &[u8; 4]) -> Option<chrono::NaiveDate> {
    let d = |x: u8| -> Option<u32> {
        (x >> 4 <= 9 && x & 0xF <= 9).then_some(u32::from(x >> 4) * 10 + u32::from(x & 0xF))
    };
    let year = d(b[0])? * 100 + d(b[1])?;
    chrono::NaiveDate::from_ymd_opt(year as i32, d(b[2])?, d(b[3])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn apdu_cases() {
        assert_eq!(
            Command::parse(&[0x80, 0x5C, 0, 2, 4]).map(|c| c.le),
            Some(Some(4))
        );
        let c = Command::parse(&[0x80, 0x50, 1, 2, 2, 0xAA, 0xBB, 0x0F]).unwrap();
        assert_eq!((c.data, c.le), (&[0xAA, 0xBB][..], Some(0x0F)));
        assert_eq!(Command::parse(&[0x80, 0x50, 1, 2, 5, 0xAA]), None);
        assert_eq!(Command::parse(&[0x80]), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(apdu in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&apdu);
        }

        #[test]
        fn build_parse_round_trip(data in proptest::collection::vec(any::<u8>(), 1..200), le: Option<u8>) {
            let v = command(0x80, 0x54, 1, 0, &data, le);
            let c = Command::parse(&v).unwrap();
            prop_assert_eq!(c.data, &data[..]);
            prop_assert_eq!(c.le, le);
        }
    }
}
