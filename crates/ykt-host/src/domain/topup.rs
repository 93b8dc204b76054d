//! Loads onto the card (圈存, docs/loads.md, R-B4, R-B5): the host's side of a top-up and of
//! a pick-up of what waits. A load is authorised (0x08) as **pending** — its own row keyed by
//! the terminal's `(device, serial)` plus, for a top-up, a transfer into `topup:pending` —
//! durable before the answer, and settled exactly once by what the card shows:
//!
//! - the load's record uploaded (`Success` → post, `CardPulled`/`Failed` → void, `Initiated`
//!   → stays pending);
//! - otherwise the card's next record from any terminal ([`settle_by_record`]);
//! - otherwise the card office with the card on its writer (its record settles it the same
//!   way). No timeout voids a load: the card may carry it.
//!
//! Posting moves the money onto the card's account; voiding gives it back where it came from
//! (a pick-up's claimed waiting loads wait again).

use chrono::{NaiveDateTime, NaiveTime};
use ykt_proto::{
    CardType, Fen, LoadCard, LoadPurpose, LoadRequest, Record, RecordKind, RecordStatus,
    ReturnCode, WaitingRequest,
};

use super::checks::{self, MAX_CARD_BALANCE, Origin};
use super::counter;
use super::loads::account_of;
use super::records::{Booking, CpuLoad, TacVerifier, insert_record};
use super::shifts::{self, Method};
use crate::error::{HostError, Result, refuse};
use crate::ledger::{FUNDING_ACCOUNT, TOPUP_PENDING_ACCOUNT, Transfer, Tx, record_transfer_id};
use crate::model::{Card, Device, Functions, Trade};
use crate::repo;
use crate::repo_loads::{
    self as rows, CardColumn, CpuLoadFacts, Load, LoadState, WaitingLoad, WaitingState,
};

// ---- the bank ------------------------------------------------------------------------------

/// The cardholder's bank for top-ups from the bank (purpose 2). The host calls it inside the
/// authorisation's transaction, which may still roll back: a real bank's debit must be
/// idempotent by `reference` (`device:serial`). The bank's side is a ledger account: a
/// voided top-up's money goes back to it (`topup-void` transfers), the list the bank
/// reconciles its refunds by.
pub trait Bank: Send + Sync {
    /// The ledger account that stands for the bank's side of its top-ups (`bank:<name>`).
    fn account(&self) -> &str;
    /// Takes `amount` from the cardholder's bank account; an error refuses the top-up
    /// (`HostError::Refused` with the code the terminal shows).
    fn debit(&self, card: ykt_proto::CardNo, amount: Fen, reference: &str) -> Result<()>;
}

/// A bank that approves every debit: its side is the ledger account `bank:sim` (schema V8),
/// which goes negative as money comes in, like `funding`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulatedBank;

pub const SIMULATED_BANK_ACCOUNT: &str = "bank:sim";

impl Bank for SimulatedBank {
    fn account(&self) -> &str {
        SIMULATED_BANK_ACCOUNT
    }

    fn debit(&self, _card: ykt_proto::CardNo, _amount: Fen, _reference: &str) -> Result<()> {
        Ok(())
    }
}

// ---- limits (code 90) --------------------------------------------------------------------------

/// The top-up limits (system parameters in `meta`, set by the admin API); 0 = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// At most this much per top-up.
    pub per_top_up: Fen,
    /// At most this much topped up per card and day (terminal clock), voided ones not counted.
    pub per_card_per_day: Fen,
    /// The card's balance after a top-up at most this.
    pub balance_after: Fen,
}

const LIMIT_NAMES: [&str; 3] = ["topup_max_amount", "topup_max_per_day", "topup_max_balance"];

pub fn limits(tx: &mut Tx<'_>) -> Result<Limits> {
    Ok(Limits {
        per_top_up: repo::meta(tx.conn, LIMIT_NAMES[0])?,
        per_card_per_day: repo::meta(tx.conn, LIMIT_NAMES[1])?,
        balance_after: repo::meta(tx.conn, LIMIT_NAMES[2])?,
    })
}

pub fn set_limits(tx: &mut Tx<'_>, l: Limits) -> Result<Limits> {
    let values = [l.per_top_up, l.per_card_per_day, l.balance_after];
    if values.iter().any(|v| !(0..=MAX_CARD_BALANCE).contains(v)) {
        return Err(HostError::Invalid(format!(
            "a top-up limit is 0 (none) to {MAX_CARD_BALANCE} fen"
        )));
    }
    for (name, v) in LIMIT_NAMES.into_iter().zip(values) {
        repo::set_meta(tx.conn, name, v)?;
    }
    Ok(l)
}

