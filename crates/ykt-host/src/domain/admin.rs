//! Administration: the lifecycles of front-end processors (R-H7), merchants (R-H3), devices
//! (R-H1) and cards (R-H4, R-T2.*), card-office deposits, subsidies. These are the card
//! office's and operators' actions; invalid ones are `HostError::Invalid`.

use chrono::NaiveDateTime;
use ykt_proto::{CardNo, DisplayNo, Fen, MerchantNo, PhysicalId, TerminalParams};

use super::blacklist;
use super::checks::MAX_CARD_BALANCE;
use super::journal::{self, Actor, Change};
use super::loads::{self, LoadId, WaitingSource};
use super::shifts::{self, Method};
use crate::error::{HostError, Result};
use crate::ledger::{FUNDING_ACCOUNT, Transfer, Tx};
use crate::model::*;
use crate::params_codec;
use crate::repo;

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(HostError::Invalid(m.into()))
}

// ---- front-end processors (R-H7) ------------------------------------------------------------

pub fn register_fep(tx: &mut Tx<'_>, id: u32, name: &str) -> Result<Fep> {
    if name.is_empty() || name.len() > 64 {
        return invalid("a FEP name has 1 to 64 bytes");
    }
    if !repo::fep_insert(tx.conn, id, name)? {
        return invalid(format!("FEP {id} exists"));
    }
    fep(tx, id)
}

pub fn fep(tx: &mut Tx<'_>, id: u32) -> Result<Fep> {
    repo::fep_get(tx.conn, id)?.ok_or_else(|| HostError::Invalid(format!("no FEP {id}")))
}

/// The FEP under its row lock, for a change that checks its state first.
fn fep_locked(tx: &mut Tx<'_>, id: u32) -> Result<Fep> {
    repo::fep_lock(tx.conn, id)?.ok_or_else(|| HostError::Invalid(format!("no FEP {id}")))
}

/// Registered → activated. A deregistered FEP stays deregistered.
pub fn activate_fep(tx: &mut Tx<'_>, id: u32) -> Result<Fep> {
    let mut f = fep_locked(tx, id)?;
    if f.status == FepStatus::Deregistered {
        return invalid(format!("FEP {id} is deregistered"));
    }
    f.status = FepStatus::Activated;
    repo::fep_update(tx.conn, &f)?;
    Ok(f)
}

pub fn deregister_fep(tx: &mut Tx<'_>, id: u32) -> Result<Fep> {
    let mut f = fep_locked(tx, id)?;
    f.status = FepStatus::Deregistered;
    f.signed_in_at = None;
    repo::fep_update(tx.conn, &f)?;
    Ok(f)
}

/// A host process signs in as its FEP before serving; refused with codes 10, 11, 13.
pub fn sign_in_fep(tx: &mut Tx<'_>, id: u32, now: NaiveDateTime) -> Result<Fep> {
    let Some(mut f) = repo::fep_lock(tx.conn, id)? else {
        return Err(HostError::Refused(
            ykt_proto::ReturnCode::FEP_NOT_REGISTERED,
        ));
    };
    if let Some(code) = f.status.refusal() {
        return Err(HostError::Refused(code));
    }
    f.signed_in_at = Some(now);
    repo::fep_update(tx.conn, &f)?;
    Ok(f)
}

// ---- merchants (R-H3) -------------------------------------------------------------------------

/// A merchant of type `general` (sales and top-ups), without commission.
pub fn create_merchant(tx: &mut Tx<'_>, no: MerchantNo, name: &str) -> Result<Merchant> {
    create_merchant_of(tx, no, name, MerchantKind::General)
}

