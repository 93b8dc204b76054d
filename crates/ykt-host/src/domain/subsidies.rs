//! Subsidy batches (补助, R-B5, docs/loads.md): a list is imported as a batch, checked (审核)
//! by one operator, approved by a second (the two-person rule, `approvals`), then issued:
//! each line becomes a load waiting for its card (`loads::add_waiting`, funding account →
//! `subsidy`), picked up at the card's next tap. What is not picked up goes back to the
//! funding account when the batch is revoked, or expired after its date. Every step is
//! journalled in its transaction, naming its transfers.
//!
//! Who may not do what: the approver is neither the checker (an operator cannot decide their
//! own request) nor the importer. A batch closes when a revoke or an expiry leaves none of
//! its lines waiting.

use std::collections::HashMap;

use chrono::{Days, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Value, json};
use ykt_proto::{CardNo, Fen};

use super::approvals::{self, Approval, Decision, Operation};
use super::checks::MAX_CARD_BALANCE;
use super::journal::{self, Actor, Change};
use super::loads::{self, WaitingSource, WaitingState};
use crate::error::{HostError, Result};
use crate::import::LineError;
use crate::import_subsidies::{Parsed, Payee};
use crate::ledger::{FUNDING_ACCOUNT, Tx};
use crate::model::CardStatus;
use crate::repo;
use crate::repo_holders::{self as rh, HolderStatus};
use crate::repo_subsidies::{self as rs, NewLine, StoredLine};
pub use crate::repo_subsidies::{Batch, BatchState, LineRow, Stamp};

/// `meta` rows: the most one batch may pay out in all, and to one card (fen). A batch may
/// set lower caps of its own.
pub const BATCH_CAP: &str = "subsidy_batch_cap";
pub const CARD_CAP: &str = "subsidy_card_cap";

/// Most lines one page of a batch holds.
pub const MAX_PAGE: u32 = 1_000;

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(HostError::Invalid(m.into()))
}

fn target(no: u32) -> String {
    format!("subsidy:{no}")
}

fn operator_of(actor: &Actor) -> Result<i64> {
    actor
        .operator
        .ok_or_else(|| HostError::Invalid("only an operator works with subsidy batches".into()))
}

// ---- lines -----------------------------------------------------------------------------------

/// Where a line stands, as its waiting load tells once issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineState {
    /// The batch is not issued yet.
    Unissued,
    /// Waits for the card (or is being picked up right now).
    Waiting,
    PickedUp,
    Revoked,
    Expired,
}

impl LineState {
    pub fn of(stored: StoredLine, load: Option<&str>) -> Result<LineState> {
        match (stored, load) {
            (StoredLine::Imported, None) => Ok(LineState::Unissued),
            (StoredLine::Issued, Some("waiting" | "claimed")) => Ok(LineState::Waiting),
            (StoredLine::Issued, Some("posted")) => Ok(LineState::PickedUp),
            (StoredLine::Revoked, None | Some("revoked")) => Ok(LineState::Revoked),
            (StoredLine::Expired, Some("expired")) => Ok(LineState::Expired),
            (s, l) => Err(HostError::Invariant(format!(
                "subsidy line {} with its load {l:?}",
                s.as_str()
            ))),
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            LineState::Unissued => "未发放",
            LineState::Waiting => "待领取",
            LineState::PickedUp => "已领取",
            LineState::Revoked => "已撤销",
            LineState::Expired => "已过期",
        }
    }
}

pub fn line_view(l: &LineRow) -> Result<Value> {
    let state = LineState::of(l.stored, l.load_state.as_deref())?;
    Ok(json!({
        "line": l.line,
        "card_no": l.card.get(),
        "holder": l.holder,
        "amount": l.amount,
        "note": l.note,
        "state": state,
        "state_title": state.title(),
        "load_id": l.load,
    }))
}

pub fn lines(tx: &mut Tx<'_>, no: u32, after: u64, limit: u32) -> Result<Vec<LineRow>> {
    rs::lines_of(tx.conn, no, after, limit.clamp(1, MAX_PAGE))
}