fn check_limits(tx: &mut Tx<'_>, card: &Card, l: &LoadRequest, after: Fen) -> Result<()> {
    let lim = limits(tx)?;
    let over = |limit: Fen, v: Fen| limit > 0 && v > limit;
    if over(lim.per_top_up, l.amount) || over(lim.balance_after, after) {
        return refuse(ReturnCode::TOP_UP_LIMIT_REACHED);
    }
    if lim.per_card_per_day > 0 {
        let day = l.time.date().and_time(NaiveTime::MIN);
        let today = rows::topups_of_day(tx.conn, card.no, day, day + chrono::Duration::days(1))?;
        if today
            .checked_add(l.amount)
            .is_none_or(|t| t > lim.per_card_per_day)
        {
            return refuse(ReturnCode::TOP_UP_LIMIT_REACHED);
        }
    }
    Ok(())
}

// ---- authorisation (0x08) ------------------------------------------------------------------------

/// A load authorisation request: the device it came from and the request as the wire gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadAuth {
    pub origin: Origin,
    pub request: LoadRequest,
}

/// A load authorised (or authorised before, `duplicate`): what the terminal writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorised {
    pub duplicate: bool,
    pub amount: Fen,
    pub balance_after: Fen,
    pub subsidy_seq_after: u16,
    pub mac2: [u8; 4],
    /// The card account's balance on the books once the load is posted.
    pub account_balance: Fen,
}

/// What a top-up or pick-up needs of the keys and the bank.
#[derive(Clone, Copy)]
pub struct LoadServices<'a> {
    pub bank: &'a dyn Bank,
    pub keys: Option<&'a dyn TacVerifier>,
}

/// Authorises a load (0x08): device (28 without the top-up function; a pick-up needs the
/// online debit function of a POS), card (the flat checks of a debit), amounts (34, 67), limits
/// (90, top-ups), the card's subsidy sequence (63, pick-ups), the counter (61, 62). A repeat
/// of `(device, serial)` with the same content gets the same answer (a CPU card a fresh MAC2),
/// different content 30.
pub fn authorize(
    tx: &mut Tx<'_>,
    req: &LoadAuth,
    services: LoadServices<'_>,
    now: NaiveDateTime,
) -> Result<Authorised> {
    let l = &req.request;
    let device = checks::device_row(tx, req.origin.fep, req.origin.device)?;
    let (function, trade) = match l.purpose {
        LoadPurpose::Pickup => (Functions::ONLINE_DEBIT, Trade::Pickup),
        LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => (Functions::TOP_UP, Trade::TopUp),
    };
    checks::not_in_maintenance(tx)?;
    checks::device_state(&device, &req.origin, function)?;
    checks::device_merchant_takes(tx, &device, trade)?;
    checks::working_hours(&device, l.time)?;
    let mut card = match repo::card_get(tx.conn, l.card_no, true)? {
        Some(c) => c,
        None => return refuse(ReturnCode::CARD_NOT_FOUND),
    };
    let dev = req.origin.device;
    if let Some(existing) = rows::load_lock(tx.conn, dev, l.serial)? {
        return repeat(&existing, &card, l, services.keys);
    }
    if repo::record_get(tx.conn, dev, l.serial, false)?.is_some() {
        return refuse(ReturnCode::POS_SERIAL_DUPLICATE);
    }
    super::exceptions::refuse_if_held(tx, dev, l.serial)?;
    checks::card_usable(&card, &device, l.time)?;
    if l.amount <= 0 || l.amount > MAX_CARD_BALANCE {
        return refuse(ReturnCode::AMOUNT_ERROR);
    }
    if !(0..=MAX_CARD_BALANCE).contains(&l.balance_before) {
        return refuse(ReturnCode::CARD_BALANCE_ABNORMAL);
    }
    let after = match l.balance_before.checked_add(l.amount) {
        Some(a) if a <= MAX_CARD_BALANCE => a,
        _ => return refuse(ReturnCode::TOP_UP_LIMIT_REACHED),
    };
    // The card's state as this request shows it settles what an earlier load left pending.
    let seen = match l.card {
        LoadCard::Mf1 => Counter::Lifetime(l.card_counter),
        LoadCard::Cpu(init) => Counter::Online(init.online_seq),
    };
    settle_by_card(
        tx,
        &mut card,
        Some((dev, l.serial)),
        seen,
        l.balance_before,
        now,
    )?;
    if let Counter::Lifetime(_) = seen {
        let probe = load_record(
            &pending_load(req, &card, String::new(), None, now),
            RecordStatus::Initiated,
        );
        counter::check(tx, &card, &probe)?;
    }
    let (funding, operator) = match l.purpose {
        LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => {
            check_limits(tx, &card, l, after)?;
            fund_top_up(tx, req, &card, services.bank, now)?
        }
        LoadPurpose::Pickup => {
            explain_subsidy_seq(tx, &mut card, l.subsidy_seq, now)?;
            claim(tx, &mut card, dev, l.serial, l.amount)?;
            (crate::ledger::WAITING_ACCOUNT.to_owned(), None)
        }
    };
    let load = pending_load(req, &card, funding, operator, now);
    if !rows::load_insert(tx.conn, &load)? {
        return Err(HostError::Db {
            message: format!("load {dev}:{} inserted concurrently", l.serial),
            retryable: true,
        });
    }
    rows::card_add(tx.conn, card.no, CardColumn::LoadsPending, 1)?;
    answer(&load, &card, l, services.keys, false)
}

