//! System master keys, their text file format, and the per-card keys derived from them the way
//! a terminal's SAM derives them (see `docs/card-layout.md`, "Keys").

use crate::crypto::{aes_cmac, diversify_tdes};
use crate::mf1::KeyType;
use crate::mf1::card::Key;
use ykt_proto::hexstr;

/// The public key A of the MIFARE Application Directory sector (sector 0): anyone may read the
/// card header, only key B may write it.
pub const MAD_KEY_A: Key = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5];

/// The first line a key file must carry.
pub const FORMAT: &str = "ykt-keys-1";
/// A key file is small; anything larger is refused unread.
pub const MAX_FILE_LEN: usize = 16 * 1024;

/// The system's master keys (all 16 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct SystemKeys {
    /// Key generation, stored on every card so that keys can be rolled.
    pub version: u8,
    /// AES-128 master for MF1 key A (read) diversification.
    pub mf1_key_a: [u8; 16],
    /// AES-128 master for MF1 key B (write) diversification.
    pub mf1_key_b: [u8; 16],
    /// AES-128 master for the PIN verification data.
    pub pin: [u8; 16],
    /// 3DES master purchase key (MPK → card DPK).
    pub cpu_purchase: [u8; 16],
    /// 3DES master load key (MLK → card DLK).
    pub cpu_load: [u8; 16],
    /// 3DES master TAC key (→ card DTK); the host holds it to verify TACs.
    pub cpu_tac: [u8; 16],
    /// 3DES master maintenance key (→ card application-block / update key).
    pub cpu_maintenance: [u8; 16],
}

impl std::fmt::Debug for SystemKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material by accident.
        f.debug_struct("SystemKeys")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

const NAMES: [&str; 7] = [
    "mf1_key_a",
    "mf1_key_b",
    "pin",
    "cpu_purchase",
    "cpu_load",
    "cpu_tac",
    "cpu_maintenance",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file larger than {MAX_FILE_LEN} bytes")]
    TooLarge,
    #[error("line {0}: expected `name = value`")]
    Syntax(usize),
    #[error("line {0}: unknown entry `{1}`")]
    Unknown(usize, String),
    #[error("line {0}: `{1}` given twice")]
    Duplicate(usize, String),
    #[error("line {0}: `{1}` must be 32 hex digits")]
    BadKey(usize, String),
    #[error("line {0}: version must be 1–255")]
    BadVersion(usize),
    #[error("not a ykt key file: `format = {FORMAT}` missing or different")]
    Format,
    #[error("missing entry `{0}`")]
    Missing(&'static str),
}

impl SystemKeys {
    /// Builds keys from 112 bytes of key material (the caller supplies the randomness).
    pub fn from_material(version: u8, m: &[u8; 112]) -> SystemKeys {
        let k = |i: usize| -> [u8; 16] {
            let mut key = [0u8; 16];
            key.copy_from_slice(&m[i * 16..i * 16 + 16]);
            key
        };
        SystemKeys {
            version,
            mf1_key_a: k(0),
            mf1_key_b: k(1),
            pin: k(2),
            cpu_purchase: k(3),
            cpu_load: k(4),
            cpu_tac: k(5),
            cpu_maintenance: k(6),
        }
    }

    fn keys(&self) -> [&[u8; 16]; 7] {
        [
            &self.mf1_key_a,
            &self.mf1_key_b,
            &self.pin,
            &self.cpu_purchase,
            &self.cpu_load,
            &self.cpu_tac,
            &self.cpu_maintenance,
        ]
    }

    /// The file text: `name = value` lines, `#` comments.
    pub fn to_text(&self) -> String {
        let mut s = String::from(
            "# ykt system master keys. SECRET: keep this file mode 0600 and off version control.\n",
        );
        s.push_str(&format!("format = {FORMAT}\nversion = {}\n", self.version));
        for (name, key) in NAMES.iter().zip(self.keys()) {
            s.push_str(&format!("{name} = {}\n", hexstr::encode(key)));
        }
        s
    }

    pub fn parse(text: &str) -> Result<SystemKeys, KeyFileError> {
        if text.len() > MAX_FILE_LEN {
            return Err(KeyFileError::TooLarge);
        }
        let mut format_ok = false;
        let mut version = None;
        let mut found: [Option<[u8; 16]>; 7] = [None; 7];
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or(KeyFileError::Syntax(n))?;
            let (name, value) = (name.trim(), value.trim());
            match name {
                "format" => {
                    if format_ok || value != FORMAT {
                        return Err(KeyFileError::Format);
                    }
                    format_ok = true;
                }
                "version" => {
                    if version.is_some() {
                        return Err(KeyFileError::Duplicate(n, name.into()));
                    }
                    let v: u8 = value.parse().map_err(|_| KeyFileError::BadVersion(n))?;
                    if v == 0 {
                        return Err(KeyFileError::BadVersion(n));
                    }
                    version = Some(v);
                }
                _ => {
                    let idx = NAMES
                        .iter()
                        .position(|k| *k == name)
                        .ok_or_else(|| KeyFileError::Unknown(n, name.into()))?;
                    if found[idx].is_some() {
                        return Err(KeyFileError::Duplicate(n, name.into()));
                    }
                    found[idx] = Some(
                        hexstr::parse::<16>(value)
                            .ok_or_else(|| KeyFileError::BadKey(n, name.into()))?,
                    );
                }
            }
        }
        if !format_ok {
            return Err(KeyFileError::Format);
        }
        let version = version.ok_or(KeyFileError::Missing("version"))?;
        let mut keys = [[0u8; 16]; 7];
        for (i, slot) in found.iter().enumerate() {
            keys[i] = slot.ok_or(KeyFileError::Missing(NAMES[i]))?;
        }
        Ok(SystemKeys {
            version,
            mf1_key_a: keys[0],
            mf1_key_b: keys[1],
            pin: keys[2],
            cpu_purchase: keys[3],
            cpu_load: keys[4],
            cpu_tac: keys[5],
            cpu_maintenance: keys[6],
        })
    }

    /// The sector keys of one MF1 card.
    pub fn mf1_card(&self, uid: [u8; 4]) -> Mf1CardKeys {
        Mf1CardKeys {
            a_master: self.mf1_key_a,
            b_master: self.mf1_key_b,
            pin_master: self.pin,
            uid,
        }
    }

    /// The keys of one CPU card, diversified by its 8-byte application serial.
    pub fn cpu_card(&self, serial: &[u8; 8]) -> CpuCardKeys {
        CpuCardKeys {
            purchase: diversify_tdes(&self.cpu_purchase, serial),
            load: diversify_tdes(&self.cpu_load, serial),
            tac: diversify_tdes(&self.cpu_tac, serial),
            maintenance: diversify_tdes(&self.cpu_maintenance, serial),
        }
    }
}

