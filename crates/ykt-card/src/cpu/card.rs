//! A PBOC-style (JR/T 0025) electronic purse CPU card: its files, purse, cyclic transaction
//! log, and the APDUs that work them. The card holds its own diversified keys, as a real one.

use chrono::NaiveDate;

use super::apdu::{Command, from_bcd_date, sw};
use super::crypto::{self as pc, tx_type};
use crate::crypto::mac_tdes;
use crate::keys::CpuCardKeys;
use crate::rng::SplitMix64;

/// The application identifier of the purse (the PBOC ED/EP AID).
pub const AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x01];
/// Records the cyclic transaction log (SFI 0x18) keeps.
pub const LOG_RECORDS: usize = 10;
pub const LOG_RECORD_LEN: usize = 23;
/// Short file identifiers.
pub const SFI_PUBLIC: u8 = 0x15;
pub const SFI_DAILY: u8 = 0x17;
pub const SFI_LOG: u8 = 0x18;
pub const EF15_LEN: usize = 32;
pub const EF17_LEN: usize = 16;
/// Bytes of EF 17 holding the subsidy sequence (补助序号, R-B5), u16 BE.
pub const EF17_SUBSIDY_SEQ: std::ops::Range<usize> = 10..12;
/// CREDIT FOR LOAD's P1 for a pick-up (领取补助): the card steps its subsidy sequence in the
/// same command (an extension of JR/T 0025, atomic with the credit like EF 17's daily figures).
pub const CREDIT_P1_PICK_UP: u8 = 0x01;
/// Wrong PINs allowed before the PIN blocks.
pub const PIN_TRIES: u8 = 3;
/// The purse's limit: a 4-byte balance kept within `i32` (21,474,836.47 元).
pub const MAX_BALANCE: u32 = i32::MAX as u32;
/// Algorithm identifier answered in INITIALIZE: 00 = 3DES.
pub const ALG_3DES: u8 = 0x00;

/// The proof of the last purse transaction, for GET TRANSACTION PROVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    pub seq: u16,
    pub ty: u8,
    pub mac2: [u8; 4],
    pub tac: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingTx {
    ty: u8,
    amount: u32,
    term_id: [u8; 6],
    random: [u8; 4],
    seq: u16,
}

/// Volatile state, lost when the card leaves the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Volatile {
    selected: bool,
    purchase: Option<PendingTx>,
    load: Option<PendingTx>,
    challenge: Option<[u8; 4]>,
}

/// The persistent content of a CPU card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuCard {
    pub uid: [u8; 4],
    pub serial: [u8; 8],
    pub keys: CpuCardKeys,
    pub key_version: u8,
    pub pin_key: [u8; 16],
    pub pin_verifier: [u8; 8],
    pub pin_tries: u8,
    pub ef15: [u8; EF15_LEN],
    pub ef17: [u8; EF17_LEN],
    pub balance: u32,
    pub offline_seq: u16,
    pub online_seq: u16,
    pub locked: bool,
    /// Newest first, at most [`LOG_RECORDS`].
    pub log: Vec<[u8; LOG_RECORD_LEN]>,
    pub last_proof: Option<Proof>,
    /// State of the card's random generator (a real card has a TRNG; ours is reproducible).
    pub rng_state: u64,
    volatile: Volatile,
}

type Resp = Vec<u8>;

fn status(sw: u16) -> Resp {
    sw.to_be_bytes().to_vec()
}

fn ok(mut data: Vec<u8>) -> Resp {
    data.extend_from_slice(&sw::OK.to_be_bytes());
    data
}

