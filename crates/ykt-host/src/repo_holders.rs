//! Typed data access for cardholders (持卡人, schema V7) and the cards they hold. No rules:
//! `domain::cardholders` holds them.
//!
//! Indexes (both backends): `cardholders.number` is UNIQUE (get by number, the import's
//! upsert); `cardholders_name (name, number)` serves the name-prefix search as a range and
//! its paging; `cards_cardholder (cardholder_id)` lists a cardholder's cards; a card number
//! or display number finds its card by `cards.no` (primary key) or `cards.display_no`
//! (UNIQUE). On PostgreSQL `name` and `number` compare in the "C" collation, so a prefix is
//! one contiguous range of the index, as it is in SQLite's binary collation.

use chrono::NaiveDateTime;
use ykt_proto::CardNo;

use crate::error::{HostError, Result};
use crate::model::CardStatus;
use crate::repo::{time_from, time_key};
use crate::sql::{Conn, Row};

/// A cardholder's standing (R-B2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HolderStatus {
    /// 在校 / 在职: may hold a card.
    Active,
    /// 离校 / 离职.
    Left,
    /// 暂停.
    Suspended,
}

impl HolderStatus {
    pub const ALL: [HolderStatus; 3] = [
        HolderStatus::Active,
        HolderStatus::Left,
        HolderStatus::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HolderStatus::Active => "active",
            HolderStatus::Left => "left",
            HolderStatus::Suspended => "suspended",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            HolderStatus::Active => "正常",
            HolderStatus::Left => "离校",
            HolderStatus::Suspended => "暂停",
        }
    }

    /// By its name or its Chinese title.
    pub fn parse(s: &str) -> Option<HolderStatus> {
        HolderStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.title() == s)
    }
}

/// What kind of person holds the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HolderKind {
    Student,
    Staff,
    Temporary,
    Retired,
    Other,
}

impl HolderKind {
    pub const ALL: [HolderKind; 5] = [
        HolderKind::Student,
        HolderKind::Staff,
        HolderKind::Temporary,
        HolderKind::Retired,
        HolderKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Student => "student",
            HolderKind::Staff => "staff",
            HolderKind::Temporary => "temporary",
            HolderKind::Retired => "retired",
            HolderKind::Other => "other",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            HolderKind::Student => "学生",
            HolderKind::Staff => "教职工",
            HolderKind::Temporary => "临时",
            HolderKind::Retired => "离退休",
            HolderKind::Other => "其他",
        }
    }

    /// By its name or its Chinese title.
    pub fn parse(s: &str) -> Option<HolderKind> {
        HolderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.title() == s)
    }
}

/// The fields a cardholder is given (by a clerk or the registrar's file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderFields {
    pub name: String,
    pub kind: HolderKind,
    pub department: String,
    /// As given; shown masked to roles without `CardholderIdentity`.
    pub id_number: Option<String>,
    pub phone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cardholder {
    pub id: i64,
    /// 学工号: unique.
    pub number: String,
    pub fields: HolderFields,
    pub status: HolderStatus,
    pub created_at: NaiveDateTime,
}

const COLUMNS: &str = "id, number, name, kind, department, id_number, phone, status, created_at";

fn holder_row(r: &Row) -> Result<Cardholder> {
    let corrupt = |what: &str, v: &str| HostError::Corrupt(format!("cardholder {what} {v:?}"));
    let kind = r.text(3)?;
    let status = r.text(7)?;
    Ok(Cardholder {
        id: r.int(0)?,
        number: r.text(1)?.to_owned(),
        fields: HolderFields {
            name: r.text(2)?.to_owned(),
            kind: HolderKind::parse(kind).ok_or_else(|| corrupt("kind", kind))?,
            department: r.text(4)?.to_owned(),
            id_number: r.opt_text(5)?.map(str::to_owned),
            phone: r.opt_text(6)?.map(str::to_owned),
        },
        status: HolderStatus::parse(status).ok_or_else(|| corrupt("status", status))?,
        created_at: time_from(r.int(8)?)?,
    })
}

/// Inserts a cardholder; `None` when the number is taken.
pub fn insert(
    c: &mut dyn Conn,
    number: &str,
    f: &HolderFields,
    status: HolderStatus,
    at: NaiveDateTime,
) -> Result<Option<Cardholder>> {
    let sql = format!(
        "INSERT INTO cardholders (number, name, kind, department, id_number, phone, status, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (number) DO NOTHING \
         RETURNING {COLUMNS}"
    );
    c.query_opt(
        &sql,
        &[
            number.into(),
            f.name.as_str().into(),
            f.kind.as_str().into(),
            f.department.as_str().into(),
            f.id_number.clone().into(),
            f.phone.clone().into(),
            status.as_str().into(),
            time_key(at).into(),
        ],
    )?
    .map(|r| holder_row(&r))
    .transpose()
}

