//! The double-entry ledger (R-H6) and the audit of the books and their companions. A transfer moves a positive amount from one account to
//! another, so every movement balances by construction and all balances sum to zero
//! (`funding` goes negative as money is paid in at the card office).
//!
//! Transfers are inserted at once; balance changes are collected per batch and applied at
//! its end in account-id order, so concurrent writers meet the hot accounts (merchants, fee
//! income) in one order and never deadlock on them.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use ykt_proto::{Fen, PhysicalId, TerminalSerial};

use crate::cache::ConfigCache;
use crate::error::{HostError, Result};
use crate::model::Policy;
use crate::repo::{self, device_key, time_key};
use crate::sql::Conn;

/// The platform's fee income (R-H3, R-F4.13).
pub const FEE_ACCOUNT: &str = "fee";
/// Money paid in at the card office; its balance is minus the money in the system.
pub const FUNDING_ACCOUNT: &str = "funding";
/// Money collected from cards (R-F4.17) whose terminal has no known merchant: held here
/// until an operator moves it, so it is never lost.
pub const SUSPENSE_ACCOUNT: &str = "suspense";
/// Top-ups authorised and not yet confirmed by their record (docs/loads.md).
pub const TOPUP_PENDING_ACCOUNT: &str = "topup:pending";
/// Card-office deposits waiting for their card's pick-up.
pub const WAITING_ACCOUNT: &str = "waiting";
/// Issued subsidies not yet picked up.
pub const SUBSIDY_ACCOUNT: &str = "subsidy";

/// One movement of money.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Unique: `rec:<device>:<serial>:amount` / `:fee` for terminal records (R-H2).
    pub id: String,
    pub from: String,
    pub to: String,
    pub amount: Fen,
    pub kind: &'static str,
    pub record: Option<(PhysicalId, TerminalSerial)>,
    pub time: NaiveDateTime,
}

/// The id of a record's transfer: `part` is `amount`, `fee`, `reverse-amount`, ….
/// The serial is zero-padded so ids sort like (device, serial): a terminal's new transfers
/// land at the end of its range of the id index, not all over it (measured: the hot set of
/// that index otherwise outgrows the page cache within a minute of lunch peak).
pub fn record_transfer_id(device: PhysicalId, serial: TerminalSerial, part: &str) -> String {
    format!("rec:{device}:{serial:010}:{part}")
}

/// A database transaction as the domain sees it: statements plus the ledger's pending
/// balance changes.
pub struct Tx<'a> {
    pub conn: &'a mut dyn Conn,
    pub policy: Policy,
    /// The writer's configuration cache (`cache.rs`); `None` reads the tables.
    pub(crate) cache: Option<&'a mut ConfigCache>,
    deltas: Deltas,
}

/// Pending balance changes per account, summed in i128: a batch's sum of i64 amounts cannot
/// overflow it, and [`apply_deltas`] refuses any that would not fit the account.
pub type Deltas = BTreeMap<String, i128>;

impl<'a> Tx<'a> {
    pub fn new(conn: &'a mut dyn Conn, policy: Policy) -> Tx<'a> {
        Tx::cached(conn, policy, None)
    }

    /// A transaction whose configuration reads go through a writer's cache.
    pub(crate) fn cached(
        conn: &'a mut dyn Conn,
        policy: Policy,
        cache: Option<&'a mut ConfigCache>,
    ) -> Tx<'a> {
        Tx {
            conn,
            policy,
            cache,
            deltas: BTreeMap::new(),
        }
    }

