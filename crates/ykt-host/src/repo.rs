//! Typed data access, written once over `Conn` for both backends. No business rules here.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use ykt_proto::{
    CardNo, CardType, DisplayNo, MerchantNo, PhysicalId, Record, RecordKind, RecordStatus,
    TerminalSerial,
};

use crate::error::{HostError, Result};
use crate::model::*;
use crate::params_codec;
use crate::sql::{Conn, Row, Value};

// ---- conversions ---------------------------------------------------------------------

pub fn device_key(id: PhysicalId) -> i64 {
    i64::from(u32::from_be_bytes(id.0))
}

pub(crate) fn device_from(v: i64) -> Result<PhysicalId> {
    u32::try_from(v)
        .map(|n| PhysicalId(n.to_be_bytes()))
        .map_err(|_| HostError::Corrupt(format!("device id {v}")))
}

pub fn time_key(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp()
}

pub(crate) fn time_from(v: i64) -> Result<NaiveDateTime> {
    DateTime::from_timestamp(v, 0)
        .map(|t| t.naive_utc())
        .ok_or_else(|| HostError::Corrupt(format!("time {v}")))
}

fn date_key(d: NaiveDate) -> i64 {
    time_key(d.and_time(chrono::NaiveTime::MIN))
}

fn card_from(v: i64) -> Result<CardNo> {
    u32::try_from(v)
        .ok()
        .and_then(CardNo::new)
        .ok_or_else(|| HostError::Corrupt(format!("card number {v}")))
}

fn opt_time(v: Option<NaiveDateTime>) -> Value {
    v.map(time_key).into()
}

// ---- sequences and meta ---------------------------------------------------------------

/// Increments a named counter and returns its new value; the row lock this takes serialises
/// concurrent writers (blacklist versions, card numbers) across processes.
pub fn bump_meta(c: &mut dyn Conn, name: &str) -> Result<i64> {
    c.query_one(
        "UPDATE meta SET value = value + 1 WHERE name = $1 RETURNING value",
        &[name.into()],
    )?
    .int(0)
}

pub fn set_meta(c: &mut dyn Conn, name: &str, value: i64) -> Result<()> {
    let n = c.exec(
        "UPDATE meta SET value = $2 WHERE name = $1",
        &[name.into(), value.into()],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Corrupt(format!("no meta row {name:?}")))
    }
}

pub fn meta(c: &mut dyn Conn, name: &str) -> Result<i64> {
    c.query_one("SELECT value FROM meta WHERE name = $1", &[name.into()])?
        .int(0)
}

/// Every write to feps, merchants or devices (not status reports) calls this: this
/// connection's writer drops its cache at once (`cache.rs`). Other writers see the change
/// by `meta.config_version`, which triggers move in the same transaction (schema V4).
fn config_written(c: &mut dyn Conn) -> Result<()> {
    c.note_config_change();
    Ok(())
}

/// Whether a read takes the row's lock until the transaction ends: an administrative
/// change that checks a row's state before it writes reads it `ForUpdate`, so two hosts on
/// one PostgreSQL database cannot both pass the check (SQLite's single writer serialises).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lock {
    None,
    ForUpdate,
}

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::ForUpdate => " FOR UPDATE",
        }
    }
}

// ---- front-end processors ---------------------------------------------------------------

pub fn fep_get(c: &mut dyn Conn, id: u32) -> Result<Option<Fep>> {
    fep_select(c, id, Lock::None)
}

/// [`fep_get`] under the row's lock.
pub fn fep_lock(c: &mut dyn Conn, id: u32) -> Result<Option<Fep>> {
    fep_select(c, id, Lock::ForUpdate)
}

fn fep_select(c: &mut dyn Conn, id: u32, lock: Lock) -> Result<Option<Fep>> {
    c.query_opt(
        &format!(
            "SELECT id, name, status, signed_in_at FROM feps WHERE id = $1{}",
            lock.sql()
        ),
        &[id.into()],
    )?
    .map(|r| {
        Ok(Fep {
            id: r.int_as(0)?,
            name: r.text(1)?.to_owned(),
            status: FepStatus::parse(r.text(2)?)?,
            signed_in_at: r.opt_int(3)?.map(time_from).transpose()?,
        })
    })
    .transpose()
}

