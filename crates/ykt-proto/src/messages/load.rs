//! Money onto the card (`docs/loads.md`, R-B4, R-B5): load authorisation (0x08) and what
//! waits for a card (0x09).

use chrono::NaiveDateTime;

use super::records::{card_type_from_wire, card_type_to_wire};
use super::{read_card_no, read_codes, write_codes};
use crate::codes::{InfoCode, ReturnCode};
use crate::error::{DecodeError, EncodeError};
use crate::types::{CardNo, CardType, Fen, TerminalSerial};
use crate::wire::{Reader, Writer};

/// Bytes of the reserved tail of a load request (a bank reference, once a bank needs one).
const LOAD_RESERVED: usize = 16;

/// Where the money of a load comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoadPurpose {
    /// 充值: cash taken by the terminal's operator.
    TopUpCash,
    /// 充值: from the cardholder's bank.
    TopUpBank,
    /// 领取: everything that waits for the card (card-office deposits, subsidies).
    Pickup,
}

impl LoadPurpose {
    const fn to_wire(self) -> u8 {
        match self {
            LoadPurpose::TopUpCash => 1,
            LoadPurpose::TopUpBank => 2,
            LoadPurpose::Pickup => 3,
        }
    }

    fn from_wire(v: u8) -> Result<LoadPurpose, DecodeError> {
        match v {
            1 => Ok(LoadPurpose::TopUpCash),
            2 => Ok(LoadPurpose::TopUpBank),
            3 => Ok(LoadPurpose::Pickup),
            _ => Err(DecodeError::BadValue {
                field: "load_purpose",
                value: i64::from(v),
            }),
        }
    }
}

/// A CPU card's answer to INITIALIZE FOR LOAD, which the host's MAC2 answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLoadInit {
    /// The purse's online transaction sequence number (联机交易序号) before the load.
    pub online_seq: u16,
    /// The card's pseudo-random number.
    pub random: [u8; 4],
    pub mac1: [u8; 4],
    /// The terminal ID the terminal sent in INITIALIZE FOR LOAD.
    pub terminal_id: [u8; 6],
}

/// The card a load is for: an MF1 card needs nothing more; a CPU card's load carries its
/// INITIALIZE FOR LOAD answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadCard {
    Mf1,
    Cpu(CpuLoadInit),
}

impl LoadCard {
    pub const fn card_type(&self) -> CardType {
        match self {
            LoadCard::Mf1 => CardType::Mf1,
            LoadCard::Cpu(_) => CardType::Cpu,
        }
    }
}

/// 0x08 request: the card as the terminal read it and the load it wants to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadRequest {
    pub purpose: LoadPurpose,
    pub card_no: CardNo,
    pub card: LoadCard,
    /// The card's lifetime transaction counter before the load (R-H5).
    pub card_counter: u32,
    pub balance_before: Fen,
    /// The money to put on the card (a pick-up: the amount 0x09 answered).
    pub amount: Fen,
    /// The card's subsidy sequence (补助序号) before the load.
    pub subsidy_seq: u16,
    pub wallet_no: u8,
    /// The terminal's serial of the record it journalled for this load.
    pub serial: TerminalSerial,
    pub time: NaiveDateTime,
}

/// 0x08 response: ret 0 = write the card; 1–9 = no answer; any other code is final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub serial: TerminalSerial,
    pub card_no: CardNo,
    /// The amount authorised.
    pub amount: Fen,
    /// The card's balance after the load, as the host expects it.
    pub balance_after: Fen,
    /// The card's subsidy sequence after the load (a top-up leaves it unchanged).
    pub subsidy_seq_after: u16,
    /// CPU: the MAC2 for CREDIT FOR LOAD; zeros for MF1.
    pub mac2: [u8; 4],
    /// The card account's balance on the books after the load.
    pub account_balance: Fen,
}

/// 0x09 request: the card as the terminal read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingRequest {
    pub card_no: CardNo,
    pub card_type: CardType,
    pub subsidy_seq: u16,
    pub card_counter: u32,
    pub balance: Fen,
}

/// 0x09 response: what a pick-up would put on the card now; amount 0 = nothing waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingResponse {
    pub code: ReturnCode,
    pub info: InfoCode,
    pub card_no: CardNo,
    pub amount: Fen,
    /// How many waiting loads the pick-up would claim.
    pub loads: u16,
    /// The card's subsidy sequence after the pick-up.
    pub subsidy_seq_after: u16,
}

/// Fails unless a field the layout fixes at zero is zero (the layout stays canonical).
fn expect_zero(field: &'static str, bytes: &[u8]) -> Result<(), DecodeError> {
    match bytes.iter().find(|b| **b != 0) {
        None => Ok(()),
        Some(b) => Err(DecodeError::BadValue {
            field,
            value: i64::from(*b),
        }),
    }
}

fn write_load_card(w: &mut Writer<'_>, card: &LoadCard) {
    let init = match card {
        LoadCard::Mf1 => CpuLoadInit {
            online_seq: 0,
            random: [0; 4],
            mac1: [0; 4],
            terminal_id: [0; 6],
        },
        LoadCard::Cpu(init) => *init,
    };
    w.u16(init.online_seq);
    w.bytes(&init.random);
    w.bytes(&init.mac1);
    w.bytes(&init.terminal_id);
}

