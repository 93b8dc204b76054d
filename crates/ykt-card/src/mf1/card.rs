//! The MIFARE Classic 1K memory and command semantics: 16 sectors × 4 blocks × 16 bytes,
//! per-sector authentication, READ, WRITE and the value commands with their transfer buffer.

use super::access::{AccessBits, DataOp, KeyType, data_allows, key_b_readable, trailer_rights};
use super::value;
use crate::error::ReaderError;

pub const SECTORS: u8 = 16;
pub const BLOCKS: u8 = 64;
pub const BLOCK_LEN: usize = 16;
/// The size of a standard dump (`.mfd` / `.bin`) as NFC tools read and write it.
pub const DUMP_LEN: usize = BLOCK_LEN * BLOCKS as usize;

pub type Block = [u8; BLOCK_LEN];
pub type Key = [u8; 6];

/// The factory key of blank cards.
pub const DEFAULT_KEY: Key = [0xFF; 6];

pub const fn sector_of(block: u8) -> u8 {
    block / 4
}

pub const fn trailer_of(sector: u8) -> u8 {
    sector * 4 + 3
}

pub const fn is_trailer(block: u8) -> bool {
    block % 4 == 3
}

/// Volatile state of a card in the field; lost on power-down and on any error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Session {
    auth: Option<(u8, KeyType)>,
    transfer: Option<i32>,
}

/// A MIFARE Classic 1K card with a 4-byte UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mf1Card {
    blocks: [Block; BLOCKS as usize],
    session: Session,
}

impl Mf1Card {
    /// A blank card as it leaves the factory: transport keys and access bits everywhere.
    pub fn blank(uid: [u8; 4]) -> Mf1Card {
        let mut blocks = [[0u8; BLOCK_LEN]; BLOCKS as usize];
        let bcc = uid.iter().fold(0u8, |acc, b| acc ^ b);
        blocks[0][..4].copy_from_slice(&uid);
        // BCC, SAK 08, ATQA 0004 and a manufacturer tag, as NXP cards carry them.
        blocks[0][4..8].copy_from_slice(&[bcc, 0x08, 0x04, 0x00]);
        blocks[0][8..16].copy_from_slice(b"YKTSIM01");
        for sector in 0..SECTORS {
            blocks[trailer_of(sector) as usize] =
                trailer(&DEFAULT_KEY, AccessBits::TRANSPORT, &DEFAULT_KEY);
        }
        Mf1Card {
            blocks,
            session: Session::default(),
        }
    }

    /// Loads a standard 1024-byte dump. Keys are taken from the trailers as stored (tools that
    /// dump with known keys fill them in).
    pub fn from_dump(dump: &[u8]) -> Result<Mf1Card, DumpError> {
        if dump.len() != DUMP_LEN {
            return Err(DumpError::Length(dump.len()));
        }
        let mut blocks = [[0u8; BLOCK_LEN]; BLOCKS as usize];
        for (block, chunk) in blocks.iter_mut().zip(dump.chunks_exact(BLOCK_LEN)) {
            block.copy_from_slice(chunk);
        }
        let bcc = blocks[0][..4].iter().fold(0u8, |acc, b| acc ^ b);
        if blocks[0][4] != bcc {
            return Err(DumpError::BadBcc);
        }
        Ok(Mf1Card {
            blocks,
            session: Session::default(),
        })
    }

    /// The standard 1024-byte dump, keys included.
    pub fn to_dump(&self) -> Vec<u8> {
        self.blocks.concat()
    }

    pub fn uid(&self) -> [u8; 4] {
        [
            self.blocks[0][0],
            self.blocks[0][1],
            self.blocks[0][2],
            self.blocks[0][3],
        ]
    }

    /// Raw memory access for issuing tools and tests (what a dump shows), bypassing keys.
    pub fn raw_block(&self, block: u8) -> Option<&Block> {
        self.blocks.get(block as usize)
    }

    /// Raw write for tests that corrupt a card on purpose.
    pub fn raw_block_mut(&mut self, block: u8) -> Option<&mut Block> {
        self.blocks.get_mut(block as usize)
    }

    /// The card leaves and re-enters the field (or is halted): volatile state is gone.
    pub fn power_cycle(&mut self) {
        self.session = Session::default();
    }

    fn fail(&mut self, e: ReaderError) -> ReaderError {
        self.session = Session::default();
        e
    }

