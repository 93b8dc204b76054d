//! The two cipher suites: AES-128 with AES-CMAC (default) and SM4 with SM4-CMAC (for
//! deployments that require Chinese national algorithms). Both have 128-bit keys and blocks,
//! so every layout is the same for both.

use aes::Aes128;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use sm4::Sm4;

/// Length of every key: master keys and session keys.
pub const KEY_LEN: usize = 16;
/// Length of the truncated CMAC at the end of every frame.
pub const MAC_LEN: usize = 8;
/// Length of the key check value: the first bytes of E(key, 0¹²⁸).
pub const KCV_LEN: usize = 4;

/// A cipher suite, chosen per device when its master key is provisioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 for key wrapping, AES-128-CMAC for MACs. Wire value 1.
    Aes128 = 1,
    /// SM4 for key wrapping, SM4-CMAC for MACs. Wire value 2.
    Sm4 = 2,
}

impl Suite {
    pub const fn from_wire(v: u8) -> Option<Suite> {
        match v {
            1 => Some(Suite::Aes128),
            2 => Some(Suite::Sm4),
            _ => None,
        }
    }
}

/// A 128-bit key (master or session).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach logs.
        f.write_str("Key(..)")
    }
}

/// CMAC (NIST SP 800-38B) with the key schedule and both subkeys computed once per key, so
/// a frame costs only its blocks. Cross-checked against the `cmac` crate in the tests.
#[derive(Clone)]
pub struct MacKey {
    cipher: Cipher,
    k1: [u8; 16],
    k2: [u8; 16],
}

#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per session; boxing would add an indirection per block
enum Cipher {
    Aes(Aes128),
    Sm4(Sm4),
}

impl Cipher {
    fn new(suite: Suite, key: &Key) -> Cipher {
        match suite {
            Suite::Aes128 => Cipher::Aes(Aes128::new(&key.0.into())),
            Suite::Sm4 => Cipher::Sm4(Sm4::new(&key.0.into())),
        }
    }

    fn encrypt(&self, block: &mut [u8; 16]) {
        let mut b = (*block).into();
        match self {
            Cipher::Aes(c) => c.encrypt_block(&mut b),
            Cipher::Sm4(c) => c.encrypt_block(&mut b),
        }
        *block = b.into();
    }
}

/// Doubling in GF(2^128) with the CMAC polynomial x^128 + x^7 + x^2 + x + 1.
fn dbl(block: [u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(block);
    let carry = if v >> 127 == 1 { 0x87 } else { 0 };
    ((v << 1) ^ carry).to_be_bytes()
}

fn xor_into(acc: &mut [u8; 16], data: &[u8]) {
    acc.iter_mut().zip(data).for_each(|(a, d)| *a ^= d);
}

impl MacKey {
    pub fn new(suite: Suite, key: &Key) -> MacKey {
        let cipher = Cipher::new(suite, key);
        let mut l = [0u8; 16];
        cipher.encrypt(&mut l);
        let k1 = dbl(l);
        MacKey {
            cipher,
            k1,
            k2: dbl(k1),
        }
    }

    /// The full 16-byte CMAC of `data`.
    pub fn cmac(&self, data: &[u8]) -> [u8; 16] {
        // Every block but the last is chained plainly; the last is masked with K1 (complete)
        // or padded with 80 00 … and masked with K2 (partial or empty).
        let body = data.len().saturating_sub(1) / 16 * 16;
        let (head, last) = data.split_at(body);
        let mut x = [0u8; 16];
        for block in head.chunks_exact(16) {
            xor_into(&mut x, block);
            self.cipher.encrypt(&mut x);
        }
        xor_into(&mut x, last);
        if last.len() == 16 {
            xor_into(&mut x, &self.k1);
        } else {
            x[last.len()] ^= 0x80;
            xor_into(&mut x, &self.k2);
        }
        self.cipher.encrypt(&mut x);
        x
    }

    /// The first 8 bytes of CMAC(key, data).
    pub fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let full = self.cmac(data);
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&full[..MAC_LEN]);
        tag
    }

    /// Constant-time comparison of the expected tag with `tag`.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let expected = self.tag(data);
        tag.len() == MAC_LEN
            && expected
                .iter()
                .zip(tag)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn encrypt_block(suite: Suite, key: &Key, block: [u8; 16]) -> [u8; 16] {
    let mut b = block.into();
    match suite {
        Suite::Aes128 => Aes128::new(&key.0.into()).encrypt_block(&mut b),
        Suite::Sm4 => Sm4::new(&key.0.into()).encrypt_block(&mut b),
    }
    b.into()
}

