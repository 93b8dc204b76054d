//! Online debits (R-P5.2) and record uploads (R-P5.5, R-P5.6, R-P5.9): every record is
//! stored once per (device, serial) (R-H2) and booked at most once in the ledger (R-H6).

use chrono::NaiveDateTime;
use ykt_proto::{
    CardType, Fen, InfoCode, MerchantNo, Record, RecordKind, RecordStatus, ReturnCode,
};

use super::checks::{self, Origin};
use super::counter;
use super::exceptions;
use super::info::{self, CardFacts, CardView, Notices};
use super::late_credits;
use super::merchants;
use super::replacements;
use super::topup;
use crate::error::{HostError, Result, refuse};
use crate::ledger::{
    FEE_ACCOUNT, FUNDING_ACCOUNT, SUSPENSE_ACCOUNT, Transfer, Tx, record_transfer_id,
};
use crate::model::{Card, Device, Functions, Trade};
use crate::repo::{self, StoredRecord};

/// Verifies the TAC of CPU card records (the host holds the TAC master key). The card
/// crate provides the algorithm; the server plugs it in here.
pub trait TacVerifier: Send + Sync {
    /// Whether `record.tac` is the card's authentication code for this record.
    fn verify(&self, record: &Record) -> bool;

    /// A CPU card's load (圈存, docs/loads.md): MAC2 for CREDIT FOR LOAD when the card's MAC1
    /// is genuine, `None` when it is not (or this verifier holds no load keys).
    fn load_mac2(&self, _load: &CpuLoad) -> Option<[u8; 4]> {
        None
    }

    /// Whether `tac` is the card's TAC over the load (its balance after, the online sequence,
    /// amount, terminal ID and time).
    fn verify_load_tac(&self, _load: &CpuLoad, _tac: u32) -> bool {
        false
    }
}

/// What the host's side of a CPU card's load covers: the card's INITIALIZE FOR LOAD answer
/// and the load. `random` and `mac1` are zero when only the TAC is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLoad {
    pub card_no: ykt_proto::CardNo,
    pub balance_before: Fen,
    pub amount: Fen,
    pub online_seq: u16,
    pub random: [u8; 4],
    pub mac1: [u8; 4],
    pub terminal_id: [u8; 6],
    /// The transaction time, which MAC2 and the TAC cover (date and time).
    pub time: NaiveDateTime,
}

impl<F: Fn(&Record) -> bool + Send + Sync> TacVerifier for F {
    fn verify(&self, record: &Record) -> bool {
        self(record)
    }
}

/// The answer to a successful online debit or upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// This (device, serial) was known already: acknowledged again, nothing booked.
    pub duplicate: bool,
    /// Information codes by priority (R-C6.2); `info()` is the one for the wire.
    pub notices: Notices,
    /// Ask the terminal to collect this many of the card's latest records (R-F4.17).
    pub collect: u8,
    /// The system's mirror of the card's balance afterwards.
    pub balance: Fen,
}

impl Outcome {
    pub fn info(&self) -> InfoCode {
        self.notices.primary()
    }

    fn plain(balance: Fen, duplicate: bool) -> Outcome {
        Outcome {
            duplicate,
            notices: Notices::default(),
            collect: 0,
            balance,
        }
    }
}

/// What became of an uploaded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// Booked, stored unbooked, or acknowledged again: the terminal gets 0.
    Stored(Outcome),
    /// Refused for good, but its money left the card: held in the exception queue
    /// (`domain::exceptions`, R-B3). The terminal gets this final code and stops resending.
    Held(ReturnCode),
}

/// An online debit request (R-P5.2): the record the terminal journalled as "initiated",
/// and what the card itself says about its data (`None`: the wire carried none, the
/// system's own view of the card stands in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebitRequest {
    pub origin: Origin,
    pub record: Record,
    pub card_view: Option<CardView>,
}

fn same_device(origin: &Origin, record: &Record) -> Result<()> {
    if origin.device == record.device {
        Ok(())
    } else {
        Err(HostError::Invalid(format!(
            "record of device {} sent by device {}",
            record.device, origin.device
        )))
    }
}

