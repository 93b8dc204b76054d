//! Passwords and random credentials. A password is kept only as an Argon2id hash (PHC string,
//! salted); an API token or session id is 32 random bytes, kept only as its SHA-256 (they
//! carry full entropy, so a slow hash adds nothing). Hashing a password is slow on purpose:
//! callers run it off the store's writer threads.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::error::{HostError, Result};

/// Shortest and longest password accepted (bytes of UTF-8).
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 128;

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| HostError::Invalid(format!("OS random generator failed: {e}")))?;
    Ok(b)
}

/// Why a new password is refused; `None` when it is acceptable.
pub fn password_problem(p: &str) -> Option<String> {
    if p.len() < MIN_PASSWORD {
        return Some(format!("密码至少 {MIN_PASSWORD} 个字符"));
    }
    if p.len() > MAX_PASSWORD {
        return Some(format!("密码至多 {MAX_PASSWORD} 字节"));
    }
    if p.chars().all(|c| c.is_ascii_digit()) {
        return Some("密码不能全是数字".into());
    }
    None
}

/// The Argon2id PHC string of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random::<16>()?)
        .map_err(|e| HostError::Invalid(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HostError::Invalid(format!("password hash: {e}")))
}

/// Whether `password` matches a stored PHC string; a malformed string matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for a new operator (shown once; must be changed at first login).
pub fn initial_password() -> Result<String> {
    // 12 characters from an alphabet without look-alikes (0/O, 1/l/I).
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(random::<12>()?
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

/// SHA-256 in hex: how token secrets and session ids are stored.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes in hex: a session id, a CSRF token, a token's secret.
pub fn random_hex32() -> Result<String> {
    Ok(hex::encode(random::<32>()?))
}

/// A new API token: its public id (listed, used to revoke it) and the whole token the
/// operator is shown once: `ykt_<id>_<secret>`.
pub struct NewToken {
    pub id: String,
    pub secret: String,
}

impl NewToken {
    pub fn generate() -> Result<NewToken> {
        Ok(NewToken {
            id: hex::encode(random::<8>()?),
            secret: random_hex32()?,
        })
    }

    pub fn text(&self) -> String {
        format!("ykt_{}_{}", self.id, self.secret)
    }

    /// Splits a presented token into (id, secret); `None` when it is not of this form.
    pub fn parse(token: &str) -> Option<(&str, &str)> {
        let rest = token.strip_prefix("ykt_")?;
        let (id, secret) = rest.split_once('_')?;
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
    }
}

/// Constant-time equality, so a secret cannot be guessed byte by byte from timings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-B1: passwords are Argon2id hashes that verify only the right password.
    #[test]
    fn password_hashes_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn weak_passwords_refused() {
        assert!(password_problem("short").is_some());
        assert!(password_problem("12345678").is_some());
        assert!(password_problem(&"x".repeat(MAX_PASSWORD + 1)).is_some());
        assert!(password_problem("食堂密码2026").is_none());
    }

    #[test]
    fn tokens_parse_only_their_own_form() {
        let t = NewToken::generate().unwrap();
        assert_eq!(
            NewToken::parse(&t.text()),
            Some((t.id.as_str(), t.secret.as_str()))
        );
        assert_eq!(NewToken::parse("ykt_zz_00"), None);
        assert_eq!(NewToken::parse(&t.secret), None);
        assert_eq!(
            NewToken::parse(&format!("ykt_{}_{}x", t.id, t.secret)),
            None
        );
    }

    #[test]
    fn initial_passwords_are_acceptable() {
        let p = initial_password().unwrap();
        assert_eq!(p.len(), 12);
        assert!(password_problem(&p).is_none(), "{p}");
    }
}