/// Every line of a batch, in line order.
fn all_lines(tx: &mut Tx<'_>, no: u32) -> Result<Vec<LineRow>> {
    let mut all: Vec<LineRow> = Vec::new();
    loop {
        let after = all.last().map_or(0, |l| l.line);
        let page = rs::lines_of(tx.conn, no, after, MAX_PAGE)?;
        let done = page.len() < MAX_PAGE as usize;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

// ---- batches ---------------------------------------------------------------------------------

pub fn view(b: &Batch) -> Value {
    let stamp = |s: &Option<Stamp>| s.map(|s| json!({"by": s.by, "at": s.at.to_string()}));
    json!({
        "no": b.no,
        "name": b.name,
        "note": b.note,
        "funding": b.funding,
        "state": b.state,
        "state_title": b.state.title(),
        "lines": b.lines,
        "total": b.total,
        "batch_cap": b.batch_cap,
        "card_cap": b.card_cap,
        "expires_on": b.expires_on.to_string(),
        "sha256": b.sha256,
        "imported": {"by": b.imported.by, "at": b.imported.at.to_string()},
        "checked": stamp(&b.checked),
        "approval_id": b.approval,
        "approved": stamp(&b.approved),
        "issued": stamp(&b.issued),
        "closed_at": b.closed_at.map(|t| t.to_string()),
        "revoked": b.revoked,
        "expired": b.expired,
    })
}

pub fn get(tx: &mut Tx<'_>, no: u32) -> Result<Option<Batch>> {
    rs::batch_get(tx.conn, no, false)
}

fn locked(tx: &mut Tx<'_>, no: u32) -> Result<Batch> {
    rs::batch_get(tx.conn, no, true)?
        .ok_or_else(|| HostError::Invalid(format!("无此补助批次 {no}")))
}

pub fn list(
    tx: &mut Tx<'_>,
    state: Option<BatchState>,
    before: Option<u32>,
    limit: u32,
) -> Result<Vec<Batch>> {
    rs::batch_list(tx.conn, state, before, limit.clamp(1, MAX_PAGE))
}

/// Moves a batch from `from` to `to` on its locked row, the one place its state changes.
fn advance(tx: &mut Tx<'_>, b: &Batch, from: BatchState, to: Batch) -> Result<Batch> {
    if b.state != from {
        return invalid(format!(
            "补助批次 {} 的状态是{}，不是{}",
            b.no,
            b.state.title(),
            from.title()
        ));
    }
    rs::batch_update(tx.conn, &to, from)?;
    Ok(to)
}

// ---- caps ------------------------------------------------------------------------------------

/// The system's caps, (per batch, per card).
pub fn caps(tx: &mut Tx<'_>) -> Result<(Fen, Fen)> {
    Ok((
        repo::meta(tx.conn, BATCH_CAP)?,
        repo::meta(tx.conn, CARD_CAP)?,
    ))
}

/// Sets the system's caps (journalled by the caller's `Change`).
pub fn set_caps(tx: &mut Tx<'_>, batch_cap: Fen, card_cap: Fen) -> Result<Change> {
    if batch_cap < 1 || !(1..=MAX_CARD_BALANCE).contains(&card_cap) {
        return invalid(format!(
            "每批上限须大于零，每卡上限须为 1 至 {MAX_CARD_BALANCE} 分"
        ));
    }
    let (b, c) = caps(tx)?;
    repo::set_meta(tx.conn, BATCH_CAP, batch_cap)?;
    repo::set_meta(tx.conn, CARD_CAP, card_cap)?;
    Ok(Change::new("subsidy.caps", "settings")
        .before(json!({BATCH_CAP: b, CARD_CAP: c}))
        .after(json!({BATCH_CAP: batch_cap, CARD_CAP: card_cap})))
}

// ---- import ----------------------------------------------------------------------------------

/// What a batch is imported as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBatch {
    pub no: u32,
    pub name: String,
    pub note: String,
    /// `funding` or `fund:<name>` (created on first use): where the money comes from.
    pub funding: String,
    pub expires_on: NaiveDate,
    /// Lower caps than the system's; `None` takes the system's.
    pub batch_cap: Option<Fen>,
    pub card_cap: Option<Fen>,
}

/// A funding account: the card office's `funding`, or a fund of its own (`fund:` and 1 to 32
/// of a-z, 0-9, '-', '_').
fn check_funding(f: &str) -> Result<()> {
    let ok = f == FUNDING_ACCOUNT
        || f.strip_prefix("fund:").is_some_and(|n| {
            (1..=32).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        invalid("资金账户须为 funding 或 fund:名称（1 至 32 位小写字母、数字、'-'、'_'）")
    }
}

fn check_batch_fields(tx: &mut Tx<'_>, n: &NewBatch, now: NaiveDateTime) -> Result<(Fen, Fen)> {
    if n.no == 0 {
        return invalid("批次号须为 1 至 4294967295");
    }
    let name = n.name.chars().count();
    if !(1..=64).contains(&name) || n.name.chars().any(char::is_control) {
        return invalid("批次名称须为 1 至 64 个字符");
    }
    if n.note.chars().count() > 500 || n.note.chars().any(char::is_control) {
        return invalid("批次备注最多 500 个字符");
    }
    check_funding(&n.funding)?;
    if n.expires_on < now.date() {
        return invalid(format!("有效期 {} 已过", n.expires_on));
    }
    let (sys_batch, sys_card) = caps(tx)?;
    let pick = |own: Option<Fen>, sys: Fen, what: &str| match own {
        None => Ok(sys),
        Some(c) if (1..=sys).contains(&c) => Ok(c),
        Some(_) => invalid(format!("{what}须为 1 至 {sys} 分（系统上限）")),
    };
    let batch_cap = pick(n.batch_cap, sys_batch, "每批上限")?;
    let card_cap = pick(n.card_cap, sys_card.min(MAX_CARD_BALANCE), "每卡上限")?;
    Ok((batch_cap, card_cap))
}

fn yuan(f: Fen) -> String {
    format!("{}.{:02}", f / 100, f % 100)
}

/// The card a row pays, or why not.
fn resolve(tx: &mut Tx<'_>, payee: &Payee) -> Result<std::result::Result<CardNo, String>> {
    let by_holder = |tx: &mut Tx<'_>,
                     number: &str|
     -> Result<std::result::Result<(i64, Option<CardNo>), String>> {
        let Some(h) = rh::by_number(tx.conn, number, false)? else {
            return Ok(Err(format!("无此学工号 {number:?}")));
        };
        if h.status != HolderStatus::Active {
            return Ok(Err(format!("持卡人 {number} 状态为{}", h.status.title())));
        }
        let active = rh::cards_of(tx.conn, h.id, super::cardholders::MAX_CARDS)?
            .into_iter()
            .find(|c| c.status != CardStatus::Cancelled)
            .map(|c| c.no);
        Ok(Ok((h.id, active)))
    };
    let card = match payee {
        Payee::Holder(number) => match by_holder(tx, number)? {
            Err(e) => return Ok(Err(e)),
            Ok((_, None)) => return Ok(Err(format!("持卡人 {number} 没有有效的卡"))),
            Ok((_, Some(c))) => c,
        },
        Payee::Card(n) | Payee::Both { card: n, .. } => match CardNo::new(*n) {
            Some(c) => c,
            None => return Ok(Err(format!("无此卡 {n}"))),
        },
    };
    let Some(held) = rh::card(tx.conn, card, false)? else {
        return Ok(Err(format!("无此卡 {}", card.get())));
    };
    if let Payee::Both { holder, .. } = payee {
        match by_holder(tx, holder)? {
            Err(e) => return Ok(Err(e)),
            Ok((id, _)) if held.holder != Some(id) => {
                return Ok(Err(format!("卡 {} 不属于学工号 {holder}", card.get())));
            }
            Ok(_) => {}
        }
    }
    if held.status != CardStatus::Normal {
        return Ok(Err(format!(
            "卡 {} 状态为 {}，不能发放补助",
            card.get(),
            held.status.as_str()
        )));
    }
    Ok(Ok(card))
}

/// Imports a parsed list as batch `n.no` (state `Imported`): every row resolved to an active
/// card, no card twice, each amount within the card cap and the sum within the batch cap.
/// `Ok(Err(lines))` when any line is refused (the parser's refusals and these, in line
/// order): then nothing is written.
pub fn import(
    tx: &mut Tx<'_>,
    actor: &Actor,
    n: &NewBatch,
    list: &Parsed,
    sha256: &str,
    now: NaiveDateTime,
) -> Result<std::result::Result<Batch, Vec<LineError>>> {
    let by = operator_of(actor)?;
    let (batch_cap, card_cap) = check_batch_fields(tx, n, now)?;
    if rs::batch_get(tx.conn, n.no, false)?.is_some() {
        return invalid(format!("补助批次 {} 已存在", n.no));
    }
    if list.rows.is_empty() && list.errors.is_empty() {
        return invalid("名单没有任何行");
    }
    let mut errors = list.errors.clone();
    let mut lines = Vec::with_capacity(list.rows.len());
    let mut seen: HashMap<CardNo, u64> = HashMap::new();
    let mut total: Fen = 0;
    for r in &list.rows {
        let mut refuse = |error: String| {
            errors.push(LineError {
                line: r.line,
                error,
            })
        };
        let card = match resolve(tx, &r.payee)? {
            Ok(c) => c,
            Err(e) => {
                refuse(e);
                continue;
            }
        };
        if let Some(first) = seen.insert(card, r.line) {
            refuse(format!("卡 {} 在批次中重复（第 {first} 行）", card.get()));
            continue;
        }
        if r.amount > card_cap {
            refuse(format!(
                "金额 {} 元超过每卡上限 {} 元",
                yuan(r.amount),
                yuan(card_cap)
            ));
            continue;
        }
        total = total.saturating_add(r.amount);
        let holder = match &r.payee {
            Payee::Holder(h) | Payee::Both { holder: h, .. } => Some(h.clone()),
            Payee::Card(_) => None,
        };
        lines.push(NewLine {
            line: r.line,
            card,
            holder,
            amount: r.amount,
            note: r.note.clone(),
        });
    }
    if errors.is_empty() && total > batch_cap {
        errors.push(LineError {
            line: 0,
            error: format!(
                "批次总额 {} 元超过每批上限 {} 元",
                yuan(total),
                yuan(batch_cap)
            ),
        });
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Ok(Err(errors));
    }
    repo::account_create(tx.conn, &n.funding, "funding")?;
    let b = Batch {
        no: n.no,
        name: n.name.clone(),
        note: n.note.clone(),
        funding: n.funding.clone(),
        state: BatchState::Imported,
        lines: lines.len() as u64,
        total,
        batch_cap,
        card_cap,
        expires_on: n.expires_on,
        sha256: sha256.to_owned(),
        imported: Stamp { by, at: now },
        checked: None,
        approval: None,
        approved: None,
        issued: None,
        closed_at: None,
        revoked: 0,
        expired: 0,
    };
    if !rs::batch_insert(tx.conn, &b)? {
        return invalid(format!("补助批次 {} 已存在", n.no));
    }
    for l in &lines {
        rs::line_insert(tx.conn, n.no, l)?;
    }
    journal::append(
        tx,
        actor,
        now,
        &Change::new("subsidy.import", target(n.no)).after(view(&b)),
    )?;
    Ok(Ok(b))
}

// ---- check, approve --------------------------------------------------------------------------

/// 审核: the batch is checked and an approval request filed for a second operator. A batch
/// whose request was rejected may be checked again.
pub fn check(tx: &mut Tx<'_>, actor: &Actor, no: u32, now: NaiveDateTime) -> Result<Batch> {
    let by = operator_of(actor)?;
    let b = locked(tx, no)?;
    let recheck = match (b.state, b.approval) {
        (BatchState::Checked, Some(id)) => matches!(
            approvals::get(tx, id, true)?.state,
            approvals::State::Rejected { .. }
        ),
        _ => false,
    };
    let from = if recheck {
        BatchState::Checked
    } else {
        BatchState::Imported
    };
    if b.state != from {
        return advance(tx, &b, from, b.clone());
    }
    let payload = json!({"batch": no, "lines": b.lines, "total": b.total, "funding": b.funding});
    let a = approvals::request(
        tx,
        actor,
        Operation::SubsidyBatch,
        &target(no),
        payload,
        now,
    )?;
    let after = Batch {
        state: BatchState::Checked,
        checked: Some(Stamp { by, at: now }),
        approval: Some(a.id),
        ..b.clone()
    };
    let after = advance(tx, &b, from, after)?;
    journal::append(
        tx,
        actor,
        now,
        &Change::new("subsidy.check", target(no))
            .before(view(&b))
            .after(view(&after)),
    )?;
    Ok(after)
}

/// Approves a checked batch: the decision on its approval request (refused for the checker,
/// whose request it is, and here for the importer). Journalled by `approvals::decide`.
pub fn approve(tx: &mut Tx<'_>, actor: &Actor, no: u32, now: NaiveDateTime) -> Result<Batch> {
    let b = locked(tx, no)?;
    let Some(id) = b.approval.filter(|_| b.state == BatchState::Checked) else {
        return invalid(format!(
            "补助批次 {no} 的状态是{}，须先审核",
            b.state.title()
        ));
    };
    let approver = operator_of(actor)?;
    approvals::decide(tx, actor, id, Decision::Approve, now, |tx, a| {
        approved(tx, a, approver, now)
    })?;
    locked(tx, no)
}

/// Why an approval is refused (403): the batch is the approver's own import.
pub const OWN_IMPORT: &str = "不能批准自己导入的补助批次";

/// The approval of a batch's request, run by `approvals::decide` (also from the approvals
/// routes): the batch must still be checked under this request.
pub fn approved(
    tx: &mut Tx<'_>,
    a: &Approval,
    approver: i64,
    now: NaiveDateTime,
) -> Result<Change> {
    let no = a.payload["batch"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| HostError::Corrupt(format!("approval {} payload {}", a.id, a.payload)))?;
    let b = locked(tx, no)?;
    if b.approval != Some(a.id) {
        return invalid(format!("审批 {} 不是补助批次 {no} 当前的审批", a.id));
    }
    if b.imported.by == approver {
        return Err(HostError::Forbidden(OWN_IMPORT.into()));
    }
    let after = Batch {
        state: BatchState::Approved,
        approved: Some(Stamp {
            by: approver,
            at: now,
        }),
        ..b.clone()
    };
    let after = advance(tx, &b, BatchState::Checked, after)?;
    Ok(Change::new("subsidy.approve", target(no))
        .before(view(&b))
        .after(view(&after)))
}

// ---- issue, revoke, expire -------------------------------------------------------------------

/// A line's transfers: `subsidy:<batch>:<line>` issues it, with `:revoke` or `:expire` it
/// goes back (the audit rebuilds these ids to find their journal entries).
fn line_transfer(no: u32, line: u64, what: &str) -> String {
    format!("subsidy:{no}:{line}{what}")
}

/// Issues an approved batch: every line becomes a load waiting for its card, funded from
/// the batch's account, in this transaction with the journal entry naming every transfer.
pub fn issue(tx: &mut Tx<'_>, actor: &Actor, no: u32, now: NaiveDateTime) -> Result<Batch> {
    let by = operator_of(actor)?;
    let b = locked(tx, no)?;
    let after = Batch {
        state: BatchState::Issued,
        issued: Some(Stamp { by, at: now }),
        ..b.clone()
    };
    let after = advance(tx, &b, BatchState::Approved, after)?;
    // The load may be picked up until the end of the batch's last day.
    let expires = after
        .expires_on
        .checked_add_days(Days::new(1))
        .map(|d| d.and_time(chrono::NaiveTime::MIN));
    let mut change = Change::new("subsidy.issue", target(no)).before(view(&b));
    for l in all_lines(tx, no)? {
        let transfer = line_transfer(no, l.line, "");
        let source = WaitingSource::Subsidy {
            batch: i64::from(no),
            expires,
        };
        let load = loads::add_waiting(tx, l.card, l.amount, source, &b.funding, &transfer, now)
            .map_err(|e| match e {
                HostError::Invalid(m) => HostError::Invalid(format!("第 {} 行：{m}", l.line)),
                other => other,
            })?;
        rs::line_set(
            tx.conn,
            no,
            l.line,
            StoredLine::Imported,
            StoredLine::Issued,
            Some(load),
        )?;
        change = change.transfer(transfer);
    }
    journal::append(tx, actor, now, &change.after(view(&after)))?;
    Ok(after)
}

/// How the lines not picked up leave a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Withdrawal {
    Revoke,
    Expire,
}

/// Takes every waiting line of an issued batch back to its funding account; the batch closes
/// when none is left waiting (a line being picked up right now stays until that settles).
fn withdraw(
    tx: &mut Tx<'_>,
    actor: &Actor,
    b: Batch,
    how: Withdrawal,
    now: NaiveDateTime,
) -> Result<Batch> {
    let (operation, stored, suffix) = match how {
        Withdrawal::Revoke => ("subsidy.revoke", StoredLine::Revoked, ":revoke"),
        Withdrawal::Expire => ("subsidy.expire", StoredLine::Expired, ":expire"),
    };
    let mut change = Change::new(operation, target(b.no)).before(view(&b));
    let mut after = b.clone();
    let mut busy = 0u64;
    for l in all_lines(tx, b.no)? {
        match (l.stored, l.load, l.load_state.as_deref()) {
            (StoredLine::Issued, Some(load), Some("waiting")) => {
                let transfer = line_transfer(b.no, l.line, suffix);
                let taken = match how {
                    Withdrawal::Revoke => {
                        loads::revoke_waiting(tx, load, &b.funding, &transfer, now)
                    }
                    Withdrawal::Expire => {
                        loads::expire_waiting(tx, load, &b.funding, &transfer, now)
                    }
                };
                match taken {
                    Ok(_) => {}
                    // Claimed by a terminal since the lines were read (another host): it is
                    // being picked up, or was.
                    Err(HostError::Invalid(m)) => match loads::waiting_get(tx, load)?.state {
                        WaitingState::Waiting => return Err(HostError::Invalid(m)),
                        WaitingState::Claimed { .. } => {
                            busy += 1;
                            continue;
                        }
                        _ => continue,
                    },
                    Err(e) => return Err(e),
                }
                match how {
                    Withdrawal::Revoke => after.revoked += 1,
                    Withdrawal::Expire => after.expired += 1,
                }
                rs::line_set(tx.conn, b.no, l.line, StoredLine::Issued, stored, None)?;
                change = change.transfer(transfer);
            }
            (StoredLine::Issued, Some(_), Some("claimed")) => busy += 1,
            _ => {}
        }
    }
    if busy == 0 {
        after.state = BatchState::Closed;
        after.closed_at = Some(now);
    }
    rs::batch_update(tx.conn, &after, BatchState::Issued)?;
    journal::append(tx, actor, now, &change.after(view(&after)))?;
    Ok(after)
}

/// Revokes a batch: an issued one for the lines not yet picked up (their money back to the
/// funding account); one not issued yet is closed with every line revoked, nothing moved —
/// not while its approval request waits (a decision on a closed batch would mean nothing).
pub fn revoke(tx: &mut Tx<'_>, actor: &Actor, no: u32, now: NaiveDateTime) -> Result<Batch> {
    operator_of(actor)?;
    let b = locked(tx, no)?;
    match b.state {
        BatchState::Issued => withdraw(tx, actor, b, Withdrawal::Revoke, now),
        BatchState::Closed => invalid(format!("补助批次 {no} 已关闭")),
        BatchState::Checked if approval_pending(tx, &b)? => invalid(format!(
            "补助批次 {no} 正在等待审批：先驳回审批请求 {}",
            b.approval.unwrap_or_default()
        )),
        from => {
            for l in all_lines(tx, no)? {
                rs::line_set(
                    tx.conn,
                    no,
                    l.line,
                    StoredLine::Imported,
                    StoredLine::Revoked,
                    None,
                )?;
            }
            let after = Batch {
                state: BatchState::Closed,
                closed_at: Some(now),
                revoked: b.lines,
                ..b.clone()
            };
            let after = advance(tx, &b, from, after)?;
            journal::append(
                tx,
                actor,
                now,
                &Change::new("subsidy.revoke", target(no))
                    .before(view(&b))
                    .after(view(&after)),
            )?;
            Ok(after)
        }
    }
}

/// Whether the batch's approval request still waits for its decision.
fn approval_pending(tx: &mut Tx<'_>, b: &Batch) -> Result<bool> {
    match b.approval {
        Some(id) => Ok(approvals::get(tx, id, true)?.state == approvals::State::Pending),
        None => Ok(false),
    }
}

/// Expires an issued batch after its date: what still waits goes back to the funding account.
pub fn expire(tx: &mut Tx<'_>, actor: &Actor, no: u32, now: NaiveDateTime) -> Result<Batch> {
    operator_of(actor)?;
    let b = locked(tx, no)?;
    if b.state != BatchState::Issued {
        return invalid(format!(
            "补助批次 {no} 的状态是{}，不是已发放",
            b.state.title()
        ));
    }
    if now.date() <= b.expires_on {
        return invalid(format!(
            "补助批次 {no} 的有效期到 {}，尚未过期",
            b.expires_on
        ));
    }
    withdraw(tx, actor, b, Withdrawal::Expire, now)
}

// ---- reports ---------------------------------------------------------------------------------

/// Count and sum of lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sum {
    pub count: u64,
    pub amount: Fen,
}

