//! Typed data access for the exception queue (schema V6, `domain::exceptions`): held
//! records and their resolutions. No rules here.

use ykt_proto::{PhysicalId, Record, ReturnCode, TerminalSerial};

use crate::domain::exceptions::{Action, ExceptionState, Held, Resolution};
use crate::error::{HostError, Result};
use crate::repo::{
    RECORD_FIELDS, device_from, device_key, record_fields, record_values, time_from, time_key,
};
use crate::sql::{Conn, Row};

/// Holds a record; `false` when (device, serial) is held already.
pub fn insert(c: &mut dyn Conn, h: &Held) -> Result<bool> {
    let mut values = record_values(&h.record);
    values.extend([
        u32::from(h.code.0).into(),
        h.reason.as_str().into(),
        time_key(h.received_at).into(),
        device_key(h.uploader).into(),
    ]);
    let sql = format!(
        "INSERT INTO exceptions ({RECORD_FIELDS}, code, reason, received_at, uploader) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22) ON CONFLICT DO NOTHING"
    );
    Ok(c.exec(&sql, &values)? == 1)
}

/// The held record's columns, then its resolution's (NULL while open).
fn select(filter: &str) -> String {
    let fields = RECORD_FIELDS
        .split(", ")
        .map(|f| format!("e.{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {fields}, e.code, e.reason, e.received_at, e.uploader, r.action, \
         r.resolved_by, r.resolved_at, r.note, r.state_before, r.state_after \
         FROM exceptions e LEFT JOIN exception_resolutions r \
         ON r.device = e.device AND r.serial = e.serial {filter}"
    )
}

fn held_row(r: &Row) -> Result<Held> {
    let record: Record = record_fields(r)?;
    let code = u8::try_from(r.int(18)?)
        .map(ReturnCode)
        .map_err(|_| HostError::Corrupt("exception code".into()))?;
    let state = match r.opt_int(24)? {
        None => ExceptionState::Open,
        Some(at) => ExceptionState::Resolved(Resolution {
            action: Action::parse(r.text(22)?)?,
            by: r.text(23)?.to_owned(),
            at: time_from(at)?,
            note: r.text(25)?.to_owned(),
            before: r.text(26)?.to_owned(),
            after: r.text(27)?.to_owned(),
        }),
    };
    Ok(Held {
        record,
        code,
        reason: r.text(19)?.to_owned(),
        received_at: time_from(r.int(20)?)?,
        uploader: device_from(r.int(21)?)?,
        state,
    })
}

pub fn get(c: &mut dyn Conn, device: PhysicalId, serial: TerminalSerial) -> Result<Option<Held>> {
    let sql = select("WHERE e.device = $1 AND e.serial = $2");
    c.query_opt(&sql, &[device_key(device).into(), serial.into()])?
        .map(|r| held_row(&r))
        .transpose()
}

/// Which exceptions a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    Open,
    Resolved,
}

/// A page in (device, serial) order, after `after` (exclusive).
pub fn list(
    c: &mut dyn Conn,
    filter: Filter,
    after: Option<(PhysicalId, TerminalSerial)>,
    limit: u32,
) -> Result<Vec<Held>> {
    let state = match filter {
        Filter::All => "",
        Filter::Open => "AND r.device IS NULL",
        Filter::Resolved => "AND r.device IS NOT NULL",
    };
    let sql = select(&format!(
        "WHERE (e.device > $1 OR (e.device = $1 AND e.serial > $2)) {state} \
         ORDER BY e.device, e.serial LIMIT $3"
    ));
    let (device, serial) = after.map_or((-1, -1), |(d, s)| (device_key(d), i64::from(s)));
    c.query(&sql, &[device.into(), serial.into(), limit.into()])?
        .iter()
        .map(held_row)
        .collect()
}

pub fn count_open(c: &mut dyn Conn) -> Result<i64> {
    c.query_one(
        "SELECT COUNT(*) FROM exceptions e WHERE NOT EXISTS (SELECT 1 FROM \
         exception_resolutions r WHERE r.device = e.device AND r.serial = e.serial)",
        &[],
    )?
    .int(0)
}

/// Records a resolution; `false` when the exception was resolved already.
pub fn resolve(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
    r: &Resolution,
) -> Result<bool> {
    Ok(c.exec(
        "INSERT INTO exception_resolutions (device, serial, action, resolved_by, resolved_at, \
         note, state_before, state_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT DO NOTHING",
        &[
            device_key(device).into(),
            serial.into(),
            r.action.as_str().into(),
            r.by.as_str().into(),
            time_key(r.at).into(),
            r.note.as_str().into(),
            r.before.as_str().into(),
            r.after.as_str().into(),
        ],
    )? == 1)
}

/// Resolutions are final: the held record's row is locked (PostgreSQL) while one is made.
pub fn lock(c: &mut dyn Conn, device: PhysicalId, serial: TerminalSerial) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM exceptions WHERE device = $1 AND serial = $2 FOR UPDATE",
        &[device_key(device).into(), serial.into()],
    )?
    .is_some())
}
