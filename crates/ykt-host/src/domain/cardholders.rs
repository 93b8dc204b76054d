//! Cardholders (持卡人, R-B2): who holds the cards. Every field is validated here, once;
//! every change is journalled in its transaction, with the ID number masked (the journal is
//! read by roles that may not see it). A cardholder holds at most one active card (any card
//! not cancelled) at a time; old cards stay attached.

use chrono::NaiveDateTime;
use serde_json::{Value, json};
use ykt_proto::CardNo;

use super::journal::{self, Actor, Change};
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::model::CardStatus;
use crate::repo_holders::{
    self as rh, After, Cardholder, HeldCard, HolderFields, HolderKind, HolderStatus,
};

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(HostError::Invalid(m.into()))
}

/// Most cardholders one search page holds; most cards listed for one cardholder.
pub const MAX_PAGE: u32 = 1_000;
pub const MAX_CARDS: u32 = 1_000;

// ---- validation ------------------------------------------------------------------------------

/// 学工号: 1 to 32 of A-Z, a-z, 0-9, '-', '_', '.'.
pub fn check_number(n: &str) -> Result<()> {
    let ok = (1..=32).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        invalid("学工号须为 1 至 32 位字母、数字、'-'、'_' 或 '.'")
    }
}

fn check_text(what: &str, s: &str, min: usize, max: usize) -> Result<()> {
    let n = s.chars().count();
    if !(min..=max).contains(&n) {
        return invalid(format!("{what}须为 {min} 至 {max} 个字符"));
    }
    if s.chars().any(char::is_control) || s.trim() != s {
        return invalid(format!("{what}不能含控制字符或首尾空白"));
    }
    Ok(())
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// The GB 11643 check character of the first 17 digits, or `None` when they are not 17
/// ASCII digits.
pub fn id_check_char(first17: &[u8]) -> Option<u8> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(ID_CHECK[(sum % 11) as usize])
}

/// 身份证号: 18 characters whose last is the GB 11643 check character (an 'x' counts as
/// 'X'), or 15 digits (the legacy form, which has no check character).
pub fn check_id_number(s: &str) -> Result<()> {
    let b = s.as_bytes();
    let ok = match b.len() {
        18 => id_check_char(&b[..17]) == Some(b[17].to_ascii_uppercase()),
        15 => b.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        invalid("身份证号须为 18 位（校验位正确）或 15 位数字")
    }
}

/// 电话: an optional leading '+', then 3 to 20 digits, '-' between them allowed.
pub fn check_phone(s: &str) -> Result<()> {
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    let ok = s.len() <= 24
        && (3..=20).contains(&digits)
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && !body.starts_with('-')
        && !body.ends_with('-');
    if ok {
        Ok(())
    } else {
        invalid("电话须为 3 至 20 位数字（可含 '-'，可以 '+' 开头）")
    }
}

pub fn check_fields(f: &HolderFields) -> Result<()> {
    check_text("姓名", &f.name, 1, 64)?;
    check_text("部门", &f.department, 0, 128)?;
    if let Some(id) = &f.id_number {
        check_id_number(id)?;
    }
    if let Some(p) = &f.phone {
        check_phone(p)?;
    }
    Ok(())
}

pub fn parse_kind(s: &str) -> Result<HolderKind> {
    HolderKind::parse(s).ok_or_else(|| {
        HostError::Invalid(format!(
            "未知类别 {s:?}：student 学生, staff 教职工, temporary 临时, retired 离退休, other 其他"
        ))
    })
}

pub fn parse_status(s: &str) -> Result<HolderStatus> {
    HolderStatus::parse(s).ok_or_else(|| {
        HostError::Invalid(format!(
            "未知状态 {s:?}：active 正常, left 离校, suspended 暂停"
        ))
    })
}

// ---- views -----------------------------------------------------------------------------------

/// Whether a view shows the ID number as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    Shown,
    Masked,
}

/// `110105********1234`: the first 6 and last 4 characters, the rest as '*'.
pub fn mask_id_number(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= n - 4 { *c } else { '*' })
        .collect()
}

pub fn id_number_view(id: Option<&str>, identity: Identity) -> Option<String> {
    id.map(|s| match identity {
        Identity::Shown => s.to_owned(),
        Identity::Masked => mask_id_number(s),
    })
}

pub fn view(h: &Cardholder, identity: Identity) -> Value {
    let f = &h.fields;
    json!({
        "number": h.number,
        "name": f.name,
        "kind": f.kind.as_str(),
        "kind_title": f.kind.title(),
        "department": f.department,
        "id_number": id_number_view(f.id_number.as_deref(), identity),
        "phone": f.phone,
        "status": h.status.as_str(),
        "status_title": h.status.title(),
        "created_at": h.created_at.to_string(),
    })
}