/// A merchant of the given type (R-B8), without commission.
pub fn create_merchant_of(
    tx: &mut Tx<'_>,
    no: MerchantNo,
    name: &str,
    kind: MerchantKind,
) -> Result<Merchant> {
    if no == 0 {
        return invalid("merchant number 0 means no merchant");
    }
    if name.is_empty() || name.len() > 128 {
        return invalid("a merchant name has 1 to 128 bytes");
    }
    let m = Merchant {
        no,
        name: name.to_owned(),
        status: MerchantStatus::Normal,
        kind,
        commission_bp: 0,
    };
    if !repo::merchant_insert(tx.conn, &m)? {
        return invalid(format!("merchant {no} exists"));
    }
    Ok(m)
}

pub fn merchant(tx: &mut Tx<'_>, no: MerchantNo) -> Result<Merchant> {
    repo::merchant_get(tx.conn, no)?.ok_or_else(|| HostError::Invalid(format!("no merchant {no}")))
}

/// Normal ⇄ stopped; → deregistered is final.
pub fn set_merchant_status(tx: &mut Tx<'_>, no: MerchantNo, s: MerchantStatus) -> Result<Merchant> {
    let mut m = repo::merchant_lock(tx.conn, no)?
        .ok_or_else(|| HostError::Invalid(format!("no merchant {no}")))?;
    if m.status == MerchantStatus::Deregistered && s != MerchantStatus::Deregistered {
        return invalid(format!("merchant {no} is deregistered"));
    }
    m.status = s;
    repo::merchant_set_status(tx.conn, no, s)?;
    Ok(m)
}

/// The merchant's account balance: what it has taken in, net of reversals.
pub fn merchant_balance(tx: &mut Tx<'_>, no: MerchantNo) -> Result<Fen> {
    repo::account_balance(tx.conn, &repo::merchant_account(no))?
        .ok_or_else(|| HostError::Invalid(format!("no merchant {no}")))
}

// ---- devices (R-H1) -------------------------------------------------------------------------------

pub fn register_device(tx: &mut Tx<'_>, d: NewDevice) -> Result<Device> {
    params_codec::validate(&d.params)?;
    check_max_amount(d.max_amount)?;
    if let Some(m) = d.merchant_no {
        merchant(tx, m)?;
    }
    let device = Device {
        id: d.id,
        terminal_no: d.terminal_no,
        merchant_no: d.merchant_no,
        status: DeviceStatus::Registered,
        master_key: None,
        mac_suite: d.mac_suite,
        functions: d.functions,
        max_amount: d.max_amount,
        params: d.params,
        last_report: None,
    };
    if !repo::device_insert(tx.conn, &device)? {
        return invalid(format!("device {} exists", d.id));
    }
    Ok(device)
}

pub fn device(tx: &mut Tx<'_>, id: PhysicalId) -> Result<Device> {
    repo::device_get(tx.conn, id)?.ok_or_else(|| HostError::Invalid(format!("no device {id}")))
}

/// A device's per-transaction limit (code 71): 0 (none) up to what a card can hold.
pub fn check_max_amount(max_amount: Fen) -> Result<()> {
    if !(0..=MAX_CARD_BALANCE).contains(&max_amount) {
        return invalid(format!(
            "max_amount is 0 (no limit) to {MAX_CARD_BALANCE} fen"
        ));
    }
    Ok(())
}

/// Changes a device with `f` and stores it, under the row's lock so that concurrent
/// changes (from other hosts too) apply one after the other; deregistered devices are final.
pub fn update_device(
    tx: &mut Tx<'_>,
    id: PhysicalId,
    f: impl FnOnce(&mut Device) -> Result<()>,
) -> Result<Device> {
    let mut d = repo::device_lock(tx.conn, id)?
        .ok_or_else(|| HostError::Invalid(format!("no device {id}")))?;
    if d.status == DeviceStatus::Deregistered {
        return invalid(format!("device {id} is deregistered"));
    }
    f(&mut d)?;
    check_max_amount(d.max_amount)?;
    if let Some(m) = d.merchant_no {
        merchant(tx, m)?;
    }
    repo::device_update(tx.conn, &d)?;
    Ok(d)
}

