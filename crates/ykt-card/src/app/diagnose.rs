//! A read-only inspection of every application block of an MF1 card: what is valid, which
//! wallet copy is good, and what a terminal would do on the next tap. Writes nothing.

use super::format::{
    CardInfo, CardRecord, Directory, Header, LockStatus, PinData, TxState, Wallet, WalletDir,
};
use super::{blocks, session::Session};
use crate::error::ReaderError;
use crate::keys::SystemKeys;
use crate::reader::{CardKind, Reader};

/// What a terminal does with a wallet on the next tap (R-F4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletAction {
    /// Main and backup valid and equal: debit as usual.
    Use,
    /// The backup is bad or stale: rewrite it from the main copy.
    RepairBackup,
    /// The main copy is bad, the backup good: copy the backup over the main copy first.
    RepairMain,
    /// An interrupted transaction landed: finish its remaining writes.
    FinishInterrupted,
    /// An interrupted transaction did not land: abandon it.
    AbandonInterrupted,
    /// The card is refused for this wallet, with the reason.
    Refuse(&'static str),
}

impl WalletAction {
    pub fn usable(&self) -> bool {
        !matches!(self, WalletAction::Refuse(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletDiagnosis {
    pub wallet_no: u8,
    pub dir: WalletDir,
    /// `Err` when the sector could not be read with our keys.
    pub main: Result<Option<Wallet>, ReaderError>,
    pub backup: Result<Option<Wallet>, ReaderError>,
    pub tx_state: Result<Option<TxState>, ReaderError>,
    /// The committed records of the ring, newest first.
    pub records: Vec<CardRecord>,
    /// Ring slots holding no valid record.
    pub empty_slots: u32,
    pub action: WalletAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub uid: [u8; 4],
    pub header: Result<Option<Header>, ReaderError>,
    pub info: Result<Option<CardInfo>, ReaderError>,
    pub pin: Result<Option<PinData>, ReaderError>,
    pub lock: Result<Option<LockStatus>, ReaderError>,
    pub directory: Result<Option<Directory>, ReaderError>,
    pub wallets: Vec<WalletDiagnosis>,
}

/// Inspects the card in the field with the system keys; only reader errors that prevent
/// selecting the card fail the whole inspection.
pub fn diagnose<R: Reader + ?Sized>(
    reader: &mut R,
    keys: &SystemKeys,
) -> Result<Diagnosis, ReaderError> {
    let sel = reader.select()?;
    if sel.kind != CardKind::Mf1 {
        return Err(ReaderError::WrongCardType);
    }
    let mut s = Session::new(reader, keys.mf1_card(sel.uid));
    let header = s.read(blocks::HEADER).map(|b| Header::decode(&b));
    let info = s.read(blocks::INFO).map(|b| CardInfo::decode(&b));
    let pin = s.read(blocks::PIN).map(|b| PinData::decode(&b));
    let lock = s.read(blocks::LOCK).map(|b| LockStatus::decode(&b));
    let directory = s.read(blocks::DIRECTORY).map(|b| Directory::decode(&b));
    let mut wallets = Vec::new();
    if let Ok(Some(dir)) = &directory {
        for (no, wdir) in dir.wallets.iter().enumerate() {
            wallets.push(wallet(&mut s, no as u8, *wdir));
        }
    }
    Ok(Diagnosis {
        uid: sel.uid,
        header,
        info,
        pin,
        lock,
        directory,
        wallets,
    })
}

fn wallet<R: Reader + ?Sized>(s: &mut Session<'_, R>, no: u8, dir: WalletDir) -> WalletDiagnosis {
    let base = dir.sector * 4;
    let main = s.read(base + blocks::MAIN).map(|b| Wallet::decode(no, &b));
    let tx_state = s
        .read(base + blocks::TX_STATE)
        .map(|b| TxState::decode(no, &b));
    let backup = s
        .read(base + blocks::BACKUP)
        .map(|b| Wallet::decode(no, &b));
    let good = match (&main, &backup) {
        (Ok(Some(m)), _) => Some(*m),
        (_, Ok(Some(b))) => Some(*b),
        _ => None,
    };
    let mut action = match (&main, &backup) {
        (Err(_), _) | (_, Err(_)) => {
            WalletAction::Refuse("wallet sector unreadable with these keys")
        }
        (Ok(Some(m)), Ok(Some(b))) if m == b => WalletAction::Use,
        (Ok(Some(_)), _) => WalletAction::RepairBackup,
        (Ok(None), Ok(Some(_))) => WalletAction::RepairMain,
        (Ok(None), Ok(None)) => WalletAction::Refuse("both wallet copies damaged"),
    };
    if let (Ok(Some(tx)), Some(w)) = (&tx_state, good)
        && tx.pending
        && action.usable()
    {
        action = if w.counter == tx.counter_before + 1 && w.balance == tx.balance_after {
            WalletAction::FinishInterrupted
        } else if w.counter == tx.counter_before && w.balance == tx.balance_before {
            WalletAction::AbandonInterrupted
        } else {
            WalletAction::Refuse("interrupted transaction matches neither state")
        };
    }
    let mut records = Vec::new();
    let mut empty_slots = 0;
    let cap = dir.ring_capacity();
    for slot in 0..cap {
        let (a, b) = dir.ring_blocks(slot);
        let rec = match (s.read(a), s.read(b)) {
            (Ok(a), Ok(b)) => CardRecord::decode(no, slot, &a, &b),
            _ => None,
        };
        // Only records below the wallet's counter are committed.
        match (rec, good) {
            (Some(r), Some(w))
                if r.counter_before < w.counter && w.counter - r.counter_before <= cap =>
            {
                records.push(r)
            }
            _ => empty_slots += 1,
        }
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.counter_before));
    WalletDiagnosis {
        wallet_no: no,
        dir,
        main,
        backup,
        tx_state,
        records,
        empty_slots,
        action,
    }
}
