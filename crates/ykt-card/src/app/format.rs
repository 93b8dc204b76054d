//! Byte layouts of our card application's MF1 blocks (documented in `docs/card-layout.md`).
//! Every block ends in a CRC-16/CCITT-FALSE over a context byte and bytes 0–13, so a block
//! copied to the wrong place, an all-zero block and every single-byte corruption are detected.

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use ykt_proto::types::{CardNo, DisplayNo, Fen, PhysicalId};

use crate::crypto::CRC16;
use crate::mf1::card::Block;

/// The largest balance (and amount) a 24-bit fen field holds: 167,772.15 元.
pub const MAX_FEN: Fen = 0xFF_FFFF;
/// The largest lifetime transaction counter.
pub const MAX_COUNTER: u32 = 0xFF_FFFF;
/// Our application's layout version, in the header and card-info blocks.
pub const LAYOUT_VERSION: u8 = 1;
/// Magic of the header block (sector 0, block 1).
pub const MAGIC: &[u8; 4] = b"YKT1";

fn crc(context: u8, data: &[u8]) -> u16 {
    let mut digest = CRC16.digest();
    digest.update(&[context]);
    digest.update(data);
    digest.finalize()
}

/// Seals a 16-byte block: CRC of `context ‖ bytes 0–13` in bytes 14–15 (big-endian).
pub fn seal(context: u8, block: &mut Block) {
    let c = crc(context, &block[..14]);
    block[14..16].copy_from_slice(&c.to_be_bytes());
}

/// Whether a block carries a valid seal for `context` (an all-zero block never does).
pub fn sealed(context: u8, block: &Block) -> bool {
    block.iter().any(|b| *b != 0) && crc(context, &block[..14]).to_be_bytes() == block[14..16]
}

pub fn u24(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

pub fn put_u24(out: &mut [u8], v: u32) {
    debug_assert!(v <= 0xFF_FFFF);
    out.copy_from_slice(&v.to_le_bytes()[..3]);
}

/// Dates are stored as `yy mm dd` in binary (2000–2255); `00 00 00` = none.
pub fn put_date(out: &mut [u8], date: Option<NaiveDate>) {
    match date {
        Some(d) => {
            out[0] = u8::try_from(d.year() - 2000).unwrap_or(0);
            out[1] = d.month() as u8;
            out[2] = d.day() as u8;
        }
        None => out[..3].fill(0),
    }
}

/// A stored date that is no calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadDate;

/// `None` for `00 00 00`, `Err` for an impossible date.
pub fn get_date(b: &[u8]) -> Result<Option<NaiveDate>, BadDate> {
    if b[..3] == [0, 0, 0] {
        return Ok(None);
    }
    NaiveDate::from_ymd_opt(2000 + i32::from(b[0]), u32::from(b[1]), u32::from(b[2]))
        .map(Some)
        .ok_or(BadDate)
}

pub fn date_storable(d: NaiveDate) -> bool {
    (2000..=2255).contains(&d.year())
}

/// The card's clock unit: seconds since 2000-01-01 00:00:00 (fits a `u32` until 2136).
pub fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

pub fn to_card_time(t: NaiveDateTime) -> u32 {
    u32::try_from((t - epoch()).num_seconds().max(0)).unwrap_or(u32::MAX)
}

pub fn from_card_time(s: u32) -> NaiveDateTime {
    epoch() + chrono::Duration::seconds(i64::from(s))
}

/// Sector 0 block 1: identifies a card issued by ykt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub layout: u8,
    pub key_version: u8,
}

impl Header {
    pub const CONTEXT: u8 = 0x01;

    pub fn encode(&self) -> Block {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(MAGIC);
        b[4] = self.layout;
        b[5] = self.key_version;
        seal(Self::CONTEXT, &mut b);
        b
    }

    pub fn decode(b: &Block) -> Option<Header> {
        (sealed(Self::CONTEXT, b) && &b[..4] == MAGIC && b[4] == LAYOUT_VERSION).then_some(Header {
            layout: b[4],
            key_version: b[5],
        })
    }
}

