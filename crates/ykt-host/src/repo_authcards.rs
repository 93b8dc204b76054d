//! Typed data access for operator authorisation cards (schema V13). No rules:
//! `domain::authcards` and `domain::checks` hold them.

use chrono::NaiveDateTime;
use ykt_proto::{AuthFunction, AuthFunctions, PhysicalId, ReturnCode};

use crate::error::{HostError, Result};
use crate::repo::{time_from, time_key};
use crate::sql::{Conn, Row};

/// Where an authorisation card stands (R-B11). Only `Normal` authorises anything; each other
/// state has its own code (`domain::checks::auth_card`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthCardState {
    Normal,
    /// 挂失: reported lost by its operator or the card office.
    Lost,
    /// 冻结: held by the card office, to be unfrozen.
    Frozen,
    /// 锁定: too many wrong PINs in a row; a PIN reset unlocks it.
    Locked,
    /// 禁用: taken out of use (the operator left the role); only cancellation follows.
    Disabled,
    /// 注销: final.
    Cancelled,
}

impl AuthCardState {
    pub const ALL: [AuthCardState; 6] = [
        AuthCardState::Normal,
        AuthCardState::Lost,
        AuthCardState::Frozen,
        AuthCardState::Locked,
        AuthCardState::Disabled,
        AuthCardState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthCardState::Normal => "normal",
            AuthCardState::Lost => "lost",
            AuthCardState::Frozen => "frozen",
            AuthCardState::Locked => "locked",
            AuthCardState::Disabled => "disabled",
            AuthCardState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<AuthCardState> {
        AuthCardState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCard {
    pub no: u32,
    pub operator_id: i64,
    pub state: AuthCardState,
    /// Valid from this time (inclusive) until `valid_until` (exclusive), terminal local time.
    pub valid_from: NaiveDateTime,
    pub valid_until: NaiveDateTime,
    pub functions: AuthFunctions,
    /// Argon2id PHC string of the PIN; never shown, never journalled.
    pub pin_hash: String,
    /// Wrong PINs in a row.
    pub pin_failures: u32,
    pub issued_by: i64,
    pub issued_at: NaiveDateTime,
    pub changed_at: NaiveDateTime,
}

const COLUMNS: &str = "no, operator_id, state, valid_from, valid_until, functions, pin_hash, \
                       pin_failures, issued_by, issued_at, changed_at";

fn row(r: &Row) -> Result<AuthCard> {
    let state = r.text(2)?;
    let bits: u8 = r.int_as(5)?;
    Ok(AuthCard {
        no: r.int_as(0)?,
        operator_id: r.int(1)?,
        state: AuthCardState::parse(state)
            .ok_or_else(|| HostError::Corrupt(format!("auth card state {state:?}")))?,
        valid_from: time_from(r.int(3)?)?,
        valid_until: time_from(r.int(4)?)?,
        functions: AuthFunctions::from_bits(bits)
            .ok_or_else(|| HostError::Corrupt(format!("auth card functions {bits}")))?,
        pin_hash: r.text(6)?.to_owned(),
        pin_failures: r.int_as(7)?,
        issued_by: r.int(8)?,
        issued_at: time_from(r.int(9)?)?,
        changed_at: time_from(r.int(10)?)?,
    })
}

pub fn insert(c: &mut dyn Conn, a: &AuthCard) -> Result<()> {
    c.exec(
        "INSERT INTO auth_cards (no, operator_id, state, valid_from, valid_until, functions, \
         pin_hash, pin_failures, issued_by, issued_at, changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            i64::from(a.no).into(),
            a.operator_id.into(),
            a.state.as_str().into(),
            time_key(a.valid_from).into(),
            time_key(a.valid_until).into(),
            i64::from(a.functions.bits()).into(),
            a.pin_hash.as_str().into(),
            i64::from(a.pin_failures).into(),
            a.issued_by.into(),
            time_key(a.issued_at).into(),
            time_key(a.changed_at).into(),
        ],
    )?;
    Ok(())
}

/// The card's row; `lock` reads it under its row lock (PostgreSQL `FOR UPDATE`).
pub fn get(c: &mut dyn Conn, no: u32, lock: bool) -> Result<Option<AuthCard>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM auth_cards WHERE no = $1{lock}");
    c.query_opt(&sql, &[i64::from(no).into()])?
        .map(|r| row(&r))
        .transpose()
}

/// Cards in number order, of one operator or all, at most `limit`.
pub fn list(c: &mut dyn Conn, operator: Option<i64>, limit: u32) -> Result<Vec<AuthCard>> {
    let rows = match operator {
        Some(op) => c.query(
            &format!(
                "SELECT {COLUMNS} FROM auth_cards WHERE operator_id = $1 ORDER BY no LIMIT $2"
            ),
            &[op.into(), i64::from(limit).into()],
        )?,
        None => c.query(
            &format!("SELECT {COLUMNS} FROM auth_cards ORDER BY no LIMIT $1"),
            &[i64::from(limit).into()],
        )?,
    };
    rows.iter().map(row).collect()
}

/// Writes the mutable part of a card: state, PIN hash and failures, change time.
pub fn update(c: &mut dyn Conn, a: &AuthCard) -> Result<()> {
    let n = c.exec(
        "UPDATE auth_cards SET state = $2, pin_hash = $3, pin_failures = $4, changed_at = $5 \
         WHERE no = $1",
        &[
            i64::from(a.no).into(),
            a.state.as_str().into(),
            a.pin_hash.as_str().into(),
            i64::from(a.pin_failures).into(),
            time_key(a.changed_at).into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Invariant(format!("auth card {} vanished", a.no)))
    }
}

/// One check a terminal asked for and the code it was answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCardUse {
    pub card_no: u32,
    pub device: PhysicalId,
    pub function: AuthFunction,
    pub terminal_time: NaiveDateTime,
    pub at: NaiveDateTime,
    pub code: ReturnCode,
}

pub fn use_insert(c: &mut dyn Conn, u: &AuthCardUse) -> Result<()> {
    c.exec(
        "INSERT INTO auth_card_uses (card_no, device, function, terminal_time, at, code) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            i64::from(u.card_no).into(),
            i64::from(u32::from_be_bytes(u.device.0)).into(),
            i64::from(u.function.to_wire()).into(),
            time_key(u.terminal_time).into(),
            time_key(u.at).into(),
            i64::from(u.code.0).into(),
        ],
    )?;
    Ok(())
}

/// The latest uses of one card, newest first.
pub fn uses(c: &mut dyn Conn, card_no: u32, limit: u32) -> Result<Vec<AuthCardUse>> {
    let rows = c.query(
        "SELECT card_no, device, function, terminal_time, at, code FROM auth_card_uses \
         WHERE card_no = $1 ORDER BY seq DESC LIMIT $2",
        &[i64::from(card_no).into(), i64::from(limit).into()],
    )?;
    rows.iter()
        .map(|r| {
            let f: u8 = r.int_as(2)?;
            Ok(AuthCardUse {
                card_no: r.int_as(0)?,
                device: crate::repo::device_from(r.int(1)?)?,
                function: AuthFunction::from_wire(f)
                    .map_err(|_| HostError::Corrupt(format!("auth card use function {f}")))?,
                terminal_time: time_from(r.int(3)?)?,
                at: time_from(r.int(4)?)?,
                code: ReturnCode(r.int_as(5)?),
            })
        })
        .collect()
}