pub fn set_device_status(tx: &mut Tx<'_>, id: PhysicalId, s: DeviceStatus) -> Result<Device> {
    update_device(tx, id, |d| {
        d.status = s;
        Ok(())
    })
}

/// Installs the terminal master key; a device without one is not authorised (code 29).
pub fn set_device_key(tx: &mut Tx<'_>, id: PhysicalId, key: [u8; 16]) -> Result<Device> {
    update_device(tx, id, |d| {
        d.master_key = Some(key);
        Ok(())
    })
}

/// Replaces the parameters; their version becomes the old one + 1 so terminals refetch.
pub fn set_device_params(tx: &mut Tx<'_>, id: PhysicalId, p: TerminalParams) -> Result<Device> {
    change_device_params(tx, id, |old| {
        *old = p;
        Ok(())
    })
}

/// Changes the parameters with `f` on the locked row (a patch of some fields never undoes a
/// concurrent change of others) and gives them the old version + 1.
pub fn change_device_params(
    tx: &mut Tx<'_>,
    id: PhysicalId,
    f: impl FnOnce(&mut TerminalParams) -> Result<()>,
) -> Result<Device> {
    update_device(tx, id, |d| {
        let version = d.params.version.wrapping_add(1);
        f(&mut d.params)?;
        d.params.version = version;
        params_codec::validate(&d.params)
    })
}

/// Records a terminal's status report (R-F4.20) for monitoring.
pub fn report_device_status(tx: &mut Tx<'_>, id: PhysicalId, r: DeviceReport) -> Result<()> {
    device(tx, id)?;
    repo::device_report(tx.conn, id, &r)
}

// ---- cards (R-H4, R-T2.1, R-T2.2) --------------------------------------------------------------------

/// Issues a card: the card number is the next of a system sequence starting at 1 (R-T2.1);
/// the display number must be unique (R-T2.2).
pub fn issue_card(tx: &mut Tx<'_>, c: NewCard) -> Result<Card> {
    if repo::card_by_display(tx.conn, c.display_no)?.is_some() {
        return invalid(format!("display number {} is in use", c.display_no.get()));
    }
    let no = next_card_no(tx)?;
    insert_card(tx, no, c)
}

/// Issues a card whose display number follows its card number: `display_base` + number
/// (bulk provisioning). The number is drawn first, under the sequence's row lock, so issuers
/// in other host processes on the same database never predict the same display number.
pub fn issue_numbered_card(
    tx: &mut Tx<'_>,
    display_base: u64,
    class: u8,
    expiry: chrono::NaiveDate,
) -> Result<Card> {
    let no = next_card_no(tx)?;
    let display_no = display_base
        .checked_add(u64::from(no.get()))
        .and_then(DisplayNo::new)
        .ok_or_else(|| HostError::Invalid("display number out of range".into()))?;
    if repo::card_by_display(tx.conn, display_no)?.is_some() {
        return invalid(format!("display number {} is in use", display_no.get()));
    }
    let c = NewCard {
        display_no,
        class,
        expiry,
        counter: 0,
    };
    insert_card(tx, no, c)
}

/// The next number of the system sequence (R-T2.1).
fn next_card_no(tx: &mut Tx<'_>) -> Result<CardNo> {
    let seq = repo::bump_meta(tx.conn, "card_no_seq")?;
    u32::try_from(seq)
        .ok()
        .and_then(CardNo::new)
        .ok_or_else(|| HostError::Invalid("card numbers exhausted (2^24 − 1)".into()))
}

fn insert_card(tx: &mut Tx<'_>, no: CardNo, c: NewCard) -> Result<Card> {
    let card = Card {
        no,
        display_no: c.display_no,
        status: CardStatus::Normal,
        class: c.class,
        expiry: c.expiry,
        balance: 0,
        counter_floor: c.counter,
        counter_next: c.counter,
        counters_used: 0,
        waiting: 0,
        subsidy_seq: 0,
        loads_pending: 0,
    };
    if !repo::card_insert(tx.conn, &card)? {
        // The display number was checked free, but another host may have taken it since:
        // the insert itself is the check that holds.
        if repo::card_by_display(tx.conn, card.display_no)?.is_some() {
            return invalid(format!(
                "display number {} is in use",
                card.display_no.get()
            ));
        }
        return Err(HostError::Corrupt(format!(
            "card {} exists beyond the sequence",
            no.get()
        )));
    }
    Ok(card)
}

