//! Block access for the application: authenticates sectors on demand, with key A to read and
//! key B to write, exactly as a terminal's firmware sequences a tap.

use crate::error::ReaderError;
use crate::keys::Mf1CardKeys;
use crate::mf1::KeyType;
use crate::mf1::card::{Block, sector_of};
use crate::reader::Reader;

pub struct Session<'r, R: Reader + ?Sized> {
    reader: &'r mut R,
    keys: Mf1CardKeys,
    authed: Option<(u8, KeyType)>,
}

impl<'r, R: Reader + ?Sized> Session<'r, R> {
    pub fn new(reader: &'r mut R, keys: Mf1CardKeys) -> Self {
        Session {
            reader,
            keys,
            authed: None,
        }
    }

    fn ensure(&mut self, sector: u8, need_b: bool) -> Result<(), ReaderError> {
        match self.authed {
            Some((s, KeyType::B)) if s == sector => return Ok(()),
            Some((s, KeyType::A)) if s == sector && !need_b => return Ok(()),
            _ => {}
        }
        let key_type = if need_b { KeyType::B } else { KeyType::A };
        self.authed = None;
        self.reader
            .authenticate(sector, key_type, &self.keys.sector_key(sector, key_type))?;
        self.authed = Some((sector, key_type));
        Ok(())
    }

    pub fn read(&mut self, block: u8) -> Result<Block, ReaderError> {
        self.ensure(sector_of(block), false)?;
        self.reader
            .read_block(block)
            .inspect_err(|_| self.authed = None)
    }

    /// Reads with key B, ahead of writes to the same sector (saves an authentication).
    pub fn read_for_write(&mut self, block: u8) -> Result<Block, ReaderError> {
        self.ensure(sector_of(block), true)?;
        self.reader
            .read_block(block)
            .inspect_err(|_| self.authed = None)
    }

    pub fn write(&mut self, block: u8, data: &Block) -> Result<(), ReaderError> {
        self.ensure(sector_of(block), true)?;
        self.reader
            .write_block(block, data)
            .inspect_err(|_| self.authed = None)
    }
}