/// Reads by number; `lock` takes the row lock until the transaction ends (PostgreSQL).
pub fn by_number(c: &mut dyn Conn, number: &str, lock: bool) -> Result<Option<Cardholder>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM cardholders WHERE number = $1{lock}");
    c.query_opt(&sql, &[number.into()])?
        .map(|r| holder_row(&r))
        .transpose()
}

pub fn by_id(c: &mut dyn Conn, id: i64) -> Result<Option<Cardholder>> {
    let sql = format!("SELECT {COLUMNS} FROM cardholders WHERE id = $1");
    c.query_opt(&sql, &[id.into()])?
        .map(|r| holder_row(&r))
        .transpose()
}

/// Writes the given fields and status.
pub fn update(c: &mut dyn Conn, h: &Cardholder) -> Result<()> {
    let f = &h.fields;
    let n = c.exec(
        "UPDATE cardholders SET name = $2, kind = $3, department = $4, id_number = $5, \
         phone = $6, status = $7 WHERE id = $1",
        &[
            h.id.into(),
            f.name.as_str().into(),
            f.kind.as_str().into(),
            f.department.as_str().into(),
            f.id_number.clone().into(),
            f.phone.clone().into(),
            h.status.as_str().into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Corrupt(format!("cardholder {} vanished", h.id)))
    }
}

/// Where a page starts: after this (name, number), exclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    pub name: String,
    pub number: String,
}

/// Cardholders whose name lies in `[from, to)` (no upper bound without `to`), in (name,
/// number) order, after `after`.
pub fn name_range(
    c: &mut dyn Conn,
    from: &str,
    to: Option<&str>,
    after: Option<&After>,
    limit: u32,
) -> Result<Vec<Cardholder>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM cardholders WHERE name >= $1 \
         AND (CAST($2 AS TEXT) IS NULL OR name < $2) \
         AND (CAST($3 AS TEXT) IS NULL OR name > $3 OR (name = $3 AND number > $4)) \
         ORDER BY name, number LIMIT $5"
    );
    c.query(
        &sql,
        &[
            from.into(),
            to.map(str::to_owned).into(),
            after.map(|a| a.name.clone()).into(),
            after.map_or(String::new(), |a| a.number.clone()).into(),
            limit.into(),
        ],
    )?
    .iter()
    .map(holder_row)
    .collect()
}

/// The holder of a card found by its number or its display number.
pub fn holder_of_card(c: &mut dyn Conn, card_no: i64, display_no: i64) -> Result<Vec<i64>> {
    let rows = c.query(
        "SELECT cardholder_id FROM cards WHERE no = $1 AND cardholder_id IS NOT NULL \
         UNION SELECT cardholder_id FROM cards WHERE display_no = $2 \
         AND cardholder_id IS NOT NULL",
        &[card_no.into(), display_no.into()],
    )?;
    rows.iter().map(|r| r.int(0)).collect()
}

/// A card as its holder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCard {
    pub no: CardNo,
    pub display_no: u64,
    pub status: CardStatus,
    pub holder: Option<i64>,
}

fn held_row(r: &Row) -> Result<HeldCard> {
    let no = u32::try_from(r.int(0)?)
        .ok()
        .and_then(CardNo::new)
        .ok_or_else(|| HostError::Corrupt("card number".into()))?;
    Ok(HeldCard {
        no,
        display_no: r.int_as(1)?,
        status: CardStatus::parse(r.text(2)?)?,
        holder: r.opt_int(3)?,
    })
}

/// A card with its holder; `lock` takes its row lock.
pub fn card(c: &mut dyn Conn, no: CardNo, lock: bool) -> Result<Option<HeldCard>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT no, display_no, status, cardholder_id FROM cards WHERE no = $1{lock}");
    c.query_opt(&sql, &[no.get().into()])?
        .map(|r| held_row(&r))
        .transpose()
}

/// A cardholder's cards, old ones included, in number order.
pub fn cards_of(c: &mut dyn Conn, holder: i64, limit: u32) -> Result<Vec<HeldCard>> {
    c.query(
        "SELECT no, display_no, status, cardholder_id FROM cards WHERE cardholder_id = $1 \
         ORDER BY no LIMIT $2",
        &[holder.into(), limit.into()],
    )?
    .iter()
    .map(held_row)
    .collect()
}

pub fn set_card_holder(c: &mut dyn Conn, no: CardNo, holder: i64) -> Result<()> {
    let n = c.exec(
        "UPDATE cards SET cardholder_id = $2 WHERE no = $1",
        &[no.get().into(), holder.into()],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Corrupt(format!("card {} vanished", no.get())))
    }
}