pub fn card(tx: &mut Tx<'_>, no: CardNo) -> Result<Card> {
    repo::card_get(tx.conn, no, false)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))
}

pub fn card_by_display(tx: &mut Tx<'_>, d: DisplayNo) -> Result<Card> {
    repo::card_by_display(tx.conn, d)?
        .ok_or_else(|| HostError::Invalid(format!("no card with display number {}", d.get())))
}

/// Who pays a deposit in, and how: the operator who takes it (the journal names them, R-B1)
/// and the method (cash is tallied in their shift).
#[derive(Clone, Copy, Debug)]
pub struct Payer<'a> {
    pub actor: &'a Actor,
    pub method: Method,
}

impl<'a> Payer<'a> {
    /// ykt itself (demo seeding, tests): a transfer, no cash drawer.
    pub fn system(actor: &'a Actor) -> Payer<'a> {
        Payer {
            actor,
            method: Method::Transfer,
        }
    }
}

/// A card-office deposit (R-B4, docs/loads.md): the money does not reach the card's account
/// here but **waits for the card** (funding → `waiting`, a waiting load) until a pick-up
/// writes it onto the card. Journalled in its transaction and, when paid in cash, tallied
/// in the operator's shift. `id` is the card office's receipt: a repeated id is refused,
/// never booked twice. Returns the card with its waiting sum.
pub fn deposit(
    tx: &mut Tx<'_>,
    payer: Payer<'_>,
    no: CardNo,
    amount: Fen,
    id: &str,
    now: NaiveDateTime,
) -> Result<Card> {
    let (before, _) = check_deposit(tx, no, amount, id)?;
    let transfer = deposit_transfer_id(id);
    let load = loads::add_waiting(
        tx,
        no,
        amount,
        WaitingSource::Deposit,
        FUNDING_ACCOUNT,
        &transfer,
        now,
    )?;
    let card = self::card(tx, no)?;
    let change = Change::new("card.deposit", format!("card:{}", no.get()))
        .before(serde_json::json!({"waiting": before.waiting}))
        .after(serde_json::json!({"waiting": card.waiting, "amount": amount, "receipt": id, "method": payer.method.as_str(), "load": load}))
        .transfer(transfer.clone());
    take_payment(tx, payer, &transfer, amount, &change, now)?;
    Ok(card)
}

/// The ledger id of a deposit's (or opening balance's) transfer, from its receipt.
fn deposit_transfer_id(receipt: &str) -> String {
    format!("dep:{receipt}")
}

/// The person's side of money paid in: tallied in the operator's shift by its method (cash
/// only from an operator), and the journal entry naming its transfer (R-B1).
fn take_payment(
    tx: &mut Tx<'_>,
    payer: Payer<'_>,
    transfer: &str,
    amount: Fen,
    change: &Change,
    now: NaiveDateTime,
) -> Result<()> {
    match (payer.actor.operator, payer.method) {
        (Some(operator), method) => shifts::tally(tx, operator, transfer, method, amount, now)?,
        (None, Method::Cash) => return invalid("cash is taken by an operator"),
        (None, _) => {}
    }
    journal::append(tx, payer.actor, now, change).map(drop)
}

/// Every check of a deposit, on the card's locked row: the card and the balance the card
/// would have once everything waiting for it is picked up. A deposit request waiting for
/// approval is checked the same way when filed.
pub fn check_deposit(tx: &mut Tx<'_>, no: CardNo, amount: Fen, id: &str) -> Result<(Card, Fen)> {
    if !(1..=MAX_CARD_BALANCE).contains(&amount) {
        return invalid(format!("a deposit is 1 to {MAX_CARD_BALANCE} fen"));
    }
    if id.is_empty() || id.len() > 64 {
        return invalid("a deposit id has 1 to 64 bytes");
    }
    let c = repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))?;
    if c.status == CardStatus::Cancelled {
        return invalid("the card is cancelled");
    }
    let balance = c
        .balance
        .checked_add(c.waiting)
        .and_then(|b| b.checked_add(amount))
        .filter(|b| *b <= MAX_CARD_BALANCE)
        .ok_or_else(|| {
            HostError::Invalid(format!(
                "the card's balance would exceed {MAX_CARD_BALANCE} fen (24 bits)"
            ))
        })?;
    Ok((c, balance))
}

