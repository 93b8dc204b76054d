//! CPU (PBOC-style purse) cards in the flows: the purchase split in its two card commands so
//! that the record is journalled between them with the purse's offline sequence number as
//! the card counter, and a lost answer resolved on re-tap with GET TRANSACTION PROVE.
//! The PSAM runs with terminal ID `00 00 ‖ physical ID` and terminal sequence number = the
//! record's serial, so the host can check the TAC from the record alone.

use chrono::NaiveDateTime;
use ykt_card::Reader;
use ykt_card::app::CardRead;
use ykt_card::cpu::app::{CpuApp, CpuError, CpuRead, PurchaseSession};
use ykt_card::cpu::crypto::tx_type;
use ykt_card::cpu::psam::Psam;
use ykt_card::keys::SystemKeys;
use ykt_proto::{CardNo, CardType, Fen, PhysicalId, ReturnCode};

use super::checks::{CardFacts, NumberBinding, Refusal};
use super::texts;

/// A card read at a tap.
#[derive(Debug, Clone)]
pub(super) enum Tapped {
    Mf1(Box<CardRead>),
    Cpu(Box<CpuTap>),
}

#[derive(Debug, Clone)]
pub(super) struct CpuTap {
    pub read: CpuRead,
    /// The purchase session the card opened (INITIALIZE FOR PURCHASE).
    pub init: Option<CpuInit>,
    /// A load: the host's MAC2 for the load session the card opened (INITIALIZE FOR LOAD),
    /// for CREDIT FOR LOAD.
    pub load_mac2: Option<[u8; 4]>,
}

/// The card's answer to INITIALIZE FOR PURCHASE.
pub(super) type CpuInit = PurchaseSession;

impl Tapped {
    pub(super) fn card_no(&self) -> CardNo {
        match self {
            Tapped::Mf1(c) => c.info.card_no,
            Tapped::Cpu(c) => c.read.card_no,
        }
    }

    pub(super) fn card_type(&self) -> CardType {
        match self {
            Tapped::Mf1(_) => CardType::Mf1,
            Tapped::Cpu(_) => CardType::Cpu,
        }
    }

    pub(super) fn locked(&self) -> bool {
        match self {
            Tapped::Mf1(c) => c.locked(),
            Tapped::Cpu(c) => c.read.locked,
        }
    }

    /// What the checks of chapter 4 need, with the day's figures for `today`.
    pub(super) fn facts(&self, today: chrono::NaiveDate) -> CardFacts {
        let (binding, class, expiry, balance, (daily_count, daily_amount)) = match self {
            Tapped::Mf1(c) => (
                NumberBinding::Unbound,
                c.info.class,
                c.info.expiry,
                c.wallet.balance,
                c.wallet.daily_on(today),
            ),
            Tapped::Cpu(c) => (
                NumberBinding::CpuSerial(c.read.serial),
                c.read.class,
                c.read.expiry,
                c.read.balance,
                c.read.daily_on(today),
            ),
        };
        CardFacts {
            card_no: self.card_no(),
            binding,
            class,
            expiry,
            balance,
            daily_count,
            daily_amount,
        }
    }
}

/// The PSAM terminal ID of a device.
pub(super) fn terminal_id(device: PhysicalId) -> [u8; 6] {
    let d = device.0;
    [0, 0, d[0], d[1], d[2], d[3]]
}

pub(super) fn cpu_refusal(e: &CpuError) -> Refusal {
    match e {
        CpuError::Locked => Refusal::Code(ReturnCode::CARD_LOCKED),
        CpuError::InsufficientBalance => Refusal::Code(ReturnCode::CARD_INSUFFICIENT_BALANCE),
        CpuError::DataDamaged => Refusal::Code(ReturnCode::CARD_STATUS_ABNORMAL),
        _ => Refusal::Text(texts::CARD_READ_FAILED),
    }
}

/// INITIALIZE FOR PURCHASE of `total` (amount + fee): balance and offline sequence number
/// before the debit. Nothing changes on the card.
pub(super) fn init_purchase(
    r: &mut dyn Reader,
    total: Fen,
    device: PhysicalId,
) -> Result<CpuInit, CpuError> {
    CpuApp::init_purchase(r, total, terminal_id(device))
}

/// DEBIT FOR PURCHASE in the session `init` opened, MAC1 from the PSAM with terminal
/// sequence number `serial`; returns the TAC once the PSAM accepted MAC2.
pub(super) fn debit(
    r: &mut dyn Reader,
    keys: &SystemKeys,
    card: &CpuRead,
    init: &CpuInit,
    device: PhysicalId,
    serial: u32,
    time: NaiveDateTime,
) -> Result<u32, CpuError> {
    let mut psam = Psam::new(keys, terminal_id(device), serial);
    let (_, tac) = CpuApp::debit_purchase(r, card, &mut psam, init, time)?;
    Ok(u32::from_be_bytes(tac))
}

/// Whether the card's log shows a purchase under `offline_seq` by this terminal (for a debit
/// whose proof is gone because the card was used again elsewhere).
pub(super) fn in_log(r: &mut dyn Reader, offline_seq: u16, device: PhysicalId) -> bool {
    in_log_of(r, tx_type::PURCHASE_EP, offline_seq, device)
}

/// Whether the card's log shows a load under `online_seq` by this terminal.
pub(super) fn load_in_log(r: &mut dyn Reader, online_seq: u16, device: PhysicalId) -> bool {
    in_log_of(r, tx_type::LOAD_EP, online_seq, device)
}

fn in_log_of(r: &mut dyn Reader, ty: u8, seq: u16, device: PhysicalId) -> bool {
    let Ok(log) = CpuApp::records(r, 10) else {
        return false;
    };
    let term = terminal_id(device);
    log.iter().any(|rec| {
        u16::from_be_bytes([rec[0], rec[1]]) == seq && rec[9] == ty && rec[10..16] == term
    })
}