impl Sum {
    fn add(&mut self, count: u64, amount: Fen) -> Result<()> {
        let too_big = || HostError::Invalid("the report's sums overflow".into());
        self.count = self.count.checked_add(count).ok_or_else(too_big)?;
        self.amount = self.amount.checked_add(amount).ok_or_else(too_big)?;
        Ok(())
    }
}

/// One batch's lines by where they stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    pub no: u32,
    pub name: String,
    pub state: Option<BatchState>,
    pub unissued: Sum,
    /// Issued: waiting, picked up, revoked after issue and expired together.
    pub issued: Sum,
    pub waiting: Sum,
    pub picked_up: Sum,
    pub revoked: Sum,
    pub expired: Sum,
}

pub fn report(tx: &mut Tx<'_>, b: &Batch) -> Result<BatchReport> {
    let mut r = BatchReport {
        no: b.no,
        name: b.name.clone(),
        state: Some(b.state),
        ..BatchReport::default()
    };
    for t in rs::line_totals(tx.conn, b.no)? {
        let (count, amount) = (t.count, t.amount);
        let state = LineState::of(t.stored, t.load_state.as_deref())?;
        if t.load_state.is_some() {
            r.issued.add(count, amount)?;
        }
        match state {
            LineState::Unissued => r.unissued.add(count, amount)?,
            LineState::Waiting => r.waiting.add(count, amount)?,
            LineState::PickedUp => r.picked_up.add(count, amount)?,
            LineState::Revoked => r.revoked.add(count, amount)?,
            LineState::Expired => r.expired.add(count, amount)?,
        }
    }
    Ok(r)
}

