//! The terminal's PSAM (`80 70` init for purchase, `80 72` verify MAC2) and the host's side
//! of the purse: TAC verification and load MAC2, all from the system master keys.

use super::crypto as pc;
use crate::keys::SystemKeys;

/// What the card answered to INITIALIZE FOR PURCHASE, plus what the PSAM needs besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseInit {
    pub serial: [u8; 8],
    pub random: [u8; 4],
    pub offline_seq: u16,
    pub amount: u32,
    pub ty: u8,
    pub date: [u8; 4],
    pub time: [u8; 3],
}

/// A PSAM holding the master purchase key; it diversifies the card key itself.
pub struct Psam {
    mpk: [u8; 16],
    term_id: [u8; 6],
    next_seq: u32,
    session: Option<([u8; 8], u32)>,
}

impl Psam {
    /// `next_seq` is the PSAM's terminal transaction sequence, persisted by the terminal.
    pub fn new(keys: &SystemKeys, term_id: [u8; 6], next_seq: u32) -> Psam {
        Psam {
            mpk: keys.cpu_purchase,
            term_id,
            next_seq,
            session: None,
        }
    }

    pub fn term_id(&self) -> [u8; 6] {
        self.term_id
    }

    /// The sequence number the next purchase will use.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// `80 70`: returns the terminal sequence number and MAC1.
    pub fn init_purchase(&mut self, init: &PurchaseInit) -> (u32, [u8; 4]) {
        let dpk = crate::crypto::diversify_tdes(&self.mpk, &init.serial);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let session = pc::purchase_session(&dpk, &init.random, init.offline_seq, seq);
        self.session = Some((session, init.amount));
        (
            seq,
            pc::purchase_mac1(
                &session,
                init.amount,
                init.ty,
                &self.term_id,
                &init.date,
                &init.time,
            ),
        )
    }

    /// `80 72`: checks the card's MAC2 for the purchase last initialised.
    pub fn verify_mac2(&mut self, mac2: &[u8; 4]) -> bool {
        match self.session.take() {
            Some((s, amount)) => pc::purchase_mac2(&s, amount) == *mac2,
            None => false,
        }
    }
}

/// The inputs of a purchase TAC, as a terminal record carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseFacts {
    pub serial: [u8; 8],
    pub amount: u32,
    pub ty: u8,
    pub term_id: [u8; 6],
    pub term_seq: u32,
    pub date: [u8; 4],
    pub time: [u8; 3],
}

/// Host side: whether a purchase record's TAC is genuine.
pub fn verify_purchase_tac(keys: &SystemKeys, f: &PurchaseFacts, tac: &[u8; 4]) -> bool {
    let dtk = keys.cpu_card(&f.serial).tac;
    pc::purchase_tac(
        &dtk, f.amount, f.ty, &f.term_id, f.term_seq, &f.date, &f.time,
    ) == *tac
}

/// What the card answered to INITIALIZE FOR LOAD, forwarded to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadInit {
    pub serial: [u8; 8],
    pub balance: u32,
    pub online_seq: u16,
    pub random: [u8; 4],
    pub mac1: [u8; 4],
    pub amount: u32,
    pub ty: u8,
    pub term_id: [u8; 6],
}

/// Host side of a load (圈存): checks the card's MAC1 and returns MAC2 for CREDIT FOR LOAD.
pub fn host_load_mac2(
    keys: &SystemKeys,
    init: &LoadInit,
    date: &[u8; 4],
    time: &[u8; 3],
) -> Option<[u8; 4]> {
    let dlk = keys.cpu_card(&init.serial).load;
    let session = pc::load_session(&dlk, &init.random, init.online_seq);
    (pc::load_mac1(&session, init.balance, init.amount, init.ty, &init.term_id) == init.mac1)
        .then(|| pc::load_mac2(&session, init.amount, init.ty, &init.term_id, date, time))
}

/// Host side: whether a load's TAC is genuine.
pub fn verify_load_tac(
    keys: &SystemKeys,
    init: &LoadInit,
    date: &[u8; 4],
    time: &[u8; 3],
    tac: &[u8; 4],
) -> bool {
    let dtk = keys.cpu_card(&init.serial).tac;
    let new_balance = init.balance.wrapping_add(init.amount);
    pc::load_tac(
        &dtk,
        new_balance,
        init.online_seq,
        init.amount,
        init.ty,
        &init.term_id,
        date,
        time,
    ) == *tac
}