fn pending_load(
    req: &LoadAuth,
    card: &Card,
    funding: String,
    operator: Option<i64>,
    now: NaiveDateTime,
) -> Load {
    let l = &req.request;
    Load {
        device: req.origin.device,
        serial: l.serial,
        card: card.no,
        purpose: l.purpose,
        card_type: l.card.card_type(),
        counter_before: l.card_counter,
        balance_before: l.balance_before,
        amount: l.amount,
        subsidy_seq: l.subsidy_seq,
        time: l.time,
        funding,
        operator,
        wallet_no: l.wallet_no,
        cpu: match l.card {
            LoadCard::Mf1 => None,
            LoadCard::Cpu(init) => Some(CpuLoadFacts {
                online_seq: init.online_seq,
                terminal_id: init.terminal_id,
            }),
        },
        state: LoadState::Pending,
        created_at: now,
    }
}

/// The same request as the one the load was authorised for (the CPU card's fresh INITIALIZE
/// aside: its random and MAC1 change with every try).
fn same_request(load: &Load, l: &LoadRequest) -> bool {
    load.card == l.card_no
        && load.purpose == l.purpose
        && load.card_type == l.card.card_type()
        && load.counter_before == l.card_counter
        && load.balance_before == l.balance_before
        && load.amount == l.amount
        && load.subsidy_seq == l.subsidy_seq
        && load.wallet_no == l.wallet_no
        && load.time == l.time
        && load.cpu.map(|c| c.terminal_id)
            == match l.card {
                LoadCard::Mf1 => None,
                LoadCard::Cpu(i) => Some(i.terminal_id),
            }
}

/// A repeated 0x08: a pending load is answered again; a settled one, or other content, is a
/// serial used already (30): the card must never be written twice for one authorisation.
fn repeat(
    load: &Load,
    card: &Card,
    l: &LoadRequest,
    keys: Option<&dyn TacVerifier>,
) -> Result<Authorised> {
    if load.state != LoadState::Pending || !same_request(load, l) {
        return refuse(ReturnCode::POS_SERIAL_DUPLICATE);
    }
    answer(load, card, l, keys, true)
}

fn answer(
    load: &Load,
    card: &Card,
    l: &LoadRequest,
    keys: Option<&dyn TacVerifier>,
    duplicate: bool,
) -> Result<Authorised> {
    let mac2 = match l.card {
        LoadCard::Mf1 => [0; 4],
        LoadCard::Cpu(init) => {
            let cpu = CpuLoad {
                card_no: load.card,
                balance_before: load.balance_before,
                amount: load.amount,
                online_seq: init.online_seq,
                random: init.random,
                mac1: init.mac1,
                terminal_id: init.terminal_id,
                time: load.time,
            };
            match keys.and_then(|k| k.load_mac2(&cpu)) {
                Some(mac2) => mac2,
                None => {
                    tracing::warn!(device = %load.device, serial = load.serial, "load MAC1 not verified");
                    return refuse(ReturnCode::OTHER_ERROR);
                }
            }
        }
    };
    let seq_after = match load.purpose {
        LoadPurpose::Pickup => load.subsidy_seq.wrapping_add(1),
        LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => load.subsidy_seq,
    };
    Ok(Authorised {
        duplicate,
        amount: load.amount,
        balance_after: load.balance_after().ok_or_else(|| overflow(card))?,
        subsidy_seq_after: seq_after,
        mac2,
        account_balance: card
            .balance
            .checked_add(load.amount)
            .ok_or_else(|| overflow(card))?,
    })
}

fn overflow(card: &Card) -> HostError {
    HostError::Invariant(format!("card {} balance would overflow", card.no.get()))
}

fn load_reference(load_device: ykt_proto::PhysicalId, serial: u32) -> String {
    format!("{load_device}:{serial}")
}

