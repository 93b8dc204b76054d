//! The operator card (授权卡, R-B11) on MF1: a card of our application whose sector 2 block 8
//! carries what an offline terminal needs to authorise a protected function: the
//! authorisation card's number, the operator, the validity (from inclusive, until exclusive)
//! and the functions it authorises. Its PIN is the card's PIN verification data (block 5:
//! a keyed hash under the card's diversified key, never the PIN). Layout:
//! `docs/card-layout.md`, "Operator data".

use chrono::NaiveDate;

use super::format::{date_storable, get_date, put_date, put_u24, seal, sealed, u24};
use super::issue::{IssueError, IssueParams, issue};
use super::{AppError, Mf1App};
use crate::mf1::Mf1Card;
use crate::mf1::card::Block;
use crate::reader::Reader;

/// Sector 2 block 8: the operator data.
pub const OPERATOR_BLOCK: u8 = 8;
/// Layout version of the operator block.
pub const OPERATOR_LAYOUT: u8 = 1;
/// The function bits are those of `ykt_proto::AuthFunctions` (bits 5–7 zero).
const FUNCTION_BITS: u8 = 0x1F;

/// What an operator card carries (block 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorData {
    /// The authorisation card's number (the host's), u24: also the card info's number.
    pub auth_card_no: u32,
    /// The operator it belongs to (u24).
    pub operator: u32,
    /// First day it is valid (85 before).
    pub valid_from: NaiveDate,
    /// First day it is no longer valid (86 from then).
    pub valid_until: NaiveDate,
    /// `ykt_proto::AuthFunctions` bits (88 for a function not set).
    pub functions: u8,
}

impl OperatorData {
    pub const CONTEXT: u8 = 0x08;

    pub fn encode(&self) -> Block {
        let mut b = [0u8; 16];
        b[0] = OPERATOR_LAYOUT;
        put_u24(&mut b[1..4], self.auth_card_no & 0xFF_FFFF);
        put_u24(&mut b[4..7], self.operator & 0xFF_FFFF);
        put_date(&mut b[7..10], Some(self.valid_from));
        put_date(&mut b[10..13], Some(self.valid_until));
        b[13] = self.functions & FUNCTION_BITS;
        seal(Self::CONTEXT, &mut b);
        b
    }

    /// `None` unless the block is a sealed operator block of our layout.
    pub fn decode(b: &Block) -> Option<OperatorData> {
        if !sealed(Self::CONTEXT, b) || b[0] != OPERATOR_LAYOUT || b[13] & !FUNCTION_BITS != 0 {
            return None;
        }
        Some(OperatorData {
            auth_card_no: u24(&b[1..4]),
            operator: u24(&b[4..7]),
            valid_from: get_date(&b[7..10]).ok()??,
            valid_until: get_date(&b[10..13]).ok()??,
            functions: b[13],
        })
    }
}

/// Why an operator card cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorIssueError {
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error("the operator card's number must be the card's number (1 to 16777215)")]
    CardNo,
    #[error("operator id must be 1 to 16777215")]
    Operator,
    #[error("validity: from must be before until, both in 2000–2255")]
    Validity,
    #[error("functions: at least one, bits 0–4 only")]
    Functions,
}

/// Issues an operator card: our application (`issue`, the PIN's verification data in block
/// 5) and the operator block 8.
pub fn issue_operator(
    keys: &crate::keys::SystemKeys,
    uid: [u8; 4],
    p: &IssueParams,
    op: &OperatorData,
) -> Result<Mf1Card, OperatorIssueError> {
    if op.auth_card_no != p.card_no.get() {
        return Err(OperatorIssueError::CardNo);
    }
    if !(1..=0xFF_FFFF).contains(&op.operator) {
        return Err(OperatorIssueError::Operator);
    }
    if op.valid_from >= op.valid_until
        || !date_storable(op.valid_from)
        || !date_storable(op.valid_until)
    {
        return Err(OperatorIssueError::Validity);
    }
    if op.functions == 0 || op.functions & !FUNCTION_BITS != 0 {
        return Err(OperatorIssueError::Functions);
    }
    let mut card = issue(keys, uid, p)?;
    if let Some(b) = card.raw_block_mut(OPERATOR_BLOCK) {
        *b = op.encode();
    }
    Ok(card)
}

impl Mf1App<'_> {
    /// The operator data of the card in the field; `Ok(None)`: not an operator card.
    pub fn read_operator<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
    ) -> Result<Option<OperatorData>, AppError> {
        let (mut s, _) = self.open(reader)?;
        Ok(OperatorData::decode(&s.read(OPERATOR_BLOCK)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    proptest! {
        // R-B11: the operator block round-trips and every single-byte corruption is refused.
        #[test]
        fn operator_block_round_trip_and_corruption(
            no in 1u32..=0xFF_FFFF, op in 1u32..=0xFF_FFFF, f in 1u8..=0x1F,
            pos in 0usize..16, x in 1u8..=255,
        ) {
            let d = OperatorData {
                auth_card_no: no, operator: op, valid_from: day(2026, 1, 1),
                valid_until: day(2030, 1, 1), functions: f,
            };
            let b = d.encode();
            prop_assert_eq!(OperatorData::decode(&b), Some(d));
            let mut bad = b;
            bad[pos] ^= x;
            prop_assert_eq!(OperatorData::decode(&bad), None);
        }
    }
}
