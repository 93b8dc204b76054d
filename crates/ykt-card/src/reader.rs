//! The contactless reader interface the terminal programs against, and a simulated reader
//! whose card can be made to fail, tear or leave the field at any single operation.

use crate::cpu::CpuCard;
use crate::error::ReaderError;
use crate::mf1::card::{Block, Key};
use crate::mf1::{KeyType, Mf1Card};
use crate::rng::SplitMix64;

/// The longest command APDU a reader transmits (short APDU: header, Lc, 255 data bytes, Le).
pub const MAX_APDU: usize = 261;

/// What anticollision and selection report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub uid: [u8; 4],
    pub kind: CardKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// MIFARE Classic 1K (SAK 08).
    Mf1,
    /// ISO 14443-4 CPU card (SAK 20), spoken to with APDUs.
    Cpu,
}

/// A contactless reader as terminal firmware sees it.
pub trait Reader {
    /// Anticollision and select of the card in the field (also ISO 14443-4 activation for CPU
    /// cards). Resets the card's volatile state.
    fn select(&mut self) -> Result<Selected, ReaderError>;
    fn authenticate(&mut self, sector: u8, key_type: KeyType, key: &Key)
    -> Result<(), ReaderError>;
    fn read_block(&mut self, block: u8) -> Result<Block, ReaderError>;
    fn write_block(&mut self, block: u8, data: &Block) -> Result<(), ReaderError>;
    fn increment(&mut self, block: u8, delta: u32) -> Result<(), ReaderError>;
    fn decrement(&mut self, block: u8, delta: u32) -> Result<(), ReaderError>;
    fn restore(&mut self, block: u8) -> Result<(), ReaderError>;
    fn transfer(&mut self, block: u8) -> Result<(), ReaderError>;
    /// Sends a command APDU and returns the response APDU (data ‖ SW1 SW2).
    fn transceive(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError>;
}

/// A card the simulated reader can hold.
// One card at a time is held; boxing would only burden every caller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimCard {
    Mf1(Mf1Card),
    Cpu(CpuCard),
}

/// What a torn write leaves in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TearOutcome {
    Old,
    New,
    Garbage,
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The operation is not carried out; the reader reports a transmission error and the card
    /// falls back to idle (still in the field).
    FailBefore,
    /// The card leaves the field during the operation. A block write (WRITE, TRANSFER) leaves
    /// the outcome in the block; a CPU card's anti-tearing commits (`New`) or rolls back (`Old`
    /// and `Garbage`). The reader reports `NoCard`.
    Tear(TearOutcome),
    /// The operation completes and the caller sees success; the card leaves right after.
    RemovedAfter,
    /// The operation completes but its answer is lost; the card leaves the field.
    AckLost,
}

/// A reader with at most one card, in its field or lifted off it, and a plan of faults by
/// operation index.
#[derive(Debug, Clone)]
pub struct SimulatedReader {
    card: Option<SimCard>,
    in_field: bool,
    selected: bool,
    ops: u64,
    plan: Vec<(u64, Fault)>,
    rng: SplitMix64,
}