/// Sector 1 block 4: who the card is (R-T2.1, R-T2.2, R-F4.5, R-F4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardInfo {
    pub card_no: CardNo,
    pub display_no: DisplayNo,
    pub class: u8,
    pub expiry: NaiveDate,
}

impl CardInfo {
    pub const CONTEXT: u8 = 0x04;

    pub fn encode(&self) -> Block {
        let mut b = [0u8; 16];
        b[0] = LAYOUT_VERSION;
        put_u24(&mut b[1..4], self.card_no.get());
        b[4..9].copy_from_slice(&bcd10(self.display_no.get()));
        b[9] = self.class;
        put_date(&mut b[10..13], Some(self.expiry));
        seal(Self::CONTEXT, &mut b);
        b
    }

    pub fn decode(b: &Block) -> Option<CardInfo> {
        if !sealed(Self::CONTEXT, b) || b[0] != LAYOUT_VERSION {
            return None;
        }
        Some(CardInfo {
            card_no: CardNo::new(u24(&b[1..4]))?,
            display_no: DisplayNo::new(from_bcd10(&b[4..9])?)?,
            class: b[9],
            expiry: get_date(&b[10..13]).ok()??,
        })
    }
}

/// Ten decimal digits as 5 BCD bytes, most significant first.
pub fn bcd10(mut n: u64) -> [u8; 5] {
    let mut out = [0u8; 5];
    for byte in out.iter_mut().rev() {
        let lo = (n % 10) as u8;
        n /= 10;
        let hi = (n % 10) as u8;
        n /= 10;
        *byte = (hi << 4) | lo;
    }
    out
}

pub fn from_bcd10(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, byte| {
        let (hi, lo) = (byte >> 4, byte & 0x0F);
        (hi <= 9 && lo <= 9).then_some(acc * 100 + u64::from(hi) * 10 + u64::from(lo))
    })
}

/// Sector 1 block 5: PIN verification data, never the PIN (R-F4.11, R-F4.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinData {
    pub verifier: [u8; 8],
}

impl PinData {
    pub const CONTEXT: u8 = 0x05;

    pub fn encode(&self) -> Block {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.verifier);
        seal(Self::CONTEXT, &mut b);
        b
    }

    pub fn decode(b: &Block) -> Option<PinData> {
        let mut verifier = [0u8; 8];
        verifier.copy_from_slice(&b[..8]);
        sealed(Self::CONTEXT, b).then_some(PinData { verifier })
    }
}

/// Sector 3 block 13: the lock (blacklist) flag of R-F4.15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockStatus {
    pub locked: bool,
    /// The blacklist version of the terminal that locked the card.
    pub blacklist_version: u32,
    pub changed_at: NaiveDateTime,
    pub device: PhysicalId,
}

impl LockStatus {
    pub const CONTEXT: u8 = 0x0D;

    pub fn encode(&self) -> Block {
        let mut b = [0u8; 16];
        b[0] = u8::from(self.locked);
        b[1..5].copy_from_slice(&self.blacklist_version.to_le_bytes());
        b[5..9].copy_from_slice(&to_card_time(self.changed_at).to_le_bytes());
        b[9..13].copy_from_slice(&self.device.0);
        seal(Self::CONTEXT, &mut b);
        b
    }

    pub fn decode(b: &Block) -> Option<LockStatus> {
        if !sealed(Self::CONTEXT, b) || b[0] > 1 {
            return None;
        }
        Some(LockStatus {
            locked: b[0] == 1,
            blacklist_version: u32::from_le_bytes([b[1], b[2], b[3], b[4]]),
            changed_at: from_card_time(u32::from_le_bytes([b[5], b[6], b[7], b[8]])),
            device: PhysicalId([b[9], b[10], b[11], b[12]]),
        })
    }
}

/// One wallet's place on the card (R-F4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletDir {
    /// The sector holding main (block 0), transaction state (block 1) and backup (block 2).
    pub sector: u8,
    /// The wallet's ring of recent transactions: `ring_sectors` sectors from `ring_first`.
    pub ring_first: u8,
    pub ring_sectors: u8,
}