/// Authorises an online debit: every check of the request's state, then the record, the
/// counter and the transfers in the caller's transaction, so the authorisation is durable
/// when the batch commits, before the answer leaves (R-P5.2).
pub fn authorize(tx: &mut Tx<'_>, req: &DebitRequest, now: NaiveDateTime) -> Result<Outcome> {
    let device = checks::device_row(tx, req.origin.fep, req.origin.device)?;
    authorize_on(tx, req, &device, now)
}

/// [`authorize`] on the request's device row as read by [`checks::device_row`] in this
/// transaction: the server reads it once per debit (it also gives the terminal number and
/// the merchant).
pub fn authorize_on(
    tx: &mut Tx<'_>,
    req: &DebitRequest,
    device: &Device,
    now: NaiveDateTime,
) -> Result<Outcome> {
    let r = &req.record;
    same_device(&req.origin, r)?;
    if r.kind != RecordKind::Purchase || r.status != RecordStatus::Initiated || !r.online {
        return refuse(ReturnCode::TRANSACTION_TYPE_ERROR);
    }
    checks::not_in_maintenance(tx)?;
    checks::device_state(device, &req.origin, Functions::ONLINE_DEBIT)?;
    checks::working_hours(device, r.time)?;
    let merchant_no = checks::merchant_of_device(device, r.merchant_no)?;
    let merchant = checks::merchant(tx, merchant_no)?;
    checks::merchant_takes(&merchant, Trade::Sale)?;
    checks::amount(r)?;
    let mut card = checks::card_exists(tx, r)?;
    // The card row is locked: a concurrent request for this (device, serial) waits here.
    if let Some(existing) = repo::record_get(tx.conn, r.device, r.serial, true)? {
        return if existing.record == *r {
            Ok(Outcome::plain(card.balance, true))
        } else {
            refuse(ReturnCode::POS_SERIAL_DUPLICATE)
        };
    }
    exceptions::refuse_if_held(tx, r.device, r.serial)?;
    checks::card_usable(&card, device, r.time)?;
    checks::card_reconciled(tx, &card)?;
    checks::fee(r, device, &card)?;
    checks::online_limits(r, device, &card)?;
    checks::balances(r, false)?;
    topup::settle_by_record(tx, &mut card, r, now)?;
    counter::check(tx, &card, r)?;

    let view = req.card_view.unwrap_or_else(|| CardView::of(&card));
    let mirror_before = card.balance;
    // R-F4.14: the subject of the item in the maker's price list, now.
    book_debit(tx, &mut card, r, device.subject_of(r.item_code), now)?;
    notices(tx, &card, r, mirror_before, Some(view), Notices::default())
}

/// Stores a debiting record with its accounting subject (R-F4.14), consumes its counter and
/// books card → merchant and card → fee.
fn book_debit(
    tx: &mut Tx<'_>,
    card: &mut Card,
    r: &Record,
    subject: Option<u16>,
    now: NaiveDateTime,
) -> Result<()> {
    insert_record(tx, r, Booking::Booked, subject, now)?;
    counter::consume(tx, card, r)?;
    post_debit(tx, repo::card_account(card.no), r)?;
    let total = checks::total(r)?;
    card.balance = card
        .balance
        .checked_sub(total)
        .ok_or_else(|| mirror_overflow(card))?;
    repo::card_update(tx.conn, card)
}

/// A debit's two transfers: `from` → its merchant (or suspense) and `from` → fee.
/// Returns the account credited with the amount.
fn post_debit(tx: &mut Tx<'_>, from: String, r: &Record) -> Result<String> {
    let key = Some((r.device, r.serial));
    let to = credit_account(r.merchant_no);
    tx.post(Transfer {
        id: record_transfer_id(r.device, r.serial, "amount"),
        from: from.clone(),
        to: to.clone(),
        amount: r.amount,
        kind: "debit",
        record: key,
        time: r.time,
    })?;
    tx.post(Transfer {
        id: record_transfer_id(r.device, r.serial, "fee"),
        from,
        to: FEE_ACCOUNT.to_owned(),
        amount: r.fee,
        kind: "fee",
        record: key,
        time: r.time,
    })?;
    Ok(to)
}

