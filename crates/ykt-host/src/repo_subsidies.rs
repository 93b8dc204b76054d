//! Typed data access for subsidy batches and their lines (schema V9). No rules here:
//! `domain::subsidies` holds them.

use chrono::{NaiveDate, NaiveDateTime};
use ykt_proto::{CardNo, Fen};

use crate::error::{HostError, Result};
use crate::repo::{time_from, time_key};
use crate::sql::{Conn, Row, Value};

/// Where a batch stands; each step asserts its predecessor (`domain::subsidies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchState {
    /// Read from its list, lines resolved to cards; nothing moved.
    Imported,
    /// Checked (审核) by one operator: an approval request waits for a second.
    Checked,
    /// Approved by a second operator: may be issued.
    Approved,
    /// Its lines wait for their cards.
    Issued,
    /// Nothing of it waits any more (picked up, revoked or expired).
    Closed,
}

impl BatchState {
    pub const ALL: [BatchState; 5] = [
        BatchState::Imported,
        BatchState::Checked,
        BatchState::Approved,
        BatchState::Issued,
        BatchState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Imported => "imported",
            BatchState::Checked => "checked",
            BatchState::Approved => "approved",
            BatchState::Issued => "issued",
            BatchState::Closed => "closed",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            BatchState::Imported => "已导入",
            BatchState::Checked => "已审核",
            BatchState::Approved => "已批准",
            BatchState::Issued => "已发放",
            BatchState::Closed => "已关闭",
        }
    }

    pub fn parse(s: &str) -> Option<BatchState> {
        BatchState::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// Who did a step of a batch, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub by: i64,
    pub at: NaiveDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub no: u32,
    pub name: String,
    pub note: String,
    /// The account the money comes from, and goes back to when revoked or expired.
    pub funding: String,
    pub state: BatchState,
    pub lines: u64,
    pub total: Fen,
    pub batch_cap: Fen,
    pub card_cap: Fen,
    /// Lines still waiting after this day may be expired.
    pub expires_on: NaiveDate,
    /// SHA-256 of the imported file.
    pub sha256: String,
    pub imported: Stamp,
    pub checked: Option<Stamp>,
    /// The approval request the check filed (`domain::approvals`).
    pub approval: Option<i64>,
    pub approved: Option<Stamp>,
    pub issued: Option<Stamp>,
    pub closed_at: Option<NaiveDateTime>,
    /// Lines revoked, lines expired.
    pub revoked: u64,
    pub expired: u64,
}

/// A line's state as stored: its waiting load tells whether an issued line was picked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredLine {
    Imported,
    Issued,
    Revoked,
    Expired,
}

impl StoredLine {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredLine::Imported => "imported",
            StoredLine::Issued => "issued",
            StoredLine::Revoked => "revoked",
            StoredLine::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<StoredLine> {
        match s {
            "imported" => Ok(StoredLine::Imported),
            "issued" => Ok(StoredLine::Issued),
            "revoked" => Ok(StoredLine::Revoked),
            "expired" => Ok(StoredLine::Expired),
            other => Err(HostError::Corrupt(format!("subsidy line state {other:?}"))),
        }
    }
}

/// One line of a batch, with its waiting load's state (`None` before issue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRow {
    pub batch: u32,
    pub line: u64,
    pub card: CardNo,
    pub holder: Option<String>,
    pub amount: Fen,
    pub note: String,
    pub stored: StoredLine,
    pub load: Option<i64>,
    pub load_state: Option<String>,
}

/// A line to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLine {
    pub line: u64,
    pub card: CardNo,
    pub holder: Option<String>,
    pub amount: Fen,
    pub note: String,
}

fn date_key(d: NaiveDate) -> i64 {
    time_key(d.and_time(chrono::NaiveTime::MIN))
}

fn opt_stamp(r: &Row, by: usize, at: usize) -> Result<Option<Stamp>> {
    match (r.opt_int(by)?, r.opt_int(at)?) {
        (Some(by), Some(at)) => Ok(Some(Stamp {
            by,
            at: time_from(at)?,
        })),
        (None, None) => Ok(None),
        _ => Err(HostError::Corrupt("subsidy batch stamp half set".into())),
    }
}