fn decrypt_block(suite: Suite, key: &Key, block: [u8; 16]) -> [u8; 16] {
    let mut b = block.into();
    match suite {
        Suite::Aes128 => Aes128::new(&key.0.into()).decrypt_block(&mut b),
        Suite::Sm4 => Sm4::new(&key.0.into()).decrypt_block(&mut b),
    }
    b.into()
}

/// The session key encrypted under the master key: one block, E(master, session).
pub fn wrap_key(suite: Suite, master: &Key, session: &Key) -> [u8; KEY_LEN] {
    encrypt_block(suite, master, session.0)
}

/// Inverse of [`wrap_key`].
pub fn unwrap_key(suite: Suite, master: &Key, wrapped: &[u8; KEY_LEN]) -> Key {
    Key(decrypt_block(suite, master, *wrapped))
}

/// Key check value: the first 4 bytes of E(key, 00…00), as in bank-POS sign-in.
pub fn key_check_value(suite: Suite, key: &Key) -> [u8; KCV_LEN] {
    let e = encrypt_block(suite, key, [0u8; 16]);
    let mut kcv = [0u8; KCV_LEN];
    kcv.copy_from_slice(&e[..KCV_LEN]);
    kcv
}

/// A PIN as typed: 4–12 decimal digits. Never logged (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(..)")
    }
}

impl Pin {
    pub const MIN_DIGITS: usize = 4;
    pub const MAX_DIGITS: usize = 12;