/// The keys a terminal's SAM computes for one MF1 card.
#[derive(Clone, PartialEq, Eq)]
pub struct Mf1CardKeys {
    a_master: [u8; 16],
    b_master: [u8; 16],
    pin_master: [u8; 16],
    uid: [u8; 4],
}

impl Mf1CardKeys {
    /// Key A or B of a sector: AES-128-CMAC (AN10922 style) over
    /// `01 ‖ UID ‖ sector ‖ 'A'|'B' ‖ "ykt"`, first 6 bytes. Sector 0 key A is the public MAD key.
    pub fn sector_key(&self, sector: u8, key_type: KeyType) -> Key {
        if sector == 0 && key_type == KeyType::A {
            return MAD_KEY_A;
        }
        let (master, tag) = match key_type {
            KeyType::A => (&self.a_master, b'A'),
            KeyType::B => (&self.b_master, b'B'),
        };
        let u = self.uid;
        let mac = aes_cmac(
            master,
            &[0x01, u[0], u[1], u[2], u[3], sector, tag, b'y', b'k', b't'],
        );
        let mut key = [0u8; 6];
        key.copy_from_slice(&mac[..6]);
        key
    }

    /// The PIN verification data stored on the card: an 8-byte truncated AES-CMAC of the PIN
    /// under a key diversified from the PIN master by UID and card number.
    pub fn pin_verifier(&self, card_no: u32, pin: &str) -> [u8; 8] {
        let u = self.uid;
        let c = card_no.to_le_bytes();
        let card_key = aes_cmac(
            &self.pin_master,
            &[0x02, u[0], u[1], u[2], u[3], c[0], c[1], c[2]],
        );
        let mut msg = b"PIN".to_vec();
        msg.extend_from_slice(pin.as_bytes());
        let mac = aes_cmac(&card_key, &msg);
        let mut v = [0u8; 8];
        v.copy_from_slice(&mac[..8]);
        v
    }
}