    /// Inserts a transfer; a zero amount books nothing. A transfer id that exists already
    /// is a broken invariant (`HostError::Invariant`): the domain checks records first, so
    /// this catches double booking.
    pub fn post(&mut self, t: Transfer) -> Result<()> {
        if t.amount == 0 {
            return Ok(());
        }
        if t.amount < 0 || t.from == t.to {
            return Err(HostError::Invariant(format!(
                "transfer {} is not a movement",
                t.id
            )));
        }
        let (device, serial) = match t.record {
            Some((d, s)) => (Some(device_key(d)), Some(i64::from(s))),
            None => (None, None),
        };
        let n = self.conn.exec(
            "INSERT INTO transfers (id, from_account, to_account, amount, kind, device, serial, \
             time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                t.id.as_str().into(),
                t.from.as_str().into(),
                t.to.as_str().into(),
                t.amount.into(),
                t.kind.into(),
                device.into(),
                serial.into(),
                time_key(t.time).into(),
            ],
        )?;
        if n != 1 {
            return Err(HostError::Invariant(format!(
                "transfer {} booked twice",
                t.id
            )));
        }
        *self.deltas.entry(t.from).or_default() -= i128::from(t.amount);
        *self.deltas.entry(t.to).or_default() += i128::from(t.amount);
        Ok(())
    }

    /// The change this transaction has posted to `account` and not yet applied.
    pub fn pending(&self, account: &str) -> i128 {
        self.deltas.get(account).copied().unwrap_or(0)
    }

    /// Hands over the pending balance changes (the writer merges those of committed jobs).
    pub fn take_deltas(&mut self) -> Deltas {
        std::mem::take(&mut self.deltas)
    }
}

/// Applies collected balance changes in account-id order. The update itself refuses a
/// balance that would leave i64 (SQLite would turn it into a float, PostgreSQL fail): the
/// domain's limits make that a broken invariant, so it is an error, never a wrap.
pub fn apply_deltas(conn: &mut dyn Conn, deltas: &Deltas) -> Result<()> {
    for (account, delta) in deltas {
        if *delta == 0 {
            continue;
        }
        let overflow = || HostError::Invariant(format!("account {account} would overflow"));
        let delta = Fen::try_from(*delta).map_err(|_| overflow())?;
        // The guard keeps `balance + delta` within i64 for every row it lets through.
        let (guard, bound) = if delta > 0 {
            ("balance <= $3", Fen::MAX - delta)
        } else {
            ("balance >= $3", Fen::MIN - delta)
        };
        let n = conn.exec(
            &format!("UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND {guard}"),
            &[delta.into(), account.as_str().into(), bound.into()],
        )?;
        if n != 1 {
            let exists = repo::account_balance(conn, account)?.is_some();
            return Err(if exists {
                overflow()
            } else {
                HostError::Corrupt(format!("account {account} missing"))
            });
        }
    }
    Ok(())
}