impl SimulatedReader {
    /// An empty reader; `seed` makes the garbage of torn writes reproducible.
    pub fn new(seed: u64) -> SimulatedReader {
        SimulatedReader {
            card: None,
            in_field: false,
            selected: false,
            ops: 0,
            plan: Vec::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Puts a card in the field.
    pub fn place(&mut self, card: SimCard) {
        self.card = Some(card);
        self.in_field = true;
        self.selected = false;
    }

    /// Takes the card away (out of the field and out of the reader's hands).
    pub fn take(&mut self) -> Option<SimCard> {
        self.in_field = false;
        self.selected = false;
        self.card.take()
    }

    /// The holder lifts the card off the reader.
    pub fn lift(&mut self) {
        self.in_field = false;
        self.selected = false;
    }

    /// The holder taps the same card again.
    pub fn retap(&mut self) {
        self.in_field = self.card.is_some();
        self.selected = false;
    }

    pub fn in_field(&self) -> bool {
        self.in_field && self.card.is_some()
    }

    /// The card, in the field or lifted (for inspection by tests and tools).
    pub fn card(&self) -> Option<&SimCard> {
        self.card.as_ref()
    }

    pub fn card_mut(&mut self) -> Option<&mut SimCard> {
        self.card.as_mut()
    }

    /// The number of operations attempted so far, i.e. the index of the next operation.
    pub fn op_count(&self) -> u64 {
        self.ops
    }

    /// Schedules `fault` for the operation with index `at` (see [`Self::op_count`]).
    pub fn inject(&mut self, at: u64, fault: Fault) {
        self.plan.push((at, fault));
    }

    pub fn clear_faults(&mut self) {
        self.plan.clear();
    }

    fn take_fault(&mut self) -> Option<Fault> {
        let index = self.ops;
        self.ops += 1;
        let pos = self.plan.iter().position(|(at, _)| *at == index)?;
        Some(self.plan.swap_remove(pos).1)
    }

    fn mf1(&mut self) -> Result<&mut Mf1Card, ReaderError> {
        if !self.in_field || !self.selected {
            return Err(ReaderError::NoCard);
        }
        match self.card.as_mut() {
            Some(SimCard::Mf1(card)) => Ok(card),
            Some(SimCard::Cpu(_)) => Err(ReaderError::WrongCardType),
            None => Err(ReaderError::NoCard),
        }
    }

    /// Runs an MF1 command that changes no block, under the fault plan.
    fn mf1_op<T>(
        &mut self,
        op: impl FnOnce(&mut Mf1Card) -> Result<T, ReaderError>,
    ) -> Result<T, ReaderError> {
        let fault = self.take_fault();
        let card = self.mf1()?;
        match fault {
            None => op(card),
            Some(Fault::FailBefore) => {
                card.power_cycle();
                self.selected = false;
                Err(ReaderError::Transmission)
            }
            Some(Fault::Tear(_)) => {
                self.lift();
                Err(ReaderError::NoCard)
            }
            Some(Fault::RemovedAfter) => {
                let result = op(card);
                self.lift();
                result
            }
            Some(Fault::AckLost) => {
                let _ = op(card);
                self.lift();
                Err(ReaderError::Transmission)
            }
        }
    }

    /// Runs an MF1 command that writes `block` with the content `plan` computes.
    fn mf1_write(
        &mut self,
        block: u8,
        plan: impl FnOnce(&mut Mf1Card) -> Result<Block, ReaderError>,
    ) -> Result<(), ReaderError> {
        let mut garbage = [0u8; 16];
        self.rng.fill(&mut garbage);
        let fault = self.take_fault();
        let card = self.mf1()?;
        let commit = |card: &mut Mf1Card, content: Block| {
            if let Some(b) = card.raw_block_mut(block) {
                *b = content;
            }
        };
        match fault {
            None => {
                let new = plan(card)?;
                commit(card, new);
                Ok(())
            }
            Some(Fault::FailBefore) => {
                card.power_cycle();
                self.selected = false;
                Err(ReaderError::Transmission)
            }
            Some(Fault::Tear(outcome)) => {
                let new = plan(card)?;
                let old = card.raw_block(block).copied().unwrap_or([0; 16]);
                let content = match outcome {
                    TearOutcome::Old => old,
                    TearOutcome::New => new,
                    TearOutcome::Garbage => garbage,
                };
                commit(card, content);
                card.power_cycle();
                self.lift();
                Err(ReaderError::NoCard)
            }
            Some(Fault::RemovedAfter) => {
                let new = plan(card)?;
                commit(card, new);
                self.lift();
                Ok(())
            }
            Some(Fault::AckLost) => {
                let new = plan(card)?;
                commit(card, new);
                self.lift();
                Err(ReaderError::Transmission)
            }
        }
    }
}

impl Reader for SimulatedReader {
    fn select(&mut self) -> Result<Selected, ReaderError> {
        let fault = self.take_fault();
        if !self.in_field {
            return Err(ReaderError::NoCard);
        }
        let selected = match self.card.as_mut() {
            Some(SimCard::Mf1(card)) => {
                card.power_cycle();
                Selected {
                    uid: card.uid(),
                    kind: CardKind::Mf1,
                }
            }
            Some(SimCard::Cpu(card)) => {
                card.power_cycle();
                Selected {
                    uid: card.uid,
                    kind: CardKind::Cpu,
                }
            }
            None => return Err(ReaderError::NoCard),
        };
        match fault {
            None => {
                self.selected = true;
                Ok(selected)
            }
            Some(Fault::FailBefore) | Some(Fault::AckLost) => Err(ReaderError::Transmission),
            Some(Fault::Tear(_)) => {
                self.lift();
                Err(ReaderError::NoCard)
            }
            Some(Fault::RemovedAfter) => {
                self.lift();
                Ok(selected)
            }
        }
    }

    fn authenticate(
        &mut self,
        sector: u8,
        key_type: KeyType,
        key: &Key,
    ) -> Result<(), ReaderError> {
        self.mf1_op(|c| c.authenticate(sector, key_type, key))
    }

    fn read_block(&mut self, block: u8) -> Result<Block, ReaderError> {
        self.mf1_op(|c| c.read(block))
    }

    fn write_block(&mut self, block: u8, data: &Block) -> Result<(), ReaderError> {
        self.mf1_write(block, |c| c.planned_write(block, data))
    }

    fn increment(&mut self, block: u8, delta: u32) -> Result<(), ReaderError> {
        self.mf1_op(|c| c.increment(block, delta))
    }

    fn decrement(&mut self, block: u8, delta: u32) -> Result<(), ReaderError> {
        self.mf1_op(|c| c.decrement(block, delta))
    }

    fn restore(&mut self, block: u8) -> Result<(), ReaderError> {
        self.mf1_op(|c| c.restore(block))
    }

    fn transfer(&mut self, block: u8) -> Result<(), ReaderError> {
        self.mf1_write(block, |c| c.planned_transfer(block))
    }

    fn transceive(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let fault = self.take_fault();
        if apdu.len() > MAX_APDU || apdu.len() < 4 {
            return Err(ReaderError::BadApdu(apdu.len()));
        }
        if !self.in_field || !self.selected {
            return Err(ReaderError::NoCard);
        }
        let card = match self.card.as_mut() {
            Some(SimCard::Cpu(card)) => card,
            Some(SimCard::Mf1(_)) => return Err(ReaderError::WrongCardType),
            None => return Err(ReaderError::NoCard),
        };
        match fault {
            None => Ok(card.process(apdu)),
            Some(Fault::FailBefore) => {
                card.power_cycle();
                self.selected = false;
                Err(ReaderError::Transmission)
            }
            Some(Fault::Tear(outcome)) => {
                // The card's anti-tearing either commits the command or rolls it back whole.
                let before = card.clone();
                let _ = card.process(apdu);
                if outcome != TearOutcome::New {
                    *card = before;
                }
                card.power_cycle();
                self.lift();
                Err(ReaderError::NoCard)
            }
            Some(Fault::RemovedAfter) => {
                let resp = card.process(apdu);
                card.power_cycle();
                self.lift();
                Ok(resp)
            }
            Some(Fault::AckLost) => {
                let _ = card.process(apdu);
                card.power_cycle();
                self.lift();
                Err(ReaderError::Transmission)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mf1::card::DEFAULT_KEY;

    fn reader() -> SimulatedReader {
        let mut r = SimulatedReader::new(7);
        r.place(SimCard::Mf1(Mf1Card::blank([1, 2, 3, 4])));
        r
    }

    fn block4(r: &SimulatedReader) -> Block {
        match r.card() {
            Some(SimCard::Mf1(c)) => *c.raw_block(4).unwrap(),
            _ => panic!("no MF1 card"),
        }
    }

    #[test]
    fn select_reports_uid_and_ops_need_selection() {
        let mut r = reader();
        assert_eq!(r.read_block(4), Err(ReaderError::NoCard));
        assert_eq!(
            r.select(),
            Ok(Selected {
                uid: [1, 2, 3, 4],
                kind: CardKind::Mf1
            })
        );
        r.authenticate(1, KeyType::A, &DEFAULT_KEY).unwrap();
        assert_eq!(r.read_block(4), Ok([0; 16]));
        assert_eq!(
            r.transceive(&[0, 0xA4, 4, 0]),
            Err(ReaderError::WrongCardType)
        );
    }

    #[test]
    fn tear_outcomes_leave_old_new_or_garbage() {
        for (outcome, seed) in [
            (TearOutcome::Old, 1),
            (TearOutcome::New, 2),
            (TearOutcome::Garbage, 3),
        ] {
            let mut r = reader();
            r.select().unwrap();
            r.authenticate(1, KeyType::A, &DEFAULT_KEY).unwrap();
            r.inject(r.op_count(), Fault::Tear(outcome));
            r.rng = SplitMix64::new(seed);
            assert_eq!(r.write_block(4, &[9; 16]), Err(ReaderError::NoCard));
            assert!(!r.in_field());
            let b = block4(&r);
            match outcome {
                TearOutcome::Old => assert_eq!(b, [0; 16]),
                TearOutcome::New => assert_eq!(b, [9; 16]),
                TearOutcome::Garbage => assert!(b != [0; 16] && b != [9; 16]),
            }
            assert_eq!(r.read_block(4), Err(ReaderError::NoCard));
            r.retap();
            r.select().unwrap();
        }
    }

    #[test]
    fn fail_before_does_nothing_and_drops_auth() {
        let mut r = reader();
        r.select().unwrap();
        r.authenticate(1, KeyType::A, &DEFAULT_KEY).unwrap();
        r.inject(r.op_count(), Fault::FailBefore);
        assert_eq!(r.write_block(4, &[9; 16]), Err(ReaderError::Transmission));
        assert_eq!(block4(&r), [0; 16]);
        assert!(r.in_field());
        assert_eq!(r.read_block(4), Err(ReaderError::NoCard));
    }

    #[test]
    fn removed_after_and_ack_lost_complete_the_write() {
        for (fault, expect) in [
            (Fault::RemovedAfter, Ok(())),
            (Fault::AckLost, Err(ReaderError::Transmission)),
        ] {
            let mut r = reader();
            r.select().unwrap();
            r.authenticate(1, KeyType::A, &DEFAULT_KEY).unwrap();
            r.inject(r.op_count(), fault);
            assert_eq!(r.write_block(4, &[9; 16]), expect);
            assert_eq!(block4(&r), [9; 16]);
            assert!(!r.in_field());
        }
    }
}