pub fn fep_insert(c: &mut dyn Conn, id: u32, name: &str) -> Result<bool> {
    let inserted = c.exec(
        "INSERT INTO feps (id, name, status) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[
            id.into(),
            name.into(),
            FepStatus::Registered.as_str().into(),
        ],
    )? == 1;
    if inserted {
        config_written(c)?;
    }
    Ok(inserted)
}

pub fn fep_update(c: &mut dyn Conn, f: &Fep) -> Result<()> {
    c.exec(
        "UPDATE feps SET status = $2, signed_in_at = $3 WHERE id = $1",
        &[
            f.id.into(),
            f.status.as_str().into(),
            opt_time(f.signed_in_at),
        ],
    )?;
    config_written(c)
}

// ---- merchants ---------------------------------------------------------------------------

pub fn merchant_account(no: MerchantNo) -> String {
    format!("merchant:{no}")
}

pub fn card_account(no: CardNo) -> String {
    format!("card:{}", no.get())
}

pub fn merchant_get(c: &mut dyn Conn, no: MerchantNo) -> Result<Option<Merchant>> {
    merchant_select(c, no, Lock::None)
}

/// [`merchant_get`] under the row's lock.
pub fn merchant_lock(c: &mut dyn Conn, no: MerchantNo) -> Result<Option<Merchant>> {
    merchant_select(c, no, Lock::ForUpdate)
}

fn merchant_select(c: &mut dyn Conn, no: MerchantNo, lock: Lock) -> Result<Option<Merchant>> {
    c.query_opt(
        &format!(
            "SELECT no, name, status, kind, commission_bp FROM merchants WHERE no = $1{}",
            lock.sql()
        ),
        &[no.into()],
    )?
    .map(|r| {
        Ok(Merchant {
            no: r.int_as(0)?,
            name: r.text(1)?.to_owned(),
            status: MerchantStatus::parse(r.text(2)?)?,
            kind: MerchantKind::parse(r.text(3)?)
                .map_err(|_| HostError::Corrupt(format!("merchant {no} type")))?,
            commission_bp: r.int_as(4)?,
        })
    })
    .transpose()
}

pub fn merchant_insert(c: &mut dyn Conn, m: &Merchant) -> Result<bool> {
    let inserted = c.exec(
        "INSERT INTO merchants (no, name, status, kind, commission_bp) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING",
        &[
            m.no.into(),
            m.name.as_str().into(),
            m.status.as_str().into(),
            m.kind.as_str().into(),
            i64::from(m.commission_bp).into(),
        ],
    )? == 1;
    if inserted {
        account_create(c, &merchant_account(m.no), "merchant")?;
        config_written(c)?;
    }
    Ok(inserted)
}

pub fn merchant_set_status(c: &mut dyn Conn, no: MerchantNo, s: MerchantStatus) -> Result<()> {
    c.exec(
        "UPDATE merchants SET status = $2 WHERE no = $1",
        &[no.into(), s.as_str().into()],
    )?;
    config_written(c)
}

/// A merchant's type and commission rate (R-B8).
pub fn merchant_set_terms(c: &mut dyn Conn, m: &Merchant) -> Result<()> {
    c.exec(
        "UPDATE merchants SET kind = $2, commission_bp = $3 WHERE no = $1",
        &[
            m.no.into(),
            m.kind.as_str().into(),
            i64::from(m.commission_bp).into(),
        ],
    )?;
    // V4's triggers watch named columns; these came later (V11): move the version here.
    c.exec(
        "UPDATE meta SET value = value + 1 WHERE name = 'config_version'",
        &[],
    )?;
    config_written(c)
}

// ---- devices -------------------------------------------------------------------------------

const DEVICE_COLUMNS: &str = "id, terminal_no, merchant_no, status, master_key, mac_suite, \
     functions, max_amount, params, report_at, report_pending, report_clock, \
     report_blacklist_version";