pub fn card_view(c: &HeldCard) -> Value {
    json!({
        "no": c.no.get(),
        "display_no": c.display_no,
        "status": c.status.as_str(),
        "active": is_active(c),
    })
}

fn target(number: &str) -> String {
    format!("cardholder:{number}")
}

/// A card counts as its holder's active card until it is cancelled.
fn is_active(c: &HeldCard) -> bool {
    c.status != CardStatus::Cancelled
}

// ---- rules -----------------------------------------------------------------------------------

pub fn get(tx: &mut Tx<'_>, number: &str) -> Result<Option<Cardholder>> {
    rh::by_number(tx.conn, number, false)
}

fn get_locked(tx: &mut Tx<'_>, number: &str) -> Result<Cardholder> {
    rh::by_number(tx.conn, number, true)?
        .ok_or_else(|| HostError::Invalid(format!("无此持卡人 {number:?}")))
}

pub fn add(
    tx: &mut Tx<'_>,
    actor: &Actor,
    number: &str,
    fields: &HolderFields,
    now: NaiveDateTime,
) -> Result<Cardholder> {
    check_number(number)?;
    check_fields(fields)?;
    let Some(h) = rh::insert(tx.conn, number, fields, HolderStatus::Active, now)? else {
        return invalid(format!("学工号 {number:?} 已存在"));
    };
    journal::append(
        tx,
        actor,
        now,
        &Change::new("cardholder.add", target(number)).after(view(&h, Identity::Masked)),
    )?;
    Ok(h)
}

/// Replaces the given fields; the others stay as they are.
pub fn update(
    tx: &mut Tx<'_>,
    actor: &Actor,
    number: &str,
    fields: &HolderFields,
    now: NaiveDateTime,
) -> Result<Cardholder> {
    check_fields(fields)?;
    let before = get_locked(tx, number)?;
    if &before.fields == fields {
        return Ok(before);
    }
    let after = Cardholder {
        fields: fields.clone(),
        ..before.clone()
    };
    rewrite(tx, actor, "cardholder.update", &before, after, now)
}

/// Writes `after` over `before` and journals both (masked).
fn rewrite(
    tx: &mut Tx<'_>,
    actor: &Actor,
    operation: &'static str,
    before: &Cardholder,
    after: Cardholder,
    now: NaiveDateTime,
) -> Result<Cardholder> {
    rh::update(tx.conn, &after)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new(operation, target(&after.number))
            .before(view(before, Identity::Masked))
            .after(view(&after, Identity::Masked)),
    )?;
    Ok(after)
}

pub fn set_status(
    tx: &mut Tx<'_>,
    actor: &Actor,
    number: &str,
    status: HolderStatus,
    now: NaiveDateTime,
) -> Result<Cardholder> {
    let before = get_locked(tx, number)?;
    if before.status == status {
        return invalid(format!("持卡人状态已是{}", status.title()));
    }
    let after = Cardholder {
        status,
        ..before.clone()
    };
    rewrite(tx, actor, "cardholder.status", &before, after, now)
}

/// Attaches a card to its holder, under the holder's row lock (two hosts cannot attach two
/// cards at once). Refused when the holder is not active, already holds an active card, or
/// the card is someone else's (or already theirs).
pub fn attach_card(
    tx: &mut Tx<'_>,
    actor: &Actor,
    number: &str,
    card_no: CardNo,
    now: NaiveDateTime,
) -> Result<HeldCard> {
    let holder = get_locked(tx, number)?;
    if holder.status != HolderStatus::Active {
        return invalid(format!("持卡人状态为{}，不能持卡", holder.status.title()));
    }
    let Some(card) = rh::card(tx.conn, card_no, true)? else {
        return invalid(format!("无此卡 {}", card_no.get()));
    };
    match card.holder {
        Some(h) if h == holder.id => {
            return invalid(format!("卡 {} 已属于该持卡人", card_no.get()));
        }
        Some(_) => return invalid(format!("卡 {} 属于其他持卡人", card_no.get())),
        None => {}
    }
    if let Some(active) = rh::cards_of(tx.conn, holder.id, MAX_CARDS)?
        .iter()
        .find(|c| is_active(c))
    {
        return invalid(format!(
            "持卡人已有未注销的卡 {}：先注销旧卡",
            active.no.get()
        ));
    }
    rh::set_card_holder(tx.conn, card_no, holder.id)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new("cardholder.attach_card", target(number))
            .after(json!({"card": card_no.get()})),
    )?;
    Ok(HeldCard {
        holder: Some(holder.id),
        ..card
    })
}

/// The cardholder's cards, old ones included.
pub fn cards(tx: &mut Tx<'_>, holder: &Cardholder) -> Result<Vec<HeldCard>> {
    rh::cards_of(tx.conn, holder.id, MAX_CARDS)
}