/// The batches' reports, newest first, and their sum (`no` 0).
pub fn reports(tx: &mut Tx<'_>, batches: &[Batch]) -> Result<(Vec<BatchReport>, BatchReport)> {
    let mut total = BatchReport::default();
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let r = report(tx, b)?;
        for (sum, part) in [
            (&mut total.unissued, r.unissued),
            (&mut total.issued, r.issued),
            (&mut total.waiting, r.waiting),
            (&mut total.picked_up, r.picked_up),
            (&mut total.revoked, r.revoked),
            (&mut total.expired, r.expired),
        ] {
            sum.add(part.count, part.amount)?;
        }
        out.push(r);
    }
    Ok((out, total))
}

/// Subsidy money of one day (the daily report): issued by batches, picked up onto cards,
/// revoked and expired back to funding, from the ledger's subsidy transfers of that day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    pub issued: Sum,
    pub picked_up: Sum,
    pub revoked: Sum,
    pub expired: Sum,
}

pub fn day(tx: &mut Tx<'_>, date: NaiveDate) -> Result<Day> {
    let from = date.and_time(chrono::NaiveTime::MIN);
    let to = from + chrono::Duration::days(1);
    let mut d = Day::default();
    for r in tx.conn.query(
        "SELECT l.state, w.state, COUNT(*), CAST(COALESCE(SUM(l.amount), 0) AS BIGINT), \
         CASE WHEN b.issued_at >= $1 AND b.issued_at < $2 THEN 1 ELSE 0 END, \
         CASE WHEN w.settled_at >= $1 AND w.settled_at < $2 THEN 1 ELSE 0 END \
         FROM subsidy_lines l JOIN subsidy_batches b ON b.no = l.batch_no \
         JOIN waiting_loads w ON w.id = l.load_id \
         WHERE (b.issued_at >= $1 AND b.issued_at < $2) \
            OR (w.settled_at >= $1 AND w.settled_at < $2) \
         GROUP BY l.state, w.state, 5, 6",
        &[repo::time_key(from).into(), repo::time_key(to).into()],
    )? {
        let (count, amount) = (r.int_as(2)?, r.int(3)?);
        if r.int(4)? == 1 {
            d.issued.add(count, amount)?;
        }
        if r.int(5)? == 1 {
            match r.opt_text(1)? {
                Some("posted") => d.picked_up.add(count, amount)?,
                Some("revoked") => d.revoked.add(count, amount)?,
                Some("expired") => d.expired.add(count, amount)?,
                _ => {}
            }
        }
    }
    Ok(d)
}