impl WalletDir {
    /// Records the ring holds: two blocks each, three data blocks per sector.
    pub fn ring_capacity(&self) -> u32 {
        u32::from(self.ring_sectors) * 3 / 2
    }

    /// The two blocks of ring slot `slot`.
    pub fn ring_blocks(&self, slot: u32) -> (u8, u8) {
        let block_at = |i: u32| -> u8 {
            let sector = u32::from(self.ring_first) + i / 3;
            (sector * 4 + i % 3) as u8
        };
        (block_at(slot * 2), block_at(slot * 2 + 1))
    }

    fn sectors(&self) -> impl Iterator<Item = u8> + '_ {
        std::iter::once(self.sector).chain(self.ring_first..self.ring_first + self.ring_sectors)
    }
}

/// The most wallets a directory lists.
pub const MAX_WALLETS: usize = 4;
/// Sectors with a fixed use: header, card info, directory and lock.
const FIXED_SECTORS: [u8; 3] = [0, 1, 3];

/// Sector 3 block 12: the wallet directory (R-F4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub wallets: Vec<WalletDir>,
}

impl Directory {
    pub const CONTEXT: u8 = 0x0C;

    /// Two wallets: wallet 0 in sector 4 with a 9-record ring in sectors 6–11, wallet 1 in
    /// sector 5 with a 6-record ring in sectors 12–15.
    pub fn standard() -> Directory {
        Directory {
            wallets: vec![
                WalletDir {
                    sector: 4,
                    ring_first: 6,
                    ring_sectors: 6,
                },
                WalletDir {
                    sector: 5,
                    ring_first: 12,
                    ring_sectors: 4,
                },
            ],
        }
    }

    pub fn encode(&self) -> Block {
        let mut b = [0xFFu8; 16];
        b[12..14].fill(0);
        for (i, w) in self.wallets.iter().take(MAX_WALLETS).enumerate() {
            b[i * 3..i * 3 + 3].copy_from_slice(&[w.sector, w.ring_first, w.ring_sectors]);
        }
        seal(Self::CONTEXT, &mut b);
        b
    }

    /// Decodes and checks that no two areas overlap and none uses a fixed sector.
    pub fn decode(b: &Block) -> Option<Directory> {
        if !sealed(Self::CONTEXT, b) {
            return None;
        }
        let mut wallets = Vec::new();
        for i in 0..MAX_WALLETS {
            let e = &b[i * 3..i * 3 + 3];
            if e[0] == 0xFF {
                continue;
            }
            wallets.push(WalletDir {
                sector: e[0],
                ring_first: e[1],
                ring_sectors: e[2],
            });
        }
        let dir = Directory { wallets };
        dir.valid().then_some(dir)
    }

    fn valid(&self) -> bool {
        let mut used = 0u16;
        for s in FIXED_SECTORS {
            used |= 1 << s;
        }
        for w in &self.wallets {
            if w.ring_sectors < 2 || u16::from(w.ring_first) + u16::from(w.ring_sectors) > 16 {
                return false;
            }
            for s in w.sectors() {
                if s >= 16 || used & (1 << s) != 0 {
                    return false;
                }
                used |= 1 << s;
            }
        }
        !self.wallets.is_empty()
    }
}

/// A wallet's state: the main block and, identical after every write, the backup (R-F4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wallet {
    pub balance: Fen,
    /// Lifetime transaction counter (R-F4.7 interpretation, R-H5): never restarts.
    pub counter: u32,
    /// The day `daily_count` and `daily_amount` belong to.
    pub day: Option<NaiveDate>,
    /// Uses on `day` (R-F4.7).
    pub daily_count: u16,
    /// Cumulative debits on `day` (R-F4.12).
    pub daily_amount: Fen,
}

impl Wallet {
    pub fn new(balance: Fen) -> Wallet {
        Wallet {
            balance,
            counter: 0,
            day: None,
            daily_count: 0,
            daily_amount: 0,
        }
    }

