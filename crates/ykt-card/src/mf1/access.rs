//! MIFARE Classic access bits (trailer bytes 6–8) and the permissions they grant, as in the
//! MF1S50 datasheet.

/// Which sector key an operation was authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    A,
    B,
}

/// The three access bits (C1, C2, C3) of one block, packed as `C1<<2 | C2<<1 | C3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Condition(pub u8);

/// The access conditions of the four blocks of a sector (index 3 = trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessBits(pub [Condition; 4]);

/// Data-block condition `000`: everything with key A or B (transport configuration).
pub const DATA_OPEN: Condition = Condition(0b000);
/// Data-block condition `100`: read with A or B, write with B only.
pub const DATA_READ_AB_WRITE_B: Condition = Condition(0b100);
/// Data-block condition `110`: value block, read A|B, write/increment B, decrement A|B.
pub const DATA_VALUE: Condition = Condition(0b110);
/// Data-block condition `010`: read-only with A or B.
pub const DATA_READ_ONLY: Condition = Condition(0b010);
/// Trailer condition `001`: the transport configuration (key A writes everything).
pub const TRAILER_TRANSPORT: Condition = Condition(0b001);
/// Trailer condition `011`: key B writes keys and access bits; key B is not readable.
pub const TRAILER_KEY_B: Condition = Condition(0b011);

impl AccessBits {
    /// The factory setting: `FF 07 80`.
    pub const TRANSPORT: AccessBits =
        AccessBits([DATA_OPEN, DATA_OPEN, DATA_OPEN, TRAILER_TRANSPORT]);

    /// Encodes as trailer bytes 6–8: `~C2<<4 | ~C1`, `C1<<4 | ~C3`, `C3<<4 | C2`.
    pub fn encode(&self) -> [u8; 3] {
        let (mut c1, mut c2, mut c3) = (0u8, 0u8, 0u8);
        for (i, cond) in self.0.iter().enumerate() {
            c1 |= ((cond.0 >> 2) & 1) << i;
            c2 |= ((cond.0 >> 1) & 1) << i;
            c3 |= (cond.0 & 1) << i;
        }
        [
            ((!c2 & 0x0F) << 4) | (!c1 & 0x0F),
            (c1 << 4) | (!c3 & 0x0F),
            (c3 << 4) | c2,
        ]
    }

    /// Decodes trailer bytes 6–8; `None` when an inverted nibble disagrees (the sector is then
    /// blocked, as on a real card).
    pub fn decode(bytes: &[u8; 3]) -> Option<AccessBits> {
        let c1 = bytes[1] >> 4;
        let c2 = bytes[2] & 0x0F;
        let c3 = bytes[2] >> 4;
        let consistent = (bytes[0] & 0x0F) == (!c1 & 0x0F)
            && (bytes[0] >> 4) == (!c2 & 0x0F)
            && (bytes[1] & 0x0F) == (!c3 & 0x0F);
        if !consistent {
            return None;
        }
        let mut conds = [Condition(0); 4];
        for (i, cond) in conds.iter_mut().enumerate() {
            *cond = Condition((((c1 >> i) & 1) << 2) | (((c2 >> i) & 1) << 1) | ((c3 >> i) & 1));
        }
        Some(AccessBits(conds))
    }
}

/// Who may do something: nobody, key A, key B, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Never,
    A,
    B,
    AB,
}

impl Who {
    fn allows(self, key: KeyType) -> bool {
        matches!(
            (self, key),
            (Who::AB, _) | (Who::A, KeyType::A) | (Who::B, KeyType::B)
        )
    }
}

/// An operation on a data block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOp {
    Read,
    Write,
    Increment,
    /// Decrement, restore and transfer share one permission.
    DecrementTransferRestore,
}

/// Datasheet table "access conditions for data blocks".
pub fn data_allows(cond: Condition, op: DataOp, key: KeyType) -> bool {
    use Who::*;
    let (read, write, inc, dec) = match cond.0 {
        0b000 => (AB, AB, AB, AB),
        0b010 => (AB, Never, Never, Never),
        0b100 => (AB, B, Never, Never),
        0b110 => (AB, B, B, AB),
        0b001 => (AB, Never, Never, AB),
        0b011 => (B, B, Never, Never),
        0b101 => (B, Never, Never, Never),
        _ => (Never, Never, Never, Never),
    };
    let who = match op {
        DataOp::Read => read,
        DataOp::Write => write,
        DataOp::Increment => inc,
        DataOp::DecrementTransferRestore => dec,
    };
    who.allows(key)
}

/// What a key may do with the sector trailer under a trailer condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerRights {
    pub write_key_a: bool,
    pub read_access: bool,
    pub write_access: bool,
    pub read_key_b: bool,
    pub write_key_b: bool,
}

/// Datasheet table "access conditions for the sector trailer".
pub fn trailer_rights(cond: Condition, key: KeyType) -> TrailerRights {
    use Who::*;
    // (write key A, read access bits, write access bits, read key B, write key B)
    let (wka, racc, wacc, rkb, wkb) = match cond.0 {
        0b000 => (A, A, Never, A, A),
        0b010 => (Never, A, Never, A, Never),
        0b100 => (B, AB, Never, Never, B),
        0b110 => (Never, AB, Never, Never, Never),
        0b001 => (A, A, A, A, A),
        0b011 => (B, AB, B, Never, B),
        0b101 => (Never, AB, B, Never, Never),
        _ => (Never, AB, Never, Never, Never),
    };
    TrailerRights {
        write_key_a: wka.allows(key),
        read_access: racc.allows(key),
        write_access: wacc.allows(key),
        read_key_b: rkb.allows(key),
        write_key_b: wkb.allows(key),
    }
}

/// Whether key B can be read under a trailer condition; such a key B is data, not a key, and
/// grants no rights (datasheet note).
pub fn key_b_readable(trailer: Condition) -> bool {
    matches!(trailer.0, 0b000..=0b010)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn transport_bits_are_ff0780() {
        assert_eq!(AccessBits::TRANSPORT.encode(), [0xFF, 0x07, 0x80]);
        assert_eq!(
            AccessBits::decode(&[0xFF, 0x07, 0x80]),
            Some(AccessBits::TRANSPORT)
        );
    }

    #[test]
    fn common_setting_78_77_88() {
        // Data blocks 100, trailer 011: the widely used "read A|B, write B" setting.
        let bits = AccessBits([
            DATA_READ_AB_WRITE_B,
            DATA_READ_AB_WRITE_B,
            DATA_READ_AB_WRITE_B,
            TRAILER_KEY_B,
        ]);
        assert_eq!(bits.encode(), [0x78, 0x77, 0x88]);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(c in proptest::array::uniform4(0u8..8)) {
            let bits = AccessBits(c.map(Condition));
            prop_assert_eq!(AccessBits::decode(&bits.encode()), Some(bits));
        }

        #[test]
        fn any_single_bit_flip_is_inconsistent(c in proptest::array::uniform4(0u8..8), bit in 0usize..24) {
            let mut bytes = AccessBits(c.map(Condition)).encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(AccessBits::decode(&bytes), None);
        }
    }
}
