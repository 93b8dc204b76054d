//! Online debit (0x03, R-P5.2): the terminal asks, the host authorises.

use chrono::NaiveDateTime;

use super::records::{card_type_from_wire, card_type_to_wire};
use super::{read_card_no, read_codes, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::types::{CardNo, CardType, Fen, TerminalSerial};
use crate::wire::{Reader, Writer};

/// 0x03 request: the card as the terminal read it and the amount it wants to debit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebitRequest {
    pub card_no: CardNo,
    pub card_type: CardType,
    /// The card's lifetime transaction counter before this debit (R-H5).
    pub card_counter: u32,
    pub balance_before: Fen,
    pub amount: Fen,
    pub fee: Fen,
    pub wallet_no: u8,
    pub item_code: u16,
    /// The terminal's serial of the record it journalled for this debit.
    pub serial: TerminalSerial,
    pub time: NaiveDateTime,
}

/// 0x03 response: the authorised debit, the system's view of the balance, and how many of
/// the card's last records to collect (R-F4.17; 0 = none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebitResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub serial: TerminalSerial,
    pub card_no: CardNo,
    pub amount: Fen,
    pub fee: Fen,
    /// The card account's balance after this debit, as the host books it.
    pub balance: Fen,
    pub collect_last: u8,
}

impl DebitRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.card_no.get());
        w.u8(card_type_to_wire(self.card_type));
        w.u32(self.card_counter);
        w.fen(self.balance_before);
        w.fen(self.amount);
        w.fen(self.fee);
        w.u8(self.wallet_no);
        w.u16(self.item_code);
        w.u32(self.serial);
        w.datetime(&self.time)
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DebitRequest {
            card_no: read_card_no(r)?,
            card_type: card_type_from_wire(r.u8()?)?,
            card_counter: r.u32()?,
            balance_before: r.fen()?,
            amount: r.fen()?,
            fee: r.fen()?,
            wallet_no: r.u8()?,
            item_code: r.u16()?,
            serial: r.u32()?,
            time: r.datetime()?,
        })
    }
}

impl DebitResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.serial);
        w.u32(self.card_no.get());
        w.fen(self.amount);
        w.fen(self.fee);
        w.fen(self.balance);
        w.u8(self.collect_last);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(DebitResponse {
            code,
            info,
            serial: r.u32()?,
            card_no: read_card_no(r)?,
            amount: r.fen()?,
            fee: r.fen()?,
            balance: r.fen()?,
            collect_last: r.u8()?,
        })
    }
}
