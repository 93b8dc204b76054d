//! Every return code the host produces from state, in one place (R-C6.1, R-H1, R-H3, R-H4,
//! R-H7, R-B11). Each check reads state and refuses with the code the state calls for.

use chrono::{NaiveDateTime, NaiveTime};
use ykt_proto::{AuthFunction, Fen, MerchantNo, PhysicalId, Record, ReturnCode, WorkingHours};

use crate::error::{Result, refuse};
use crate::ledger::Tx;
use crate::model::{Card, CardStatus, Device, Fep, Functions, Merchant, Trade};
use crate::repo;
use crate::repo_authcards::{AuthCard, AuthCardState};

/// Where a request comes from: the front-end processor serving it and the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub fep: u32,
    pub device: PhysicalId,
    /// The terminal number the terminal believes it has (code 25 when it differs).
    pub terminal_no: u32,
}

/// The largest balance a card holds: its wallet stores 24 bits of fen.
pub const MAX_CARD_BALANCE: Fen = 0xFF_FFFF;

/// R-H7: the FEP must be registered (10), activated (11), signed in (12), not deregistered (13).
pub fn fep(tx: &mut Tx<'_>, id: u32) -> Result<Fep> {
    let Some(fep) = tx.fep(id)? else {
        return refuse(ReturnCode::FEP_NOT_REGISTERED);
    };
    if let Some(code) = fep.status.refusal() {
        return refuse(code);
    }
    if fep.signed_in_at.is_none() {
        return refuse(ReturnCode::FEP_NOT_SIGNED_IN);
    }
    Ok(fep)
}

/// R-H1: known (20), enabled (22–24), authorised (29), the right terminal number (25), with
/// a merchant (26) and the function asked for (28).
pub fn device(tx: &mut Tx<'_>, origin: &Origin, function: Functions) -> Result<Device> {
    let device = device_row(tx, origin.fep, origin.device)?;
    device_state(&device, origin, function)?;
    Ok(device)
}

/// The first half of [`device`]: the FEP's checks and the device's row (20 when unknown).
/// A hot path reads the row once and runs [`device_state`] on it per request or record.
pub fn device_row(tx: &mut Tx<'_>, fep_id: u32, id: PhysicalId) -> Result<Device> {
    fep(tx, fep_id)?;
    match tx.device(id)? {
        Some(device) => Ok(device),
        None => refuse(ReturnCode::POS_NOT_REGISTERED),
    }
}

/// The second half of [`device`]: the checks of a row read by [`device_row`] in the same
/// transaction.
pub fn device_state(device: &Device, origin: &Origin, function: Functions) -> Result<()> {
    if device.id != origin.device {
        return Err(crate::error::HostError::Invariant(format!(
            "device {} checked as {}",
            device.id, origin.device
        )));
    }
    if let Some(code) = device.status.refusal() {
        return refuse(code);
    }
    if device.master_key.is_none() {
        return refuse(ReturnCode::POS_NOT_AUTHORISED);
    }
    if device.terminal_no != origin.terminal_no {
        return refuse(ReturnCode::POS_TERMINAL_NO_ERROR);
    }
    if device.merchant_no.is_none_or(|m| m == 0) {
        return refuse(ReturnCode::POS_NO_MERCHANT);
    }
    if !device.functions.contains(function) {
        return refuse(ReturnCode::POS_NO_SUCH_FUNCTION);
    }
    Ok(())
}

/// Whether `t` falls in one of the windows (none = always); a window may span midnight.
pub fn within_hours(hours: &[WorkingHours], t: NaiveTime) -> bool {
    hours.is_empty()
        || hours.iter().any(|w| {
            if w.start <= w.end {
                w.start <= t && t < w.end
            } else {
                t >= w.start || t < w.end
            }
        })
}

/// Code 27 for a transaction outside the device's working hours.
pub fn working_hours(device: &Device, time: NaiveDateTime) -> Result<()> {
    if within_hours(&device.params.working_hours, time.time()) {
        Ok(())
    } else {
        refuse(ReturnCode::POS_OUTSIDE_WORKING_HOURS)
    }
}

/// R-H3: the merchant exists (40) and may take money (41, 43).
pub fn merchant(tx: &mut Tx<'_>, no: MerchantNo) -> Result<Merchant> {
    let Some(m) = tx.merchant(no)? else {
        return refuse(ReturnCode::MERCHANT_NOT_FOUND);
    };
    if let Some(code) = m.status.refusal() {
        return refuse(code);
    }
    Ok(m)
}