    /// The daily use count and amount as of `today`: zero on a new day.
    pub fn daily_on(&self, today: NaiveDate) -> (u16, Fen) {
        if self.day == Some(today) {
            (self.daily_count, self.daily_amount)
        } else {
            (0, 0)
        }
    }

    pub fn encode(&self, wallet_no: u8) -> Block {
        debug_assert!(
            (0..=MAX_FEN).contains(&self.balance) && (0..=MAX_FEN).contains(&self.daily_amount)
        );
        let mut b = [0u8; 16];
        put_u24(&mut b[0..3], self.balance.clamp(0, MAX_FEN) as u32);
        put_u24(&mut b[3..6], self.counter.min(MAX_COUNTER));
        put_date(&mut b[6..9], self.day);
        b[9..11].copy_from_slice(&self.daily_count.to_le_bytes());
        put_u24(&mut b[11..14], self.daily_amount.clamp(0, MAX_FEN) as u32);
        seal(Self::context(wallet_no), &mut b);
        b
    }

    pub fn decode(wallet_no: u8, b: &Block) -> Option<Wallet> {
        if !sealed(Self::context(wallet_no), b) {
            return None;
        }
        Some(Wallet {
            balance: Fen::from(u24(&b[0..3])),
            counter: u24(&b[3..6]),
            day: get_date(&b[6..9]).ok()?,
            daily_count: u16::from_le_bytes([b[9], b[10]]),
            daily_amount: Fen::from(u24(&b[11..14])),
        })
    }

    fn context(wallet_no: u8) -> u8 {
        0x40 | wallet_no
    }
}

/// What a transaction did to a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxKind {
    /// A debit (消费).
    Purchase = 1,
    /// A top-up (充值) or subsidy put on the card.
    TopUp = 2,
    /// Money given back by a reversal (冲正) of an earlier debit.
    Reversal = 3,
}

impl TxKind {
    fn from_byte(b: u8) -> Option<TxKind> {
        match b {
            1 => Some(TxKind::Purchase),
            2 => Some(TxKind::TopUp),
            3 => Some(TxKind::Reversal),
            _ => None,
        }
    }
}

/// Block 1 of a wallet sector: the transaction-state record that makes a torn write
/// recoverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxState {
    /// `true` between the start of a write sequence and its end.
    pub pending: bool,
    pub kind: TxKind,
    pub counter_before: u32,
    pub balance_before: Fen,
    pub balance_after: Fen,
    /// A pick-up (领取补助): the card's subsidy sequence once it landed. The read that finds
    /// the pick-up landed writes it, so balance and sequence step together.
    pub subsidy_seq_after: Option<u16>,
}

impl TxState {
    const PENDING: u8 = 0x5A;
    const PICK_UP: u8 = 0x01;

    pub fn encode(&self, wallet_no: u8) -> Block {
        let mut b = [0u8; 16];
        b[0] = if self.pending { Self::PENDING } else { 0 };
        b[1] = self.kind as u8;
        put_u24(&mut b[2..5], self.counter_before);
        put_u24(&mut b[5..8], self.balance_before as u32);
        put_u24(&mut b[8..11], self.balance_after as u32);
        if let Some(seq) = self.subsidy_seq_after {
            b[11] = Self::PICK_UP;
            b[12..14].copy_from_slice(&seq.to_le_bytes());
        }
        seal(Self::context(wallet_no), &mut b);
        b
    }

    pub fn decode(wallet_no: u8, b: &Block) -> Option<TxState> {
        if !sealed(Self::context(wallet_no), b) || (b[0] != 0 && b[0] != Self::PENDING) {
            return None;
        }
        let subsidy_seq_after = match b[11] {
            0 if b[12..14] == [0, 0] => None,
            Self::PICK_UP => Some(u16::from_le_bytes([b[12], b[13]])),
            _ => return None,
        };
        Some(TxState {
            pending: b[0] == Self::PENDING,
            kind: TxKind::from_byte(b[1])?,
            counter_before: u24(&b[2..5]),
            balance_before: Fen::from(u24(&b[5..8])),
            balance_after: Fen::from(u24(&b[8..11])),
            subsidy_seq_after,
        })
    }

    fn context(wallet_no: u8) -> u8 {
        0x50 | wallet_no
    }
}