    fn access_bits(&self, sector: u8) -> Option<AccessBits> {
        let t = &self.blocks[trailer_of(sector) as usize];
        AccessBits::decode(&[t[6], t[7], t[8]])
    }

    pub fn authenticate(
        &mut self,
        sector: u8,
        key_type: KeyType,
        key: &Key,
    ) -> Result<(), ReaderError> {
        if sector >= SECTORS {
            return Err(self.fail(ReaderError::BadBlock(sector.saturating_mul(4))));
        }
        // An inconsistent trailer blocks the sector for good.
        if self.access_bits(sector).is_none() {
            return Err(self.fail(ReaderError::AuthFailed));
        }
        let t = &self.blocks[trailer_of(sector) as usize];
        let stored = match key_type {
            KeyType::A => &t[0..6],
            KeyType::B => &t[10..16],
        };
        if stored != key {
            return Err(self.fail(ReaderError::AuthFailed));
        }
        self.session = Session {
            auth: Some((sector, key_type)),
            transfer: None,
        };
        Ok(())
    }

    /// The key an operation on `block` runs under, after checking block number and auth.
    fn authed_key(&mut self, block: u8) -> Result<(AccessBits, KeyType), ReaderError> {
        if block >= BLOCKS {
            return Err(self.fail(ReaderError::BadBlock(block)));
        }
        let sector = sector_of(block);
        let key = match self.session.auth {
            Some((s, k)) if s == sector => k,
            _ => return Err(self.fail(ReaderError::NotAuthenticated(sector))),
        };
        let bits = match self.access_bits(sector) {
            Some(bits) => bits,
            None => return Err(self.fail(ReaderError::AuthFailed)),
        };
        Ok((bits, key))
    }

    fn data_check(&mut self, block: u8, op: DataOp) -> Result<(), ReaderError> {
        let (bits, key) = self.authed_key(block)?;
        let key_b_is_data = key_b_readable(bits.0[3]) && key == KeyType::B;
        let allowed =
            block != 0 && !key_b_is_data && data_allows(bits.0[(block % 4) as usize], op, key);
        let read_block0 =
            block == 0 && op == DataOp::Read && !key_b_is_data && data_allows(bits.0[0], op, key);
        if allowed || read_block0 {
            Ok(())
        } else {
            Err(self.fail(ReaderError::AccessDenied(block)))
        }
    }

    pub fn read(&mut self, block: u8) -> Result<Block, ReaderError> {
        if is_trailer(block) && block < BLOCKS {
            let (bits, key) = self.authed_key(block)?;
            let rights = trailer_rights(bits.0[3], key);
            let t = self.blocks[block as usize];
            let mut out = [0u8; BLOCK_LEN];
            if rights.read_access {
                out[6..10].copy_from_slice(&t[6..10]);
            }
            if rights.read_key_b {
                out[10..16].copy_from_slice(&t[10..16]);
            }
            return Ok(out);
        }
        self.data_check(block, DataOp::Read)?;
        Ok(self.blocks[block as usize])
    }

    /// The content a WRITE of `data` to `block` would leave, or the reason it is refused.
    pub fn planned_write(&mut self, block: u8, data: &Block) -> Result<Block, ReaderError> {
        if is_trailer(block) && block < BLOCKS {
            let (bits, key) = self.authed_key(block)?;
            let r = trailer_rights(bits.0[3], key);
            if !(r.write_key_a || r.write_access || r.write_key_b) {
                return Err(self.fail(ReaderError::AccessDenied(block)));
            }
            let mut t = self.blocks[block as usize];
            if r.write_key_a {
                t[0..6].copy_from_slice(&data[0..6]);
            }
            if r.write_access {
                t[6..10].copy_from_slice(&data[6..10]);
            }
            if r.write_key_b {
                t[10..16].copy_from_slice(&data[10..16]);
            }
            return Ok(t);
        }
        self.data_check(block, DataOp::Write)?;
        Ok(*data)
    }

    pub fn write(&mut self, block: u8, data: &Block) -> Result<(), ReaderError> {
        let new = self.planned_write(block, data)?;
        self.blocks[block as usize] = new;
        Ok(())
    }

    fn value_of(&mut self, block: u8) -> Result<i32, ReaderError> {
        match value::decode(&self.blocks[block as usize]) {
            Some((v, _)) => Ok(v),
            None => Err(self.fail(ReaderError::NotValueBlock(block))),
        }
    }