/// A search: empty `q` lists everyone; else a name prefix (an exact name included), a
/// number, a card number or a display number. Pages in (name, number) order.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub q: String,
    /// The number of the last cardholder of the previous page.
    pub after: Option<String>,
    pub limit: u32,
}

pub fn search(tx: &mut Tx<'_>, s: &Search) -> Result<Vec<Cardholder>> {
    let limit = s.limit.clamp(1, MAX_PAGE);
    if s.q.chars().count() > 64 {
        return invalid("搜索词最多 64 个字符");
    }
    let after = match &s.after {
        None => None,
        Some(n) => {
            let h = rh::by_number(tx.conn, n, false)?
                .ok_or_else(|| HostError::Invalid(format!("after: 无此持卡人 {n:?}")))?;
            Some(After {
                name: h.fields.name,
                number: h.number,
            })
        }
    };
    let q = s.q.trim();
    if q.is_empty() {
        return rh::name_range(tx.conn, "", None, after.as_ref(), limit);
    }
    // Char::MAX sorts after every other character, bytewise as in code points.
    let upper = format!("{q}{}", char::MAX);
    let mut found = rh::name_range(tx.conn, q, Some(&upper), after.as_ref(), limit)?;
    let mut exact: Vec<Cardholder> = rh::by_number(tx.conn, q, false)?.into_iter().collect();
    if let Ok(n) = q.parse::<i64>() {
        for id in rh::holder_of_card(tx.conn, n, n)? {
            exact.extend(rh::by_id(tx.conn, id)?);
        }
    }
    let beyond = |h: &Cardholder| {
        after.as_ref().is_none_or(|a| {
            (h.fields.name.as_str(), h.number.as_str()) > (a.name.as_str(), a.number.as_str())
        })
    };
    found.extend(exact.into_iter().filter(beyond));
    found.sort_by(|a, b| (&a.fields.name, &a.number).cmp(&(&b.fields.name, &b.number)));
    found.dedup_by(|a, b| a.id == b.id);
    found.truncate(limit as usize);
    Ok(found)
}

// ---- import ----------------------------------------------------------------------------------

/// One valid row of the registrar's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRow {
    pub line: u64,
    pub number: String,
    pub fields: HolderFields,
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// Upserts every row by number in the caller's transaction (rows already validated, numbers
/// unique): new numbers are added, changed ones updated (status kept), equal ones untouched.
/// One journal entry for the whole import, with its counts and the file's SHA-256.
pub fn import(
    tx: &mut Tx<'_>,
    actor: &Actor,
    rows: &[ImportRow],
    sha256: &str,
    now: NaiveDateTime,
) -> Result<ImportCounts> {
    let mut counts = ImportCounts::default();
    for r in rows {
        check_number(&r.number)?;
        check_fields(&r.fields)?;
        let existing = match rh::by_number(tx.conn, &r.number, true)? {
            Some(h) => Some(h),
            // Another host may have added it since: then it is an update.
            None => match rh::insert(tx.conn, &r.number, &r.fields, HolderStatus::Active, now)? {
                Some(_) => None,
                None => rh::by_number(tx.conn, &r.number, true)?,
            },
        };
        match existing {
            None => counts.added += 1,
            Some(h) if h.fields == r.fields => counts.unchanged += 1,
            Some(h) => {
                rh::update(
                    tx.conn,
                    &Cardholder {
                        fields: r.fields.clone(),
                        ..h
                    },
                )?;
                counts.updated += 1;
            }
        }
    }
    journal::append(
        tx,
        actor,
        now,
        &Change::new("cardholder.import", "cardholders").after(json!({
            "rows": rows.len(),
            "added": counts.added,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "sha256": sha256,
        })),
    )?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // R-B2: the ID number is shown masked: the first 6 and the last 4 characters.
    #[test]
    fn masks_all_but_first_six_and_last_four() {
        assert_eq!(mask_id_number("11010519491231002X"), "110105********002X");
        assert_eq!(mask_id_number("110105491231002"), "110105*****1002");
        assert_eq!(mask_id_number("1234"), "****");
    }

    // R-B2: GB 11643 check characters, 15-digit legacy numbers, phone digits.
    #[test]
    fn validates_identity_and_phone() {
        assert!(check_id_number("11010519491231002X").is_ok());
        assert!(check_id_number("11010519491231002x").is_ok());
        assert!(check_id_number("110105194912310021").is_err());
        assert!(check_id_number("110105491231002").is_ok());
        assert!(check_id_number("11010549123100X").is_err());
        assert!(check_phone("13800138000").is_ok());
        assert!(check_phone("010-62751234").is_ok());
        assert!(check_phone("+8613800138000").is_ok());
        for bad in ["12", "138 0013", "-123", "123-", "abc", &"1".repeat(21)] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
        assert!(check_number("2021010101").is_ok());
        assert!(check_number("").is_err());
        assert!(check_number("学号1").is_err());
    }
}