/// What an audit found (later `ykt audit`). Empty lists and zero sum = the books balance.
/// Sums are i128: the audit reads any data the columns can hold, and reports what it finds
/// instead of failing on an overflow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub accounts: u64,
    pub transfers: u64,
    /// Sum of all account balances; must be 0.
    pub balance_sum: i128,
    /// `(account, stored balance, sum of its transfers)` where they differ.
    pub account_mismatches: Vec<(String, Fen, i128)>,
    /// `(card, mirror balance, card account balance)` where they differ.
    pub card_mismatches: Vec<(u32, Fen, Fen)>,
    /// `(card, mirror balance)` outside what a card's 24-bit wallet holds.
    pub card_balances_out_of_range: Vec<(u32, Fen)>,
    /// `(device, serial, expected net debit, booked net debit)` where the ledger disagrees
    /// with the record (a record booked twice or partly shows up here).
    pub record_mismatches: Vec<(i64, i64, i128, i128)>,
    /// Cards whose count of used lifetime counters differs from the counters kept (R-H5).
    pub counter_mismatches: Vec<u32>,
    /// Cards whose blacklist entry disagrees with their status (R-H4).
    pub blacklist_mismatches: Vec<u32>,
    /// `(device, serial)` of held records (R-B3) whose ledger disagrees with their state:
    /// open or rejected but stored or booked, or resolved as booked without exactly their
    /// amount and fee in transfers.
    pub exception_mismatches: Vec<(i64, i64)>,
    /// Transfers only a person makes (deposits) that no operator-journal entry names, and
    /// journal entries naming a transfer that does not exist (R-B1).
    pub journal_mismatches: Vec<String>,
    /// Loads whose books disagree with their rows (docs/loads.md): `topup:pending`,
    /// `waiting`, `subsidy` against the sums of their pending / waiting and claimed loads,
    /// and cards whose `waiting` or `loads_pending` column disagrees with their loads.
    pub load_mismatches: Vec<String>,
    /// Subsidy lines and batches that disagree with their waiting loads (R-B5,
    /// `domain::subsidies::audit`).
    pub subsidy_mismatches: Vec<String>,
    /// Reconciliation states and PIN rows that disagree with themselves or name no card
    /// (R-B10, `domain::reconcile::audit`).
    pub reconcile_mismatches: Vec<String>,
    /// Replacements and closures whose books disagree with their rows (R-B6, R-B7): card
    /// fee income, moves and corrections, refund accounts, cash payouts, paid-out cards.
    pub lifecycle_mismatches: Vec<String>,
    /// Operator authorisation cards whose lock disagrees with their wrong-PIN count, or that
    /// no `authcard.issue` journal entry names (R-B11, `domain::authcards::audit`).
    pub auth_card_mismatches: Vec<String>,
    /// Payouts whose transfers disagree with their rows, commission income or the payout
    /// bank differing from the payouts' sums, negative merchant accounts (R-B8,
    /// `domain::merchants::audit`).
    pub merchant_mismatches: Vec<String>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.balance_sum == 0
            && self.account_mismatches.is_empty()
            && self.card_mismatches.is_empty()
            && self.card_balances_out_of_range.is_empty()
            && self.record_mismatches.is_empty()
            && self.counter_mismatches.is_empty()
            && self.blacklist_mismatches.is_empty()
            && self.exception_mismatches.is_empty()
            && self.journal_mismatches.is_empty()
            && self.load_mismatches.is_empty()
            && self.subsidy_mismatches.is_empty()
            && self.reconcile_mismatches.is_empty()
            && self.lifecycle_mismatches.is_empty()
            && self.auth_card_mismatches.is_empty()
            && self.merchant_mismatches.is_empty()
    }
}

/// At most this many findings of each kind are listed.
const AUDIT_LIMIT: u32 = 1_000;

/// Sums of money in the audit's SQL are split at 2^32: `v = (v / 2^32) · 2^32 + v % 2^32`
/// (both backends truncate toward zero), and each part sums within i64 for any row count
/// the tables can hold, where a plain `SUM` of large balances overflows.
const SPLIT: i128 = 1 << 32;

/// `SUM(expr)` as BIGINT, 0 over no rows (PostgreSQL sums BIGINT as NUMERIC).
fn sum_of(expr: &str) -> String {
    format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)")
}

/// The sums of the high and low parts of a value, as two columns.
fn split_sums(hi: &str, lo: &str) -> String {
    format!("{}, {}", sum_of(hi), sum_of(lo))
}

/// SQL that is true when `vh · 2^32 + vl` differs from `sh · 2^32 + sl`, computed without
/// overflow: the difference is `d · 2^32 + rest` with |rest| < 2^33, so it is zero only
/// when d is −1, 0 or 1 (CASE keeps the product from being evaluated otherwise).
fn split_differs(vh: &str, vl: &str, sh: &str, sl: &str) -> String {
    let d = format!("(({vh}) - ({sh}) + ({vl}) / 4294967296 - ({sl}) / 4294967296)");
    let rest = format!("(({vl}) % 4294967296 - ({sl}) % 4294967296)");
    format!("CASE WHEN {d} BETWEEN -1 AND 1 THEN {d} * 4294967296 + {rest} <> 0 ELSE 1 = 1 END")
}

fn joined(hi: i64, lo: i64) -> i128 {
    i128::from(hi) * SPLIT + i128::from(lo)
}