/// The money movement of an opening balance alone (funding → card: it is written on the
/// new card at issue, so it needs no pick-up), returning the transfer id. Callers journal
/// it themselves (bulk provisioning journals a whole chunk in one entry).
pub fn post_opening_balance(
    tx: &mut Tx<'_>,
    no: CardNo,
    amount: Fen,
    id: &str,
    now: NaiveDateTime,
) -> Result<(Card, String)> {
    let (mut c, _) = check_deposit(tx, no, amount, id)?;
    let transfer = deposit_transfer_id(id);
    tx.post(Transfer {
        id: transfer.clone(),
        from: FUNDING_ACCOUNT.to_owned(),
        to: repo::card_account(no),
        amount,
        kind: "deposit",
        record: None,
        time: now,
    })
    .map_err(|e| match e {
        HostError::Invariant(_) => HostError::Invalid(format!("deposit {id} exists")),
        other => other,
    })?;
    c.balance = c
        .balance
        .checked_add(amount)
        .ok_or_else(|| HostError::Invariant(format!("card {} balance overflow", no.get())))?;
    repo::card_update(tx.conn, &c)?;
    Ok((c, transfer))
}

/// A card's opening balance (0 for none), paid in like a deposit: one rule for every route
/// that issues cards.
pub fn check_opening_balance(balance: Fen) -> Result<()> {
    if !(0..=MAX_CARD_BALANCE).contains(&balance) {
        return invalid(format!("balance is 0 to {MAX_CARD_BALANCE} fen"));
    }
    Ok(())
}

/// Pays a newly issued card's opening balance in (nothing for 0) onto its account, since
/// the issuing writer puts it on the card; `receipt` as for [`deposit`].
pub fn pay_opening_balance(
    tx: &mut Tx<'_>,
    payer: Payer<'_>,
    card: Card,
    balance: Fen,
    receipt: &str,
    now: NaiveDateTime,
) -> Result<Card> {
    check_opening_balance(balance)?;
    if balance == 0 {
        return Ok(card);
    }
    let before = card.balance;
    let (card, transfer) = post_opening_balance(tx, card.no, balance, receipt, now)?;
    let change = Change::new("card.deposit", format!("card:{}", card.no.get()))
        .before(serde_json::json!({"balance": before}))
        .after(serde_json::json!({"balance": card.balance, "amount": balance, "receipt": receipt, "method": payer.method.as_str()}))
        .transfer(transfer.clone());
    take_payment(tx, payer, &transfer, balance, &change, now)?;
    Ok(card)
}