fn device_row(r: &Row) -> Result<Device> {
    let master_key = match &r.0.get(4) {
        Some(Value::Bytes(b)) => Some(
            <[u8; 16]>::try_from(b.as_slice())
                .map_err(|_| HostError::Corrupt("master key length".into()))?,
        ),
        _ => None,
    };
    let last_report = match r.opt_int(9)? {
        Some(at) => Some(DeviceReport {
            at: time_from(at)?,
            pending_records: r.int_as(10)?,
            terminal_clock: time_from(r.int(11)?)?,
            blacklist_version: r.int_as(12)?,
        }),
        None => None,
    };
    Ok(Device {
        id: device_from(r.int(0)?)?,
        terminal_no: r.int_as(1)?,
        merchant_no: r.opt_int(2)?.map(|m| u32::try_from(m).unwrap_or(0)),
        status: DeviceStatus::parse(r.text(3)?)?,
        master_key,
        mac_suite: MacSuite::from_code(r.int(5)?)?,
        functions: Functions(r.int_as(6)?),
        max_amount: r.int(7)?,
        params: params_codec::decode(r.bytes(8)?)?,
        last_report,
    })
}

pub fn device_get(c: &mut dyn Conn, id: PhysicalId) -> Result<Option<Device>> {
    device_select(c, id, Lock::None)
}

/// [`device_get`] under the row's lock.
pub fn device_lock(c: &mut dyn Conn, id: PhysicalId) -> Result<Option<Device>> {
    device_select(c, id, Lock::ForUpdate)
}

fn device_select(c: &mut dyn Conn, id: PhysicalId, lock: Lock) -> Result<Option<Device>> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1{}",
        lock.sql()
    );
    c.query_opt(&sql, &[device_key(id).into()])?
        .map(|r| device_row(&r))
        .transpose()
}

pub fn device_list(c: &mut dyn Conn, after: Option<PhysicalId>, limit: u32) -> Result<Vec<Device>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id > $1 ORDER BY id LIMIT $2");
    let after = after.map_or(-1, device_key);
    c.query(&sql, &[after.into(), limit.into()])?
        .iter()
        .map(device_row)
        .collect()
}

pub fn device_insert(c: &mut dyn Conn, d: &Device) -> Result<bool> {
    let inserted = c.exec(
        "INSERT INTO devices (id, terminal_no, merchant_no, status, master_key, mac_suite, \
         functions, max_amount, params) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT DO NOTHING",
        &[
            device_key(d.id).into(),
            d.terminal_no.into(),
            d.merchant_no.into(),
            d.status.as_str().into(),
            d.master_key.map(|k| k.to_vec()).into(),
            (d.mac_suite as i64).into(),
            d.functions.0.into(),
            d.max_amount.into(),
            params_codec::encode(&d.params)?.into(),
        ],
    )? == 1;
    if inserted {
        config_written(c)?;
    }
    Ok(inserted)
}

/// Writes every administrative field of the device (not the status report).
pub fn device_update(c: &mut dyn Conn, d: &Device) -> Result<()> {
    c.exec(
        "UPDATE devices SET terminal_no = $2, merchant_no = $3, status = $4, master_key = $5, \
         mac_suite = $6, functions = $7, max_amount = $8, params = $9 WHERE id = $1",
        &[
            device_key(d.id).into(),
            d.terminal_no.into(),
            d.merchant_no.into(),
            d.status.as_str().into(),
            d.master_key.map(|k| k.to_vec()).into(),
            (d.mac_suite as i64).into(),
            d.functions.0.into(),
            d.max_amount.into(),
            params_codec::encode(&d.params)?.into(),
        ],
    )?;
    config_written(c)
}

pub fn device_report(c: &mut dyn Conn, id: PhysicalId, r: &DeviceReport) -> Result<()> {
    c.exec(
        "UPDATE devices SET report_at = $2, report_pending = $3, report_clock = $4, \
         report_blacklist_version = $5 WHERE id = $1",
        &[
            device_key(id).into(),
            time_key(r.at).into(),
            r.pending_records.into(),
            time_key(r.terminal_clock).into(),
            r.blacklist_version.into(),
        ],
    )?;
    Ok(())
}

