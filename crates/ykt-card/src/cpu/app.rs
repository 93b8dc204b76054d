//! The terminal's side of the CPU card: reading the application, purchases with the PSAM,
//! proofs for torn purchases, loads, the lock flag and the transaction log. Also issuing.

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::types::{CardNo, DisplayNo, Fen};

use super::apdu::{bcd_date, bcd_time, command, from_bcd_date, split_response, sw};
use super::card::{
    self, AID, CREDIT_P1_PICK_UP, CpuCard, EF15_LEN, EF17_SUBSIDY_SEQ, LOG_RECORD_LEN, MAX_BALANCE,
    SFI_DAILY, SFI_LOG, SFI_PUBLIC,
};
use super::crypto::tx_type;
use super::psam::{LoadInit, Psam, PurchaseInit};
use crate::app::format::{bcd10, from_bcd10};
use crate::error::ReaderError;
use crate::keys::{SystemKeys, valid_pin};
use crate::reader::{CardKind, Reader};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuError {
    #[error("card communication: {0}")]
    Reader(#[from] ReaderError),
    #[error("not a CPU card")]
    NotCpu,
    #[error("the card answered status {0:04X}")]
    Status(u16),
    #[error("the card's answer is malformed")]
    BadResponse,
    #[error("the application is locked (blacklisted)")]
    Locked,
    #[error("insufficient balance")]
    InsufficientBalance,
    #[error("the card's MAC2 is wrong: the purchase is not proven")]
    Mac2Invalid,
    #[error("amount {0} fen is out of range")]
    Amount(Fen),
    #[error("the public data file is damaged")]
    DataDamaged,
}

/// What a terminal reads from a CPU card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuRead {
    pub uid: [u8; 4],
    pub serial: [u8; 8],
    pub card_no: CardNo,
    pub display_no: DisplayNo,
    pub class: u8,
    pub expiry: NaiveDate,
    pub key_version: u8,
    pub locked: bool,
    pub balance: Fen,
    /// The day the daily figures belong to, the use count and the amount that day.
    pub daily: (Option<NaiveDate>, u16, Fen),
    /// The card's subsidy sequence (补助序号, R-B5): pick-ups that landed (EF 17).
    pub subsidy_seq: u16,
}

impl CpuRead {
    pub fn daily_on(&self, today: NaiveDate) -> (u16, Fen) {
        if self.daily.0 == Some(today) {
            (self.daily.1, self.daily.2)
        } else {
            (0, 0)
        }
    }
}

/// What GET TRANSACTION PROVE returns for a debit the card made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxProof {
    pub mac2: [u8; 4],
    pub tac: [u8; 4],
}

/// The purchase session a card opened (its answer to INITIALIZE FOR PURCHASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseSession {
    /// The purse's balance before the debit.
    pub balance: Fen,
    /// The purse's offline sequence number: the card counter of the purchase.
    pub offline_seq: u16,
    random: [u8; 4],
    amount: u32,
}

/// A completed purchase, as the terminal records it (the TAC goes to the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuPurchase {
    pub offline_seq: u16,
    pub term_seq: u32,
    pub tac: [u8; 4],
    pub balance_after: Fen,
}

fn transceive<R: Reader + ?Sized>(r: &mut R, apdu: &[u8]) -> Result<Vec<u8>, CpuError> {
    let resp = r.transceive(apdu)?;
    let (data, status) = split_response(&resp).ok_or(CpuError::BadResponse)?;
    match status {
        sw::OK => Ok(data.to_vec()),
        sw::APP_LOCKED | sw::APP_BLOCKED_SELECT => Err(CpuError::Locked),
        sw::INSUFFICIENT_BALANCE => Err(CpuError::InsufficientBalance),
        other => Err(CpuError::Status(other)),
    }
}

/// What a CREDIT FOR LOAD does besides the credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuLoad {
    /// 充值: the balance only.
    TopUp,
    /// 领取补助: the balance and the subsidy sequence + 1 (R-B5).
    PickUp,
}