pub fn audit(conn: &mut dyn Conn) -> Result<AuditReport> {
    let sum = conn.query_one(
        &format!(
            "SELECT {} FROM accounts",
            split_sums("balance / 4294967296", "balance % 4294967296")
        ),
        &[],
    )?;
    let mut report = AuditReport {
        accounts: conn
            .query_one("SELECT COUNT(*) FROM accounts", &[])?
            .int_as(0)?,
        transfers: conn
            .query_one("SELECT COUNT(*) FROM transfers", &[])?
            .int_as(0)?,
        balance_sum: joined(sum.int(0)?, sum.int(1)?),
        ..AuditReport::default()
    };
    let (sh, sl) = (sum_of("m.hi"), sum_of("m.lo"));
    for r in conn.query(
        &format!(
            "SELECT a.id, a.balance, {sums} FROM accounts a LEFT JOIN ( \
                 SELECT to_account AS account, amount / 4294967296 AS hi, \
                     amount % 4294967296 AS lo FROM transfers \
                 UNION ALL SELECT from_account, -(amount / 4294967296), \
                     -(amount % 4294967296) FROM transfers) m ON m.account = a.id \
             GROUP BY a.id, a.balance HAVING {differs} ORDER BY a.id LIMIT $1",
            sums = split_sums("m.hi", "m.lo"),
            differs = split_differs("a.balance / 4294967296", "a.balance % 4294967296", &sh, &sl),
        ),
        &[AUDIT_LIMIT.into()],
    )? {
        report.account_mismatches.push((
            r.text(0)?.to_owned(),
            r.int(1)?,
            joined(r.int(2)?, r.int(3)?),
        ));
    }
    for r in conn.query(
        "SELECT c.no, c.balance, COALESCE(a.balance, -1) FROM cards c \
         LEFT JOIN accounts a ON a.id = 'card:' || CAST(c.no AS TEXT) \
         WHERE a.balance IS NULL OR a.balance <> c.balance ORDER BY c.no LIMIT $1",
        &[AUDIT_LIMIT.into()],
    )? {
        report
            .card_mismatches
            .push((r.int_as(0)?, r.int(1)?, r.int(2)?));
    }
    for r in conn.query(
        "SELECT no, balance FROM cards WHERE balance < 0 OR balance > $1 ORDER BY no LIMIT $2",
        &[
            crate::domain::checks::MAX_CARD_BALANCE.into(),
            AUDIT_LIMIT.into(),
        ],
    )? {
        report
            .card_balances_out_of_range
            .push((r.int_as(0)?, r.int(1)?));
    }
    // A booked record takes amount + fee off its card once; when a cancellation or reversal
    // undoes it, the reversing transfers carry the original's (device, serial), so its net
    // is zero. Cancellation and reversal records themselves are never `booked`.
    // A booked load (top-up, pick-up) puts its amount onto the card: a net debit of −amount.
    let undone = "r.booked = 0 OR r.reversed_by IS NOT NULL";
    let load = "r.kind IN ('top_up', 'subsidy')";
    let (eh, el) = (
        format!(
            "CASE WHEN {undone} THEN 0 WHEN {load} THEN -(r.amount / 4294967296) \
             ELSE r.amount / 4294967296 + r.fee / 4294967296 END"
        ),
        format!(
            "CASE WHEN {undone} THEN 0 WHEN {load} THEN -(r.amount % 4294967296) \
             ELSE r.amount % 4294967296 + r.fee % 4294967296 END"
        ),
    );
    let from_card = "t.from_account = 'card:' || CAST(r.card_no AS TEXT)";
    let (th, tl) = (
        format!(
            "CASE WHEN {from_card} THEN t.amount / 4294967296 ELSE -(t.amount / 4294967296) END"
        ),
        format!(
            "CASE WHEN {from_card} THEN t.amount % 4294967296 ELSE -(t.amount % 4294967296) END"
        ),
    );
    let (nh, nl) = (sum_of(&th), sum_of(&tl));
    for r in conn.query(
        &format!(
            "SELECT r.device, r.serial, {eh}, {el}, {sums} \
             FROM records r LEFT JOIN transfers t ON t.device = r.device AND t.serial = r.serial \
             GROUP BY r.device, r.serial, r.kind, r.booked, r.reversed_by, r.amount, r.fee, r.card_no \
             HAVING {differs} ORDER BY r.device, r.serial LIMIT $1",
            sums = split_sums(&th, &tl),
            differs = split_differs(&eh, &el, &nh, &nl),
        ),
        &[AUDIT_LIMIT.into()],
    )? {
        report.record_mismatches.push((
            r.int(0)?,
            r.int(1)?,
            joined(r.int(2)?, r.int(3)?),
            joined(r.int(4)?, r.int(5)?),
        ));
    }
    for r in conn.query(
        "SELECT c.no FROM cards c LEFT JOIN ( \
             SELECT card_no, COUNT(*) AS n FROM card_counters GROUP BY card_no) u \
         ON u.card_no = c.no WHERE c.counters_used <> COALESCE(u.n, 0) ORDER BY c.no LIMIT $1",
        &[AUDIT_LIMIT.into()],
    )? {
        report.counter_mismatches.push(r.int_as(0)?);
    }
    for r in conn.query(
        "SELECT c.no FROM cards c LEFT JOIN blacklist b ON b.card_no = c.no \
         WHERE (c.status = 'normal') <> (COALESCE(b.listed, 0) = 0) ORDER BY c.no LIMIT $1",
        &[AUDIT_LIMIT.into()],
    )? {
        report.blacklist_mismatches.push(r.int_as(0)?);
    }
    // R-B3: a held record is booked only by its resolution, and then exactly once (the
    // debit and fee transfers carry its (device, serial); a later reversal's do not count).
    for r in conn.query(
        "SELECT e.device, e.serial FROM exceptions e \
         LEFT JOIN exception_resolutions x ON x.device = e.device AND x.serial = e.serial \
         LEFT JOIN records rec ON rec.device = e.device AND rec.serial = e.serial \
         LEFT JOIN transfers t ON t.device = e.device AND t.serial = e.serial \
             AND t.kind IN ('debit', 'fee') \
         GROUP BY e.device, e.serial, e.amount, e.fee, x.action \
         HAVING CASE WHEN COALESCE(x.action, 'open') IN ('book', 'suspense') \
                  THEN e.amount + e.fee ELSE 0 END \
             <> CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) \
             OR (COALESCE(x.action, 'open') IN ('open', 'reject') AND COUNT(rec.device) > 0) \
         ORDER BY e.device, e.serial LIMIT $1",
        &[AUDIT_LIMIT.into()],
    )? {
        report.exception_mismatches.push((r.int(0)?, r.int(1)?));
    }
    // R-B1: every transfer a person makes is named by the journal entry of its operation,
    // and the journal names no transfer that is not in the ledger.
    let kinds = crate::domain::journal::PERSON_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for r in conn.query(
        &format!(
            "SELECT t.id FROM transfers t LEFT JOIN journal_transfers j ON j.transfer_id = t.id \
             WHERE t.kind IN ({kinds}) AND j.transfer_id IS NULL \
             UNION ALL SELECT j.transfer_id FROM journal_transfers j \
             LEFT JOIN transfers t ON t.id = j.transfer_id WHERE t.id IS NULL LIMIT $1"
        ),
        &[AUDIT_LIMIT.into()],
    )? {
        report.journal_mismatches.push(r.text(0)?.to_owned());
    }
    report.load_mismatches = crate::domain::topup::audit(conn, AUDIT_LIMIT)?;
    report.subsidy_mismatches = crate::domain::subsidies::audit(conn, AUDIT_LIMIT)?;
    report.reconcile_mismatches = crate::domain::reconcile::audit(conn, AUDIT_LIMIT)?;
    report.lifecycle_mismatches = crate::domain::lifecycle_audit::audit(conn, AUDIT_LIMIT)?;
    report.auth_card_mismatches = crate::domain::authcards::audit(conn, AUDIT_LIMIT)?;
    report.merchant_mismatches = crate::domain::merchants::audit(conn, AUDIT_LIMIT)?;
    Ok(report)
}