/// A top-up's money into `topup:pending`: the device's operator's cash (28 when the device has
/// none: no one takes cash at it) or the bank's. Returns the funding account and operator.
fn fund_top_up(
    tx: &mut Tx<'_>,
    req: &LoadAuth,
    card: &Card,
    bank: &dyn Bank,
    now: NaiveDateTime,
) -> Result<(String, Option<i64>)> {
    let l = &req.request;
    let dev = req.origin.device;
    let (funding, operator) = match l.purpose {
        LoadPurpose::TopUpCash => match rows::device_operator(tx.conn, dev)? {
            Some(op) => (FUNDING_ACCOUNT.to_owned(), Some(op)),
            None => return refuse(ReturnCode::POS_NO_SUCH_FUNCTION),
        },
        _ => {
            bank.debit(card.no, l.amount, &load_reference(dev, l.serial))?;
            (bank.account().to_owned(), None)
        }
    };
    tx.post(Transfer {
        id: load_transfer_id(dev, l.serial, "auth"),
        from: funding.clone(),
        to: TOPUP_PENDING_ACCOUNT.to_owned(),
        amount: l.amount,
        kind: "topup-pending",
        record: None,
        time: now,
    })?;
    Ok((funding, operator))
}

/// The ids of a load's transfers that are not the record's own (those carry the record's
/// (device, serial) and `record_transfer_id`).
fn load_transfer_id(device: ykt_proto::PhysicalId, serial: u32, part: &str) -> String {
    format!("load:{device}:{serial:010}:{part}")
}

/// A pick-up claims every waiting load of the card; the amount must be what waits (34: the
/// terminal asks 0x09 again). The money stays in its account until the pick-up posts.
fn claim(
    tx: &mut Tx<'_>,
    card: &mut Card,
    device: ykt_proto::PhysicalId,
    serial: u32,
    amount: Fen,
) -> Result<()> {
    let waiting = rows::waiting_of_card(tx.conn, card.no, WaitingState::Waiting.as_str())?;
    let sum = waiting
        .iter()
        .try_fold(0i64, |s, w| s.checked_add(w.amount))
        .ok_or_else(|| overflow(card))?;
    if sum == 0 || sum != amount {
        return refuse(ReturnCode::AMOUNT_ERROR);
    }
    for w in &waiting {
        rows::waiting_set_state(
            tx.conn,
            w,
            WaitingState::Waiting,
            WaitingState::Claimed { device, serial },
        )?;
    }
    card.waiting = rows::card_add(tx.conn, card.no, CardColumn::Waiting, -sum)?;
    Ok(())
}

/// 63 unless the card's subsidy sequence is the host's count — or one more, explained by a
/// pending pick-up of the card that landed (it is posted then and there).
fn explain_subsidy_seq(
    tx: &mut Tx<'_>,
    card: &mut Card,
    on_card: u16,
    now: NaiveDateTime,
) -> Result<()> {
    if on_card == card.subsidy_seq {
        return Ok(());
    }
    if card.loads_pending > 0 && on_card == card.subsidy_seq.wrapping_add(1) {
        let landed = rows::loads_pending_of_card(tx.conn, card.no)?
            .into_iter()
            .find(|p| p.purpose == LoadPurpose::Pickup && p.subsidy_seq == card.subsidy_seq);
        if let Some(load) = landed {
            let r = load_record(&load, RecordStatus::Success);
            return post(tx, card, &load, &r, now);
        }
    }
    refuse(ReturnCode::CARD_SUBSIDY_SEQ_ABNORMAL)
}

// ---- what waits (0x09) ------------------------------------------------------------------------------

/// What a pick-up would put on the card now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub amount: Fen,
    pub loads: u16,
    pub subsidy_seq_after: u16,
}

/// Answers 0x09: what waits for the card (63 on a subsidy-sequence mismatch no pending pick-up
/// explains). Writes only when a pending pick-up is settled by what the card shows.
pub fn waiting(
    tx: &mut Tx<'_>,
    origin: &Origin,
    q: &WaitingRequest,
    now: NaiveDateTime,
) -> Result<Waiting> {
    let device = checks::device_row(tx, origin.fep, origin.device)?;
    checks::device_state(&device, origin, Functions::NONE)?;
    let mut card = match repo::card_get(tx.conn, q.card_no, true)? {
        Some(c) => c,
        None => return refuse(ReturnCode::CARD_NOT_FOUND),
    };
    checks::card_usable(&card, &device, now)?;
    let seen = match q.card_type {
        CardType::Mf1 => Counter::Lifetime(q.card_counter),
        // A read of a CPU card gives neither of its purse's sequence numbers (protocol.md).
        CardType::Cpu => Counter::Unknown,
    };
    settle_by_card(tx, &mut card, None, seen, q.balance, now)?;
    explain_subsidy_seq(tx, &mut card, q.subsidy_seq, now)?;
    let waiting = rows::waiting_of_card(tx.conn, card.no, WaitingState::Waiting.as_str())?;
    Ok(Waiting {
        amount: card.waiting,
        loads: u16::try_from(waiting.len()).unwrap_or(u16::MAX),
        subsidy_seq_after: card.subsidy_seq.wrapping_add(1),
    })
}