const BATCH_COLUMNS: &str = "no, name, note, funding, state, lines, total, batch_cap, card_cap, \
     expires_on, sha256, imported_by, imported_at, checked_by, checked_at, approval_id, \
     approved_by, approved_at, issued_by, issued_at, closed_at, revoked, expired";

fn batch_row(r: &Row) -> Result<Batch> {
    let state = r.text(4)?;
    Ok(Batch {
        no: r.int_as(0)?,
        name: r.text(1)?.to_owned(),
        note: r.text(2)?.to_owned(),
        funding: r.text(3)?.to_owned(),
        state: BatchState::parse(state)
            .ok_or_else(|| HostError::Corrupt(format!("subsidy batch state {state:?}")))?,
        lines: r.int_as(5)?,
        total: r.int(6)?,
        batch_cap: r.int(7)?,
        card_cap: r.int(8)?,
        expires_on: time_from(r.int(9)?)?.date(),
        sha256: r.text(10)?.to_owned(),
        imported: Stamp {
            by: r.int(11)?,
            at: time_from(r.int(12)?)?,
        },
        checked: opt_stamp(r, 13, 14)?,
        approval: r.opt_int(15)?,
        approved: opt_stamp(r, 16, 17)?,
        issued: opt_stamp(r, 18, 19)?,
        closed_at: r.opt_int(20)?.map(time_from).transpose()?,
        revoked: r.int_as(21)?,
        expired: r.int_as(22)?,
    })
}

pub fn batch_get(c: &mut dyn Conn, no: u32, lock: bool) -> Result<Option<Batch>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    c.query_opt(
        &format!("SELECT {BATCH_COLUMNS} FROM subsidy_batches WHERE no = $1{lock}"),
        &[no.into()],
    )?
    .map(|r| batch_row(&r))
    .transpose()
}

/// Batches newest first, below `before` when given, optionally of one state.
pub fn batch_list(
    c: &mut dyn Conn,
    state: Option<BatchState>,
    before: Option<u32>,
    limit: u32,
) -> Result<Vec<Batch>> {
    c.query(
        &format!(
            "SELECT {BATCH_COLUMNS} FROM subsidy_batches \
             WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) \
             AND (CAST($2 AS BIGINT) IS NULL OR no < $2) ORDER BY no DESC LIMIT $3"
        ),
        &[
            state.map(BatchState::as_str).into(),
            before.into(),
            limit.into(),
        ],
    )?
    .iter()
    .map(batch_row)
    .collect()
}

/// Inserts a new batch; `false` when its number is taken.
pub fn batch_insert(c: &mut dyn Conn, b: &Batch) -> Result<bool> {
    let n = c.exec(
        "INSERT INTO subsidy_batches (no, name, note, funding, state, lines, total, batch_cap, \
         card_cap, expires_on, sha256, imported_by, imported_at, revoked, expired) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, 0) \
         ON CONFLICT DO NOTHING",
        &[
            b.no.into(),
            b.name.as_str().into(),
            b.note.as_str().into(),
            b.funding.as_str().into(),
            b.state.as_str().into(),
            i64::try_from(b.lines).unwrap_or(i64::MAX).into(),
            b.total.into(),
            b.batch_cap.into(),
            b.card_cap.into(),
            date_key(b.expires_on).into(),
            b.sha256.as_str().into(),
            b.imported.by.into(),
            time_key(b.imported.at).into(),
        ],
    )?;
    Ok(n == 1)
}

/// Writes a batch's state and stamps, where its stored state is still `from`.
pub fn batch_update(c: &mut dyn Conn, b: &Batch, from: BatchState) -> Result<()> {
    let stamp = |s: Option<Stamp>| -> (Value, Value) {
        match s {
            Some(s) => (s.by.into(), time_key(s.at).into()),
            None => (Value::Null, Value::Null),
        }
    };
    let (cb, ca) = stamp(b.checked);
    let (ab, aa) = stamp(b.approved);
    let (ib, ia) = stamp(b.issued);
    let n = c.exec(
        "UPDATE subsidy_batches SET state = $2, checked_by = $3, checked_at = $4, \
         approval_id = $5, approved_by = $6, approved_at = $7, issued_by = $8, issued_at = $9, \
         closed_at = $10, revoked = $11, expired = $12 WHERE no = $1 AND state = $13",
        &[
            b.no.into(),
            b.state.as_str().into(),
            cb,
            ca,
            b.approval.into(),
            ab,
            aa,
            ib,
            ia,
            b.closed_at.map(time_key).into(),
            i64::try_from(b.revoked).unwrap_or(i64::MAX).into(),
            i64::try_from(b.expired).unwrap_or(i64::MAX).into(),
            from.as_str().into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Invariant(format!(
            "subsidy batch {} was not {}",
            b.no,
            from.as_str()
        )))
    }
}