/// Sector 3 block 14: the card's subsidy sequence (补助序号, R-B5), the number of pick-ups
/// that landed on it. Written only by a pick-up, after its wallet write and before its
/// transaction state goes idle (see `docs/card-layout.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsidySeq(pub u16);

impl SubsidySeq {
    pub const CONTEXT: u8 = 0x0E;

    pub fn encode(&self) -> Block {
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&self.0.to_le_bytes());
        seal(Self::CONTEXT, &mut b);
        b
    }

    /// An all-zero block is sequence 0: a card issued before the block existed.
    pub fn decode(b: &Block) -> Option<SubsidySeq> {
        if b.iter().all(|x| *x == 0) {
            return Some(SubsidySeq(0));
        }
        (sealed(Self::CONTEXT, b) && b[2..14].iter().all(|x| *x == 0))
            .then_some(SubsidySeq(u16::from_le_bytes([b[0], b[1]])))
    }
}

/// One entry of a wallet's ring of recent transactions (R-F4.17): 32 bytes in two blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardRecord {
    pub kind: TxKind,
    /// The wallet's lifetime counter before this transaction.
    pub counter_before: u32,
    pub balance_before: Fen,
    pub amount: Fen,
    pub fee: Fen,
    pub balance_after: Fen,
    pub time: NaiveDateTime,
    pub device: PhysicalId,
    pub serial: u32,
    /// A pick-up (领取补助): the card's subsidy sequence after it (never 0); `None` otherwise.
    pub subsidy_seq_after: Option<u16>,
}

impl CardRecord {
    pub fn encode(&self, wallet_no: u8, slot: u32) -> [Block; 2] {
        let mut r = [0u8; 32];
        put_u24(&mut r[0..3], self.counter_before);
        r[3] = self.kind as u8;
        put_u24(&mut r[4..7], self.balance_before as u32);
        put_u24(&mut r[7..10], self.amount as u32);
        put_u24(&mut r[10..13], self.fee as u32);
        put_u24(&mut r[13..16], self.balance_after as u32);
        r[16..20].copy_from_slice(&to_card_time(self.time).to_le_bytes());
        r[20..24].copy_from_slice(&self.device.0);
        r[24..28].copy_from_slice(&self.serial.to_le_bytes());
        r[28..30].copy_from_slice(&self.subsidy_seq_after.unwrap_or(0).to_le_bytes());
        let c = Self::crc(wallet_no, slot, &r[..30]);
        r[30..32].copy_from_slice(&c.to_be_bytes());
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(&r[..16]);
        b.copy_from_slice(&r[16..]);
        [a, b]
    }

    pub fn decode(wallet_no: u8, slot: u32, a: &Block, b: &Block) -> Option<CardRecord> {
        let mut r = [0u8; 32];
        r[..16].copy_from_slice(a);
        r[16..].copy_from_slice(b);
        if r.iter().all(|x| *x == 0)
            || Self::crc(wallet_no, slot, &r[..30]).to_be_bytes() != r[30..32]
        {
            return None;
        }
        Some(CardRecord {
            counter_before: u24(&r[0..3]),
            kind: TxKind::from_byte(r[3])?,
            balance_before: Fen::from(u24(&r[4..7])),
            amount: Fen::from(u24(&r[7..10])),
            fee: Fen::from(u24(&r[10..13])),
            balance_after: Fen::from(u24(&r[13..16])),
            time: from_card_time(u32::from_le_bytes([r[16], r[17], r[18], r[19]])),
            device: PhysicalId([r[20], r[21], r[22], r[23]]),
            serial: u32::from_le_bytes([r[24], r[25], r[26], r[27]]),
            subsidy_seq_after: Some(u16::from_le_bytes([r[28], r[29]])).filter(|s| *s != 0),
        })
    }

    fn crc(wallet_no: u8, slot: u32, data: &[u8]) -> u16 {
        let mut digest = CRC16.digest();
        digest.update(&[0x60 | wallet_no, slot as u8]);
        digest.update(data);
        digest.finalize()
    }
}