/// Where the card office books a record held in the exception queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeldBooking {
    /// Card → the record's merchant, which must exist.
    Merchant,
    /// Card → suspense (stored with merchant 0, like a collected record without one); a card
    /// the host does not know has no account: funding → suspense, and no record row.
    Suspense,
}

/// Books a held record (R-B3) with the upload's own booking (`book_debit`: record, counter,
/// transfers, subject). The check that refused it is waived by the card office's decision,
/// except a counter used by another record: booking it would count one transaction twice.
/// Returns the account credited.
pub(crate) fn book_held(
    tx: &mut Tx<'_>,
    r: &Record,
    to: HeldBooking,
    now: NaiveDateTime,
) -> Result<String> {
    if repo::record_get(tx.conn, r.device, r.serial, true)?.is_some() {
        return Err(HostError::Invariant(format!(
            "held record {}:{} is stored as a record too",
            r.device, r.serial
        )));
    }
    if r.kind.is_load() {
        return Err(HostError::Invalid(
            "a load record without its authorisation moves no money by itself: reject it; \
             if the card shows the money, the card office deposits it"
                .into(),
        ));
    }
    if r.kind == RecordKind::Reversal {
        return Err(HostError::Invalid(
            "a reversal held for its merchant's balance (45) is not a debit: reject it and \
             correct the card's account by a recorded deposit"
                .into(),
        ));
    }
    let mut stored = r.clone();
    match to {
        HeldBooking::Merchant => {
            if r.merchant_no == 0 || repo::merchant_get(tx.conn, r.merchant_no)?.is_none() {
                return Err(HostError::Invalid(format!(
                    "merchant {} does not exist: create it first, or book to suspense",
                    r.merchant_no
                )));
            }
        }
        HeldBooking::Suspense => stored.merchant_no = 0,
    }
    let subject = maker_subject(tx, r)?;
    // A closed, paid-out card's account is gone (R-B7): its money came from funding.
    let card = repo::card_get(tx.conn, r.card_no, true)?;
    if let Some(c) = &card
        && c.status == crate::model::CardStatus::Cancelled
        && super::closures::paid_out(tx, c.no)?
    {
        return post_debit(tx, FUNDING_ACCOUNT.to_owned(), &stored);
    }
    let Some(mut card) = card else {
        return match to {
            HeldBooking::Suspense => post_debit(tx, FUNDING_ACCOUNT.to_owned(), &stored),
            HeldBooking::Merchant => Err(HostError::Invalid(format!(
                "card {} does not exist: book to suspense or reject",
                r.card_no.get()
            ))),
        };
    };
    if let Some((device, serial)) = repo::counter_owner(tx.conn, card.no, r.card_counter)? {
        return Err(HostError::Invalid(format!(
            "counter {} of card {} is used by record {device}/{serial}: reject this one",
            r.card_counter,
            card.no.get()
        )));
    }
    book_debit(tx, &mut card, &stored, subject, now)?;
    Ok(credit_account(stored.merchant_no))
}

/// The checks bound every amount, so a mirror balance leaving i64 is a broken invariant:
/// an error the terminal retries, never a wrap.
fn mirror_overflow(card: &Card) -> HostError {
    HostError::Invariant(format!(
        "card {} mirror balance would overflow",
        card.no.get()
    ))
}

/// Where a debit's amount goes: its merchant, or the suspense account for a collected record
/// whose terminal has no merchant (stored with merchant 0).
fn credit_account(merchant_no: MerchantNo) -> String {
    if merchant_no == 0 {
        SUSPENSE_ACCOUNT.to_owned()
    } else {
        repo::merchant_account(merchant_no)
    }
}

/// Gives a booked debit back to the card: merchant → card and fee → card, tagged with the
/// original's (device, serial) so the audit sees its net as zero.
fn book_reverse(
    tx: &mut Tx<'_>,
    card: &mut Card,
    orig: &Record,
    by: &Record,
    part: &str,
) -> Result<()> {
    let to = repo::card_account(card.no);
    let key = Some((orig.device, orig.serial));
    tx.post(Transfer {
        id: record_transfer_id(orig.device, orig.serial, &format!("{part}-amount")),
        from: credit_account(orig.merchant_no),
        to: to.clone(),
        amount: orig.amount,
        kind: part_kind(part),
        record: key,
        time: by.time,
    })?;
    tx.post(Transfer {
        id: record_transfer_id(orig.device, orig.serial, &format!("{part}-fee")),
        from: FEE_ACCOUNT.to_owned(),
        to,
        amount: orig.fee,
        kind: part_kind(part),
        record: key,
        time: by.time,
    })?;
    let total = checks::total(orig)?;
    card.balance = card
        .balance
        .checked_add(total)
        .ok_or_else(|| mirror_overflow(card))?;
    repo::record_set_reversed(tx.conn, orig.device, orig.serial, by.serial)?;
    Ok(())
}