// ---- settlement -------------------------------------------------------------------------------------

/// The record of a load, as the terminal journals it (and as the host writes it when the card
/// settled the load without the terminal's own upload).
pub fn load_record(load: &Load, status: RecordStatus) -> Record {
    Record {
        device: load.device,
        serial: load.serial,
        kind: match load.purpose {
            LoadPurpose::Pickup => RecordKind::Subsidy,
            LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => RecordKind::TopUp,
        },
        status,
        online: true,
        card_type: load.card_type,
        card_no: load.card,
        card_counter: load.counter_before,
        wallet_no: load.wallet_no,
        balance_before: load.balance_before,
        amount: load.amount,
        fee: 0,
        balance_after: load.balance_after().unwrap_or(i64::MAX),
        time: load.time,
        merchant_no: 0,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

/// Pending → Posted: the money onto the card's account (tagged with the record), the cash in
/// its operator's shift, the claimed loads posted and the subsidy sequence stepped, the
/// record stored booked with its counter.
fn post(
    tx: &mut Tx<'_>,
    card: &mut Card,
    load: &Load,
    r: &Record,
    now: NaiveDateTime,
) -> Result<()> {
    rows::load_settle(tx.conn, load, LoadState::Posted { at: now })?;
    let key = Some((load.device, load.serial));
    let to = repo::card_account(card.no);
    match load.purpose {
        LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => {
            let id = record_transfer_id(load.device, load.serial, "load");
            tx.post(Transfer {
                id: id.clone(),
                from: TOPUP_PENDING_ACCOUNT.to_owned(),
                to,
                amount: load.amount,
                kind: "top-up",
                record: key,
                time: load.time,
            })?;
            if let Some(op) = load.operator {
                shifts::tally(tx, op, &id, Method::Cash, load.amount, now)?;
            }
        }
        LoadPurpose::Pickup => {
            let claimed = rows::waiting_claimed_by(tx.conn, load.device, load.serial)?;
            check_claimed(load, &claimed)?;
            for w in &claimed {
                tx.post(Transfer {
                    id: record_transfer_id(load.device, load.serial, &format!("load-{}", w.id)),
                    from: account_of(w.source).to_owned(),
                    to: to.clone(),
                    amount: w.amount,
                    kind: "pick-up",
                    record: key,
                    time: load.time,
                })?;
                let posted = WaitingState::Posted {
                    device: load.device,
                    serial: load.serial,
                    at: now,
                };
                rows::waiting_set_state(tx.conn, w, w.state, posted)?;
            }
            card.subsidy_seq = load.subsidy_seq.wrapping_add(1);
            rows::card_set_subsidy_seq(tx.conn, card.no, card.subsidy_seq)?;
        }
    }
    // An MF1 load uses the card's lifetime counter; a CPU load its purse's online sequence,
    // which no other record counts.
    if load.card_type == CardType::Mf1 {
        counter::consume(tx, card, r)?;
    }
    card.balance = card
        .balance
        .checked_add(load.amount)
        .ok_or_else(|| overflow(card))?;
    repo::card_update(tx.conn, card)?;
    insert_record(tx, r, Booking::Booked, None, now)?;
    one_less_pending(tx, card)
}

/// A load of the card settled: one pending load fewer, on the row and in `card`.
fn one_less_pending(tx: &mut Tx<'_>, card: &mut Card) -> Result<()> {
    let left = rows::card_add(tx.conn, card.no, CardColumn::LoadsPending, -1)?;
    card.loads_pending = u32::try_from(left).map_err(|_| overflow(card))?;
    Ok(())
}

fn check_claimed(load: &Load, claimed: &[WaitingLoad]) -> Result<()> {
    let sum = claimed
        .iter()
        .try_fold(0i64, |s, w| s.checked_add(w.amount));
    if sum == Some(load.amount) {
        Ok(())
    } else {
        Err(HostError::Invariant(format!(
            "pick-up {}:{} claims {sum:?}, not its {} fen",
            load.device, load.serial, load.amount
        )))
    }
}

/// Pending → Voided: the money back where it came from (a pick-up's loads wait again), the
/// record stored unbooked.
fn void(
    tx: &mut Tx<'_>,
    card: &mut Card,
    load: &Load,
    r: &Record,
    now: NaiveDateTime,
) -> Result<()> {
    rows::load_settle(tx.conn, load, LoadState::Voided { at: now })?;
    match load.purpose {
        LoadPurpose::TopUpCash | LoadPurpose::TopUpBank => {
            tx.post(Transfer {
                id: load_transfer_id(load.device, load.serial, "void"),
                from: TOPUP_PENDING_ACCOUNT.to_owned(),
                to: load.funding.clone(),
                amount: load.amount,
                kind: "topup-void",
                record: None,
                time: now,
            })?;
        }
        LoadPurpose::Pickup => {
            let claimed = rows::waiting_claimed_by(tx.conn, load.device, load.serial)?;
            check_claimed(load, &claimed)?;
            for w in &claimed {
                rows::waiting_set_state(tx.conn, w, w.state, WaitingState::Waiting)?;
            }
            card.waiting = rows::card_add(tx.conn, card.no, CardColumn::Waiting, load.amount)?;
        }
    }
    insert_record(tx, r, Booking::Unbooked, None, now)?;
    one_less_pending(tx, card)
}

/// Which of the card's counters a fact about the card carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    /// An MF1 card's lifetime counter (its records, its loads).
    Lifetime(u32),
    /// A CPU card's purse's online sequence (its loads only).
    Online(u16),
    /// Neither (a CPU card's 0x09).
    Unknown,
}

impl Counter {
    /// The counter of this load's own kind, when the fact carries it.
    fn of_kind(self, load: &Load) -> Option<u32> {
        match (self, load.card_type) {
            (Counter::Lifetime(c), CardType::Mf1) => Some(c),
            (Counter::Online(c), CardType::Cpu) => Some(u32::from(c)),
            _ => None,
        }
    }
}

/// Settles the card's pending loads by a record of the card (docs/loads.md): its
/// counter-before is the load's + 1 and its balance-before the load's balance after → the
/// load landed (post); its counter-before is the load's → it did not (void); the load's + 1
/// with another balance → the card contradicts the host: refused 67 (an upload is held in the
/// exception queue). An older record (lower counter) or a later one (a record in between is
/// missing) settles nothing, nor a load whose own record is held in the exception queue. A
/// CPU card's records count another counter than its loads (the
/// purse's online sequence): they settle none; its next load does. A card without pending
/// loads costs no query (`loads_pending`).
pub fn settle_by_record(
    tx: &mut Tx<'_>,
    card: &mut Card,
    r: &Record,
    now: NaiveDateTime,
) -> Result<()> {
    let seen = match r.card_type {
        CardType::Mf1 => Counter::Lifetime(r.card_counter),
        CardType::Cpu => Counter::Unknown,
    };
    settle_by_card(
        tx,
        card,
        Some((r.device, r.serial)),
        seen,
        r.balance_before,
        now,
    )
}

fn settle_by_card(
    tx: &mut Tx<'_>,
    card: &mut Card,
    itself: Option<(ykt_proto::PhysicalId, u32)>,
    seen: Counter,
    balance_before: Fen,
    now: NaiveDateTime,
) -> Result<()> {
    if card.loads_pending == 0 || seen == Counter::Unknown {
        return Ok(());
    }
    for load in rows::loads_pending_of_card(tx.conn, card.no)? {
        let Some(counter) = seen.of_kind(&load) else {
            continue;
        };
        if Some((load.device, load.serial)) == itself {
            continue;
        }
        let settles =
            counter == load.counter_before || Some(counter) == load.counter_before.checked_add(1);
        if settles && crate::exception_rows::get(tx.conn, load.device, load.serial)?.is_some() {
            // Its record is held (R-B3: a refused TAC, …): the card office decides, not the card.
            continue;
        }
        if counter == load.counter_before {
            let r = load_record(&load, RecordStatus::CardPulled);
            void(tx, card, &load, &r, now)?;
        } else if Some(counter) == load.counter_before.checked_add(1) {
            if Some(balance_before) != load.balance_after() {
                tracing::warn!(device = %load.device, serial = load.serial, "card contradicts a pending load");
                return refuse(ReturnCode::CARD_BALANCE_ABNORMAL);
            }
            let r = load_record(&load, RecordStatus::Success);
            post(tx, card, &load, &r, now)?;
        }
    }
    Ok(())
}

// ---- the load's own record (0x04) -------------------------------------------------------------------

/// Books an uploaded load record: `Success` posts its pending load (a CPU card's load TAC
/// checked), `CardPulled`/`Failed`/`NotWritten` void it, `Initiated` (the terminal lost the
/// outcome) leaves it pending and stores nothing. No load for it: a record of a written card
/// gets 31, the caller holds it (R-B3) and answers information code 9; one of a card not
/// written is stored unbooked. Known already: acknowledged.
pub fn upload(
    tx: &mut Tx<'_>,
    device: &Device,
    origin: &Origin,
    r: &Record,
    keys: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<super::records::Outcome> {
    checks::device_state(device, origin, Functions::NONE)?;
    let mut card = checks::card_exists(tx, r)?;
    let ack = |card: &Card, duplicate| super::records::Outcome {
        duplicate,
        notices: Default::default(),
        collect: 0,
        balance: card.balance,
    };
    if let Some(existing) = repo::record_get(tx.conn, r.device, r.serial, true)? {
        return if same_load_record(&existing.record, r) {
            Ok(ack(&card, true))
        } else {
            refuse(ReturnCode::POS_SERIAL_DUPLICATE)
        };
    }
    let Some(load) = rows::load_lock(tx.conn, r.device, r.serial)? else {
        if r.status.card_debited() {
            return refuse(ReturnCode::RECORD_NOT_FOUND);
        }
        // Never authorised, so never written (the terminal gave up waiting for 0x08): kept
        // for the record, nothing moved.
        insert_record(tx, r, Booking::Unbooked, None, now)?;
        return Ok(ack(&card, false));
    };
    if load.state != LoadState::Pending {
        return Err(HostError::Invariant(format!(
            "load {}:{} settled without its record",
            r.device, r.serial
        )));
    }
    if !same_load_record(&load_record(&load, r.status), r) {
        return refuse(ReturnCode::TRANSACTION_TYPE_ERROR);
    }
    match r.status {
        RecordStatus::Initiated => {}
        s if s.card_debited() => {
            verify_tac(&load, r, keys)?;
            post(tx, &mut card, &load, r, now)?;
        }
        _ => void(tx, &mut card, &load, r, now)?,
    }
    Ok(ack(&card, false))
}

/// A load record as the terminal uploads it against the one the host holds: all but status,
/// TAC, merchant and item code (the host's own record of a load settled by the card carries
/// none of these).
fn same_load_record(a: &Record, b: &Record) -> bool {
    let mut b = b.clone();
    b.status = a.status;
    b.tac = a.tac;
    b.merchant_no = a.merchant_no;
    b.item_code = a.item_code;
    *a == b
}

fn verify_tac(load: &Load, r: &Record, keys: Option<&dyn TacVerifier>) -> Result<()> {
    if r.card_type != CardType::Cpu {
        return Ok(());
    }
    let Some(facts) = load.cpu else {
        return Err(HostError::Invariant(format!(
            "CPU load {}:{} without its INITIALIZE facts",
            load.device, load.serial
        )));
    };
    let cpu = CpuLoad {
        card_no: load.card,
        balance_before: load.balance_before,
        amount: load.amount,
        online_seq: facts.online_seq,
        random: [0; 4],
        mac1: [0; 4],
        terminal_id: facts.terminal_id,
        time: load.time,
    };
    if keys.is_some_and(|k| k.verify_load_tac(&cpu, r.tac)) {
        Ok(())
    } else {
        tracing::warn!(device = %r.device, serial = r.serial, "load TAC verification failed");
        refuse(ReturnCode::OTHER_ERROR)
    }
}

// ---- reversals (37) ---------------------------------------------------------------------------------

/// 37 (有补助不能冲正): a purchase is not reversed once a pick-up posted onto the card after it:
/// the card's balance then holds the subsidy, which the reversal's write would not account for.
pub fn check_reversible(tx: &mut Tx<'_>, card: &Card, purchase: &Record) -> Result<()> {
    let later = tx.conn.query_opt(
        "SELECT 1 FROM loads WHERE card_no = $1 AND purpose = 'pickup' AND state = 'posted' \
         AND counter_before > $2 LIMIT 1",
        &[card.no.get().into(), purchase.card_counter.into()],
    )?;
    if later.is_some() {
        return refuse(ReturnCode::SUBSIDY_CANNOT_REVERSE);
    }
    Ok(())
}

// ---- audit -------------------------------------------------------------------------------------------

/// The loads' part of the audit (`ledger::audit`): each holding account equals the sum of the
/// rows it holds money for, and each card's counted columns equal its loads. Findings are
/// named `account:<id>` or `card:<no>:<column>`.
pub fn audit(conn: &mut dyn crate::sql::Conn, limit: u32) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let held = [
        (
            TOPUP_PENDING_ACCOUNT,
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM loads \
             WHERE state = 'pending' AND purpose IN ('cash', 'bank')",
        ),
        (
            crate::ledger::WAITING_ACCOUNT,
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM waiting_loads \
             WHERE source = 'deposit' AND state IN ('waiting', 'claimed')",
        ),
        (
            crate::ledger::SUBSIDY_ACCOUNT,
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM waiting_loads \
             WHERE source = 'subsidy' AND state IN ('waiting', 'claimed')",
        ),
    ];
    for (account, rows_sum) in held {
        let rows_sum = conn.query_one(rows_sum, &[])?.int(0)?;
        if repo::account_balance(conn, account)? != Some(rows_sum) {
            found.push(format!("account:{account}"));
        }
    }
    for r in conn.query(
        "SELECT c.no, 'waiting' FROM cards c LEFT JOIN ( \
             SELECT card_no, SUM(amount) AS s FROM waiting_loads WHERE state = 'waiting' \
             GROUP BY card_no) w ON w.card_no = c.no WHERE c.waiting <> COALESCE(w.s, 0) \
         UNION ALL SELECT c.no, 'loads_pending' FROM cards c LEFT JOIN ( \
             SELECT card_no, COUNT(*) AS n FROM loads WHERE state = 'pending' \
             GROUP BY card_no) p ON p.card_no = c.no WHERE c.loads_pending <> COALESCE(p.n, 0) \
         LIMIT $1",
        &[limit.into()],
    )? {
        found.push(format!("card:{}:{}", r.int(0)?, r.text(1)?));
    }
    Ok(found)
}

// ---- top-up devices ------------------------------------------------------------------------------------

/// Whether a device takes top-ups (the function bit `TOP_UP`) and whose cash it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopUpSetting {
    /// No top-ups (a plain POS; pick-ups need no setting).
    Off,
    /// Top-ups from the bank; cash too when an operator is assigned: the operator logged in
    /// at the device, whose shift the cash of its posted top-ups is tallied in.
    On { operator: Option<i64> },
}

