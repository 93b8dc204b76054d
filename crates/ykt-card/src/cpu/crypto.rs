//! The PBOC purse computations shared by card, PSAM and host: session keys, MAC1, MAC2, TAC.

use crate::crypto::{mac_des, tdes_encrypt};

/// Transaction types (JR/T 0025): load to ED / EP, purchase from ED / EP.
pub mod tx_type {
    pub const LOAD_ED: u8 = 0x01;
    pub const LOAD_EP: u8 = 0x02;
    pub const PURCHASE_ED: u8 = 0x05;
    pub const PURCHASE_EP: u8 = 0x06;
}

fn first4(m: [u8; 8]) -> [u8; 4] {
    [m[0], m[1], m[2], m[3]]
}

/// Purchase session key: `3DES(DPK, random ‖ offline seq ‖ terminal seq[2..4])`.
pub fn purchase_session(
    dpk: &[u8; 16],
    random: &[u8; 4],
    offline_seq: u16,
    term_seq: u32,
) -> [u8; 8] {
    let s = offline_seq.to_be_bytes();
    let t = term_seq.to_be_bytes();
    tdes_encrypt(
        dpk,
        &[
            random[0], random[1], random[2], random[3], s[0], s[1], t[2], t[3],
        ],
    )
}

/// Load session key: `3DES(DLK, random ‖ online seq ‖ 80 00)`.
pub fn load_session(dlk: &[u8; 16], random: &[u8; 4], online_seq: u16) -> [u8; 8] {
    let s = online_seq.to_be_bytes();
    tdes_encrypt(
        dlk,
        &[
            random[0], random[1], random[2], random[3], s[0], s[1], 0x80, 0x00,
        ],
    )
}

/// Purchase MAC1 (PSAM → card): over `amount ‖ type ‖ terminal ID ‖ date ‖ time`.
pub fn purchase_mac1(
    session: &[u8; 8],
    amount: u32,
    ty: u8,
    term_id: &[u8; 6],
    date: &[u8; 4],
    time: &[u8; 3],
) -> [u8; 4] {
    let mut m = Vec::with_capacity(18);
    m.extend_from_slice(&amount.to_be_bytes());
    m.push(ty);
    m.extend_from_slice(term_id);
    m.extend_from_slice(date);
    m.extend_from_slice(time);
    first4(mac_des(session, &m))
}

/// Purchase MAC2 (card → PSAM): over the amount.
pub fn purchase_mac2(session: &[u8; 8], amount: u32) -> [u8; 4] {
    first4(mac_des(session, &amount.to_be_bytes()))
}

/// Load MAC1 (card → host): over `balance ‖ amount ‖ type ‖ terminal ID`.
pub fn load_mac1(
    session: &[u8; 8],
    balance: u32,
    amount: u32,
    ty: u8,
    term_id: &[u8; 6],
) -> [u8; 4] {
    let mut m = Vec::with_capacity(15);
    m.extend_from_slice(&balance.to_be_bytes());
    m.extend_from_slice(&amount.to_be_bytes());
    m.push(ty);
    m.extend_from_slice(term_id);
    first4(mac_des(session, &m))
}

/// Load MAC2 (host → card): over `amount ‖ type ‖ terminal ID ‖ date ‖ time`.
pub fn load_mac2(
    session: &[u8; 8],
    amount: u32,
    ty: u8,
    term_id: &[u8; 6],
    date: &[u8; 4],
    time: &[u8; 3],
) -> [u8; 4] {
    purchase_mac1(session, amount, ty, term_id, date, time)
}

/// The TAC key: the two halves of the card's DTK XORed.
pub fn tac_key(dtk: &[u8; 16]) -> [u8; 8] {
    let mut k = [0u8; 8];
    for (i, b) in k.iter_mut().enumerate() {
        *b = dtk[i] ^ dtk[i + 8];
    }
    k
}

#[allow(clippy::too_many_arguments)] // the fields of the standard's TAC input
/// Purchase TAC: over `amount ‖ type ‖ terminal ID ‖ terminal seq ‖ date ‖ time`.
pub fn purchase_tac(
    dtk: &[u8; 16],
    amount: u32,
    ty: u8,
    term_id: &[u8; 6],
    term_seq: u32,
    date: &[u8; 4],
    time: &[u8; 3],
) -> [u8; 4] {
    let mut m = Vec::with_capacity(22);
    m.extend_from_slice(&amount.to_be_bytes());
    m.push(ty);
    m.extend_from_slice(term_id);
    m.extend_from_slice(&term_seq.to_be_bytes());
    m.extend_from_slice(date);
    m.extend_from_slice(time);
    first4(mac_des(&tac_key(dtk), &m))
}

#[allow(clippy::too_many_arguments)] // the fields of the standard's TAC input
/// Load TAC: over `new balance ‖ online seq ‖ amount ‖ type ‖ terminal ID ‖ date ‖ time`.
pub fn load_tac(
    dtk: &[u8; 16],
    new_balance: u32,
    online_seq: u16,
    amount: u32,
    ty: u8,
    term_id: &[u8; 6],
    date: &[u8; 4],
    time: &[u8; 3],
) -> [u8; 4] {
    let mut m = Vec::with_capacity(24);
    m.extend_from_slice(&new_balance.to_be_bytes());
    m.extend_from_slice(&online_seq.to_be_bytes());
    m.extend_from_slice(&amount.to_be_bytes());
    m.push(ty);
    m.extend_from_slice(term_id);
    m.extend_from_slice(date);
    m.extend_from_slice(time);
    first4(mac_des(&tac_key(dtk), &m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPK: [u8; 16] = [
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
        0x11,
    ];
    const TERM: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

    // REFERENCE.md purchase vector.
    #[test]
    fn purchase_vector() {
        let s = purchase_session(&DPK, &[0x11, 0x22, 0x33, 0x44], 0, 1);
        assert_eq!(s, [0x00, 0x32, 0x38, 0xAB, 0xC5, 0x76, 0x59, 0xDD]);
        let mac1 = purchase_mac1(
            &s,
            0x1000,
            tx_type::PURCHASE_EP,
            &TERM,
            &[0x20, 0x12, 0x02, 0x29],
            &[0x13, 0x51, 0x00],
        );
        assert_eq!(mac1, [0xF1, 0x5C, 0xAB, 0x75]);
        assert_eq!(purchase_mac2(&s, 0x1000), [0x56, 0x98, 0x8A, 0x13]);
    }

    // REFERENCE.md load vector: session key and MAC1 (balance 0, amount 0x1000, type 01,
    // terminal 001122334455, the purchase vector's key and random).
    #[test]
    fn load_vector() {
        let s = load_session(&DPK, &[0x11, 0x22, 0x33, 0x44], 0);
        assert_eq!(s, [0x9B, 0x1D, 0x92, 0x4E, 0x05, 0x59, 0x56, 0x03]);
        assert_eq!(
            load_mac1(&s, 0, 0x1000, tx_type::LOAD_ED, &TERM),
            [0x29, 0x88, 0xAE, 0x5A]
        );
    }
}
