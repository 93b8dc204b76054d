//! MIFARE Classic value blocks: `v, ~v, v` (int32 little-endian) then `adr, ~adr, adr, ~adr`.

/// Encodes a value block.
pub fn encode(value: i32, address: u8) -> [u8; 16] {
    let v = value.to_le_bytes();
    let n = (!value).to_le_bytes();
    let mut block = [0u8; 16];
    block[0..4].copy_from_slice(&v);
    block[4..8].copy_from_slice(&n);
    block[8..12].copy_from_slice(&v);
    block[12..16].copy_from_slice(&[address, !address, address, !address]);
    block
}

/// Decodes a value block; `None` unless all redundant copies agree.
pub fn decode(block: &[u8; 16]) -> Option<(i32, u8)> {
    let word = |i: usize| i32::from_le_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
    let (v, n, v2) = (word(0), word(4), word(8));
    let a = block[12];
    let ok = v == v2 && n == !v && block[13] == !a && block[14] == a && block[15] == !a;
    ok.then_some((v, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_vector() {
        let expected = [
            0x87, 0xD6, 0x12, 0x00, 0x78, 0x29, 0xED, 0xFF, 0x87, 0xD6, 0x12, 0x00, 0x11, 0xEE,
            0x11, 0xEE,
        ];
        assert_eq!(encode(1_234_567, 17), expected);
        assert_eq!(decode(&expected), Some((1_234_567, 17)));
    }

    proptest! {
        #[test]
        fn round_trip(v: i32, a: u8) {
            prop_assert_eq!(decode(&encode(v, a)), Some((v, a)));
        }

        #[test]
        fn every_single_byte_corruption_is_detected(v: i32, a: u8, pos in 0usize..16, x in 1u8..=255) {
            let mut block = encode(v, a);
            block[pos] ^= x;
            prop_assert_eq!(decode(&block), None);
        }
    }
}