/// The card office sets a device's top-ups (admin API, journalled by the caller).
pub fn set_top_up(
    tx: &mut Tx<'_>,
    id: ykt_proto::PhysicalId,
    setting: &TopUpSetting,
    now: NaiveDateTime,
) -> Result<(Device, Option<i64>)> {
    let on = matches!(setting, TopUpSetting::On { .. });
    let d = super::admin::update_device(tx, id, |d| {
        d.functions = if on {
            Functions(d.functions.0 | Functions::TOP_UP.0)
        } else {
            Functions(d.functions.0 & !Functions::TOP_UP.0)
        };
        Ok(())
    })?;
    let operator = match setting {
        TopUpSetting::On { operator } => *operator,
        TopUpSetting::Off => None,
    };
    if let Some(op) = operator {
        super::operators::by_id(tx, op)?;
    }
    rows::device_operator_set(tx.conn, id, operator, now)?;
    Ok((d, operator))
}

/// A device's top-up setting as stored.
pub fn top_up_setting(tx: &mut Tx<'_>, device: &Device) -> Result<TopUpSetting> {
    if !device.functions.contains(Functions::TOP_UP) {
        return Ok(TopUpSetting::Off);
    }
    Ok(TopUpSetting::On {
        operator: rows::device_operator(tx.conn, device.id)?,
    })
}