// ---- audit -----------------------------------------------------------------------------------

/// Lines and batches that disagree with their waiting loads (`ledger::audit`): a line whose
/// load is missing, of another card, amount, batch or source, or in a state the line's does
/// not allow; a line whose transfers no journal entry names; a load of a batch that no line
/// names; a batch whose counts or sum differ from its lines. (That the `subsidy` account
/// holds what its loads wait with is the loads' audit.)
pub fn audit(conn: &mut dyn crate::sql::Conn, limit: u32) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for r in conn.query(
        "SELECT l.batch_no, l.line FROM subsidy_lines l \
         LEFT JOIN waiting_loads w ON w.id = l.load_id \
         WHERE CASE l.state \
             WHEN 'imported' THEN l.load_id IS NOT NULL \
             WHEN 'revoked' THEN l.load_id IS NOT NULL AND (w.state IS NULL OR w.state <> 'revoked') \
             ELSE w.id IS NULL OR w.card_no <> l.card_no OR w.amount <> l.amount \
                 OR w.source <> 'subsidy' OR w.batch IS NULL OR w.batch <> l.batch_no \
                 OR (l.state = 'issued' AND w.state NOT IN ('waiting', 'claimed', 'posted')) \
                 OR (l.state = 'expired' AND w.state <> 'expired') END \
         ORDER BY l.batch_no, l.line LIMIT $1",
        &[limit.into()],
    )? {
        found.push(format!("subsidy line {}/{}", r.int(0)?, r.int(1)?));
    }
    // R-B1: every transfer of a line is named by the journal entry of its step.
    let id = "'subsidy:' || CAST(l.batch_no AS TEXT) || ':' || CAST(l.line AS TEXT)";
    for r in conn.query(
        &format!(
            "SELECT l.batch_no, l.line FROM subsidy_lines l \
             LEFT JOIN journal_transfers i ON i.transfer_id = {id} \
             LEFT JOIN journal_transfers x ON x.transfer_id = {id} || \
                 CASE l.state WHEN 'revoked' THEN ':revoke' ELSE ':expire' END \
             WHERE l.load_id IS NOT NULL AND (i.transfer_id IS NULL \
                 OR (l.state IN ('revoked', 'expired') AND x.transfer_id IS NULL)) \
             ORDER BY l.batch_no, l.line LIMIT $1"
        ),
        &[limit.into()],
    )? {
        found.push(format!(
            "subsidy line {}/{} not journalled",
            r.int(0)?,
            r.int(1)?
        ));
    }
    for r in conn.query(
        "SELECT w.id FROM waiting_loads w JOIN subsidy_batches b ON b.no = w.batch \
         LEFT JOIN subsidy_lines l ON l.load_id = w.id \
         WHERE w.source = 'subsidy' AND l.load_id IS NULL ORDER BY w.id LIMIT $1",
        &[limit.into()],
    )? {
        found.push(format!("subsidy load {} without its line", r.int(0)?));
    }
    for r in conn.query(
        "SELECT b.no FROM subsidy_batches b LEFT JOIN ( \
             SELECT batch_no, COUNT(*) AS n, SUM(amount) AS total, \
                 SUM(CASE WHEN state = 'revoked' THEN 1 ELSE 0 END) AS revoked, \
                 SUM(CASE WHEN state = 'expired' THEN 1 ELSE 0 END) AS expired \
             FROM subsidy_lines GROUP BY batch_no) l ON l.batch_no = b.no \
         WHERE b.lines <> COALESCE(l.n, 0) OR b.total <> COALESCE(l.total, 0) \
             OR b.revoked <> COALESCE(l.revoked, 0) OR b.expired <> COALESCE(l.expired, 0) \
         ORDER BY b.no LIMIT $1",
        &[limit.into()],
    )? {
        found.push(format!("subsidy batch {} counts", r.int(0)?));
    }
    Ok(found)
}