/// R-B8, code 42: the merchant's type takes this trade (a top-up at a canteen, a sale at a
/// top-up agent: refused).
pub fn merchant_takes(m: &Merchant, trade: Trade) -> Result<()> {
    if m.kind.takes(trade) {
        Ok(())
    } else {
        refuse(ReturnCode::MERCHANT_TYPE_ERROR)
    }
}

/// R-B8, code 42 for a device's own merchant (top-ups, pick-ups): a device without one is
/// refused earlier (26); one pointing at no merchant row, 40.
pub fn device_merchant_takes(tx: &mut Tx<'_>, device: &Device, trade: Trade) -> Result<()> {
    let no = device.merchant_no.unwrap_or(0);
    match tx.merchant(no)? {
        Some(m) => merchant_takes(&m, trade),
        None => refuse(ReturnCode::MERCHANT_NOT_FOUND),
    }
}

/// R-B9, code 8: while an administrator has set maintenance mode, online requests (debits,
/// loads) are refused; the terminal falls back offline (R-P5.3). Uploads are not asked.
pub fn not_in_maintenance(tx: &mut Tx<'_>) -> Result<()> {
    if tx.maintenance()? {
        refuse(ReturnCode::SYSTEM_MAINTENANCE)
    } else {
        Ok(())
    }
}

/// R-B8, code 45: money taken back from a merchant (a reversal, a refund) must be covered by
/// its account: the balance as committed plus what this transaction has posted to it.
/// Other accounts (suspense) are not merchants' and are not checked here.
pub fn merchant_covers(tx: &mut Tx<'_>, account: &str, amount: Fen) -> Result<()> {
    if !account.starts_with("merchant:") {
        return Ok(());
    }
    let stored = repo::account_balance(tx.conn, account)?.unwrap_or(0);
    let balance = i128::from(stored) + tx.pending(account);
    if balance < i128::from(amount) {
        return refuse(ReturnCode::MERCHANT_INSUFFICIENT_BALANCE);
    }
    Ok(())
}

/// The merchant named in an online request must be the device's (36).
pub fn merchant_of_device(device: &Device, claimed: MerchantNo) -> Result<MerchantNo> {
    match device.merchant_no {
        Some(m) if m == claimed => Ok(m),
        _ => refuse(ReturnCode::POS_MERCHANT_NO_ERROR),
    }
}

/// The card exists (50); locks its row for the rest of the transaction.
pub fn card_exists(tx: &mut Tx<'_>, record: &Record) -> Result<Card> {
    match repo::card_get(tx.conn, record.card_no, true)? {
        Some(card) => Ok(card),
        None => refuse(ReturnCode::CARD_NOT_FOUND),
    }
}

/// R-H4: the card's lifecycle allows use (51–55, 57), it has not expired (56), and its
/// class is allowed on the device (59, R-F4.5).
pub fn card_usable(card: &Card, device: &Device, time: NaiveDateTime) -> Result<()> {
    if let Some(code) = card.status.refusal() {
        return refuse(code);
    }
    if card.expiry < time.date() {
        return refuse(ReturnCode::CARD_EXPIRED);
    }
    if !device.params.allowed_classes.contains(card.class) {
        return refuse(ReturnCode::CARD_NO_PERMISSION);
    }
    Ok(())
}

/// R-B7: a card closed and paid out (销户, `domain::closures`) takes no more money: a late
/// offline record of it is refused with 57 and so held in the exception queue, whose
/// resolution books it to funding (the refund already paid the account out). Only a
/// cancelled card is looked up, so other records cost no query.
pub fn card_closed(tx: &mut Tx<'_>, card: &Card) -> Result<()> {
    if card.status == CardStatus::Cancelled && super::closures::paid_out(tx, card.no)? {
        return refuse(ReturnCode::CARD_CANCELLED);
    }
    Ok(())
}

/// Amounts: a positive amount and a non-negative fee within the card's 24-bit balance (34).
pub fn amount(record: &Record) -> Result<()> {
    let total = total(record)?;
    if record.amount <= 0 || record.fee < 0 || total > MAX_CARD_BALANCE {
        return refuse(ReturnCode::AMOUNT_ERROR);
    }
    Ok(())
}