    /// INCREMENT: the transfer buffer gets the block's value plus `delta`; memory is unchanged.
    pub fn increment(&mut self, block: u8, delta: u32) -> Result<(), ReaderError> {
        self.data_check(block, DataOp::Increment)?;
        let v = self.value_of(block)?;
        let sum = i64::from(v) + i64::from(delta);
        let new = i32::try_from(sum).map_err(|_| self.fail(ReaderError::ValueOverflow))?;
        self.session.transfer = Some(new);
        Ok(())
    }

    /// DECREMENT: the transfer buffer gets the block's value minus `delta`.
    pub fn decrement(&mut self, block: u8, delta: u32) -> Result<(), ReaderError> {
        self.data_check(block, DataOp::DecrementTransferRestore)?;
        let v = self.value_of(block)?;
        let diff = i64::from(v) - i64::from(delta);
        let new = i32::try_from(diff).map_err(|_| self.fail(ReaderError::ValueOverflow))?;
        self.session.transfer = Some(new);
        Ok(())
    }

    /// RESTORE: the transfer buffer gets the block's value.
    pub fn restore(&mut self, block: u8) -> Result<(), ReaderError> {
        self.data_check(block, DataOp::DecrementTransferRestore)?;
        let v = self.value_of(block)?;
        self.session.transfer = Some(v);
        Ok(())
    }

    /// The content a TRANSFER to `block` would leave: the buffered value in bytes 0–11, the
    /// address bytes 12–15 of the destination untouched (only WRITE changes them).
    pub fn planned_transfer(&mut self, block: u8) -> Result<Block, ReaderError> {
        self.data_check(block, DataOp::DecrementTransferRestore)?;
        let Some(v) = self.session.transfer else {
            return Err(self.fail(ReaderError::EmptyTransferBuffer));
        };
        let mut out = self.blocks[block as usize];
        out[0..12].copy_from_slice(&value::encode(v, 0)[0..12]);
        Ok(out)
    }

    pub fn transfer(&mut self, block: u8) -> Result<(), ReaderError> {
        let new = self.planned_transfer(block)?;
        self.blocks[block as usize] = new;
        Ok(())
    }
}

/// Assembles a sector trailer.
pub fn trailer(key_a: &Key, bits: AccessBits, key_b: &Key) -> Block {
    let mut t = [0u8; BLOCK_LEN];
    t[0..6].copy_from_slice(key_a);
    t[6..9].copy_from_slice(&bits.encode());
    t[9] = 0x69;
    t[10..16].copy_from_slice(key_b);
    t
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    #[error("an MF1 1K dump is exactly {DUMP_LEN} bytes, this one has {0}")]
    Length(usize),
    #[error("block 0 of the dump has a wrong BCC: not a 4-byte-UID MIFARE Classic dump")]
    BadBcc,
}

#[cfg(test)]
mod tests {
    use super::super::access::*;
    use super::*;