fn part_kind(part: &str) -> &'static str {
    if part == "cancel" {
        "cancellation"
    } else {
        "reversal"
    }
}

/// Stores a record that moves no money (failed, pulled, black card, …) with its accounting
/// subject (R-F4.14).
fn store_unbooked(
    tx: &mut Tx<'_>,
    r: &Record,
    subject: Option<u16>,
    now: NaiveDateTime,
) -> Result<()> {
    insert_record(tx, r, Booking::Unbooked, subject, now)
}

/// Whether money moved in the ledger for a stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Booking {
    Booked,
    Unbooked,
}

/// Stores a record with its accounting subject. Inserted by another process since the caller
/// looked: a retryable error, and the retry sees it.
pub(crate) fn insert_record(
    tx: &mut Tx<'_>,
    r: &Record,
    booking: Booking,
    subject: Option<u16>,
    now: NaiveDateTime,
) -> Result<()> {
    let stored = StoredRecord {
        record: r.clone(),
        booked: booking == Booking::Booked,
        reversed_by: None,
        subject,
    };
    if repo::record_insert(tx.conn, &stored, now)? {
        Ok(())
    } else {
        Err(HostError::Db {
            message: format!("record {}:{} inserted concurrently", r.device, r.serial),
            retryable: true,
        })
    }
}

/// The notices after a booked transaction; `extra` carries flow-specific ones (7, 8).
fn notices(
    tx: &mut Tx<'_>,
    card: &Card,
    r: &Record,
    mirror_before: Fen,
    view: Option<CardView>,
    mut extra: Notices,
) -> Result<Outcome> {
    let (missing, collect) = counter::gaps(tx, card)?;
    let policy = tx.policy;
    info::card_notices(
        &CardFacts {
            card,
            policy: &policy,
            today: r.time.date(),
            card_balance_before: r.balance_before,
            mirror_before,
            balance_after: r.balance_after,
            view,
            // Read with the card row: no query of its own (docs/loads.md).
            pending_subsidies: card.waiting > 0,
            missing_records: missing,
        },
        &mut extra,
    );
    Ok(Outcome {
        duplicate: false,
        notices: extra,
        collect,
        balance: card.balance,
    })
}