/// What a record takes off a card (or gives back): amount + fee; 34 when that overflows.
pub fn total(record: &Record) -> Result<Fen> {
    match record.amount.checked_add(record.fee) {
        Some(t) => Ok(t),
        None => refuse(ReturnCode::AMOUNT_ERROR),
    }
}

/// The card balances of a record add up (67): after = before − (amount + fee) for a debit,
/// before + (amount + fee) for a reversal; both within 24 bits.
pub fn balances(record: &Record, credit: bool) -> Result<()> {
    let total = total(record)?;
    let expected = if credit {
        record.balance_before.checked_add(total)
    } else {
        record.balance_before.checked_sub(total)
    };
    let in_range = |b: Fen| (0..=MAX_CARD_BALANCE).contains(&b);
    if !in_range(record.balance_before)
        || !in_range(record.balance_after)
        || expected != Some(record.balance_after)
    {
        return refuse(ReturnCode::CARD_BALANCE_ABNORMAL);
    }
    Ok(())
}

/// A record whose money already left the card (offline, collected) is booked only when the
/// card's account covers it; otherwise the books would show a negative card (the audit's
/// range check is the other half of this pair). 69: the record is held for an operator.
pub fn account_covers(card: &Card, record: &Record) -> Result<()> {
    if card.balance < total(record)? {
        return refuse(ReturnCode::CARD_ACCOUNT_OVERDRAWN);
    }
    Ok(())
}

/// R-B10: an online debit on a card the last reconciliation found abnormal with no
/// explanation (`domain::reconcile`). The card holding more than the books explain is money
/// no authorisation put there (a forged or replayed card): 58, which makes the terminal lock
/// the card (R-P5.2). The card holding less is an account that owes what the card lacks: 70.
/// Both come from the card's records, outside the host; a host that disagrees with itself
/// (mirror ≠ ledger, a card without its account) is `HostError::Invariant`, never these.
pub fn card_reconciled(tx: &mut Tx<'_>, card: &Card) -> Result<()> {
    match super::reconcile::abnormal(tx, card.no)? {
        Some(super::reconcile::Abnormal::CardHigher) => refuse(ReturnCode::CARD_STATUS_ABNORMAL),
        Some(super::reconcile::Abnormal::CardLower) => refuse(ReturnCode::CARD_ACCOUNT_ABNORMAL),
        None => Ok(()),
    }
}

/// The fee by permission class, rounded half up to the fen (R-F4.13).
/// `None` when the product overflows (no such amount passes [`amount`]).
pub fn expected_fee(amount: Fen, rate_percent: u8) -> Option<Fen> {
    amount
        .checked_mul(Fen::from(rate_percent))
        .and_then(|p| p.checked_add(50))
        .map(|p| p / 100)
}

/// Code 33 when the fee differs from the class rate of the device's parameters.
pub fn fee(record: &Record, device: &Device, card: &Card) -> Result<()> {
    let rate = device.params.fee_rates[usize::from(card.class)];
    if Some(record.fee) == expected_fee(record.amount, rate) {
        Ok(())
    } else {
        refuse(ReturnCode::FEE_RATE_ERROR)
    }
}

/// Online limits: the device's per-transaction limit (71), the maximum balance (66), the
/// card's own balance (64) and the system's mirror of it (68).
pub fn online_limits(record: &Record, device: &Device, card: &Card) -> Result<()> {
    if device.max_amount > 0 && record.amount > device.max_amount {
        return refuse(ReturnCode::AMOUNT_OVER_LIMIT);
    }
    if record.balance_before > device.params.max_balance {
        // R-F4.8 enforced by the host too: a card above the terminal's maximum balance.
        return refuse(ReturnCode::CARD_BALANCE_OVER_LIMIT);
    }
    let total = total(record)?;
    if record.balance_before < total {
        return refuse(ReturnCode::CARD_INSUFFICIENT_BALANCE);
    }
    if card.balance < total {
        return refuse(ReturnCode::CARD_ACCOUNT_INSUFFICIENT);
    }
    Ok(())
}