impl CpuCard {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        uid: [u8; 4],
        serial: [u8; 8],
        keys: CpuCardKeys,
        key_version: u8,
        pin_key: [u8; 16],
        pin_verifier: [u8; 8],
        ef15: [u8; EF15_LEN],
        balance: u32,
        rng_state: u64,
    ) -> CpuCard {
        CpuCard {
            uid,
            serial,
            keys,
            key_version,
            pin_key,
            pin_verifier,
            pin_tries: PIN_TRIES,
            ef15,
            ef17: [0; EF17_LEN],
            balance,
            offline_seq: 0,
            online_seq: 0,
            locked: false,
            log: Vec::new(),
            last_proof: None,
            rng_state,
            volatile: Volatile::default(),
        }
    }

    /// The PIN verification data for `pin` under a card PIN key (never the PIN itself).
    pub fn pin_verifier_for(pin_key: &[u8; 16], pin: &str) -> [u8; 8] {
        let mut m = b"PIN".to_vec();
        m.extend_from_slice(pin.as_bytes());
        mac_tdes(pin_key, &m)
    }

    /// Leaves the field: volatile state is lost.
    pub fn power_cycle(&mut self) {
        self.volatile = Volatile::default();
    }

    fn random(&mut self) -> [u8; 4] {
        let mut rng = SplitMix64::new(self.rng_state);
        let v = rng.next_u64();
        self.rng_state = v;
        let b = v.to_be_bytes();
        [b[0], b[1], b[2], b[3]]
    }

    /// Processes one command APDU and returns the response APDU.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some(c) = Command::parse(apdu) else {
            return status(sw::WRONG_LENGTH);
        };
        match (c.cla, c.ins) {
            (0x00, 0xA4) => self.select(&c),
            _ if !self.volatile.selected => status(sw::CONDITIONS_NOT_SATISFIED),
            (0x00, 0xB0) => self.read_binary(&c),
            (0x00, 0xB2) => self.read_record(&c),
            (0x00, 0x20) => self.verify(&c),
            (0x00, 0x84) => self.get_challenge(&c),
            (0x80, 0x5C) => ok(self.balance.to_be_bytes().to_vec()),
            (0x80, 0x50) if c.p1 == 0x01 => self.init_purchase(&c),
            (0x80, 0x50) if c.p1 == 0x00 => self.init_load(&c),
            (0x80, 0x54) => self.debit(&c),
            (0x80, 0x52) => self.credit(&c),
            (0x80, 0x5A) => self.prove(&c),
            (0x84, 0x1E) => self.block_app(&c, true),
            (0x84, 0x18) => self.block_app(&c, false),
            (0x00 | 0x80 | 0x84, _) => status(sw::INS_NOT_SUPPORTED),
            _ => status(sw::CLA_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, c: &Command<'_>) -> Resp {
        if c.p1 != 0x04 || c.data != AID {
            return status(sw::FILE_NOT_FOUND);
        }
        self.volatile = Volatile {
            selected: true,
            ..Volatile::default()
        };
        let mut fci = vec![0x6F, 2 + AID.len() as u8 + 5, 0x84, AID.len() as u8];
        fci.extend_from_slice(&AID);
        fci.extend_from_slice(&[0xA5, 0x03, 0x88, 0x01, SFI_PUBLIC]);
        if self.locked {
            fci.extend_from_slice(&sw::APP_BLOCKED_SELECT.to_be_bytes());
            return fci;
        }
        ok(fci)
    }

    fn read_binary(&self, c: &Command<'_>) -> Resp {
        if c.p1 & 0x80 == 0 {
            return status(sw::WRONG_P1P2);
        }
        let file: &[u8] = match c.p1 & 0x1F {
            SFI_PUBLIC => &self.ef15,
            SFI_DAILY => &self.ef17,
            _ => return status(sw::FILE_NOT_FOUND),
        };
        let off = usize::from(c.p2);
        if off > file.len() {
            return status(sw::WRONG_P1P2);
        }
        let len = match c.le {
            None | Some(0) => file.len() - off,
            Some(n) => usize::from(n),
        };
        if off + len > file.len() {
            return status(sw::WRONG_LENGTH);
        }
        ok(file[off..off + len].to_vec())
    }

    fn read_record(&self, c: &Command<'_>) -> Resp {
        if c.p2 != (SFI_LOG << 3) | 0x04 {
            return status(sw::FILE_NOT_FOUND);
        }
        match usize::from(c.p1)
            .checked_sub(1)
            .and_then(|i| self.log.get(i))
        {
            Some(rec) => ok(rec.to_vec()),
            None => status(sw::RECORD_NOT_FOUND),
        }
    }

    fn verify(&mut self, c: &Command<'_>) -> Resp {
        if self.pin_tries == 0 {
            return status(sw::PIN_BLOCKED);
        }
        // The PIN arrives as BCD digits padded with F (2–6 bytes).
        let mut digits = String::new();
        for nibble in c.data.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
            match nibble {
                0..=9 => digits.push(char::from(b'0' + nibble)),
                0x0F => break,
                _ => return status(sw::WRONG_DATA),
            }
        }
        if !(2..=6).contains(&c.data.len()) {
            return status(sw::WRONG_LENGTH);
        }
        if Self::pin_verifier_for(&self.pin_key, &digits) == self.pin_verifier {
            self.pin_tries = PIN_TRIES;
            status(sw::OK)
        } else {
            self.pin_tries -= 1;
            if self.pin_tries == 0 {
                status(sw::PIN_BLOCKED)
            } else {
                status(sw::PIN_WRONG | u16::from(self.pin_tries))
            }
        }
    }

    fn get_challenge(&mut self, c: &Command<'_>) -> Resp {
        if c.le != Some(4) {
            return status(sw::WRONG_LENGTH);
        }
        let r = self.random();
        self.volatile.challenge = Some(r);
        ok(r.to_vec())
    }

    /// Parses `key index ‖ amount ‖ terminal ID` of INITIALIZE FOR PURCHASE / LOAD.
    fn init_data(c: &Command<'_>) -> Option<(u32, [u8; 6])> {
        let d: &[u8; 11] = c.data.try_into().ok()?;
        let amount = u32::from_be_bytes([d[1], d[2], d[3], d[4]]);
        let mut term = [0u8; 6];
        term.copy_from_slice(&d[5..11]);
        Some((amount, term))
    }

    fn init_purchase(&mut self, c: &Command<'_>) -> Resp {
        if self.locked {
            return status(sw::APP_LOCKED);
        }
        let ty = match c.p2 {
            0x01 => tx_type::PURCHASE_ED,
            0x02 => tx_type::PURCHASE_EP,
            _ => return status(sw::WRONG_P1P2),
        };
        let Some((amount, term_id)) = Self::init_data(c) else {
            return status(sw::WRONG_LENGTH);
        };
        if amount > self.balance {
            return status(sw::INSUFFICIENT_BALANCE);
        }
        let random = self.random();
        self.volatile.purchase = Some(PendingTx {
            ty,
            amount,
            term_id,
            random,
            seq: self.offline_seq,
        });
        self.volatile.load = None;
        let mut r = self.balance.to_be_bytes().to_vec();
        r.extend_from_slice(&self.offline_seq.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, self.key_version, ALG_3DES]);
        r.extend_from_slice(&random);
        ok(r)
    }

    fn debit(&mut self, c: &Command<'_>) -> Resp {
        let Some(p) = self.volatile.purchase else {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        };
        let Ok(d) = <&[u8; 15]>::try_from(c.data) else {
            return status(sw::WRONG_LENGTH);
        };
        let term_seq = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let date = [d[4], d[5], d[6], d[7]];
        let time = [d[8], d[9], d[10]];
        let session = pc::purchase_session(&self.keys.purchase, &p.random, p.seq, term_seq);
        if pc::purchase_mac1(&session, p.amount, p.ty, &p.term_id, &date, &time)
            != [d[11], d[12], d[13], d[14]]
        {
            self.volatile.purchase = None;
            return status(sw::MAC_INVALID);
        }
        let Some(day) = from_bcd_date(&date) else {
            return status(sw::WRONG_DATA);
        };
        self.volatile.purchase = None;
        self.balance -= p.amount;
        self.offline_seq = self.offline_seq.wrapping_add(1);
        self.update_daily(day, p.amount);
        self.push_log(p.seq, p.amount, p.ty, &p.term_id, &date, &time);
        let tac = pc::purchase_tac(
            &self.keys.tac,
            p.amount,
            p.ty,
            &p.term_id,
            term_seq,
            &date,
            &time,
        );
        let mac2 = pc::purchase_mac2(&session, p.amount);
        self.last_proof = Some(Proof {
            seq: p.seq,
            ty: p.ty,
            mac2,
            tac,
        });
        let mut r = tac.to_vec();
        r.extend_from_slice(&mac2);
        ok(r)
    }

    /// The daily use count and amount (R-F4.7, R-F4.12) kept by the card itself on every
    /// purchase, restarted when the purchase date differs from the stored one.
    fn update_daily(&mut self, day: NaiveDate, amount: u32) {
        let stored = from_bcd_date(&[self.ef17[0], self.ef17[1], self.ef17[2], self.ef17[3]]);
        let (count, total) = if stored == Some(day) {
            (
                u16::from_be_bytes([self.ef17[4], self.ef17[5]]),
                u32::from_be_bytes([self.ef17[6], self.ef17[7], self.ef17[8], self.ef17[9]]),
            )
        } else {
            (0, 0)
        };
        let date = super::apdu::bcd_date(day.and_hms_opt(0, 0, 0).unwrap_or_default());
        self.ef17[0..4].copy_from_slice(&date);
        self.ef17[4..6].copy_from_slice(&count.saturating_add(1).to_be_bytes());
        self.ef17[6..10].copy_from_slice(&total.saturating_add(amount).to_be_bytes());
    }

    fn push_log(
        &mut self,
        seq: u16,
        amount: u32,
        ty: u8,
        term_id: &[u8; 6],
        date: &[u8; 4],
        time: &[u8; 3],
    ) {
        let mut rec = [0u8; LOG_RECORD_LEN];
        rec[0..2].copy_from_slice(&seq.to_be_bytes());
        rec[5..9].copy_from_slice(&amount.to_be_bytes());
        rec[9] = ty;
        rec[10..16].copy_from_slice(term_id);
        rec[16..20].copy_from_slice(date);
        rec[20..23].copy_from_slice(time);
        self.log.insert(0, rec);
        self.log.truncate(LOG_RECORDS);
    }

    fn prove(&self, c: &Command<'_>) -> Resp {
        let Ok(seq) = <[u8; 2]>::try_from(c.data) else {
            return status(sw::WRONG_LENGTH);
        };
        match self.last_proof {
            Some(p) if p.seq == u16::from_be_bytes(seq) && p.ty == c.p2 => {
                let mut r = p.mac2.to_vec();
                r.extend_from_slice(&p.tac);
                ok(r)
            }
            _ => status(sw::NO_SUCH_TRANSACTION),
        }
    }

    fn init_load(&mut self, c: &Command<'_>) -> Resp {
        if self.locked {
            return status(sw::APP_LOCKED);
        }
        let ty = match c.p2 {
            0x01 => tx_type::LOAD_ED,
            0x02 => tx_type::LOAD_EP,
            _ => return status(sw::WRONG_P1P2),
        };
        let Some((amount, term_id)) = Self::init_data(c) else {
            return status(sw::WRONG_LENGTH);
        };
        if self
            .balance
            .checked_add(amount)
            .is_none_or(|b| b > MAX_BALANCE)
        {
            return status(sw::WRONG_DATA);
        }
        let random = self.random();
        let session = pc::load_session(&self.keys.load, &random, self.online_seq);
        let mac1 = pc::load_mac1(&session, self.balance, amount, ty, &term_id);
        self.volatile.load = Some(PendingTx {
            ty,
            amount,
            term_id,
            random,
            seq: self.online_seq,
        });
        self.volatile.purchase = None;
        let mut r = self.balance.to_be_bytes().to_vec();
        r.extend_from_slice(&self.online_seq.to_be_bytes());
        r.extend_from_slice(&[self.key_version, ALG_3DES]);
        r.extend_from_slice(&random);
        r.extend_from_slice(&mac1);
        ok(r)
    }

    fn credit(&mut self, c: &Command<'_>) -> Resp {
        let Some(p) = self.volatile.load else {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        };
        let Ok(d) = <&[u8; 11]>::try_from(c.data) else {
            return status(sw::WRONG_LENGTH);
        };
        let date = [d[0], d[1], d[2], d[3]];
        let time = [d[4], d[5], d[6]];
        self.volatile.load = None;
        let subsidy_seq = match c.p1 {
            0x00 => None,
            CREDIT_P1_PICK_UP => {
                let seq = u16::from_be_bytes([self.ef17[10], self.ef17[11]]);
                match seq.checked_add(1) {
                    Some(next) => Some(next),
                    None => return status(sw::CONDITIONS_NOT_SATISFIED),
                }
            }
            _ => return status(sw::WRONG_P1P2),
        };
        let session = pc::load_session(&self.keys.load, &p.random, p.seq);
        if pc::load_mac2(&session, p.amount, p.ty, &p.term_id, &date, &time)
            != [d[7], d[8], d[9], d[10]]
        {
            return status(sw::MAC_INVALID);
        }
        if let Some(next) = subsidy_seq {
            self.ef17[EF17_SUBSIDY_SEQ].copy_from_slice(&next.to_be_bytes());
        }
        self.balance += p.amount;
        self.online_seq = self.online_seq.wrapping_add(1);
        self.push_log(p.seq, p.amount, p.ty, &p.term_id, &date, &time);
        let tac = pc::load_tac(
            &self.keys.tac,
            self.balance,
            p.seq,
            p.amount,
            p.ty,
            &p.term_id,
            &date,
            &time,
        );
        self.last_proof = Some(Proof {
            seq: p.seq,
            ty: p.ty,
            mac2: [0; 4],
            tac,
        });
        ok(tac.to_vec())
    }

    /// APPLICATION BLOCK (`84 1E`) / UNBLOCK (`84 18`): the lock flag of R-F4.15, authorised
    /// by a MAC under the card's maintenance key over the last challenge and the header.
    fn block_app(&mut self, c: &Command<'_>, block: bool) -> Resp {
        let Some(challenge) = self.volatile.challenge.take() else {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        };
        if c.data.len() != 4 {
            return status(sw::WRONG_LENGTH);
        }
        if maintenance_mac(&self.keys.maintenance, &challenge, c.ins) != c.data {
            return status(sw::SECURITY_NOT_SATISFIED);
        }
        self.locked = block;
        self.ef15[22] = u8::from(block);
        status(sw::OK)
    }
}

/// The MAC of APPLICATION BLOCK / UNBLOCK: 3DES-CBC-MAC over
/// `challenge ‖ 00000000 ‖ 84 INS 00 00 04`, first 4 bytes.
pub fn maintenance_mac(key: &[u8; 16], challenge: &[u8; 4], ins: u8) -> [u8; 4] {
    let mut m = challenge.to_vec();
    m.extend_from_slice(&[0, 0, 0, 0, 0x84, ins, 0, 0, 4]);
    let mac = mac_tdes(key, &m);
    [mac[0], mac[1], mac[2], mac[3]]
}
