//! The journal's entries and their byte layouts (the terminal's own flash format).

use ykt_proto::{CardNo, CardType, PhysicalId, Record, RecordKind, RecordStatus, TerminalSerial};

use crate::storage::codec::{DecodeError, Reader, Writer};
use crate::storage::stats::{BASELINE_LEN, Baseline};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A new record, with the serial the journal assigned.
    Appended(Record),
    StatusChanged {
        serial: TerminalSerial,
        status: RecordStatus,
    },
    Uploaded {
        serial: TerminalSerial,
    },
    /// A new status with the card's transaction authentication code (CPU purchases).
    Proven {
        serial: TerminalSerial,
        status: RecordStatus,
        tac: u32,
    },
    /// A pending record copied forward, with its status at the time, so that the segment it
    /// lived in can be reused.
    Carried(Record),
    /// The segment with sequence number `seq` is reclaimed: its records are gone; `baseline`
    /// keeps the statistics of every record reclaimed so far.
    Reclaimed {
        seq: u64,
        baseline: Baseline,
    },
}

const TAG_APPENDED: u8 = 1;
const TAG_STATUS: u8 = 2;
const TAG_UPLOADED: u8 = 3;
const TAG_CARRIED: u8 = 4;
const TAG_RECLAIMED: u8 = 5;
const TAG_PROVEN: u8 = 6;

/// Encoded size of a record.
pub(crate) const RECORD_LEN: usize = 4 + 4 + 1 + 1 + 1 + 1 + 4 + 4 + 1 + 8 * 4 + 12 + 4 + 5 + 2 + 4;
/// Encoded size of the largest entry (a record entry), payload only.
pub(crate) const MAX_ENTRY_LEN: usize = 1 + RECORD_LEN;
/// Encoded size of a reclaim marker, payload only.
pub(crate) const RECLAIMED_LEN: usize = 1 + 8 + BASELINE_LEN;

fn kind_code(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::Purchase => 0,
        RecordKind::Cancellation => 1,
        RecordKind::Reversal => 2,
        RecordKind::BlackCard => 3,
        RecordKind::Collected => 4,
        RecordKind::TopUp => 5,
        RecordKind::Subsidy => 6,
    }
}

fn kind_from(code: u8) -> Result<RecordKind, DecodeError> {
    Ok(match code {
        0 => RecordKind::Purchase,
        1 => RecordKind::Cancellation,
        2 => RecordKind::Reversal,
        3 => RecordKind::BlackCard,
        4 => RecordKind::Collected,
        5 => RecordKind::TopUp,
        6 => RecordKind::Subsidy,
        _ => return Err(DecodeError::Invalid("record kind")),
    })
}

pub(crate) fn status_code(status: RecordStatus) -> u8 {
    match status {
        RecordStatus::Initiated => 0,
        RecordStatus::NotWritten => 1,
        RecordStatus::Success => 2,
        RecordStatus::Debited => 3,
        RecordStatus::Written => 4,
        RecordStatus::CardPulled => 5,
        RecordStatus::Failed => 6,
    }
}

fn status_from(code: u8) -> Result<RecordStatus, DecodeError> {
    Ok(match code {
        0 => RecordStatus::Initiated,
        1 => RecordStatus::NotWritten,
        2 => RecordStatus::Success,
        3 => RecordStatus::Debited,
        4 => RecordStatus::Written,
        5 => RecordStatus::CardPulled,
        6 => RecordStatus::Failed,
        _ => return Err(DecodeError::Invalid("record status")),
    })
}

fn encode_record(r: &Record, w: &mut Writer) {
    w.bytes(&r.device.0);
    w.u32(r.serial);
    w.u8(kind_code(r.kind));
    w.u8(status_code(r.status));
    w.bool(r.online);
    w.u8(match r.card_type {
        CardType::Mf1 => 0,
        CardType::Cpu => 1,
    });
    w.u32(r.card_no.get());
    w.u32(r.card_counter);
    w.u8(r.wallet_no);
    w.i64(r.balance_before);
    w.i64(r.amount);
    w.i64(r.fee);
    w.i64(r.balance_after);
    w.datetime(r.time);
    w.u32(r.merchant_no);
    w.bool(r.original_serial.is_some());
    w.u32(r.original_serial.unwrap_or(0));
    w.u16(r.item_code);
    w.u32(r.tac);
}

fn decode_record(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
    Ok(Record {
        device: PhysicalId(r.bytes()?),
        serial: r.u32()?,
        kind: kind_from(r.u8()?)?,
        status: status_from(r.u8()?)?,
        online: r.bool()?,
        card_type: match r.u8()? {
            0 => CardType::Mf1,
            1 => CardType::Cpu,
            _ => return Err(DecodeError::Invalid("card type")),
        },
        card_no: CardNo::new(r.u32()?).ok_or(DecodeError::Invalid("card number"))?,
        card_counter: r.u32()?,
        wallet_no: r.u8()?,
        balance_before: r.i64()?,
        amount: r.i64()?,
        fee: r.i64()?,
        balance_after: r.i64()?,
        time: r.datetime()?,
        merchant_no: r.u32()?,
        original_serial: {
            let present = r.bool()?;
            let serial = r.u32()?;
            present.then_some(serial)
        },
        item_code: r.u16()?,
        tac: r.u32()?,
    })
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Entry::Appended(record) | Entry::Carried(record) => {
                w.u8(if matches!(self, Entry::Appended(_)) {
                    TAG_APPENDED
                } else {
                    TAG_CARRIED
                });
                encode_record(record, &mut w);
            }
            Entry::StatusChanged { serial, status } => {
                w.u8(TAG_STATUS);
                w.u32(*serial);
                w.u8(status_code(*status));
            }
            Entry::Uploaded { serial } => {
                w.u8(TAG_UPLOADED);
                w.u32(*serial);
            }
            Entry::Proven {
                serial,
                status,
                tac,
            } => {
                w.u8(TAG_PROVEN);
                w.u32(*serial);
                w.u8(status_code(*status));
                w.u32(*tac);
            }
            Entry::Reclaimed { seq, baseline } => {
                w.u8(TAG_RECLAIMED);
                w.u64(*seq);
                baseline.encode(&mut w);
            }
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = Reader::new(bytes);
        let entry = match r.u8()? {
            TAG_APPENDED => Entry::Appended(decode_record(&mut r)?),
            TAG_CARRIED => Entry::Carried(decode_record(&mut r)?),
            TAG_STATUS => Entry::StatusChanged {
                serial: r.u32()?,
                status: status_from(r.u8()?)?,
            },
            TAG_UPLOADED => Entry::Uploaded { serial: r.u32()? },
            TAG_PROVEN => Entry::Proven {
                serial: r.u32()?,
                status: status_from(r.u8()?)?,
                tac: r.u32()?,
            },
            TAG_RECLAIMED => Entry::Reclaimed {
                seq: r.u64()?,
                baseline: Baseline::decode(&mut r)?,
            },
            _ => return Err(DecodeError::Invalid("journal entry tag")),
        };
        r.finish()?;
        Ok(entry)
    }
}