    const UID: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];

    #[test]
    fn blank_trailer_is_the_factory_one() {
        let card = Mf1Card::blank(UID);
        let expected = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x80, 0x69, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF,
        ];
        assert_eq!(card.raw_block(7), Some(&expected));
    }

    #[test]
    fn keys_read_back_as_zero_and_key_a_never() {
        let mut card = Mf1Card::blank(UID);
        card.authenticate(1, KeyType::A, &DEFAULT_KEY).unwrap();
        let t = card.read(7).unwrap();
        assert_eq!(&t[0..6], &[0; 6]);
        assert_eq!(&t[6..9], &[0xFF, 0x07, 0x80]);
        // Transport configuration: key B is readable with key A.
        assert_eq!(&t[10..16], &[0xFF; 6]);
    }

    #[test]
    fn wrong_key_and_wrong_sector() {
        let mut card = Mf1Card::blank(UID);
        assert_eq!(
            card.authenticate(2, KeyType::A, &[0; 6]),
            Err(ReaderError::AuthFailed)
        );
        card.authenticate(2, KeyType::A, &DEFAULT_KEY).unwrap();
        assert_eq!(card.read(12), Err(ReaderError::NotAuthenticated(3)));
        // The error dropped the authentication.
        assert_eq!(card.read(8), Err(ReaderError::NotAuthenticated(2)));
    }

    #[test]
    fn block_zero_is_read_only() {
        let mut card = Mf1Card::blank(UID);
        card.authenticate(0, KeyType::A, &DEFAULT_KEY).unwrap();
        assert_eq!(card.read(0).unwrap()[..4], UID);
        assert_eq!(card.write(0, &[0; 16]), Err(ReaderError::AccessDenied(0)));
    }

    #[test]
    fn inconsistent_trailer_locks_the_sector() {
        let mut card = Mf1Card::blank(UID);
        card.authenticate(1, KeyType::A, &DEFAULT_KEY).unwrap();
        let mut t = trailer(&DEFAULT_KEY, AccessBits::TRANSPORT, &DEFAULT_KEY);
        t[7] ^= 0x10;
        card.write(7, &t).unwrap();
        assert_eq!(
            card.authenticate(1, KeyType::A, &DEFAULT_KEY),
            Err(ReaderError::AuthFailed)
        );
        assert_eq!(
            card.authenticate(1, KeyType::B, &DEFAULT_KEY),
            Err(ReaderError::AuthFailed)
        );
    }

    fn value_sector(card: &mut Mf1Card) {
        card.authenticate(2, KeyType::A, &DEFAULT_KEY).unwrap();
        let bits = AccessBits([DATA_VALUE, DATA_VALUE, DATA_READ_ONLY, TRAILER_KEY_B]);
        card.write(11, &trailer(&[1; 6], bits, &[2; 6])).unwrap();
        card.authenticate(2, KeyType::B, &[2; 6]).unwrap();
        card.write(8, &value::encode(100, 8)).unwrap();
        card.write(9, &value::encode(0, 9)).unwrap();
    }

    #[test]
    fn value_commands_change_memory_only_on_transfer() {
        let mut card = Mf1Card::blank(UID);
        value_sector(&mut card);
        card.decrement(8, 30).unwrap();
        assert_eq!(value::decode(&card.read(8).unwrap()), Some((100, 8)));
        card.transfer(8).unwrap();
        assert_eq!(value::decode(&card.read(8).unwrap()), Some((70, 8)));
        // Transfer to another block keeps that block's own address byte.
        card.increment(8, 5).unwrap();
        card.transfer(9).unwrap();
        assert_eq!(value::decode(&card.read(9).unwrap()), Some((75, 9)));
        card.restore(9).unwrap();
        card.transfer(8).unwrap();
        assert_eq!(value::decode(&card.read(8).unwrap()), Some((75, 8)));
    }

    #[test]
    fn value_access_conditions() {
        let mut card = Mf1Card::blank(UID);
        value_sector(&mut card);
        card.authenticate(2, KeyType::A, &[1; 6]).unwrap();
        // Condition 110: key A may decrement but not increment or write.
        card.decrement(8, 1).unwrap();
        assert_eq!(card.increment(8, 1), Err(ReaderError::AccessDenied(8)));
        card.authenticate(2, KeyType::A, &[1; 6]).unwrap();
        assert_eq!(card.write(8, &[0; 16]), Err(ReaderError::AccessDenied(8)));
        card.authenticate(2, KeyType::A, &[1; 6]).unwrap();
        assert_eq!(card.transfer(10), Err(ReaderError::AccessDenied(10)));
        card.authenticate(2, KeyType::A, &[1; 6]).unwrap();
        assert_eq!(card.transfer(8), Err(ReaderError::EmptyTransferBuffer));
        card.authenticate(2, KeyType::A, &[1; 6]).unwrap();
        assert_eq!(card.restore(10), Err(ReaderError::AccessDenied(10)));
        card.authenticate(2, KeyType::B, &[2; 6]).unwrap();
        card.write(8, &[0x55; 16]).unwrap();
        assert_eq!(card.decrement(8, 1), Err(ReaderError::NotValueBlock(8)));
    }

    #[test]
    fn value_overflow_is_refused() {
        let mut card = Mf1Card::blank(UID);
        value_sector(&mut card);
        card.write(8, &value::encode(i32::MAX, 8)).unwrap();
        assert_eq!(card.increment(8, 1), Err(ReaderError::ValueOverflow));
    }

    #[test]
    fn dump_round_trip_and_bad_dumps() {
        let card = Mf1Card::blank(UID);
        let dump = card.to_dump();
        assert_eq!(dump.len(), DUMP_LEN);
        assert_eq!(Mf1Card::from_dump(&dump), Ok(card));
        assert_eq!(
            Mf1Card::from_dump(&dump[..1000]),
            Err(DumpError::Length(1000))
        );
        let mut bad = dump.clone();
        bad[4] ^= 1;
        assert_eq!(Mf1Card::from_dump(&bad), Err(DumpError::BadBcc));
    }
}