/// The terminal-side CPU card application.
pub struct CpuApp;

impl CpuApp {
    /// Selects the purse and reads its files and balance. A locked application is still read
    /// (the terminal must see the flag, R-F4.15).
    pub fn read<R: Reader + ?Sized>(r: &mut R) -> Result<CpuRead, CpuError> {
        let sel = r.select()?;
        if sel.kind != CardKind::Cpu {
            return Err(CpuError::NotCpu);
        }
        let resp = r.transceive(&command(0x00, 0xA4, 0x04, 0x00, &AID, Some(0)))?;
        match split_response(&resp) {
            Some((_, sw::OK | sw::APP_BLOCKED_SELECT)) => {}
            Some((_, s)) => return Err(CpuError::Status(s)),
            None => return Err(CpuError::BadResponse),
        }
        let ef15 = transceive(r, &[0x00, 0xB0, 0x80 | SFI_PUBLIC, 0x00, 0x00])?;
        let ef17 = transceive(r, &[0x00, 0xB0, 0x80 | SFI_DAILY, 0x00, 0x00])?;
        let balance = transceive(r, &[0x80, 0x5C, 0x00, 0x02, 0x04])?;
        let p: &[u8; EF15_LEN] = ef15
            .as_slice()
            .try_into()
            .map_err(|_| CpuError::BadResponse)?;
        let bal: [u8; 4] = balance
            .as_slice()
            .try_into()
            .map_err(|_| CpuError::BadResponse)?;
        if ef17.len() < EF17_SUBSIDY_SEQ.end {
            return Err(CpuError::BadResponse);
        }
        let mut serial = [0u8; 8];
        serial.copy_from_slice(&p[0..8]);
        let day = from_bcd_date(&[ef17[0], ef17[1], ef17[2], ef17[3]]);
        Ok(CpuRead {
            uid: sel.uid,
            serial,
            card_no: CardNo::new(u32::from_be_bytes([0, p[8], p[9], p[10]]))
                .ok_or(CpuError::DataDamaged)?,
            display_no: from_bcd10(&p[11..16])
                .and_then(DisplayNo::new)
                .ok_or(CpuError::DataDamaged)?,
            class: p[16],
            expiry: from_bcd_date(&[p[17], p[18], p[19], p[20]]).ok_or(CpuError::DataDamaged)?,
            key_version: p[21],
            locked: p[22] != 0,
            balance: Fen::from(u32::from_be_bytes(bal)),
            daily: (
                day,
                u16::from_be_bytes([ef17[4], ef17[5]]),
                Fen::from(u32::from_be_bytes([ef17[6], ef17[7], ef17[8], ef17[9]])),
            ),
            subsidy_seq: u16::from_be_bytes([ef17[10], ef17[11]]),
        })
    }