/// Which statuses a change of a card's status may start from (checked on the locked row).
enum Source {
    /// Any but cancelled, which is final.
    AnyLive,
    /// Only this one; the message says why not otherwise.
    Only(CardStatus, &'static str),
}

/// Changes a card's status; entering or leaving a blocking status changes the blacklist
/// (version + 1). Cancelled is final.
pub fn set_card_status(tx: &mut Tx<'_>, no: CardNo, s: CardStatus) -> Result<(Card, u32)> {
    change_card_status(tx, no, Source::AnyLive, s)
}

/// The one place a card's status changes: the source is checked on the row read under its
/// lock, so of two concurrent changes (from two hosts too) the second sees the first's
/// result, and is refused when that is no longer a source it may start from.
fn change_card_status(
    tx: &mut Tx<'_>,
    no: CardNo,
    from: Source,
    s: CardStatus,
) -> Result<(Card, u32)> {
    let mut c = repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))?;
    if c.status == CardStatus::Cancelled {
        return invalid("the card is cancelled");
    }
    if let Source::Only(required, why) = from
        && c.status != required
    {
        return invalid(why);
    }
    let was = blacklist::blocks(c.status);
    c.status = s;
    repo::card_update(tx.conn, &c)?;
    let version = if was != blacklist::blocks(s) {
        blacklist::change(tx, no, blacklist::blocks(s))?
    } else {
        blacklist::version(tx)?
    };
    Ok((c, version))
}

/// 挂失 (R-H4): a normal card becomes lost and goes on the blacklist (version + 1).
pub fn report_loss(tx: &mut Tx<'_>, no: CardNo) -> Result<(Card, u32)> {
    let from = Source::Only(
        CardStatus::Normal,
        "only a normal card can be reported lost",
    );
    change_card_status(tx, no, from, CardStatus::Lost)
}

/// 解挂 (R-H4): a lost card is found; it leaves the blacklist (version + 1).
pub fn report_found(tx: &mut Tx<'_>, no: CardNo) -> Result<(Card, u32)> {
    let from = Source::Only(CardStatus::Lost, "the card is not reported lost");
    change_card_status(tx, no, from, CardStatus::Normal)
}

/// 登记坏卡 (R-B6): a normal or lost card that no longer reads is registered bad (53 at
/// every terminal, blacklisted) until it is repaired or replaced.
pub fn report_bad(tx: &mut Tx<'_>, no: CardNo) -> Result<(Card, u32)> {
    let c = card(tx, no)?;
    if !matches!(c.status, CardStatus::Normal | CardStatus::Lost) {
        return invalid("only a normal or lost card can be registered bad");
    }
    let from = Source::Only(c.status, "the card changed meanwhile: try again");
    change_card_status(tx, no, from, CardStatus::Bad)
}

/// A bad card rewritten by the card office (`domain::repair`) is normal again.
pub fn report_repaired(tx: &mut Tx<'_>, no: CardNo) -> Result<(Card, u32)> {
    let from = Source::Only(CardStatus::Bad, "the card is not registered bad");
    change_card_status(tx, no, from, CardStatus::Normal)
}

/// A frozen card becomes normal again; it leaves the blacklist (version + 1).
pub fn unfreeze(tx: &mut Tx<'_>, no: CardNo) -> Result<(Card, u32)> {
    let from = Source::Only(CardStatus::Frozen, "the card is not frozen");
    change_card_status(tx, no, from, CardStatus::Normal)
}

/// Corrects the card's data in the system (class, expiry) — e.g. after info code 6.
pub fn set_card_data(
    tx: &mut Tx<'_>,
    no: CardNo,
    class: u8,
    expiry: chrono::NaiveDate,
) -> Result<Card> {
    let mut c = repo::card_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("no card {}", no.get())))?;
    c.class = class;
    c.expiry = expiry;
    repo::card_update(tx.conn, &c)?;
    Ok(c)
}

/// Puts a subsidy of a batch waiting for the card (funding → `subsidy`; info code 2 until
/// picked up). One per card and batch: the transfer id names both, a repeat is refused.
pub fn add_subsidy(
    tx: &mut Tx<'_>,
    no: CardNo,
    amount: Fen,
    batch: u32,
    now: NaiveDateTime,
) -> Result<LoadId> {
    let source = WaitingSource::Subsidy {
        batch: i64::from(batch),
        expires: None,
    };
    let transfer = format!("sub:{batch}:{}", no.get());
    loads::add_waiting(tx, no, amount, source, FUNDING_ACCOUNT, &transfer, now)
}