    pub fn new(digits: &str) -> Option<Pin> {
        ((Pin::MIN_DIGITS..=Pin::MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Pin(digits.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the PIN key of a session is derived with: E(session key, label). A separate key, so
/// that the MAC key never encrypts.
const PIN_KEY_LABEL: [u8; 16] = *b"ykt pin block k1";

/// The session's PIN key (`docs/protocol.md` §6.18).
pub fn pin_key(suite: Suite, session: &Key) -> Key {
    Key(encrypt_block(suite, session, PIN_KEY_LABEL))
}

/// The plain PIN block: length, BCD digits padded with F, `FF`, the card number and the
/// request's nonce (both u32 BE), so a block opens only for the request it was made for.
fn pin_plain(card_no: u32, nonce: u32, pin: &Pin) -> [u8; 16] {
    let mut b = [0xFFu8; 16];
    let digits = pin.0.as_bytes();
    b[0] = digits.len() as u8; // ≤ 12
    for (i, d) in digits.iter().enumerate() {
        let nibble = d - b'0';
        let byte = &mut b[1 + i / 2];
        *byte = if i % 2 == 0 {
            (nibble << 4) | 0x0F
        } else {
            (*byte & 0xF0) | nibble
        };
    }
    b[8..12].copy_from_slice(&card_no.to_be_bytes());
    b[12..16].copy_from_slice(&nonce.to_be_bytes());
    b
}

/// The PIN block of an authorisation check: E(PIN key, plain block).
pub fn seal_pin_block(
    suite: Suite,
    pin_key: &Key,
    card_no: u32,
    nonce: u32,
    pin: &Pin,
) -> [u8; 16] {
    encrypt_block(suite, pin_key, pin_plain(card_no, nonce, pin))
}

/// The PIN in a block, or `None` when the block does not open to a well-formed block for this
/// card and nonce (a wrong key, a replayed or damaged block).
pub fn open_pin_block(
    suite: Suite,
    pin_key: &Key,
    card_no: u32,
    nonce: u32,
    block: &[u8; 16],
) -> Option<Pin> {
    let b = decrypt_block(suite, pin_key, *block);
    let len = usize::from(b[0]);
    if !(Pin::MIN_DIGITS..=Pin::MAX_DIGITS).contains(&len) {
        return None;
    }
    let digits: String = (0..len)
        .map(|i| {
            let byte = b[1 + i / 2];
            if i % 2 == 0 { byte >> 4 } else { byte & 0x0F }
        })
        .map(|n| char::from(b'0' + n))
        .collect();
    let pin = Pin::new(&digits)?;
    // Canonical: re-encoding gives the same bytes (padding, card number, nonce).
    (pin_plain(card_no, nonce, &pin) == b).then_some(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        crate::hexstr::parse(s).unwrap()
    }

    // R-C6.3: the SM4 suite is the standard cipher (GB/T 32907 example, REFERENCE.md).
    #[test]
    fn sm4_standard_vector() {
        let k = Key(hex16("0123456789abcdeffedcba9876543210"));
        assert_eq!(
            wrap_key(Suite::Sm4, &k, &k),
            hex16("681edf34d206965e86b3e94f536e4246")
        );
    }

    // R-C6.3: AES-CMAC is the RFC 4493 algorithm (example 2, 16-byte message).
    #[test]
    fn aes_cmac_rfc4493_vector() {
        let k = Key(hex16("2b7e151628aed2a6abf7158809cf4f3c"));
        let m = hex16("6bc1bee22e409f96e93d7e117393172a");
        let full = hex16("070a16b46b4d4144f79bdd9dd04a287c");
        let mac = MacKey::new(Suite::Aes128, &k);
        assert_eq!(mac.tag(&m), full[..8]);
        assert!(mac.verify(&m, &full[..8]));
        assert!(!mac.verify(&m[1..], &full[..8]));
        // RFC 4493 examples 1 (empty) and 3 (40 bytes).
        assert_eq!(mac.cmac(&[]), hex16("bb1d6929e95937287fa37d129b756746"));
        let mut m40 = Vec::new();
        for part in [
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
        ] {
            m40.extend_from_slice(&hex16(part));
        }
        m40.extend_from_slice(&hex16("30c81c46a35ce411e5fbc1191a0a52ef")[..8]);
        assert_eq!(mac.cmac(&m40), hex16("dfa66747de9ae63030ca32611497c827"));
    }

    proptest::proptest! {
        // R-C6.3: our CMAC equals the RustCrypto `cmac` crate for both suites, any length.
        #[test]
        fn cmac_matches_the_cmac_crate(key in proptest::prelude::any::<[u8; 16]>(),
                                       data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            use cmac::{Cmac, KeyInit as _, Mac as _};
            let mut a = <Cmac<Aes128>>::new(&key.into());
            a.update(&data);
            let a: [u8; 16] = a.finalize().into_bytes().into();
            proptest::prop_assert_eq!(MacKey::new(Suite::Aes128, &Key(key)).cmac(&data), a);
            let mut s = <Cmac<Sm4>>::new(&key.into());
            s.update(&data);
            let s: [u8; 16] = s.finalize().into_bytes().into();
            proptest::prop_assert_eq!(MacKey::new(Suite::Sm4, &Key(key)).cmac(&data), s);
        }
    }

    // R-C6.3: wrap/unwrap are inverse and the KCV identifies the key, for both suites.
    #[test]
    fn wrap_unwrap_and_kcv() {
        for suite in [Suite::Aes128, Suite::Sm4] {
            let master = Key([7; 16]);
            let session = Key([9; 16]);
            let w = wrap_key(suite, &master, &session);
            assert_ne!(w, session.0);
            assert_eq!(unwrap_key(suite, &master, &w), session);
            assert_ne!(
                key_check_value(suite, &session),
                key_check_value(suite, &master)
            );
        }
    }

    // R-B11: a PIN block opens to its PIN only with its key, card number and nonce.
    #[test]
    fn pin_block_round_trip_and_binding() {
        let key = pin_key(Suite::Aes128, &Key([7; 16]));
        for digits in ["1234", "000000", "987654321012"] {
            let pin = Pin::new(digits).unwrap();
            let block = seal_pin_block(Suite::Aes128, &key, 900_001, 5, &pin);
            assert_eq!(
                open_pin_block(Suite::Aes128, &key, 900_001, 5, &block),
                Some(pin)
            );
            assert_eq!(
                open_pin_block(Suite::Aes128, &key, 900_002, 5, &block),
                None
            );
            assert_eq!(
                open_pin_block(Suite::Aes128, &key, 900_001, 6, &block),
                None
            );
            let other = pin_key(Suite::Aes128, &Key([8; 16]));
            assert_eq!(
                open_pin_block(Suite::Aes128, &other, 900_001, 5, &block),
                None
            );
        }
        assert!(Pin::new("123").is_none());
        assert!(Pin::new("1234567890123").is_none());
        assert!(Pin::new("12a4").is_none());
        assert_eq!(format!("{:?}", Pin::new("1234")), "Some(Pin(..))");
    }
}
