//! Our card application on MF1: card info, wallet directory, main/backup wallets, the
//! transaction-state record and the ring of recent transactions — and the operations a
//! terminal performs on them, each a fixed sequence of block operations.

pub mod diagnose;
pub mod format;
pub mod issue;
pub mod operator;
mod session;

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::types::{CardNo, CardType, Fen, PhysicalId, Record, RecordKind, RecordStatus};

use crate::error::ReaderError;
use crate::keys::{SystemKeys, valid_pin};
use crate::reader::{CardKind, Reader};
pub use format::{
    CardInfo, CardRecord, Directory, LockStatus, SubsidySeq, TxKind, TxState, Wallet, WalletDir,
};
use format::{Header, MAX_COUNTER, MAX_FEN, PinData};
use session::Session;

/// Blocks of the fixed areas.
pub mod blocks {
    pub const HEADER: u8 = 1;
    pub const INFO: u8 = 4;
    pub const PIN: u8 = 5;
    pub const DIRECTORY: u8 = 12;
    pub const LOCK: u8 = 13;
    /// The card's subsidy sequence (补助序号).
    pub const SUBSIDY: u8 = 14;
    /// Offsets inside a wallet sector.
    pub const MAIN: u8 = 0;
    pub const TX_STATE: u8 = 1;
    pub const BACKUP: u8 = 2;
}

/// Why a card-application operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("card communication: {0}")]
    Reader(#[from] ReaderError),
    #[error("not an MF1 card")]
    NotMf1,
    #[error("not a ykt card (header block missing or damaged)")]
    NotOurCard,
    #[error("card information block damaged")]
    InfoDamaged,
    #[error("wallet directory damaged")]
    DirectoryDamaged,
    #[error("wallet {0} is not on this card")]
    NoSuchWallet(u8),
    #[error("both copies of wallet {0} are damaged: card refused")]
    WalletDamaged(u8),
    #[error("wallet {0} is in an inconsistent state: card refused")]
    Inconsistent(u8),
    #[error("the card is locked (blacklisted)")]
    Locked,
    #[error("balance {balance} fen is less than {needed} fen")]
    InsufficientBalance { balance: Fen, needed: Fen },
    #[error("amount {0} fen is out of range 0–{MAX_FEN}")]
    AmountOutOfRange(Fen),
    #[error("the balance would exceed the card's limit of {MAX_FEN} fen")]
    BalanceLimit,
    #[error("the card's lifetime transaction counter is exhausted")]
    CounterExhausted,
    #[error("a different card is in the field")]
    CardChanged,
    #[error("date {0} cannot be stored on the card")]
    DateOutOfRange(NaiveDate),
    #[error("the card's subsidy sequence block is damaged: no pick-up")]
    SubsidySeqDamaged,
    #[error("the card's subsidy sequence is exhausted")]
    SubsidySeqExhausted,
    #[error("a pick-up is a credit (TxKind::TopUp)")]
    PickUpNotCredit,
}

/// How the wallet was found (R-F4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletRepair {
    /// Main and backup are valid and equal.
    Intact,
    /// The main copy was bad; the backup was copied over it.
    MainFromBackup,
    /// The backup was bad or stale; the main copy was copied over it.
    BackupFromMain,
}

/// What was done about a write sequence an earlier tap left unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// It had landed on the wallet; the remaining writes were finished.
    Finished(TxState),
    /// It had not reached the wallet; it was abandoned.
    Abandoned(TxState),
}

/// Everything a terminal needs from a tap, after validation and repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRead {
    pub uid: [u8; 4],
    pub key_version: u8,
    pub info: CardInfo,
    /// `None` when the lock block is unreadable; the card is then treated as locked.
    pub lock: Option<LockStatus>,
    pub wallet_no: u8,
    pub dir: WalletDir,
    pub wallet: Wallet,
    pub repair: WalletRepair,
    pub interrupted: Option<Interrupted>,
    /// The card's subsidy sequence (补助序号, R-B5): pick-ups that landed. `None` when its
    /// block is damaged (the card still pays; a pick-up is refused).
    pub subsidy_seq: Option<u16>,
    pin: Option<PinData>,
}

impl CardRead {
    /// The lock flag of R-F4.15; a damaged lock block counts as locked.
    pub fn locked(&self) -> bool {
        self.lock.is_none_or(|l| l.locked)
    }

    pub fn expired(&self, today: NaiveDate) -> bool {
        today > self.info.expiry
    }

    /// Whether the card carries valid PIN verification data (otherwise no PIN can be checked
    /// and PIN-protected payments must be refused).
    pub fn has_pin_data(&self) -> bool {
        self.pin.is_some()
    }
}