/// The diversified 3DES keys of one CPU card.
#[derive(Clone, PartialEq, Eq)]
pub struct CpuCardKeys {
    pub purchase: [u8; 16],
    pub load: [u8; 16],
    pub tac: [u8; 16],
    pub maintenance: [u8; 16],
}

impl std::fmt::Debug for CpuCardKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CpuCardKeys(..)")
    }
}

/// A PIN is 4–12 decimal digits.
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> SystemKeys {
        let mut m = [0u8; 112];
        for (i, b) in m.iter_mut().enumerate() {
            *b = i as u8;
        }
        SystemKeys::from_material(1, &m)
    }

    #[test]
    fn file_round_trip() {
        let k = keys();
        assert_eq!(SystemKeys::parse(&k.to_text()), Ok(k));
    }

    #[test]
    fn file_errors_are_precise() {
        let text = keys().to_text();
        assert_eq!(
            SystemKeys::parse(&text.replace("format = ykt-keys-1\n", "")),
            Err(KeyFileError::Format)
        );
        let no_tac: String = text
            .lines()
            .filter(|l| !l.starts_with("cpu_tac"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            SystemKeys::parse(&no_tac),
            Err(KeyFileError::Missing("cpu_tac"))
        );
        assert!(matches!(
            SystemKeys::parse(&format!("{text}pin = 00\n")),
            Err(KeyFileError::Duplicate(..))
        ));
        assert!(matches!(
            SystemKeys::parse(&format!("{text}colour = 1\n")),
            Err(KeyFileError::Unknown(..))
        ));
        let short = text.replace("mf1_key_a = 000102", "mf1_key_a = 0102");
        assert!(matches!(
            SystemKeys::parse(&short),
            Err(KeyFileError::BadKey(..))
        ));
        assert_eq!(
            SystemKeys::parse(&"#".repeat(MAX_FILE_LEN + 1)),
            Err(KeyFileError::TooLarge)
        );
        assert!(!format!("{:?}", keys()).contains("0001"));
    }

    // issue 18.2: a key is exactly 32 hex digits; `+` is not a digit (from_str_radix took
    // `4B70+5BA…` as `4B7005BA…`).
    #[test]
    fn key_with_a_sign_is_refused() {
        let text = keys().to_text();
        let line = text.lines().find(|l| l.starts_with("pin = ")).unwrap();
        let signed = format!("pin = +{}", &line["pin = 0".len()..]);
        assert_eq!(signed.len(), line.len());
        assert_eq!(
            SystemKeys::parse(&text.replace(line, &signed)),
            Err(KeyFileError::BadKey(6, "pin".into()))
        );
        let lower = text.replace(line, &line.to_ascii_lowercase());
        assert_eq!(SystemKeys::parse(&lower), Ok(keys()));
    }

    #[test]
    fn cpu_diversification_is_the_pboc_one() {
        let k = keys();
        let f = [1, 2, 3, 4, 5, 6, 7, 8];
        let d = k.cpu_card(&f);
        let inv = f.map(|b| !b);
        assert_eq!(
            d.purchase[..8],
            crate::crypto::tdes_encrypt(&k.cpu_purchase, &f)
        );
        assert_eq!(
            d.purchase[8..],
            crate::crypto::tdes_encrypt(&k.cpu_purchase, &inv)
        );
    }

    proptest! {
        // No two cards (UIDs) share a sector key; A and B differ; sectors differ.
        #[test]
        fn mf1_keys_are_per_card_and_per_sector(u1: [u8; 4], u2: [u8; 4], s in 1u8..16) {
            prop_assume!(u1 != u2);
            let k = keys();
            let (c1, c2) = (k.mf1_card(u1), k.mf1_card(u2));
            prop_assert_ne!(c1.sector_key(s, KeyType::A), c2.sector_key(s, KeyType::A));
            prop_assert_ne!(c1.sector_key(s, KeyType::B), c2.sector_key(s, KeyType::B));
            prop_assert_ne!(c1.sector_key(s, KeyType::A), c1.sector_key(s, KeyType::B));
            prop_assert_ne!(c1.sector_key(s, KeyType::B), c1.sector_key(s % 15 + 1, KeyType::B));
        }

        #[test]
        fn parser_never_panics(text in ".{0,300}") {
            let _ = SystemKeys::parse(&text);
        }
    }
}