// ---- cards -----------------------------------------------------------------------------------

const CARD_COLUMNS: &str = "no, display_no, status, class, expiry, balance, counter_floor, \
     counter_next, counters_used, waiting, subsidy_seq, loads_pending";

fn card_row(r: &Row) -> Result<Card> {
    Ok(Card {
        no: card_from(r.int(0)?)?,
        display_no: u64::try_from(r.int(1)?)
            .ok()
            .and_then(DisplayNo::new)
            .ok_or_else(|| HostError::Corrupt("display number".into()))?,
        status: CardStatus::parse(r.text(2)?)?,
        class: r.int_as(3)?,
        expiry: time_from(r.int(4)?)?.date(),
        balance: r.int(5)?,
        counter_floor: r.int_as(6)?,
        counter_next: r.int_as(7)?,
        counters_used: r.int_as(8)?,
        waiting: r.int(9)?,
        subsidy_seq: r.int_as(10)?,
        loads_pending: r.int_as(11)?,
    })
}

/// Reads a card; `lock` takes its row lock until the transaction ends (PostgreSQL).
pub fn card_get(c: &mut dyn Conn, no: CardNo, lock: bool) -> Result<Option<Card>> {
    let lock = if lock { Lock::ForUpdate } else { Lock::None };
    let sql = format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE no = $1{}",
        lock.sql()
    );
    c.query_opt(&sql, &[no.get().into()])?
        .map(|r| card_row(&r))
        .transpose()
}

/// A page of cards in number order, after `after` (exclusive).
pub fn card_list(c: &mut dyn Conn, after: Option<CardNo>, limit: u32) -> Result<Vec<Card>> {
    let sql = format!("SELECT {CARD_COLUMNS} FROM cards WHERE no > $1 ORDER BY no LIMIT $2");
    let after = after.map_or(0, CardNo::get);
    c.query(&sql, &[after.into(), limit.into()])?
        .iter()
        .map(card_row)
        .collect()
}

pub fn card_by_display(c: &mut dyn Conn, d: DisplayNo) -> Result<Option<Card>> {
    let sql = format!("SELECT {CARD_COLUMNS} FROM cards WHERE display_no = $1");
    let key = i64::try_from(d.get()).map_err(|_| HostError::Invalid("display number".into()))?;
    c.query_opt(&sql, &[key.into()])?
        .map(|r| card_row(&r))
        .transpose()
}

pub fn card_insert(c: &mut dyn Conn, card: &Card) -> Result<bool> {
    let display = i64::try_from(card.display_no.get())
        .map_err(|_| HostError::Invalid("display number".into()))?;
    let inserted = c.exec(
        "INSERT INTO cards (no, display_no, status, class, expiry, balance, counter_floor, \
         counter_next, counters_used) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT DO NOTHING",
        &[
            card.no.get().into(),
            display.into(),
            card.status.as_str().into(),
            u32::from(card.class).into(),
            date_key(card.expiry).into(),
            card.balance.into(),
            card.counter_floor.into(),
            card.counter_next.into(),
            card.counters_used.into(),
        ],
    )? == 1;
    if inserted {
        account_create(c, &card_account(card.no), "card")?;
    }
    Ok(inserted)
}

/// Writes the card's mutable state: status, class, expiry, mirror balance, counters.
pub fn card_update(c: &mut dyn Conn, card: &Card) -> Result<()> {
    c.exec(
        "UPDATE cards SET status = $2, class = $3, expiry = $4, balance = $5, \
         counter_next = $6, counters_used = $7 WHERE no = $1",
        &[
            card.no.get().into(),
            card.status.as_str().into(),
            u32::from(card.class).into(),
            date_key(card.expiry).into(),
            card.balance.into(),
            card.counter_next.into(),
            card.counters_used.into(),
        ],
    )?;
    Ok(())
}

// ---- lifetime counters (R-H5) ------------------------------------------------------------------