impl CardRecord {
    /// The record as the terminal uploads it when the host asks for the card's transactions
    /// (R-F4.17): kind `Collected`, status `Written` (it is on the card), no merchant known.
    pub fn to_collected(&self, card_no: CardNo, wallet_no: u8) -> Record {
        Record {
            device: self.device,
            serial: self.serial,
            kind: RecordKind::Collected,
            status: RecordStatus::Written,
            online: false,
            card_type: CardType::Mf1,
            card_no,
            card_counter: self.counter_before,
            wallet_no,
            balance_before: self.balance_before,
            amount: self.amount,
            fee: self.fee,
            balance_after: self.balance_after,
            time: self.time,
            merchant_no: 0,
            original_serial: None,
            item_code: 0,
            tac: 0,
        }
    }
}

/// A debit or credit as the terminal asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRequest {
    pub kind: TxKind,
    /// Consumption amount (or amount credited), fee excluded.
    pub amount: Fen,
    /// Fee by permission class (R-F4.13), debited with the amount; 0 for credits.
    pub fee: Fen,
    pub time: NaiveDateTime,
    pub device: PhysicalId,
    pub serial: u32,
}

impl TxRequest {
    /// The signed change of the balance.
    pub fn delta(&self) -> Fen {
        match self.kind {
            TxKind::Purchase => -(self.amount + self.fee),
            TxKind::TopUp | TxKind::Reversal => self.amount,
        }
    }
}

/// The terminal's memory of a transaction whose card write may not have landed (R-P5.4, R-P5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub card_no: CardNo,
    pub wallet_no: u8,
    pub counter_before: u32,
    pub device: PhysicalId,
    pub serial: u32,
}

/// The answer to "did my write land?" on a re-tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The transaction is on the card (the record proves it).
    Landed(CardRecord),
    /// The card shows no trace of it: the terminal may write it again.
    NotLanded,
    /// Another card was tapped.
    OtherCard,
    /// So many transactions followed that the ring no longer holds the answer.
    Unknown,
}

/// The card application, parameterised by the system keys the terminal's SAM holds.
pub struct Mf1App<'k> {
    keys: &'k SystemKeys,
}

impl<'k> Mf1App<'k> {
    pub fn new(keys: &'k SystemKeys) -> Self {
        Mf1App { keys }
    }

