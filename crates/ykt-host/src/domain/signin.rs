//! Terminal sign-in (R-F4.1, R-P5.1) and status reports (R-F4.20).

use chrono::NaiveDateTime;
use ykt_proto::{MerchantNo, PhysicalId, ReturnCode, TerminalParams};

use super::checks::{self, Origin};
use crate::error::{Result, refuse};
use crate::ledger::Tx;
use crate::model::{DeviceReport, Functions};
use crate::repo;

/// What a terminal receives on sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    pub merchant_no: MerchantNo,
    pub merchant_name: String,
    pub params: TerminalParams,
    pub blacklist_version: u32,
    /// The system clock, to set the terminal's (R-F4.19).
    pub clock: NaiveDateTime,
}

/// The FEP verifies a sign-in's MAC on a reader before it submits the write: the device's
/// master key must still be the one the MAC was checked under, or the sign-in is refused
/// (14) rather than opening a session under a key just replaced. An unknown device or one
/// without a key is left to [`sign_in`]'s checks (20, 29).
pub fn key_still_current(tx: &mut Tx<'_>, device: PhysicalId, verified: &[u8; 16]) -> Result<()> {
    match tx.device(device)?.and_then(|d| d.master_key) {
        Some(key) if key != *verified => refuse(ReturnCode::FEP_KEY_ERROR),
        _ => Ok(()),
    }
}

/// Verifies the device (codes 10–13, 20–29 except 27/28, 40–43) and answers with its
/// merchant, parameters and the system's blacklist version. The terminal's own clock and
/// blacklist version are kept as its status report.
pub fn sign_in(
    tx: &mut Tx<'_>,
    origin: &Origin,
    terminal_clock: NaiveDateTime,
    terminal_blacklist_version: u32,
    now: NaiveDateTime,
) -> Result<SignIn> {
    let device = checks::device(tx, origin, Functions::NONE)?;
    let merchant = checks::merchant(tx, device.merchant_no.unwrap_or(0))?;
    let pending = device.last_report.map_or(0, |r| r.pending_records);
    repo::device_report(
        tx.conn,
        device.id,
        &DeviceReport {
            at: now,
            pending_records: pending,
            terminal_clock,
            blacklist_version: terminal_blacklist_version,
        },
    )?;
    Ok(SignIn {
        merchant_no: merchant.no,
        merchant_name: merchant.name,
        params: device.params,
        blacklist_version: super::blacklist::version(tx)?,
        clock: now,
    })
}