/// The record that used this counter of the card, if any.
pub fn counter_owner(
    c: &mut dyn Conn,
    card: CardNo,
    counter: u32,
) -> Result<Option<(PhysicalId, TerminalSerial)>> {
    c.query_opt(
        "SELECT device, serial FROM card_counters WHERE card_no = $1 AND counter = $2",
        &[card.get().into(), counter.into()],
    )?
    .map(|r| Ok((device_from(r.int(0)?)?, r.int_as(1)?)))
    .transpose()
}

pub fn counter_insert(c: &mut dyn Conn, card: CardNo, counter: u32, rec: &Record) -> Result<()> {
    c.exec(
        "INSERT INTO card_counters (card_no, counter, device, serial) VALUES ($1, $2, $3, $4)",
        &[
            card.get().into(),
            counter.into(),
            device_key(rec.device).into(),
            rec.serial.into(),
        ],
    )?;
    Ok(())
}

pub fn counter_delete(c: &mut dyn Conn, card: CardNo, counter: u32) -> Result<()> {
    c.exec(
        "DELETE FROM card_counters WHERE card_no = $1 AND counter = $2",
        &[card.get().into(), counter.into()],
    )?;
    Ok(())
}

// ---- records ---------------------------------------------------------------------------------------

/// A record as the host holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub record: Record,
    /// Money moved for it in the ledger.
    pub booked: bool,
    /// The serial of the cancellation or reversal that undid it.
    pub reversed_by: Option<TerminalSerial>,
    /// The accounting subject (科目, R-F4.14) of its item code in the price list of the
    /// device that made it, when the host stored it (`Device::subject_of`); `None`: none.
    pub subject: Option<u16>,
}

fn kind_str(k: RecordKind) -> &'static str {
    match k {
        RecordKind::Purchase => "purchase",
        RecordKind::Cancellation => "cancellation",
        RecordKind::Reversal => "reversal",
        RecordKind::BlackCard => "black_card",
        RecordKind::Collected => "collected",
        RecordKind::TopUp => "top_up",
        RecordKind::Subsidy => "subsidy",
    }
}

fn kind_from(s: &str) -> Result<RecordKind> {
    Ok(match s {
        "purchase" => RecordKind::Purchase,
        "cancellation" => RecordKind::Cancellation,
        "reversal" => RecordKind::Reversal,
        "black_card" => RecordKind::BlackCard,
        "collected" => RecordKind::Collected,
        "top_up" => RecordKind::TopUp,
        "subsidy" => RecordKind::Subsidy,
        other => return Err(HostError::Corrupt(format!("record kind {other:?}"))),
    })
}

pub fn status_str(s: RecordStatus) -> &'static str {
    match s {
        RecordStatus::Initiated => "initiated",
        RecordStatus::NotWritten => "not_written",
        RecordStatus::Success => "success",
        RecordStatus::Debited => "debited",
        RecordStatus::Written => "written",
        RecordStatus::CardPulled => "card_pulled",
        RecordStatus::Failed => "failed",
    }
}

fn status_from(s: &str) -> Result<RecordStatus> {
    Ok(match s {
        "initiated" => RecordStatus::Initiated,
        "not_written" => RecordStatus::NotWritten,
        "success" => RecordStatus::Success,
        "debited" => RecordStatus::Debited,
        "written" => RecordStatus::Written,
        "card_pulled" => RecordStatus::CardPulled,
        "failed" => RecordStatus::Failed,
        other => return Err(HostError::Corrupt(format!("record status {other:?}"))),
    })
}

/// A record's own columns, the same in `records` and `exceptions`.
pub(crate) const RECORD_FIELDS: &str = "device, serial, kind, status, online, card_type, \
     card_no, card_counter, wallet_no, balance_before, amount, fee, balance_after, time, \
     merchant_no, original_serial, item_code, tac";

const RECORD_COLUMNS: &str = "device, serial, kind, status, online, card_type, card_no, \
     card_counter, wallet_no, balance_before, amount, fee, balance_after, time, merchant_no, \
     original_serial, item_code, tac, booked, reversed_by, subject";