    fn open<'r, R: Reader + ?Sized>(
        &self,
        reader: &'r mut R,
    ) -> Result<(Session<'r, R>, [u8; 4]), AppError> {
        let sel = reader.select()?;
        if sel.kind != CardKind::Mf1 {
            return Err(AppError::NotMf1);
        }
        Ok((Session::new(reader, self.keys.mf1_card(sel.uid)), sel.uid))
    }

    /// Selects the card, reads and validates it, repairs a bad wallet copy from the good one
    /// (R-F4.2) and settles a write sequence an earlier tap left unfinished.
    pub fn read<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
        wallet_no: u8,
    ) -> Result<CardRead, AppError> {
        let (mut s, uid) = self.open(reader)?;
        read_in(&mut s, uid, wallet_no)
    }

    /// Debits or credits the wallet the card was just read with, as the fixed sequence:
    /// check main, state := pending, ring record, main, backup, state := done.
    pub fn transact<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
        card: &CardRead,
        req: &TxRequest,
    ) -> Result<CardRecord, AppError> {
        let mut s = Session::new(reader, self.keys.mf1_card(card.uid));
        transact_in(&mut s, card, req, None)
    }

    /// A pick-up (领取补助, R-B5): the credit `req` (kind `TopUp`) and the next subsidy
    /// sequence in one recoverable sequence: check main, state := pending (with the new
    /// sequence), ring record, main, backup, subsidy sequence, state := done. A tear anywhere
    /// leaves, after the next read, either the old balance and sequence or both new.
    pub fn pick_up<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
        card: &CardRead,
        req: &TxRequest,
    ) -> Result<CardRecord, AppError> {
        if req.kind != TxKind::TopUp {
            return Err(AppError::PickUpNotCredit);
        }
        let seq = card.subsidy_seq.ok_or(AppError::SubsidySeqDamaged)?;
        let after = seq.checked_add(1).ok_or(AppError::SubsidySeqExhausted)?;
        let mut s = Session::new(reader, self.keys.mf1_card(card.uid));
        transact_in(&mut s, card, req, Some(after))
    }

    /// Writes or clears the lock flag (R-F4.15): one block write.
    pub fn set_lock<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
        card: &CardRead,
        lock: &LockStatus,
    ) -> Result<(), AppError> {
        let mut s = Session::new(reader, self.keys.mf1_card(card.uid));
        s.write(blocks::LOCK, &lock.encode())?;
        Ok(())
    }

    /// The last `n` transactions on the card's ring for the wallet, newest first (R-F4.17).
    pub fn records<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
        card: &CardRead,
        n: usize,
    ) -> Result<Vec<CardRecord>, AppError> {
        let mut s = Session::new(reader, self.keys.mf1_card(card.uid));
        let mut out = Vec::new();
        let cap = card.dir.ring_capacity();
        let newest = card.wallet.counter;
        for back in 1..=cap.min(newest) {
            if out.len() >= n {
                break;
            }
            let counter = newest - back;
            if let Some(rec) = read_slot(&mut s, card, counter)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// On a re-tap after a failed write: reads the card (settling any unfinished sequence) and
    /// says whether the terminal's transaction is on it (R-P5.4, R-P5.7).
    pub fn resolve<R: Reader + ?Sized>(
        &self,
        reader: &mut R,
        pending: &Pending,
    ) -> Result<(CardRead, Resolution), AppError> {
        let (mut s, uid) = self.open(reader)?;
        let card = read_in(&mut s, uid, pending.wallet_no)?;
        if card.info.card_no != pending.card_no {
            return Ok((card, Resolution::OtherCard));
        }
        if card.wallet.counter <= pending.counter_before {
            return Ok((card, Resolution::NotLanded));
        }
        if card.wallet.counter - pending.counter_before > card.dir.ring_capacity() {
            return Ok((card, Resolution::Unknown));
        }
        let res = match read_slot(&mut s, &card, pending.counter_before)? {
            Some(r) if r.device == pending.device && r.serial == pending.serial => {
                Resolution::Landed(r)
            }
            Some(_) => Resolution::NotLanded,
            None => Resolution::Unknown,
        };
        Ok((card, res))
    }

    /// Checks a PIN against the card's verification data (R-F4.11, R-F4.12).
    pub fn verify_pin(&self, card: &CardRead, pin: &str) -> bool {
        let Some(data) = card.pin else { return false };
        valid_pin(pin)
            && self
                .keys
                .mf1_card(card.uid)
                .pin_verifier(card.info.card_no.get(), pin)
                == data.verifier
    }
}

fn read_in<R: Reader + ?Sized>(
    s: &mut Session<'_, R>,
    uid: [u8; 4],
    wallet_no: u8,
) -> Result<CardRead, AppError> {
    let header = Header::decode(&s.read(blocks::HEADER)?).ok_or(AppError::NotOurCard)?;
    let info = CardInfo::decode(&s.read(blocks::INFO)?).ok_or(AppError::InfoDamaged)?;
    let pin = PinData::decode(&s.read(blocks::PIN)?);
    let dir = Directory::decode(&s.read(blocks::DIRECTORY)?).ok_or(AppError::DirectoryDamaged)?;
    let lock = LockStatus::decode(&s.read(blocks::LOCK)?);
    let mut subsidy_seq = SubsidySeq::decode(&s.read(blocks::SUBSIDY)?).map(|q| q.0);
    let wdir = *dir
        .wallets
        .get(usize::from(wallet_no))
        .ok_or(AppError::NoSuchWallet(wallet_no))?;
    let base = wdir.sector * 4;
    let main = s.read(base + blocks::MAIN)?;
    let state = s.read(base + blocks::TX_STATE)?;
    let backup = s.read(base + blocks::BACKUP)?;
    let (main_w, backup_w) = (
        Wallet::decode(wallet_no, &main),
        Wallet::decode(wallet_no, &backup),
    );
    // R-F4.2: the main copy is the truth when valid; otherwise the backup, copied over it.
    let (wallet, repair) = match (main_w, backup_w) {
        (Some(m), Some(b)) if m == b => (m, WalletRepair::Intact),
        (Some(m), _) => (m, WalletRepair::BackupFromMain),
        (None, Some(b)) => {
            s.write(base + blocks::MAIN, &backup)?;
            (b, WalletRepair::MainFromBackup)
        }
        (None, None) => return Err(AppError::WalletDamaged(wallet_no)),
    };
    let mut backup_stale = repair == WalletRepair::BackupFromMain;
    let mut interrupted = None;
    if let Some(tx) = TxState::decode(wallet_no, &state).filter(|t| t.pending) {
        let landed = wallet.counter == tx.counter_before + 1 && wallet.balance == tx.balance_after;
        let untouched = wallet.counter == tx.counter_before && wallet.balance == tx.balance_before;
        if !landed && !untouched {
            return Err(AppError::Inconsistent(wallet_no));
        }
        // The backup must hold the landed state before the sequence is marked done.
        if landed && backup_stale {
            s.write(base + blocks::BACKUP, &wallet.encode(wallet_no))?;
            backup_stale = false;
        }
        // A landed pick-up's sequence, before the state goes idle (R-B5).
        if let Some(seq) = tx
            .subsidy_seq_after
            .filter(|q| landed && subsidy_seq != Some(*q))
        {
            s.write(blocks::SUBSIDY, &SubsidySeq(seq).encode())?;
            subsidy_seq = Some(seq);
        }
        s.write(
            base + blocks::TX_STATE,
            &TxState {
                pending: false,
                ..tx
            }
            .encode(wallet_no),
        )?;
        interrupted = Some(if landed {
            Interrupted::Finished(tx)
        } else {
            Interrupted::Abandoned(tx)
        });
    }
    if backup_stale {
        s.write(base + blocks::BACKUP, &wallet.encode(wallet_no))?;
    }
    Ok(CardRead {
        uid,
        key_version: header.key_version,
        info,
        lock,
        wallet_no,
        dir: wdir,
        wallet,
        repair,
        interrupted,
        subsidy_seq,
        pin,
    })
}

fn read_slot<R: Reader + ?Sized>(
    s: &mut Session<'_, R>,
    card: &CardRead,
    counter: u32,
) -> Result<Option<CardRecord>, AppError> {
    let slot = counter % card.dir.ring_capacity();
    let (a, b) = card.dir.ring_blocks(slot);
    let (a, b) = (s.read(a)?, s.read(b)?);
    Ok(CardRecord::decode(card.wallet_no, slot, &a, &b).filter(|r| r.counter_before == counter))
}

/// The write sequence of a debit or credit; `subsidy_seq_after` for a pick-up.
fn transact_in<R: Reader + ?Sized>(
    s: &mut Session<'_, R>,
    card: &CardRead,
    req: &TxRequest,
    subsidy_seq_after: Option<u16>,
) -> Result<CardRecord, AppError> {
    if card.locked() {
        return Err(AppError::Locked);
    }
    for v in [req.amount, req.fee] {
        if !(0..=MAX_FEN).contains(&v) {
            return Err(AppError::AmountOutOfRange(v));
        }
    }
    let today = req.time.date();
    if !format::date_storable(today) {
        return Err(AppError::DateOutOfRange(today));
    }
    let before = card.wallet;
    let after_balance = before.balance + req.delta();
    if after_balance < 0 {
        return Err(AppError::InsufficientBalance {
            balance: before.balance,
            needed: -req.delta(),
        });
    }
    if after_balance > MAX_FEN {
        return Err(AppError::BalanceLimit);
    }
    if before.counter >= MAX_COUNTER {
        return Err(AppError::CounterExhausted);
    }
    let (count, amount) = before.daily_on(today);
    let spent = if req.kind == TxKind::Purchase {
        req.amount + req.fee
    } else {
        0
    };
    let after = Wallet {
        balance: after_balance,
        counter: before.counter + 1,
        day: Some(today),
        // Saturating: the fields cap the day's figures; limits far below apply first.
        daily_count: count.saturating_add(u16::from(req.kind == TxKind::Purchase)),
        daily_amount: (amount + spent).min(MAX_FEN),
    };
    let w = card.wallet_no;
    let base = card.dir.sector * 4;
    // The card must still be the one that was read, in the state that was read.
    if Wallet::decode(w, &s.read_for_write(base + blocks::MAIN)?) != Some(before) {
        return Err(AppError::CardChanged);
    }
    let state = TxState {
        pending: true,
        kind: req.kind,
        counter_before: before.counter,
        balance_before: before.balance,
        balance_after: after.balance,
        subsidy_seq_after,
    };
    let record = CardRecord {
        kind: req.kind,
        counter_before: before.counter,
        balance_before: before.balance,
        amount: req.amount,
        fee: req.fee,
        balance_after: after.balance,
        time: req.time,
        device: req.device,
        serial: req.serial,
        subsidy_seq_after,
    };
    let slot = before.counter % card.dir.ring_capacity();
    let (ra, rb) = card.dir.ring_blocks(slot);
    let [rec_a, rec_b] = record.encode(w, slot);
    s.write(base + blocks::TX_STATE, &state.encode(w))?;
    s.write(ra, &rec_a)?;
    s.write(rb, &rec_b)?;
    let new = after.encode(w);
    s.write(base + blocks::MAIN, &new)?;
    s.write(base + blocks::BACKUP, &new)?;
    if let Some(seq) = subsidy_seq_after {
        s.write(blocks::SUBSIDY, &SubsidySeq(seq).encode())?;
    }
    s.write(
        base + blocks::TX_STATE,
        &TxState {
            pending: false,
            ..state
        }
        .encode(w),
    )?;
    Ok(record)
}

#[cfg(test)]
mod format_tests;