// ---- the daily report's loads ---------------------------------------------------------------------

/// Loads posted on one day by one terminal, purpose and operator (the daily report).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LoadLine {
    pub device: String,
    /// `cash`, `bank` or `pickup`.
    pub purpose: String,
    /// The operator whose cash a cash top-up was; `None` for the others.
    pub operator: Option<String>,
    pub count: i64,
    pub amount: Fen,
}

/// The loads posted on `date` (their terminal time), by terminal, purpose and operator.
pub fn loads_of_day(tx: &mut Tx<'_>, date: chrono::NaiveDate) -> Result<Vec<LoadLine>> {
    let from = date.and_time(NaiveTime::MIN);
    let to = from + chrono::Duration::days(1);
    let rows = tx.conn.query(
        "SELECT l.device, l.purpose, o.login, COUNT(*), CAST(SUM(l.amount) AS BIGINT) \
         FROM loads l LEFT JOIN operators o ON o.id = l.operator_id \
         WHERE l.state = 'posted' AND l.time >= $1 AND l.time < $2 \
         GROUP BY l.device, l.purpose, o.login ORDER BY l.device, l.purpose, o.login LIMIT $3",
        &[
            repo::time_key(from).into(),
            repo::time_key(to).into(),
            i64::try_from(super::report::MAX_GROUPS)
                .unwrap_or(i64::MAX)
                .into(),
        ],
    )?;
    rows.iter()
        .map(|r| {
            let device =
                u32::try_from(r.int(0)?).map_err(|_| HostError::Corrupt("load device".into()))?;
            Ok(LoadLine {
                device: ykt_proto::PhysicalId(device.to_be_bytes()).to_string(),
                purpose: r.text(1)?.to_owned(),
                operator: r.opt_text(2)?.map(str::to_owned),
                count: r.int(3)?,
                amount: r.int(4)?,
            })
        })
        .collect()
}