    /// VERIFY: `Ok(true)` for the right PIN, `Ok(false)` for a wrong one (tries decrease).
    pub fn verify_pin<R: Reader + ?Sized>(r: &mut R, pin: &str) -> Result<bool, CpuError> {
        if !valid_pin(pin) || pin.len() > 12 {
            return Ok(false);
        }
        let mut bcd = Vec::new();
        let digits: Vec<u8> = pin.bytes().map(|b| b - b'0').collect();
        for pair in digits.chunks(2) {
            bcd.push(pair[0] << 4 | pair.get(1).copied().unwrap_or(0x0F));
        }
        match transceive(r, &command(0x00, 0x20, 0x00, 0x00, &bcd, None)) {
            Ok(_) => Ok(true),
            Err(CpuError::Status(s)) if s & 0xFFF0 == sw::PIN_WRONG || s == sw::PIN_BLOCKED => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A purchase: INITIALIZE FOR PURCHASE, PSAM MAC1, DEBIT FOR PURCHASE, PSAM checks MAC2.
    /// When the answer to DEBIT is lost, re-tap and call [`Self::prove`] with `offline_seq`.
    pub fn purchase<R: Reader + ?Sized>(
        r: &mut R,
        card: &CpuRead,
        psam: &mut Psam,
        amount: Fen,
        time: NaiveDateTime,
    ) -> Result<CpuPurchase, CpuError> {
        let session = Self::init_purchase(r, amount, psam.term_id())?;
        let (term_seq, tac) = Self::debit_purchase(r, card, psam, &session, time)?;
        Ok(CpuPurchase {
            offline_seq: session.offline_seq,
            term_seq,
            tac,
            balance_after: session.balance - Fen::from(session.amount),
        })
    }

    /// INITIALIZE FOR PURCHASE of `amount` at terminal `term_id`: the purse's balance and
    /// offline sequence number before the debit. Nothing changes on the card, so a terminal
    /// can journal its record between this and [`Self::debit_purchase`].
    pub fn init_purchase<R: Reader + ?Sized>(
        r: &mut R,
        amount: Fen,
        term_id: [u8; 6],
    ) -> Result<PurchaseSession, CpuError> {
        let amt = u32::try_from(amount)
            .ok()
            .filter(|a| *a <= MAX_BALANCE)
            .ok_or(CpuError::Amount(amount))?;
        let mut data = vec![0x01];
        data.extend_from_slice(&amt.to_be_bytes());
        data.extend_from_slice(&term_id);
        let init = transceive(r, &command(0x80, 0x50, 0x01, 0x02, &data, Some(0x0F)))?;
        let init: [u8; 15] = init
            .as_slice()
            .try_into()
            .map_err(|_| CpuError::BadResponse)?;
        Ok(PurchaseSession {
            balance: Fen::from(u32::from_be_bytes([init[0], init[1], init[2], init[3]])),
            offline_seq: u16::from_be_bytes([init[4], init[5]]),
            random: [init[11], init[12], init[13], init[14]],
            amount: amt,
        })
    }

    /// DEBIT FOR PURCHASE in the session `session` opened, MAC1 from `psam`: returns the
    /// PSAM's terminal sequence number and the card's TAC once the PSAM accepted MAC2.
    pub fn debit_purchase<R: Reader + ?Sized>(
        r: &mut R,
        card: &CpuRead,
        psam: &mut Psam,
        session: &PurchaseSession,
        time: NaiveDateTime,
    ) -> Result<(u32, [u8; 4]), CpuError> {
        let (date, tm) = (bcd_date(time), bcd_time(time));
        let pi = PurchaseInit {
            serial: card.serial,
            random: session.random,
            offline_seq: session.offline_seq,
            amount: session.amount,
            ty: tx_type::PURCHASE_EP,
            date,
            time: tm,
        };
        let (term_seq, mac1) = psam.init_purchase(&pi);
        let mut d = term_seq.to_be_bytes().to_vec();
        d.extend_from_slice(&date);
        d.extend_from_slice(&tm);
        d.extend_from_slice(&mac1);
        let resp = transceive(r, &command(0x80, 0x54, 0x01, 0x00, &d, Some(0x08)))?;
        let resp: [u8; 8] = resp
            .as_slice()
            .try_into()
            .map_err(|_| CpuError::BadResponse)?;
        if !psam.verify_mac2(&[resp[4], resp[5], resp[6], resp[7]]) {
            return Err(CpuError::Mac2Invalid);
        }
        Ok((term_seq, [resp[0], resp[1], resp[2], resp[3]]))
    }

    /// GET TRANSACTION PROVE for a purchase whose answer was lost: `Some((MAC2, TAC))` when the
    /// card did debit under `offline_seq`, `None` (SW 9406) when it did not.
    pub fn prove<R: Reader + ?Sized>(
        r: &mut R,
        offline_seq: u16,
    ) -> Result<Option<TxProof>, CpuError> {
        Self::prove_of(r, tx_type::PURCHASE_EP, offline_seq)
    }

    /// GET TRANSACTION PROVE for a load whose CREDIT answer was lost: `Some` (the TAC) when
    /// the card credited under `online_seq` (its INITIALIZE FOR LOAD answer), `None` when not.
    pub fn prove_load<R: Reader + ?Sized>(
        r: &mut R,
        online_seq: u16,
    ) -> Result<Option<TxProof>, CpuError> {
        Self::prove_of(r, tx_type::LOAD_EP, online_seq)
    }

    fn prove_of<R: Reader + ?Sized>(
        r: &mut R,
        ty: u8,
        seq: u16,
    ) -> Result<Option<TxProof>, CpuError> {
        match transceive(
            r,
            &command(0x80, 0x5A, 0x00, ty, &seq.to_be_bytes(), Some(0x08)),
        ) {
            Ok(v) if v.len() == 8 => Ok(Some(TxProof {
                mac2: [v[0], v[1], v[2], v[3]],
                tac: [v[4], v[5], v[6], v[7]],
            })),
            Ok(_) => Err(CpuError::BadResponse),
            Err(CpuError::Status(sw::NO_SUCH_TRANSACTION)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A load (圈存): INITIALIZE FOR LOAD, `host` checks MAC1 and returns MAC2, CREDIT FOR LOAD.
    /// Returns the TAC.
    pub fn load<R: Reader + ?Sized>(
        r: &mut R,
        card: &CpuRead,
        term_id: [u8; 6],
        amount: Fen,
        time: NaiveDateTime,
        host: impl FnOnce(&LoadInit, &[u8; 4], &[u8; 3]) -> Option<[u8; 4]>,
    ) -> Result<[u8; 4], CpuError> {
        let li = Self::init_load(r, card, term_id, amount)?;
        let (date, tm) = (bcd_date(time), bcd_time(time));
        let mac2 = host(&li, &date, &tm).ok_or(CpuError::Status(sw::MAC_INVALID))?;
        Self::credit_load(r, CpuLoad::TopUp, time, &mac2)
    }

    /// INITIALIZE FOR LOAD of `amount` at terminal `term_id`: what the host needs to answer
    /// with MAC2 (balance, online sequence, random, MAC1). Nothing changes on the card, so a
    /// terminal asks the host (0x08) between this and [`Self::credit_load`] in the same tap.
    pub fn init_load<R: Reader + ?Sized>(
        r: &mut R,
        card: &CpuRead,
        term_id: [u8; 6],
        amount: Fen,
    ) -> Result<LoadInit, CpuError> {
        let amt = u32::try_from(amount)
            .ok()
            .filter(|a| *a <= MAX_BALANCE)
            .ok_or(CpuError::Amount(amount))?;
        let mut data = vec![0x01];
        data.extend_from_slice(&amt.to_be_bytes());
        data.extend_from_slice(&term_id);
        let init = transceive(r, &command(0x80, 0x50, 0x00, 0x02, &data, Some(0x10)))?;
        if init.len() != 16 {
            return Err(CpuError::BadResponse);
        }
        Ok(LoadInit {
            serial: card.serial,
            balance: u32::from_be_bytes([init[0], init[1], init[2], init[3]]),
            online_seq: u16::from_be_bytes([init[4], init[5]]),
            random: [init[8], init[9], init[10], init[11]],
            mac1: [init[12], init[13], init[14], init[15]],
            amount: amt,
            ty: tx_type::LOAD_EP,
            term_id,
        })
    }

    /// CREDIT FOR LOAD with the host's MAC2 over `time`, in the session [`Self::init_load`]
    /// opened; a pick-up also steps the card's subsidy sequence in the same command.
    /// Returns the TAC. When the answer is lost, re-tap and call [`Self::prove_load`].
    pub fn credit_load<R: Reader + ?Sized>(
        r: &mut R,
        kind: CpuLoad,
        time: NaiveDateTime,
        mac2: &[u8; 4],
    ) -> Result<[u8; 4], CpuError> {
        let p1 = match kind {
            CpuLoad::TopUp => 0x00,
            CpuLoad::PickUp => CREDIT_P1_PICK_UP,
        };
        let mut d = bcd_date(time).to_vec();
        d.extend_from_slice(&bcd_time(time));
        d.extend_from_slice(mac2);
        let tac = transceive(r, &command(0x80, 0x52, p1, 0x00, &d, Some(0x04)))?;
        tac.as_slice().try_into().map_err(|_| CpuError::BadResponse)
    }

    /// Sets or clears the lock flag (R-F4.15) with APPLICATION BLOCK / UNBLOCK.
    pub fn set_lock<R: Reader + ?Sized>(
        r: &mut R,
        keys: &SystemKeys,
        card: &CpuRead,
        locked: bool,
    ) -> Result<(), CpuError> {
        let challenge = transceive(r, &[0x00, 0x84, 0x00, 0x00, 0x04])?;
        let challenge: [u8; 4] = challenge
            .as_slice()
            .try_into()
            .map_err(|_| CpuError::BadResponse)?;
        let ins = if locked { 0x1E } else { 0x18 };
        let dmk = keys.cpu_card(&card.serial).maintenance;
        let mac = card::maintenance_mac(&dmk, &challenge, ins);
        transceive(r, &command(0x84, ins, 0x00, 0x00, &mac, None)).map(|_| ())
    }

    /// The last `n` records of the cyclic log (SFI 0x18), newest first (R-F4.17).
    pub fn records<R: Reader + ?Sized>(
        r: &mut R,
        n: usize,
    ) -> Result<Vec<[u8; LOG_RECORD_LEN]>, CpuError> {
        let mut out = Vec::new();
        for i in 1..=n.min(card::LOG_RECORDS) {
            match transceive(r, &[0x00, 0xB2, i as u8, (SFI_LOG << 3) | 4, 0x00]) {
                Ok(v) => out.push(v.as_slice().try_into().map_err(|_| CpuError::BadResponse)?),
                Err(CpuError::Status(sw::RECORD_NOT_FOUND)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The application serial (diversification factor) of a CPU card: `"YKT" 00 00 ‖ card no`.
/// The one rule tying number and serial: cards are issued with it, the terminal refuses a
/// card whose serial is not its number's, the host verifies TACs under it.
pub fn serial_for(card_no: CardNo) -> [u8; 8] {
    let c = card_no.get().to_be_bytes();
    [b'Y', b'K', b'T', 0, 0, c[1], c[2], c[3]]
}

/// Issues a CPU card with its keys diversified from the system master keys.
#[allow(clippy::too_many_arguments)]
pub fn issue_cpu(
    keys: &SystemKeys,
    uid: [u8; 4],
    card_no: CardNo,
    display_no: DisplayNo,
    class: u8,
    expiry: NaiveDate,
    balance: Fen,
    pin: &str,
    seed: u64,
) -> Option<CpuCard> {
    if !valid_pin(pin) || pin.len() > 12 {
        return None;
    }
    let balance = u32::try_from(balance).ok().filter(|b| *b <= MAX_BALANCE)?;
    let serial = serial_for(card_no);
    let ck = keys.cpu_card(&serial);
    let pin_key = crate::crypto::diversify_tdes(&keys.pin, &serial);
    let mut ef15 = [0u8; EF15_LEN];
    ef15[0..8].copy_from_slice(&serial);
    ef15[8..11].copy_from_slice(&card_no.get().to_be_bytes()[1..4]);
    ef15[11..16].copy_from_slice(&bcd10(display_no.get()));
    ef15[16] = class;
    ef15[17..21].copy_from_slice(&bcd_date(expiry.and_hms_opt(0, 0, 0)?));
    ef15[21] = keys.version;
    let verifier = CpuCard::pin_verifier_for(&pin_key, pin);
    Some(CpuCard::new(
        uid,
        serial,
        ck,
        keys.version,
        pin_key,
        verifier,
        ef15,
        balance,
        seed,
    ))
}
