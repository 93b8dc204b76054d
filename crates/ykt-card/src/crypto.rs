//! Block-cipher primitives the cards, the SAM and the key files share: single and double-length
//! DES with PBOC MACs, AES-CMAC diversification (NXP AN10922), and the CRCs of our layouts.

use aes::Aes128;
use cmac::{Cmac, KeyInit, Mac};
use des::cipher::{Array, BlockCipherEncrypt};
use des::{Des, TdesEde2};

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the checksum of every MF1 application block.
pub const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// Encrypts one 8-byte block with single DES.
pub fn des_encrypt(key: &[u8; 8], block: &[u8; 8]) -> [u8; 8] {
    let cipher = Des::new(&Array::from(*key));
    let mut b = Array::from(*block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// Encrypts one 8-byte block with two-key triple DES (EDE, K1‖K2).
pub fn tdes_encrypt(key: &[u8; 16], block: &[u8; 8]) -> [u8; 8] {
    let cipher = TdesEde2::new(&Array::from(*key));
    let mut b = Array::from(*block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// Applies the ISO 9797-1 method 2 padding (`80 00…`) the PBOC MACs use, always at least one byte.
fn padded_blocks(data: &[u8]) -> impl Iterator<Item = [u8; 8]> + '_ {
    let total = (data.len() / 8 + 1) * 8;
    (0..total / 8).map(move |i| {
        let mut block = [0u8; 8];
        for (j, byte) in block.iter_mut().enumerate() {
            let pos = i * 8 + j;
            *byte = match pos.cmp(&data.len()) {
                std::cmp::Ordering::Less => data[pos],
                std::cmp::Ordering::Equal => 0x80,
                std::cmp::Ordering::Greater => 0,
            };
        }
        block
    })
}

/// PBOC MAC with a single-length session key: DES-CBC, IV 0, `80 00…` padding (MAC1, MAC2, TAC).
pub fn mac_des(key: &[u8; 8], data: &[u8]) -> [u8; 8] {
    let mut state = [0u8; 8];
    for block in padded_blocks(data) {
        for (s, b) in state.iter_mut().zip(block) {
            *s ^= b;
        }
        state = des_encrypt(key, &state);
    }
    state
}

/// MAC with a double-length key: 3DES-CBC, IV 0, `80 00…` padding (PIN verification data).
pub fn mac_tdes(key: &[u8; 16], data: &[u8]) -> [u8; 8] {
    let mut state = [0u8; 8];
    for block in padded_blocks(data) {
        for (s, b) in state.iter_mut().zip(block) {
            *s ^= b;
        }
        state = tdes_encrypt(key, &state);
    }
    state
}

/// PBOC key diversification: `3DES(MK, F) ‖ 3DES(MK, ~F)` for an 8-byte factor F.
pub fn diversify_tdes(master: &[u8; 16], factor: &[u8; 8]) -> [u8; 16] {
    let inverted = factor.map(|b| !b);
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&tdes_encrypt(master, factor));
    key[8..].copy_from_slice(&tdes_encrypt(master, &inverted));
    key
}

/// AES-128-CMAC; with `message` starting with the diversification constant this is the
/// AN10922 key diversification (messages shorter than 32 bytes are padded exactly as CMAC does).
pub fn aes_cmac(key: &[u8; 16], message: &[u8]) -> [u8; 16] {
    let mut mac = <Cmac<Aes128> as KeyInit>::new(&Array::from(*key));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        ykt_proto::hexstr::parse(s).unwrap()
    }

    #[test]
    fn an10922_vector() {
        let k: [u8; 16] = hex("00112233445566778899AABBCCDDEEFF");
        let m: [u8; 18] = hex("0104782E21801D803042F54E585020416275");
        assert_eq!(
            aes_cmac(&k, &m),
            hex::<16>("A8DD63A3B89D54B37CA802473FDA9175")
        );
    }

    #[test]
    fn crc16_check_value() {
        assert_eq!(CRC16.checksum(b"123456789"), 0x29B1);
    }

    #[test]
    fn padding_adds_a_full_block_when_aligned() {
        let blocks: Vec<[u8; 8]> = padded_blocks(&[1; 8]).collect();
        assert_eq!(blocks, vec![[1; 8], [0x80, 0, 0, 0, 0, 0, 0, 0]]);
    }
}
