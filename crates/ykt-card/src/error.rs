//! What a contactless reader reports when a card operation does not go through.

/// A reader-level error, as a real MIFARE / ISO 14443-4 reader reports it.
///
/// After any error an MF1 card drops its authentication (it falls back to IDLE/HALT), so the
/// caller must select and authenticate again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    #[error("no card in the field")]
    NoCard,
    #[error("no answer from the card (timeout or CRC error)")]
    Transmission,
    #[error("authentication failed")]
    AuthFailed,
    #[error("sector {0} is not authenticated")]
    NotAuthenticated(u8),
    #[error("access denied by the access conditions of block {0}")]
    AccessDenied(u8),
    #[error("block {0} does not hold a valid value block")]
    NotValueBlock(u8),
    #[error("value operation overflows")]
    ValueOverflow,
    #[error("block {0} does not exist on this card")]
    BadBlock(u8),
    #[error("transfer without a preceding increment, decrement or restore")]
    EmptyTransferBuffer,
    #[error("the card does not support this command (wrong card type)")]
    WrongCardType,
    #[error("APDU of {0} bytes is malformed or too long")]
    BadApdu(usize),
}