pub fn line_insert(c: &mut dyn Conn, batch: u32, l: &NewLine) -> Result<()> {
    c.exec(
        "INSERT INTO subsidy_lines (batch_no, line, card_no, holder, amount, note, state) \
         VALUES ($1, $2, $3, $4, $5, $6, 'imported')",
        &[
            batch.into(),
            i64::try_from(l.line).unwrap_or(i64::MAX).into(),
            l.card.get().into(),
            l.holder.clone().into(),
            l.amount.into(),
            l.note.as_str().into(),
        ],
    )?;
    Ok(())
}

fn line_row(r: &Row) -> Result<LineRow> {
    let card = r.int(2)?;
    Ok(LineRow {
        batch: r.int_as(0)?,
        line: r.int_as(1)?,
        card: u32::try_from(card)
            .ok()
            .and_then(CardNo::new)
            .ok_or_else(|| HostError::Corrupt(format!("card number {card}")))?,
        holder: r.opt_text(3)?.map(str::to_owned),
        amount: r.int(4)?,
        note: r.text(5)?.to_owned(),
        stored: StoredLine::parse(r.text(6)?)?,
        load: r.opt_int(7)?,
        load_state: r.opt_text(8)?.map(str::to_owned),
    })
}

/// A batch's lines in line order, from line `after` on (exclusive), with their loads' states.
pub fn lines_of(c: &mut dyn Conn, batch: u32, after: u64, limit: u32) -> Result<Vec<LineRow>> {
    c.query(
        "SELECT l.batch_no, l.line, l.card_no, l.holder, l.amount, l.note, l.state, l.load_id, \
         w.state FROM subsidy_lines l LEFT JOIN waiting_loads w ON w.id = l.load_id \
         WHERE l.batch_no = $1 AND l.line > $2 ORDER BY l.line LIMIT $3",
        &[
            batch.into(),
            i64::try_from(after).unwrap_or(i64::MAX).into(),
            limit.into(),
        ],
    )?
    .iter()
    .map(line_row)
    .collect()
}

/// Sets a line's state (and its load), where it is still `from`.
pub fn line_set(
    c: &mut dyn Conn,
    batch: u32,
    line: u64,
    from: StoredLine,
    to: StoredLine,
    load: Option<i64>,
) -> Result<()> {
    let n = c.exec(
        "UPDATE subsidy_lines SET state = $4, load_id = COALESCE($5, load_id) \
         WHERE batch_no = $1 AND line = $2 AND state = $3",
        &[
            batch.into(),
            i64::try_from(line).unwrap_or(i64::MAX).into(),
            from.as_str().into(),
            to.as_str().into(),
            load.into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Invariant(format!(
            "subsidy line {batch}/{line} was not {}",
            from.as_str()
        )))
    }
}

/// How many lines of a batch are in one (stored state, load state), and their sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineTotal {
    pub stored: StoredLine,
    pub load_state: Option<String>,
    pub count: u64,
    pub amount: Fen,
}

/// Counts and sums of a batch's lines by (stored state, load state).
pub fn line_totals(c: &mut dyn Conn, batch: u32) -> Result<Vec<LineTotal>> {
    c.query(
        "SELECT l.state, w.state, COUNT(*), CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) \
         FROM subsidy_lines l LEFT JOIN waiting_loads w ON w.id = l.load_id \
         WHERE l.batch_no = $1 GROUP BY l.state, w.state",
        &[batch.into()],
    )?
    .iter()
    .map(|r| {
        Ok(LineTotal {
            stored: StoredLine::parse(r.text(0)?)?,
            load_state: r.opt_text(1)?.map(str::to_owned),
            count: r.int_as(2)?,
            amount: r.int(3)?,
        })
    })
    .collect()
}