fn read_load_card(r: &mut Reader<'_>, card_type: CardType) -> Result<LoadCard, DecodeError> {
    let init = CpuLoadInit {
        online_seq: r.u16()?,
        random: r.array()?,
        mac1: r.array()?,
        terminal_id: r.array()?,
    };
    match card_type {
        CardType::Cpu => Ok(LoadCard::Cpu(init)),
        CardType::Mf1 => {
            expect_zero("mf1_load_init", &init.online_seq.to_be_bytes())?;
            expect_zero("mf1_load_init", &init.random)?;
            expect_zero("mf1_load_init", &init.mac1)?;
            expect_zero("mf1_load_init", &init.terminal_id)?;
            Ok(LoadCard::Mf1)
        }
    }
}

impl LoadRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.purpose.to_wire());
        w.u32(self.card_no.get());
        w.u8(card_type_to_wire(self.card.card_type()));
        w.u32(self.card_counter);
        w.fen(self.balance_before);
        w.fen(self.amount);
        w.u16(self.subsidy_seq);
        w.u8(self.wallet_no);
        w.u32(self.serial);
        w.datetime(&self.time)?;
        write_load_card(w, &self.card);
        w.bytes(&[0; LOAD_RESERVED]);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let purpose = LoadPurpose::from_wire(r.u8()?)?;
        let card_no = read_card_no(r)?;
        let card_type = card_type_from_wire(r.u8()?)?;
        let card_counter = r.u32()?;
        let balance_before = r.fen()?;
        let amount = r.fen()?;
        let subsidy_seq = r.u16()?;
        let wallet_no = r.u8()?;
        let serial = r.u32()?;
        let time = r.datetime()?;
        let card = read_load_card(r, card_type)?;
        expect_zero("load_reserved", r.take(LOAD_RESERVED)?)?;
        Ok(LoadRequest {
            purpose,
            card_no,
            card,
            card_counter,
            balance_before,
            amount,
            subsidy_seq,
            wallet_no,
            serial,
            time,
        })
    }
}

impl LoadResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.serial);
        w.u32(self.card_no.get());
        w.fen(self.amount);
        w.fen(self.balance_after);
        w.u16(self.subsidy_seq_after);
        w.bytes(&self.mac2);
        w.fen(self.account_balance);
        w.u16(0);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        let resp = LoadResponse {
            code,
            info,
            serial: r.u32()?,
            card_no: read_card_no(r)?,
            amount: r.fen()?,
            balance_after: r.fen()?,
            subsidy_seq_after: r.u16()?,
            mac2: r.array()?,
            account_balance: r.fen()?,
        };
        expect_zero("load_response_reserved", r.take(2)?)?;
        Ok(resp)
    }
}

impl WaitingRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.card_no.get());
        w.u8(card_type_to_wire(self.card_type));
        w.u16(self.subsidy_seq);
        w.u32(self.card_counter);
        w.fen(self.balance);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(WaitingRequest {
            card_no: read_card_no(r)?,
            card_type: card_type_from_wire(r.u8()?)?,
            subsidy_seq: r.u16()?,
            card_counter: r.u32()?,
            balance: r.fen()?,
        })
    }
}

impl WaitingResponse {
    pub(crate) fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        write_codes(w, self.code, self.info);
        w.u32(self.card_no.get());
        w.fen(self.amount);
        w.u16(self.loads);
        w.u16(self.subsidy_seq_after);
        Ok(())
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (code, info) = read_codes(r)?;
        Ok(WaitingResponse {
            code,
            info,
            card_no: read_card_no(r)?,
            amount: r.fen()?,
            loads: r.u16()?,
            subsidy_seq_after: r.u16()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(m: &crate::Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_body(&mut out).unwrap_or_default();
        out
    }

    // R-B4: the documented sizes (docs/protocol.md §6.16–6.17).
    #[test]
    fn layouts_have_the_documented_sizes() {
        use crate::Message as M;
        use crate::test_vectors as tv;
        assert_eq!(body(&M::LoadRequest(tv::load_request())).len(), 72);
        assert_eq!(body(&M::LoadResponse(tv::load_response())).len(), 42);
        assert_eq!(body(&M::WaitingRequest(tv::waiting_request())).len(), 19);
        assert_eq!(body(&M::WaitingResponse(tv::waiting_response())).len(), 18);
    }

    // R-B4, R-B5: a top-up record is kind 6 on the wire, a pick-up kind 7 (record byte 8).
    #[test]
    fn load_record_kinds_on_the_wire() {
        use crate::types::RecordKind;
        for (kind, wire) in [(RecordKind::TopUp, 6), (RecordKind::Subsidy, 7)] {
            let mut rec = crate::test_vectors::record();
            rec.kind = kind;
            let mut out = Vec::new();
            crate::write_record(&mut out, &rec).unwrap_or_default();
            assert_eq!(out[8], wire);
            assert_eq!(crate::read_record(&out).map(|r| r.kind), Ok(kind));
        }
    }

    // R-B4: an MF1 load carries no CPU fields; bytes there are malformed, not ignored.
    #[test]
    fn mf1_load_with_cpu_bytes_is_malformed() {
        use crate::test_vectors as tv;
        use crate::{Message, MsgType};
        let mut req = tv::load_request();
        req.card = LoadCard::Mf1;
        let mut b = body(&Message::LoadRequest(req));
        assert!(Message::decode(MsgType::LoadAuth, false, &b).is_ok());
        b[45] = 1; // last random byte
        assert!(Message::decode(MsgType::LoadAuth, false, &b).is_err());
        b[45] = 0;
        b[71] = 1; // reserved
        assert!(Message::decode(MsgType::LoadAuth, false, &b).is_err());
    }
}