/// Books an uploaded record exactly once (R-P5.6, R-P5.9): a repeat is acknowledged again
/// (R-H2), an online debit's upload reconciles its card-write outcome, a cancellation
/// (R-P5.5) or reversal (codes 31, 32) undoes its original.
///
/// R-B3: a record whose money left the card is never lost. Refused for good (any code but
/// 1–9 and 30), it is held in the exception queue in this transaction and the terminal gets
/// the code ([`Uploaded::Held`]); uploaded again, it gets the same code again.
pub fn upload(
    tx: &mut Tx<'_>,
    origin: &Origin,
    r: &Record,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Uploaded> {
    let device = checks::device_row(tx, origin.fep, origin.device)?;
    upload_on(tx, origin, &device, r, tac, now)
}

/// [`upload`] on the uploader's device row as read by [`checks::device_row`] in this
/// transaction: an upload of many records reads it once.
pub fn upload_on(
    tx: &mut Tx<'_>,
    origin: &Origin,
    device: &Device,
    r: &Record,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Uploaded> {
    // A (device, serial) in the exception queue belongs to the record held there, whether or
    // not this upload moved money: a repeat is answered as the first time, other content 30.
    if let Some(code) = exceptions::held_before(tx, r)? {
        return Ok(Uploaded::Held(code));
    }
    if !exceptions::moved_money(r) {
        return match store_upload(tx, origin, device, r, tac, now) {
            // R-B8: a reversal credited the card already; refused because its merchant's
            // account does not cover it (45), it is held, never dropped.
            Err(HostError::Refused(code))
                if code == ReturnCode::MERCHANT_INSUFFICIENT_BALANCE
                    && r.kind == RecordKind::Reversal =>
            {
                exceptions::hold(tx, origin.device, r, code, now).map(Uploaded::Held)
            }
            other => other.map(Uploaded::Stored),
        };
    }
    match store_upload(tx, origin, device, r, tac, now) {
        // Refusals write nothing; a record stored already (30, an online debit's TAC) is
        // not lost.
        Err(HostError::Refused(code))
            if !code.is_handled_as_timeout()
                && code != ReturnCode::POS_SERIAL_DUPLICATE
                && repo::record_get(tx.conn, r.device, r.serial, false)?.is_none() =>
        {
            exceptions::hold(tx, origin.device, r, code, now).map(Uploaded::Held)
        }
        other => other.map(Uploaded::Stored),
    }
}

fn store_upload(
    tx: &mut Tx<'_>,
    origin: &Origin,
    device: &Device,
    r: &Record,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Outcome> {
    if r.kind == RecordKind::Collected {
        return upload_collected(tx, origin, device, r, tac, now);
    }
    same_device(origin, r)?;
    if r.kind.is_load() {
        return topup::upload(tx, device, origin, r, tac, now);
    }
    let function = match (r.kind, r.online) {
        (RecordKind::Reversal, _) => Functions::REVERSAL,
        (_, true) => Functions::ONLINE_DEBIT,
        (_, false) => Functions::OFFLINE_UPLOAD,
    };
    checks::device_state(device, origin, function)?;
    let mut card = checks::card_exists(tx, r)?;
    if let Some(existing) = repo::record_get(tx.conn, r.device, r.serial, true)? {
        // Known already: its subject stays as resolved when it was stored (R-F4.14).
        return reconcile(tx, &mut card, existing, r, tac, now);
    }
    // R-F4.14: the uploader is the maker (same_device); its price list as it is now.
    let subject = device.subject_of(r.item_code);
    match r.kind {
        RecordKind::Purchase => upload_debit(tx, &mut card, r, subject, tac, now),
        RecordKind::Collected => upload_collected(tx, origin, device, r, tac, now),
        // R-F4.3, R-F4.15: stored for the record, no money moved.
        RecordKind::BlackCard => {
            store_unbooked(tx, r, subject, now)?;
            Ok(Outcome::plain(card.balance, false))
        }
        RecordKind::Cancellation => cancel(tx, &mut card, r, subject, now),
        RecordKind::Reversal => reverse(tx, &mut card, r, subject, tac, now),
        // Handled above (`topup::upload`).
        RecordKind::TopUp | RecordKind::Subsidy => refuse(ReturnCode::TRANSACTION_TYPE_ERROR),
    }
}

fn verify_tac(r: &Record, tac: Option<&dyn TacVerifier>) -> Result<()> {
    if r.card_type != CardType::Cpu {
        return Ok(());
    }
    match tac {
        Some(v) if v.verify(r) => Ok(()),
        Some(_) => {
            tracing::warn!(device = %r.device, serial = r.serial, "TAC verification failed");
            refuse(ReturnCode::OTHER_ERROR)
        }
        None => {
            tracing::error!("no TAC verifier configured: CPU card records cannot be booked");
            refuse(ReturnCode::OTHER_ERROR)
        }
    }
}

fn upload_debit(
    tx: &mut Tx<'_>,
    card: &mut Card,
    r: &Record,
    subject: Option<u16>,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Outcome> {
    if !r.status.card_debited() {
        // R-F4.3: abnormal records are kept; the card was not debited.
        store_unbooked(tx, r, subject, now)?;
        return Ok(Outcome::plain(card.balance, false));
    }
    checks::amount(r)?;
    checks::balances(r, false)?;
    // No lifecycle, class or hours checks here: the terminal verified the card offline and
    // the money already left it; refusing would only lose the record. It is booked to the
    // record's merchant, which must exist.
    if repo::merchant_get(tx.conn, r.merchant_no)?.is_none() {
        return refuse(ReturnCode::MERCHANT_NOT_FOUND);
    }
    verify_tac(r, tac)?;
    checks::card_closed(tx, card)?;
    topup::settle_by_record(tx, card, r, now)?;
    counter::check(tx, card, r)?;
    // R-B6: a replaced card's late record brings back what it needs from the moved money.
    replacements::cover_late_record(tx, card, checks::total(r)?, now)?;
    checks::account_covers(card, r)?;
    let mirror_before = card.balance;
    book_debit(tx, card, r, subject, now)?;
    notices(tx, card, r, mirror_before, None, Notices::default())
}

/// Equal except what the terminal learns after the authorisation: status and TAC.
fn same_except_outcome(a: &Record, b: &Record) -> bool {
    let mut b = b.clone();
    b.status = a.status;
    b.tac = a.tac;
    *a == b
}

fn reconcile(
    tx: &mut Tx<'_>,
    card: &mut Card,
    existing: StoredRecord,
    r: &Record,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Outcome> {
    let e = &existing.record;
    let mut dup = Outcome::plain(card.balance, true);
    if existing.reversed_by.is_some() {
        dup.notices.add(InfoCode::ALREADY_REVERSED);
    }
    if e == r {
        return Ok(dup);
    }
    if e.kind == RecordKind::Collected || r.kind == RecordKind::Collected {
        // The card's ring and the terminal's journal describe one transaction (R-H2).
        return if same_transaction(e, r) {
            Ok(dup)
        } else {
            refuse(ReturnCode::POS_SERIAL_DUPLICATE)
        };
    }
    let authorised = e.online && e.status == RecordStatus::Initiated && existing.booked;
    if !authorised || !same_except_outcome(e, r) {
        return refuse(ReturnCode::POS_SERIAL_DUPLICATE);
    }
    if existing.reversed_by.is_some() {
        return Ok(dup);
    }
    if r.status.card_debited() {
        verify_tac(r, tac)?;
        repo::record_set_status(tx.conn, r.device, r.serial, r.status, r.tac)?;
    } else if matches!(r.status, RecordStatus::CardPulled | RecordStatus::Failed) {
        // The card was never written: the authorisation is void, as after a cancellation.
        book_reverse(tx, card, e, r, "cancel")?;
        counter::release(tx, card, e)?;
        repo::card_update(tx.conn, card)?;
        repo::record_set_status(tx.conn, r.device, r.serial, r.status, r.tac)?;
        // R-B6, R-B7: a replaced or paid-out card's credit follows its money.
        late_credits::follow(tx, card, checks::total(e)?, r, now)?;
        merchants::flag_if_overdrawn(tx, e.merchant_no)?;
        dup.balance = card.balance;
    }
    Ok(dup)
}

/// R-P5.5: a cancellation (serial = original + 1) reverses the online debit whose card write
/// failed. An original the host never authorised is acknowledged with info code 8, so the
/// terminal stops resending.
fn cancel(
    tx: &mut Tx<'_>,
    card: &mut Card,
    r: &Record,
    subject: Option<u16>,
    now: NaiveDateTime,
) -> Result<Outcome> {
    let orig_serial = match r.original_serial {
        Some(s) => s,
        None => r
            .serial
            .checked_sub(1)
            .ok_or(HostError::Refused(ReturnCode::TRANSACTION_TYPE_ERROR))?,
    };
    let Some(orig) = repo::record_get(tx.conn, r.device, orig_serial, true)? else {
        store_unbooked(tx, r, subject, now)?;
        let mut out = Outcome::plain(card.balance, false);
        out.notices.add(InfoCode::PURCHASE_RECORD_NOT_FOUND);
        return Ok(out);
    };
    if orig.reversed_by.is_some() {
        return refuse(ReturnCode::ALREADY_REVERSED);
    }
    let o = &orig.record;
    if !(o.online && o.status == RecordStatus::Initiated && orig.booked)
        || o.card_no != r.card_no
        || o.amount != r.amount
        || o.fee != r.fee
        || o.card_counter != r.card_counter
    {
        return refuse(ReturnCode::TRANSACTION_TYPE_ERROR);
    }
    book_reverse(tx, card, o, r, "cancel")?;
    counter::release(tx, card, o)?;
    repo::card_update(tx.conn, card)?;
    store_unbooked(tx, r, subject, now)?;
    // R-B6, R-B7: a replaced or paid-out card's credit follows its money.
    late_credits::follow(tx, card, checks::total(o)?, r, now)?;
    // R-B8: a cancellation is the truth (the card was never debited): booked even when it
    // takes the merchant below zero, which then flags the merchant abnormal (44).
    merchants::flag_if_overdrawn(tx, o.merchant_no)?;
    Ok(Outcome::plain(card.balance, false))
}

/// A reversal (冲正, MF1 only) puts a booked debit back onto the card: 31 when the original
/// is unknown or moved no money, 32 when it was reversed already.
fn reverse(
    tx: &mut Tx<'_>,
    card: &mut Card,
    r: &Record,
    subject: Option<u16>,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Outcome> {
    let Some(orig_serial) = r.original_serial else {
        return refuse(ReturnCode::TRANSACTION_TYPE_ERROR);
    };
    if !r.status.card_debited() {
        // The card was not credited (pulled, failed): keep the record, move no money.
        store_unbooked(tx, r, subject, now)?;
        return Ok(Outcome::plain(card.balance, false));
    }
    let Some(orig) = repo::record_get(tx.conn, r.device, orig_serial, true)? else {
        return refuse(ReturnCode::RECORD_NOT_FOUND);
    };
    if orig.reversed_by.is_some() {
        return refuse(ReturnCode::ALREADY_REVERSED);
    }
    if !orig.booked {
        return refuse(ReturnCode::RECORD_NOT_FOUND);
    }
    let o = &orig.record;
    if o.card_no != r.card_no || o.kind == RecordKind::Reversal {
        return refuse(ReturnCode::TRANSACTION_TYPE_ERROR);
    }
    if o.amount != r.amount || o.fee != r.fee {
        return refuse(ReturnCode::AMOUNT_ERROR);
    }
    checks::balances(r, true)?;
    verify_tac(r, tac)?;
    topup::check_reversible(tx, card, o)?;
    // R-B8, code 45: the merchant gives the amount back; after a payout it may not have it.
    checks::merchant_covers(tx, &credit_account(o.merchant_no), o.amount)?;
    topup::settle_by_record(tx, card, r, now)?;
    counter::check(tx, card, r)?;
    let mirror_before = card.balance;
    book_reverse(tx, card, o, r, "reverse")?;
    counter::consume(tx, card, r)?;
    repo::card_update(tx.conn, card)?;
    store_unbooked(tx, r, subject, now)?;
    // R-B6, R-B7: a replaced or paid-out card's credit follows its money.
    late_credits::follow(tx, card, checks::total(o)?, r, now)?;
    // The card shows balance_before ahead of the credit; compare like for a debit.
    notices(tx, card, r, mirror_before, None, Notices::default())
}

/// Whether two records with the same (device, serial) are one transaction when one of them
/// was collected from the card (R-F4.17, R-H2): the card's ring stores the card, its
/// lifetime counter, the balances, amount, fee and time, so exactly those must agree. Kind,
/// status, online flag, merchant (the ring has none), wallet number, item code, original
/// serial, TAC and provenance may differ (docs/spec-notes.md).
pub fn same_transaction(a: &Record, b: &Record) -> bool {
    a.device == b.device
        && a.serial == b.serial
        && a.card_type == b.card_type
        && a.card_no == b.card_no
        && a.card_counter == b.card_counter
        && a.balance_before == b.balance_before
        && a.amount == b.amount
        && a.fee == b.fee
        && a.balance_after == b.balance_after
        && a.time == b.time
}

/// R-F4.17, R-H5: a record collected from the card, uploaded by any device of the system.
/// The uploader must be valid and allowed to upload; the record keeps its own identity (the
/// device and serial that made it, as the card's ring stores them). Known already → the same
/// transaction is acknowledged (nothing booked), different content → 30. Its counter used by
/// another record → stored unbooked. Otherwise it is booked to the merchant of the device
/// that made it (suspense when that device has none) and marked as collected by the uploader.
fn upload_collected(
    tx: &mut Tx<'_>,
    origin: &Origin,
    device: &Device,
    r: &Record,
    tac: Option<&dyn TacVerifier>,
    now: NaiveDateTime,
) -> Result<Outcome> {
    checks::device_state(device, origin, Functions::OFFLINE_UPLOAD)?;
    let mut card = checks::card_exists(tx, r)?;
    if let Some(existing) = repo::record_get(tx.conn, r.device, r.serial, true)? {
        if !existing.booked && existing.record.kind != RecordKind::Collected {
            // The maker holds it as not debited (pulled, failed, voided): the maker's own
            // recovery books a landed write under a new serial (docs/terminal.md); nothing
            // is booked twice here.
            tracing::warn!(device = %r.device, serial = r.serial, "collected record known unbooked");
        }
        return reconcile(tx, &mut card, existing, r, tac, now);
    }
    let mut stored = r.clone();
    stored.merchant_no = collected_merchant(tx, origin, r)?;
    let subject = collected_subject(tx, origin, device, r)?;
    if !r.status.card_debited() {
        store_unbooked(tx, &stored, subject, now)?;
        repo::record_set_collected_by(tx.conn, r.device, r.serial, origin.device)?;
        return Ok(Outcome::plain(card.balance, false));
    }
    checks::amount(r)?;
    checks::balances(r, false)?;
    verify_tac(r, tac)?;
    if repo::counter_owner(tx.conn, card.no, r.card_counter)?.is_some() {
        // The transaction is booked under another record (its terminal uploaded it, or
        // another collection did): keep this one, book nothing.
        store_unbooked(tx, &stored, subject, now)?;
        repo::record_set_collected_by(tx.conn, r.device, r.serial, origin.device)?;
        return Ok(Outcome::plain(card.balance, true));
    }
    // The same lifecycle checks as an upload (`upload_debit`): a paid-out card's record is
    // held with 57 (R-B7), a replaced card's is covered from its moved money (R-B6).
    checks::card_closed(tx, &card)?;
    topup::settle_by_record(tx, &mut card, r, now)?;
    counter::check(tx, &card, r)?;
    replacements::cover_late_record(tx, &mut card, checks::total(r)?, now)?;
    checks::account_covers(&card, r)?;
    let mirror_before = card.balance;
    book_debit(tx, &mut card, &stored, subject, now)?;
    repo::record_set_collected_by(tx.conn, r.device, r.serial, origin.device)?;
    notices(tx, &card, r, mirror_before, None, Notices::default())
}

/// The accounting subject of a collected record (R-F4.14): from the price list of the device
/// that made it (not the uploader's), as it is now; `None` when that device is unknown.
fn collected_subject(
    tx: &mut Tx<'_>,
    origin: &Origin,
    uploader: &Device,
    r: &Record,
) -> Result<Option<u16>> {
    if r.item_code == 0 {
        return Ok(None);
    }
    if r.device == origin.device {
        return Ok(uploader.subject_of(r.item_code));
    }
    maker_subject(tx, r)
}

/// The subject of the record's item in the price list of the device that made it, now.
fn maker_subject(tx: &mut Tx<'_>, r: &Record) -> Result<Option<u16>> {
    Ok(repo::device_get(tx.conn, r.device)?.and_then(|maker| maker.subject_of(r.item_code)))
}

/// The merchant a collected record is credited to; 0 = the suspense account. A terminal
/// uploading its own record vouches for its merchant (kept in its journal); for another
/// device's record the host never trusts the uploader and looks the maker up.
fn collected_merchant(tx: &mut Tx<'_>, origin: &Origin, r: &Record) -> Result<MerchantNo> {
    if r.device == origin.device && r.merchant_no != 0 {
        if repo::merchant_get(tx.conn, r.merchant_no)?.is_none() {
            return refuse(ReturnCode::MERCHANT_NOT_FOUND);
        }
        return Ok(r.merchant_no);
    }
    let Some(maker) = repo::device_get(tx.conn, r.device)? else {
        tracing::warn!(device = %r.device, serial = r.serial, "collected record of an unknown device: suspense");
        return Ok(0);
    };
    match maker.merchant_no {
        Some(m) if m != 0 && repo::merchant_get(tx.conn, m)?.is_some() => Ok(m),
        _ => Ok(0),
    }
}