/// The record's own columns, in [`RECORD_FIELDS`] order, from column 0 of `r`.
pub(crate) fn record_fields(r: &Row) -> Result<Record> {
    Ok(Record {
        device: device_from(r.int(0)?)?,
        serial: r.int_as(1)?,
        kind: kind_from(r.text(2)?)?,
        status: status_from(r.text(3)?)?,
        online: r.int(4)? != 0,
        card_type: match r.text(5)? {
            "mf1" => CardType::Mf1,
            "cpu" => CardType::Cpu,
            other => return Err(HostError::Corrupt(format!("card type {other:?}"))),
        },
        card_no: card_from(r.int(6)?)?,
        card_counter: r.int_as(7)?,
        wallet_no: r.int_as(8)?,
        balance_before: r.int(9)?,
        amount: r.int(10)?,
        fee: r.int(11)?,
        balance_after: r.int(12)?,
        time: time_from(r.int(13)?)?,
        merchant_no: r.int_as(14)?,
        original_serial: r
            .opt_int(15)?
            .map(u32::try_from)
            .transpose()
            .map_err(|_| HostError::Corrupt("original serial".into()))?,
        item_code: r.int_as(16)?,
        tac: r.int_as(17)?,
    })
}

fn record_row(r: &Row) -> Result<StoredRecord> {
    Ok(StoredRecord {
        record: record_fields(r)?,
        booked: r.int(18)? != 0,
        reversed_by: r
            .opt_int(19)?
            .map(u32::try_from)
            .transpose()
            .map_err(|_| HostError::Corrupt("reversed_by".into()))?,
        subject: r
            .opt_int(20)?
            .map(u16::try_from)
            .transpose()
            .map_err(|_| HostError::Corrupt("subject".into()))?,
    })
}

pub fn record_get(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
    lock: bool,
) -> Result<Option<StoredRecord>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT {RECORD_COLUMNS} FROM records WHERE device = $1 AND serial = $2{lock}");
    c.query_opt(&sql, &[device_key(device).into(), serial.into()])?
        .map(|r| record_row(&r))
        .transpose()
}

/// A page of a card's records, newest counter first.
pub fn records_of_card(c: &mut dyn Conn, card: CardNo, limit: u32) -> Result<Vec<StoredRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE card_no = $1 \
         ORDER BY card_counter DESC, device, serial LIMIT $2"
    );
    c.query(&sql, &[card.get().into(), limit.into()])?
        .iter()
        .map(record_row)
        .collect()
}

/// Inserts a record; `false` when (device, serial) exists already (another process may have
/// inserted it concurrently: the caller re-reads and compares).
pub fn record_insert(
    c: &mut dyn Conn,
    s: &StoredRecord,
    received_at: NaiveDateTime,
) -> Result<bool> {
    let mut values = record_values(&s.record);
    values.extend([
        s.booked.into(),
        s.reversed_by.into(),
        time_key(received_at).into(),
        s.subject.map(u32::from).into(),
    ]);
    Ok(c.exec(
        "INSERT INTO records (device, serial, kind, status, online, card_type, card_no, \
         card_counter, wallet_no, balance_before, amount, fee, balance_after, time, \
         merchant_no, original_serial, item_code, tac, booked, reversed_by, received_at, \
         subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22) ON CONFLICT DO NOTHING",
        &values,
    )? == 1)
}

/// The values of [`RECORD_FIELDS`] for `r`, in order.
pub(crate) fn record_values(r: &Record) -> Vec<Value> {
    vec![
        device_key(r.device).into(),
        r.serial.into(),
        kind_str(r.kind).into(),
        status_str(r.status).into(),
        r.online.into(),
        match r.card_type {
            CardType::Mf1 => "mf1",
            CardType::Cpu => "cpu",
        }
        .into(),
        r.card_no.get().into(),
        r.card_counter.into(),
        u32::from(r.wallet_no).into(),
        r.balance_before.into(),
        r.amount.into(),
        r.fee.into(),
        r.balance_after.into(),
        time_key(r.time).into(),
        r.merchant_no.into(),
        r.original_serial.into(),
        u32::from(r.item_code).into(),
        r.tac.into(),
    ]
}

