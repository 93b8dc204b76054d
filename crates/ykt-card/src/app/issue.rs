//! Personalisation: turns a blank MF1 card into one of ours (what the issuing desk does).

use chrono::NaiveDate;
use ykt_proto::types::{CardNo, DisplayNo, Fen, PhysicalId};

use super::blocks;
use super::format::{
    CardInfo, Directory, Header, LAYOUT_VERSION, LockStatus, MAX_FEN, PinData, SubsidySeq, TxKind,
    TxState, Wallet, epoch,
};
use crate::keys::{SystemKeys, valid_pin};
use crate::mf1::access::{AccessBits, DATA_READ_AB_WRITE_B, TRAILER_KEY_B};
use crate::mf1::card::{SECTORS, trailer, trailer_of};
use crate::mf1::{KeyType, Mf1Card};

/// What the issuing desk puts on a new card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueParams {
    pub card_no: CardNo,
    pub display_no: DisplayNo,
    pub class: u8,
    pub expiry: NaiveDate,
    /// Opening balance of each wallet of the standard directory (missing = 0).
    pub balances: Vec<Fen>,
    pub pin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("balance {0} fen is out of range 0–{MAX_FEN}")]
    Balance(Fen),
    #[error("more balances than wallets")]
    TooManyWallets,
    #[error("a PIN is 4 to 12 digits")]
    Pin,
    #[error("expiry {0} cannot be stored (years 2000–2255)")]
    Expiry(NaiveDate),
}

/// The access setting of every sector of ours: data read with A or B, written with B only;
/// key B alone may change keys and access bits (`78 77 88`).
pub const ACCESS: AccessBits = AccessBits([
    DATA_READ_AB_WRITE_B,
    DATA_READ_AB_WRITE_B,
    DATA_READ_AB_WRITE_B,
    TRAILER_KEY_B,
]);

/// Writes our application onto a blank card with `uid` and locks every sector with its
/// diversified keys.
pub fn issue(keys: &SystemKeys, uid: [u8; 4], p: &IssueParams) -> Result<Mf1Card, IssueError> {
    issue_at_counter(keys, uid, p, 0)
}

/// [`issue`] with every wallet's lifetime counter at `counter`: the card office rewriting a
/// bad card (坏卡修复, R-B6) continues the counter the host expects, since a lifetime counter
/// never restarts (R-H5).
pub fn issue_at_counter(
    keys: &SystemKeys,
    uid: [u8; 4],
    p: &IssueParams,
    counter: u32,
) -> Result<Mf1Card, IssueError> {
    let dir = Directory::standard();
    if p.balances.len() > dir.wallets.len() {
        return Err(IssueError::TooManyWallets);
    }
    if let Some(b) = p.balances.iter().find(|b| !(0..=MAX_FEN).contains(*b)) {
        return Err(IssueError::Balance(*b));
    }
    if !valid_pin(&p.pin) {
        return Err(IssueError::Pin);
    }
    if !super::format::date_storable(p.expiry) {
        return Err(IssueError::Expiry(p.expiry));
    }
    let card_keys = keys.mf1_card(uid);
    let mut card = Mf1Card::blank(uid);
    let mut put = |block: u8, data: [u8; 16]| {
        if let Some(b) = card.raw_block_mut(block) {
            *b = data;
        }
    };
    put(
        blocks::HEADER,
        Header {
            layout: LAYOUT_VERSION,
            key_version: keys.version,
        }
        .encode(),
    );
    let info = CardInfo {
        card_no: p.card_no,
        display_no: p.display_no,
        class: p.class,
        expiry: p.expiry,
    };
    put(blocks::INFO, info.encode());
    put(
        blocks::PIN,
        PinData {
            verifier: card_keys.pin_verifier(p.card_no.get(), &p.pin),
        }
        .encode(),
    );
    put(blocks::DIRECTORY, dir.encode());
    let unlocked = LockStatus {
        locked: false,
        blacklist_version: 0,
        changed_at: epoch(),
        device: PhysicalId([0; 4]),
    };
    put(blocks::LOCK, unlocked.encode());
    put(blocks::SUBSIDY, SubsidySeq(0).encode());
    for (no, w) in dir.wallets.iter().enumerate() {
        let no = no as u8;
        let wallet = Wallet {
            counter,
            ..Wallet::new(p.balances.get(usize::from(no)).copied().unwrap_or(0))
        };
        let base = w.sector * 4;
        put(base + blocks::MAIN, wallet.encode(no));
        put(base + blocks::BACKUP, wallet.encode(no));
        let idle = TxState {
            pending: false,
            kind: TxKind::TopUp,
            counter_before: counter,
            balance_before: 0,
            balance_after: wallet.balance,
            subsidy_seq_after: None,
        };
        put(base + blocks::TX_STATE, idle.encode(no));
    }
    for sector in 0..SECTORS {
        let t = trailer(
            &card_keys.sector_key(sector, KeyType::A),
            ACCESS,
            &card_keys.sector_key(sector, KeyType::B),
        );
        put(trailer_of(sector), t);
    }
    Ok(card)
}