/// R-B11: an operator authorisation card may authorise `function` at the terminal's `time`:
/// known (80), not cancelled (87), lost (81), disabled (84), frozen (82) or locked (83), valid
/// from (85) and until (86, exclusive), and granted the function (88). The PIN is checked
/// after these ([`auth_card_pin`]), so a refused card never counts a wrong PIN.
pub fn auth_card(
    card: Option<&AuthCard>,
    function: AuthFunction,
    time: NaiveDateTime,
) -> Result<()> {
    let Some(card) = card else {
        return refuse(ReturnCode::AUTH_CARD_NOT_FOUND);
    };
    match card.state {
        AuthCardState::Cancelled => return refuse(ReturnCode::AUTH_CARD_CANCELLED),
        AuthCardState::Lost => return refuse(ReturnCode::AUTH_CARD_LOST),
        AuthCardState::Disabled => return refuse(ReturnCode::AUTH_CARD_DISABLED),
        AuthCardState::Frozen => return refuse(ReturnCode::AUTH_CARD_FROZEN),
        AuthCardState::Locked => return refuse(ReturnCode::AUTH_CARD_LOCKED),
        AuthCardState::Normal => {}
    }
    if time < card.valid_from {
        return refuse(ReturnCode::AUTH_CARD_NOT_EFFECTIVE);
    }
    if time >= card.valid_until {
        return refuse(ReturnCode::AUTH_CARD_EXPIRED);
    }
    if !card.functions.contains(function) {
        return refuse(ReturnCode::AUTH_CARD_NO_PERMISSION);
    }
    Ok(())
}

/// R-B11: the PIN typed for an authorisation card matches its hash (89 when not).
pub fn auth_card_pin(matches: bool) -> Result<()> {
    if matches {
        Ok(())
    } else {
        refuse(ReturnCode::AUTH_CARD_PASSWORD_WRONG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CardStatus, DeviceStatus, FepStatus, MerchantStatus};
    use proptest::prelude::*;

    // R-C6.1, R-H1, R-H3, R-H4, R-H7: each lifecycle state maps to its code of the table.
    #[test]
    fn lifecycle_codes() {
        let fep: Vec<_> = FepStatus::ALL
            .iter()
            .map(|s| s.refusal().map(|c| c.0))
            .collect();
        assert_eq!(fep, [Some(11), None, Some(13)]);
        let dev: Vec<_> = DeviceStatus::ALL
            .iter()
            .map(|s| s.refusal().map(|c| c.0))
            .collect();
        assert_eq!(dev, [Some(22), None, Some(23), Some(24)]);
        let m: Vec<_> = MerchantStatus::ALL
            .iter()
            .map(|s| s.refusal().map(|c| c.0))
            .collect();
        assert_eq!(m, [None, Some(43), Some(41), Some(44)]);
        let card: Vec<_> = CardStatus::ALL
            .iter()
            .map(|s| s.refusal().map(|c| c.0))
            .collect();
        assert_eq!(
            card,
            [
                None,
                Some(51),
                Some(52),
                Some(53),
                Some(54),
                Some(55),
                Some(57)
            ]
        );
        for s in CardStatus::ALL {
            assert_eq!(CardStatus::parse(s.as_str()).unwrap(), *s);
            // R-P5.2: every card-status refusal makes an online terminal lock the card.
            if let Some(code) = s.refusal() {
                assert!(code.is_card_status_error());
            }
        }
        assert!(CardStatus::parse("gone").is_err());
    }

    // R-H1, code 27: windows, including one that spans midnight; none = always.
    #[test]
    fn working_hour_windows() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let day = [WorkingHours {
            start: t(7, 0),
            end: t(9, 0),
        }];
        assert!(within_hours(&day, t(7, 0)));
        assert!(within_hours(&day, t(8, 59)));
        assert!(!within_hours(&day, t(9, 0)));
        assert!(!within_hours(&day, t(6, 59)));
        let night = [WorkingHours {
            start: t(22, 0),
            end: t(2, 0),
        }];
        assert!(within_hours(&night, t(23, 30)));
        assert!(within_hours(&night, t(1, 59)));
        assert!(!within_hours(&night, t(2, 0)));
        assert!(!within_hours(&night, t(12, 0)));
        assert!(within_hours(&[], t(3, 0)));
    }

    proptest! {
        // R-F4.13: fee = amount × rate / 100 rounded half up, exact in integers.
        #[test]
        fn fee_rounds_half_up(amount in 1..=MAX_CARD_BALANCE, rate in 0..=100u8) {
            let fee = expected_fee(amount, rate).unwrap();
            let exact2 = 2 * amount * Fen::from(rate); // 200 × the exact fee
            prop_assert!(200 * fee > exact2 - 100 && 200 * fee <= exact2 + 100);
            prop_assert!(fee <= amount);
        }
    }
}