/// Reconciles an online record with its upload: the card-write outcome and the CPU TAC.
pub fn record_set_status(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
    status: RecordStatus,
    tac: u32,
) -> Result<()> {
    c.exec(
        "UPDATE records SET status = $3, tac = $4 WHERE device = $1 AND serial = $2",
        &[
            device_key(device).into(),
            serial.into(),
            status_str(status).into(),
            tac.into(),
        ],
    )?;
    Ok(())
}

pub fn record_set_reversed(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
    by: TerminalSerial,
) -> Result<()> {
    c.exec(
        "UPDATE records SET reversed_by = $3 WHERE device = $1 AND serial = $2",
        &[device_key(device).into(), serial.into(), by.into()],
    )?;
    Ok(())
}

/// Marks a record as collected from the card by `by` (R-F4.17): its provenance.
pub fn record_set_collected_by(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
    by: PhysicalId,
) -> Result<()> {
    c.exec(
        "UPDATE records SET collected_by = $3 WHERE device = $1 AND serial = $2",
        &[
            device_key(device).into(),
            serial.into(),
            device_key(by).into(),
        ],
    )?;
    Ok(())
}

/// The device that collected this record from the card, if it was collected (R-F4.17).
pub fn record_collected_by(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
) -> Result<Option<PhysicalId>> {
    c.query_opt(
        "SELECT collected_by FROM records WHERE device = $1 AND serial = $2",
        &[device_key(device).into(), serial.into()],
    )?
    .and_then(|r| r.opt_int(0).transpose())
    .map(|k| k.and_then(device_from))
    .transpose()
}

// ---- blacklist ------------------------------------------------------------------------------------

/// Sets a card's blacklist entry at a version (tombstones stay for incremental updates).
pub fn blacklist_set(c: &mut dyn Conn, card: CardNo, listed: bool, version: i64) -> Result<()> {
    c.exec(
        "INSERT INTO blacklist (card_no, listed, version) VALUES ($1, $2, $3) \
         ON CONFLICT (card_no) DO UPDATE SET listed = excluded.listed, version = excluded.version",
        &[card.get().into(), listed.into(), version.into()],
    )?;
    Ok(())
}

pub fn blacklist_changes(
    c: &mut dyn Conn,
    since: i64,
    upto: i64,
    after: Option<CardNo>,
    limit: u32,
) -> Result<Vec<(CardNo, bool)>> {
    c.query(
        "SELECT card_no, listed FROM blacklist WHERE version > $1 AND version <= $2 \
         AND card_no > $3 ORDER BY card_no LIMIT $4",
        &[
            since.into(),
            upto.into(),
            after.map_or(0, CardNo::get).into(),
            limit.into(),
        ],
    )?
    .iter()
    .map(|r| Ok((card_from(r.int(0)?)?, r.int(1)? != 0)))
    .collect()
}

pub fn blacklist_page(c: &mut dyn Conn, after: Option<CardNo>, limit: u32) -> Result<Vec<CardNo>> {
    c.query(
        "SELECT card_no FROM blacklist WHERE listed = 1 AND card_no > $1 ORDER BY card_no LIMIT $2",
        &[after.map_or(0, CardNo::get).into(), limit.into()],
    )?
    .iter()
    .map(|r| card_from(r.int(0)?))
    .collect()
}

// ---- ledger ----------------------------------------------------------------------------------------

pub fn account_create(c: &mut dyn Conn, id: &str, kind: &str) -> Result<()> {
    c.exec(
        "INSERT INTO accounts (id, kind, balance) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
        &[id.into(), kind.into()],
    )?;
    Ok(())
}

pub fn account_balance(c: &mut dyn Conn, id: &str) -> Result<Option<i64>> {
    c.query_opt("SELECT balance FROM accounts WHERE id = $1", &[id.into()])?
        .map(|r| r.int(0))
        .transpose()
}
