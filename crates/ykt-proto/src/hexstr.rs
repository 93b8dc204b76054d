//! Byte strings as hex text: the one parser of the workspace (keys, card images, physical
//! IDs, test vectors). Exactly two hex digits (`0-9 a-f A-F`) per byte and nothing else: no
//! sign, space, `0x` or odd digit. (`u8::from_str_radix` accepts a leading `+`, so it would
//! read `+1+2+3+4` as `01020304`.)

/// The value of one hex digit.
const fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `s` into `out`: `s` must be exactly `2 × out.len()` hex digits.
fn decode_into(s: &str, out: &mut [u8]) -> Option<()> {
    let s = s.as_bytes();
    if s.len() != 2 * out.len() {
        return None;
    }
    for (b, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *b = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

/// Exactly `N` bytes as `2N` hex digits.
pub fn parse<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    decode_into(s, &mut out).map(|()| out)
}

/// Any number of bytes as an even number of hex digits (the caller bounds `s`).
pub fn parse_vec(s: &str) -> Option<Vec<u8>> {
    let mut out = vec![0u8; s.len() / 2];
    decode_into(s, &mut out).map(|()| out)
}

/// A number written in 1–16 hex digits and nothing else (an HTTP chunk size, for one).
pub fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.bytes()
        .try_fold(0u64, |n, c| Some(n << 4 | u64::from(digit(c)?)))
}

/// Upper-case hex, two digits per byte (what [`parse`] reads back).
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // issue 18.2: a sign, a space or an odd digit count is refused, not read around.
    #[test]
    fn refuses_what_from_str_radix_accepts() {
        assert_eq!(parse::<4>("+1+2+3+4"), None);
        assert_eq!(parse::<2>("4B70"), Some([0x4B, 0x70]));
        assert_eq!(parse::<2>("4B+7"), None);
        assert_eq!(parse::<2>("4B-7"), None);
        assert_eq!(parse::<2>("4B 7"), None);
        assert_eq!(parse::<1>("0x"), None);
        assert_eq!(parse::<2>("4b7"), None);
        assert_eq!(parse_vec("abc"), None);
        assert_eq!(parse_vec(""), Some(vec![]));
        assert_eq!(parse_number("+1a"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("1a"), Some(0x1A));
        assert_eq!(parse_number("ffffFFFFffffFFFF"), Some(u64::MAX));
        assert_eq!(parse_number("10000000000000000"), None);
        // Multi-byte characters never count as digits, whatever their length.
        assert_eq!(parse::<1>("é"), None);
        assert_eq!(parse::<2>("1é2"), None);
    }

    proptest! {
        // issue 18.2: the parser accepts exactly the strings of [0-9a-fA-F]{2n}, and what it
        // reads is what the digits say.
        #[test]
        fn accepts_exactly_hex_digit_pairs(s in "[0-9a-fA-F+\\- xX]{0,12}") {
            let valid = s.len() % 2 == 0 && s.bytes().all(|c| c.is_ascii_hexdigit());
            let parsed = parse_vec(&s);
            prop_assert_eq!(parsed.is_some(), valid);
            if let Some(bytes) = parsed {
                prop_assert_eq!(encode(&bytes), s.to_ascii_uppercase());
            }
            let fixed = parse::<3>(&s);
            prop_assert_eq!(fixed.is_some(), valid && s.len() == 6);
        }

        #[test]
        fn any_text_is_refused_or_read_as_its_digits(s in "\\PC{0,12}") {
            if let Some(bytes) = parse_vec(&s) {
                prop_assert!(s.bytes().all(|c| c.is_ascii_hexdigit()));
                prop_assert_eq!(encode(&bytes), s.to_ascii_uppercase());
            }
        }

        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let text = encode(&bytes);
            prop_assert_eq!(text.len(), 2 * bytes.len());
            prop_assert_eq!(parse_vec(&text), Some(bytes.clone()));
            prop_assert_eq!(parse_vec(&text.to_ascii_lowercase()), Some(bytes));
        }
    }
}
