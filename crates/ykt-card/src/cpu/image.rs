//! The CPU card image file: `name = value` text lines (format `ykt-cpu-card-1`), documented in
//! `docs/card-layout.md`. It holds the card's secret memory too (its diversified keys), as
//! the chip does; protect it like the card.

use super::card::{CpuCard, EF15_LEN, EF17_LEN, LOG_RECORD_LEN, LOG_RECORDS, PIN_TRIES, Proof};
use crate::keys::CpuCardKeys;
use ykt_proto::hexstr;

pub const FORMAT: &str = "ykt-cpu-card-1";
pub const MAX_IMAGE_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("card image larger than {MAX_IMAGE_LEN} bytes")]
    TooLarge,
    #[error("not a ykt CPU card image (`format = {FORMAT}` missing)")]
    Format,
    #[error("line {0}: expected `name = value`")]
    Syntax(usize),
    #[error("line {0}: bad value for `{1}`")]
    Value(usize, String),
    #[error("line {0}: unknown or repeated entry `{1}`")]
    Entry(usize, String),
    #[error("missing entry `{0}`")]
    Missing(&'static str),
    #[error("more than {LOG_RECORDS} log records")]
    LogTooLong,
}

impl CpuCard {
    pub fn to_image(&self) -> String {
        let mut s = format!(
            "# ykt CPU card image: contains the card's keys, keep it secret\nformat = {FORMAT}\n"
        );
        let mut put = |k: &str, v: String| s.push_str(&format!("{k} = {v}\n"));
        put("uid", hexstr::encode(&self.uid));
        put("serial", hexstr::encode(&self.serial));
        put("key_version", self.key_version.to_string());
        put("dpk", hexstr::encode(&self.keys.purchase));
        put("dlk", hexstr::encode(&self.keys.load));
        put("dtk", hexstr::encode(&self.keys.tac));
        put("dmk", hexstr::encode(&self.keys.maintenance));
        put("pin_key", hexstr::encode(&self.pin_key));
        put("pin_verifier", hexstr::encode(&self.pin_verifier));
        put("pin_tries", self.pin_tries.to_string());
        put("balance", self.balance.to_string());
        put("offline_seq", self.offline_seq.to_string());
        put("online_seq", self.online_seq.to_string());
        put("locked", u8::from(self.locked).to_string());
        put("ef15", hexstr::encode(&self.ef15));
        put("ef17", hexstr::encode(&self.ef17));
        put("rng", self.rng_state.to_string());
        if let Some(p) = self.last_proof {
            put(
                "proof",
                format!(
                    "{} {:02X} {} {}",
                    p.seq,
                    p.ty,
                    hexstr::encode(&p.mac2),
                    hexstr::encode(&p.tac)
                ),
            );
        }
        for rec in &self.log {
            put("log", hexstr::encode(rec));
        }
        s
    }

    pub fn from_image(text: &str) -> Result<CpuCard, ImageError> {
        if text.len() > MAX_IMAGE_LEN {
            return Err(ImageError::TooLarge);
        }
        let mut fields: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
        let mut log = Vec::new();
        let mut format_ok = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or(ImageError::Syntax(n))?;
            let (k, v) = (k.trim(), v.trim());
            match k {
                "format" if v == FORMAT => format_ok = true,
                "format" => return Err(ImageError::Format),
                "log" => {
                    if log.len() == LOG_RECORDS {
                        return Err(ImageError::LogTooLong);
                    }
                    log.push(
                        hexstr::parse::<LOG_RECORD_LEN>(v)
                            .ok_or_else(|| ImageError::Value(n, k.into()))?,
                    );
                }
                _ => {
                    if fields.insert(k, (n, v)).is_some() {
                        return Err(ImageError::Entry(n, k.into()));
                    }
                }
            }
        }
        if !format_ok {
            return Err(ImageError::Format);
        }
        let mut take = |k: &'static str| fields.remove(k).ok_or(ImageError::Missing(k));
        fn hex<const N: usize>(k: &str, (n, v): (usize, &str)) -> Result<[u8; N], ImageError> {
            hexstr::parse::<N>(v).ok_or_else(|| ImageError::Value(n, k.into()))
        }
        fn num<T: std::str::FromStr>(k: &str, (n, v): (usize, &str)) -> Result<T, ImageError> {
            v.parse().map_err(|_| ImageError::Value(n, k.into()))
        }
        let uid = hex::<4>("uid", take("uid")?)?;
        let serial = hex::<8>("serial", take("serial")?)?;
        let key_version = num::<u8>("key_version", take("key_version")?)?;
        let keys = CpuCardKeys {
            purchase: hex::<16>("dpk", take("dpk")?)?,
            load: hex::<16>("dlk", take("dlk")?)?,
            tac: hex::<16>("dtk", take("dtk")?)?,
            maintenance: hex::<16>("dmk", take("dmk")?)?,
        };
        let pin_key = hex::<16>("pin_key", take("pin_key")?)?;
        let pin_verifier = hex::<8>("pin_verifier", take("pin_verifier")?)?;
        let pin_tries = num::<u8>("pin_tries", take("pin_tries")?)?;
        let balance = num::<u32>("balance", take("balance")?)?;
        let offline_seq = num::<u16>("offline_seq", take("offline_seq")?)?;
        let online_seq = num::<u16>("online_seq", take("online_seq")?)?;
        let locked = num::<u8>("locked", take("locked")?)?;
        let ef15 = hex::<EF15_LEN>("ef15", take("ef15")?)?;
        let ef17 = hex::<EF17_LEN>("ef17", take("ef17")?)?;
        let rng = num::<u64>("rng", take("rng")?)?;
        let last_proof = match fields.remove("proof") {
            None => None,
            Some((n, v)) => {
                Some(parse_proof(v).ok_or_else(|| ImageError::Value(n, "proof".into()))?)
            }
        };
        if let Some((k, (n, _))) = fields.into_iter().next() {
            return Err(ImageError::Entry(n, k.into()));
        }
        if pin_tries > PIN_TRIES || locked > 1 || balance > super::card::MAX_BALANCE {
            return Err(ImageError::Value(0, "pin_tries/locked/balance".into()));
        }
        let mut card = CpuCard::new(
            uid,
            serial,
            keys,
            key_version,
            pin_key,
            pin_verifier,
            ef15,
            balance,
            rng,
        );
        card.pin_tries = pin_tries;
        card.ef17 = ef17;
        card.offline_seq = offline_seq;
        card.online_seq = online_seq;
        card.locked = locked == 1;
        card.log = log;
        card.last_proof = last_proof;
        Ok(card)
    }
}

fn parse_proof(v: &str) -> Option<Proof> {
    let mut it = v.split_whitespace();
    let seq = it.next()?.parse().ok()?;
    let [ty] = hexstr::parse::<1>(it.next()?)?;
    let mac2 = hexstr::parse::<4>(it.next()?)?;
    let tac = hexstr::parse::<4>(it.next()?)?;
    it.next().is_none().then_some(Proof { seq, ty, mac2, tac })
}
