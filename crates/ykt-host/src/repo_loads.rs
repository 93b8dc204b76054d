//! Typed data access for loads (schema V8, docs/loads.md): load authorisations keyed by
//! `(device, serial)`, loads waiting for a card, the card's load columns and the top-up
//! devices' operators. No rules: `domain::loads` and `domain::topup` hold them.

use chrono::NaiveDateTime;
use ykt_proto::{CardNo, CardType, Fen, PhysicalId, TerminalSerial};

use crate::error::{HostError, Result};
use crate::repo::{device_from, device_key, time_from, time_key};
use crate::sql::{Conn, Row, Value};

/// A waiting load's id (`waiting_loads.id`).
pub type LoadId = i64;

pub use ykt_proto::LoadPurpose;

fn purpose_str(p: LoadPurpose) -> &'static str {
    match p {
        LoadPurpose::TopUpCash => "cash",
        LoadPurpose::TopUpBank => "bank",
        LoadPurpose::Pickup => "pickup",
    }
}

fn purpose_from(s: &str) -> Result<LoadPurpose> {
    Ok(match s {
        "cash" => LoadPurpose::TopUpCash,
        "bank" => LoadPurpose::TopUpBank,
        "pickup" => LoadPurpose::Pickup,
        other => return Err(HostError::Corrupt(format!("load purpose {other:?}"))),
    })
}

/// What a CPU card's TAC over a load covers besides the load itself (from its INITIALIZE
/// FOR LOAD answer, kept with the authorisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLoadFacts {
    pub online_seq: u16,
    pub terminal_id: [u8; 6],
}

fn term_id_key(t: [u8; 6]) -> i64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&t);
    i64::from_be_bytes(b)
}

fn term_id_from(v: i64) -> [u8; 6] {
    let b = v.to_be_bytes();
    let mut t = [0u8; 6];
    t.copy_from_slice(&b[2..]);
    t
}

/// A load authorisation's state; each change asserts `Pending` first (docs/loads.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadState {
    /// Authorised, its money in `topup:pending` (top-up) or its waiting loads claimed
    /// (pick-up); the terminal's record has not told how the card write ended.
    Pending,
    /// The card was written: the money is on the card's account.
    Posted { at: NaiveDateTime },
    /// The card was not written: the money went back where it came from.
    Voided { at: NaiveDateTime },
}

impl LoadState {
    fn as_str(self) -> &'static str {
        match self {
            LoadState::Pending => "pending",
            LoadState::Posted { .. } => "posted",
            LoadState::Voided { .. } => "voided",
        }
    }

    fn settled_at(self) -> Option<NaiveDateTime> {
        match self {
            LoadState::Pending => None,
            LoadState::Posted { at } | LoadState::Voided { at } => Some(at),
        }
    }
}

/// One load authorisation (0x08) as the host booked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub device: PhysicalId,
    pub serial: TerminalSerial,
    pub card: CardNo,
    pub purpose: LoadPurpose,
    pub card_type: CardType,
    /// The card's lifetime counter before the load; the load record carries it.
    pub counter_before: u32,
    pub balance_before: Fen,
    pub amount: Fen,
    /// The card's subsidy sequence before the load.
    pub subsidy_seq: u16,
    /// The transaction time, terminal clock.
    pub time: NaiveDateTime,
    /// The account the money came from, and goes back to on a void (`topup:pending` is
    /// between); for a pick-up the claimed waiting loads' accounts, named `waiting`.
    pub funding: String,
    /// The operator whose cash a cash top-up is (their shift tally on posting).
    pub operator: Option<i64>,
    /// The card's wallet the load was for.
    pub wallet_no: u8,
    /// A CPU card's INITIALIZE FOR LOAD facts (its load TAC covers them); `None`: MF1.
    pub cpu: Option<CpuLoadFacts>,
    pub state: LoadState,
    pub created_at: NaiveDateTime,
}

impl Load {
    pub fn balance_after(&self) -> Option<Fen> {
        self.balance_before.checked_add(self.amount)
    }
}

fn card_from(v: i64) -> Result<CardNo> {
    u32::try_from(v)
        .ok()
        .and_then(CardNo::new)
        .ok_or_else(|| HostError::Corrupt(format!("card number {v}")))
}

fn card_type_str(t: CardType) -> &'static str {
    match t {
        CardType::Mf1 => "mf1",
        CardType::Cpu => "cpu",
    }
}

const LOAD_COLUMNS: &str = "device, serial, card_no, purpose, card_type, counter_before, \
     balance_before, amount, subsidy_seq, time, funding, operator_id, state, created_at, \
     settled_at, cpu_online_seq, cpu_terminal_id, wallet_no";

fn load_row(r: &Row) -> Result<Load> {
    let settled = r.opt_int(14)?.map(time_from).transpose()?;
    let state = match (r.text(12)?, settled) {
        ("pending", None) => LoadState::Pending,
        ("posted", Some(at)) => LoadState::Posted { at },
        ("voided", Some(at)) => LoadState::Voided { at },
        (other, _) => return Err(HostError::Corrupt(format!("load state {other:?}"))),
    };
    Ok(Load {
        device: device_from(r.int(0)?)?,
        serial: r.int_as(1)?,
        card: card_from(r.int(2)?)?,
        purpose: purpose_from(r.text(3)?)?,
        card_type: match r.text(4)? {
            "mf1" => CardType::Mf1,
            "cpu" => CardType::Cpu,
            other => return Err(HostError::Corrupt(format!("card type {other:?}"))),
        },
        counter_before: r.int_as(5)?,
        balance_before: r.int(6)?,
        amount: r.int(7)?,
        subsidy_seq: r.int_as(8)?,
        time: time_from(r.int(9)?)?,
        funding: r.text(10)?.to_owned(),
        operator: r.opt_int(11)?,
        wallet_no: r.int_as(17)?,
        cpu: match (r.opt_int(15)?, r.opt_int(16)?) {
            (Some(seq), Some(t)) => Some(CpuLoadFacts {
                online_seq: u16::try_from(seq)
                    .map_err(|_| HostError::Corrupt(format!("online sequence {seq}")))?,
                terminal_id: term_id_from(t),
            }),
            _ => None,
        },
        state,
        created_at: time_from(r.int(13)?)?,
    })
}

/// The load authorised for `(device, serial)`, under its row lock.
pub fn load_lock(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
) -> Result<Option<Load>> {
    let sql =
        format!("SELECT {LOAD_COLUMNS} FROM loads WHERE device = $1 AND serial = $2 FOR UPDATE");
    c.query_opt(&sql, &[device_key(device).into(), serial.into()])?
        .map(|r| load_row(&r))
        .transpose()
}

/// A card's pending loads, oldest first.
pub fn loads_pending_of_card(c: &mut dyn Conn, card: CardNo) -> Result<Vec<Load>> {
    let sql = format!(
        "SELECT {LOAD_COLUMNS} FROM loads WHERE card_no = $1 AND state = 'pending' \
         ORDER BY created_at, device, serial FOR UPDATE"
    );
    c.query(&sql, &[card.get().into()])?
        .iter()
        .map(load_row)
        .collect()
}

/// A card's loads, newest first (the card office's view).
pub fn loads_of_card(c: &mut dyn Conn, card: CardNo, limit: u32) -> Result<Vec<Load>> {
    let sql = format!(
        "SELECT {LOAD_COLUMNS} FROM loads WHERE card_no = $1 \
         ORDER BY created_at DESC, device, serial LIMIT $2"
    );
    c.query(&sql, &[card.get().into(), limit.into()])?
        .iter()
        .map(load_row)
        .collect()
}

pub fn load_insert(c: &mut dyn Conn, l: &Load) -> Result<bool> {
    Ok(c.exec(
        "INSERT INTO loads (device, serial, card_no, purpose, card_type, counter_before, \
         balance_before, amount, subsidy_seq, time, funding, operator_id, state, created_at, \
         settled_at, cpu_online_seq, cpu_terminal_id, wallet_no) VALUES ($1, $2, $3, $4, $5, \
         $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         ON CONFLICT DO NOTHING",
        &[
            device_key(l.device).into(),
            l.serial.into(),
            l.card.get().into(),
            purpose_str(l.purpose).into(),
            card_type_str(l.card_type).into(),
            l.counter_before.into(),
            l.balance_before.into(),
            l.amount.into(),
            u32::from(l.subsidy_seq).into(),
            time_key(l.time).into(),
            l.funding.as_str().into(),
            l.operator.into(),
            l.state.as_str().into(),
            time_key(l.created_at).into(),
            l.state.settled_at().map(time_key).into(),
            l.cpu.map(|c| u32::from(c.online_seq)).into(),
            l.cpu.map(|c| term_id_key(c.terminal_id)).into(),
            u32::from(l.wallet_no).into(),
        ],
    )? == 1)
}

/// Moves a pending load to `to`; the row must still be pending (a broken invariant
/// otherwise: the caller read it pending under its lock).
pub fn load_settle(c: &mut dyn Conn, l: &Load, to: LoadState) -> Result<()> {
    let n = c.exec(
        "UPDATE loads SET state = $3, settled_at = $4 \
         WHERE device = $1 AND serial = $2 AND state = 'pending'",
        &[
            device_key(l.device).into(),
            l.serial.into(),
            to.as_str().into(),
            to.settled_at().map(time_key).into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Invariant(format!(
            "load {}:{} settled twice",
            l.device, l.serial
        )))
    }
}

/// The sum of a card's top-ups (purposes cash and bank) authorised on a day, not voided:
/// the per-day limit (code 90).
pub fn topups_of_day(
    c: &mut dyn Conn,
    card: CardNo,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Fen> {
    c.query_one(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM loads WHERE card_no = $1 \
         AND purpose IN ('cash', 'bank') AND state <> 'voided' AND time >= $2 AND time < $3",
        &[
            card.get().into(),
            time_key(from).into(),
            time_key(to).into(),
        ],
    )?
    .int(0)
}

// ---- waiting loads -------------------------------------------------------------------------

/// Where the money of a waiting load came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitingSource {
    /// A card-office deposit (`waiting` account).
    Deposit,
    /// An issued subsidy of a batch (`subsidy` account), which may expire.
    Subsidy {
        batch: i64,
        expires: Option<NaiveDateTime>,
    },
}

/// A waiting load's state. Claimed → Waiting again when the pick-up is voided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitingState {
    /// Waits for the card's next pick-up.
    Waiting,
    /// Claimed by the pick-up authorised for `(device, serial)`, not yet settled.
    Claimed {
        device: PhysicalId,
        serial: TerminalSerial,
    },
    /// On the card, by that pick-up.
    Posted {
        device: PhysicalId,
        serial: TerminalSerial,
        at: NaiveDateTime,
    },
    /// Taken back by the card office (the money went to the account it named).
    Revoked { at: NaiveDateTime },
    /// Not picked up in time (its batch's date): back to its funding account.
    Expired { at: NaiveDateTime },
}

impl WaitingState {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingState::Waiting => "waiting",
            WaitingState::Claimed { .. } => "claimed",
            WaitingState::Posted { .. } => "posted",
            WaitingState::Revoked { .. } => "revoked",
            WaitingState::Expired { .. } => "expired",
        }
    }

    fn claim(self) -> Option<(PhysicalId, TerminalSerial)> {
        match self {
            WaitingState::Claimed { device, serial }
            | WaitingState::Posted { device, serial, .. } => Some((device, serial)),
            _ => None,
        }
    }

    fn settled_at(self) -> Option<NaiveDateTime> {
        match self {
            WaitingState::Posted { at, .. }
            | WaitingState::Revoked { at }
            | WaitingState::Expired { at } => Some(at),
            WaitingState::Waiting | WaitingState::Claimed { .. } => None,
        }
    }
}

/// Money waiting for a card (docs/loads.md "What waits for the card").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingLoad {
    pub id: LoadId,
    pub card: CardNo,
    pub amount: Fen,
    pub source: WaitingSource,
    /// The transfer that put the money into its account.
    pub transfer_id: String,
    pub state: WaitingState,
    pub created_at: NaiveDateTime,
}

const WAITING_COLUMNS: &str = "id, card_no, amount, source, batch, transfer_id, state, \
     claim_device, claim_serial, created_at, expires_at, settled_at";

fn waiting_row(r: &Row) -> Result<WaitingLoad> {
    let source = match (r.text(3)?, r.opt_int(4)?) {
        ("deposit", None) => WaitingSource::Deposit,
        ("subsidy", Some(batch)) => WaitingSource::Subsidy {
            batch,
            expires: r.opt_int(10)?.map(time_from).transpose()?,
        },
        (other, _) => return Err(HostError::Corrupt(format!("waiting source {other:?}"))),
    };
    let claim = match (r.opt_int(7)?, r.opt_int(8)?) {
        (Some(d), Some(s)) => Some((device_from(d)?, u32::try_from(s).unwrap_or(0))),
        _ => None,
    };
    let settled = r.opt_int(11)?.map(time_from).transpose()?;
    let state = match (r.text(6)?, claim, settled) {
        ("waiting", None, None) => WaitingState::Waiting,
        ("claimed", Some((device, serial)), None) => WaitingState::Claimed { device, serial },
        ("posted", Some((device, serial)), Some(at)) => WaitingState::Posted { device, serial, at },
        ("revoked", None, Some(at)) => WaitingState::Revoked { at },
        ("expired", None, Some(at)) => WaitingState::Expired { at },
        (other, _, _) => return Err(HostError::Corrupt(format!("waiting state {other:?}"))),
    };
    Ok(WaitingLoad {
        id: r.int(0)?,
        card: card_from(r.int(1)?)?,
        amount: r.int(2)?,
        source,
        transfer_id: r.text(5)?.to_owned(),
        state,
        created_at: time_from(r.int(9)?)?,
    })
}

fn waiting_query(c: &mut dyn Conn, filter: &str, args: &[Value]) -> Result<Vec<WaitingLoad>> {
    let sql = format!("SELECT {WAITING_COLUMNS} FROM waiting_loads WHERE {filter}");
    c.query(&sql, args)?.iter().map(waiting_row).collect()
}

pub fn waiting_insert(
    c: &mut dyn Conn,
    card: CardNo,
    amount: Fen,
    source: WaitingSource,
    transfer_id: &str,
    now: NaiveDateTime,
) -> Result<LoadId> {
    let (name, batch, expires) = match source {
        WaitingSource::Deposit => ("deposit", None, None),
        WaitingSource::Subsidy { batch, expires } => ("subsidy", Some(batch), expires),
    };
    c.query_one(
        "INSERT INTO waiting_loads (card_no, amount, source, batch, transfer_id, state, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 'waiting', $6, $7) RETURNING id",
        &[
            card.get().into(),
            amount.into(),
            name.into(),
            batch.into(),
            transfer_id.into(),
            time_key(now).into(),
            expires.map(time_key).into(),
        ],
    )?
    .int(0)
}

/// A waiting load by id; `lock` takes its row lock.
pub fn waiting_get(c: &mut dyn Conn, id: LoadId, lock: bool) -> Result<Option<WaitingLoad>> {
    let filter = if lock {
        "id = $1 FOR UPDATE"
    } else {
        "id = $1"
    };
    Ok(waiting_query(c, filter, &[id.into()])?.pop())
}

/// A card's loads in one state (`waiting` / `claimed` …), oldest first, under their locks.
pub fn waiting_of_card(c: &mut dyn Conn, card: CardNo, state: &str) -> Result<Vec<WaitingLoad>> {
    waiting_query(
        c,
        "card_no = $1 AND state = $2 ORDER BY id FOR UPDATE",
        &[card.get().into(), state.into()],
    )
}

/// Every load of a card, newest first (the card office's view).
pub fn waiting_all_of_card(c: &mut dyn Conn, card: CardNo, limit: u32) -> Result<Vec<WaitingLoad>> {
    waiting_query(
        c,
        "card_no = $1 ORDER BY id DESC LIMIT $2",
        &[card.get().into(), limit.into()],
    )
}

/// The loads claimed by the pick-up of `(device, serial)`, under their locks.
pub fn waiting_claimed_by(
    c: &mut dyn Conn,
    device: PhysicalId,
    serial: TerminalSerial,
) -> Result<Vec<WaitingLoad>> {
    waiting_query(
        c,
        "claim_device = $1 AND claim_serial = $2 AND state = 'claimed' ORDER BY id FOR UPDATE",
        &[device_key(device).into(), serial.into()],
    )
}

/// A subsidy batch's loads, in id order (revoke / expire a batch).
pub fn waiting_of_batch(c: &mut dyn Conn, batch: i64) -> Result<Vec<WaitingLoad>> {
    waiting_query(c, "batch = $1 ORDER BY id", &[batch.into()])
}

/// Moves a load from state `from` to `to`; a broken invariant when it was no longer in
/// `from` (the caller read it so under its lock).
pub fn waiting_set_state(
    c: &mut dyn Conn,
    w: &WaitingLoad,
    from: WaitingState,
    to: WaitingState,
) -> Result<()> {
    let claim = to.claim();
    let n = c.exec(
        "UPDATE waiting_loads SET state = $3, claim_device = $4, claim_serial = $5, \
         settled_at = $6 WHERE id = $1 AND state = $2",
        &[
            w.id.into(),
            from.as_str().into(),
            to.as_str().into(),
            claim.map(|(d, _)| device_key(d)).into(),
            claim.map(|(_, s)| s).into(),
            to.settled_at().map(time_key).into(),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(HostError::Invariant(format!(
            "waiting load {} is no longer {}",
            w.id,
            from.as_str()
        )))
    }
}

// ---- the card's load columns ------------------------------------------------------------------

/// Adds `delta` to a card's column `waiting` or `loads_pending`; it never goes below 0.
pub fn card_add(c: &mut dyn Conn, card: CardNo, column: CardColumn, delta: i64) -> Result<i64> {
    let sql = format!(
        "UPDATE cards SET {col} = {col} + $2 WHERE no = $1 RETURNING {col}",
        col = column.name()
    );
    let v = c
        .query_one(&sql, &[card.get().into(), delta.into()])?
        .int(0)?;
    if v < 0 {
        return Err(HostError::Invariant(format!(
            "card {} {} would be {v}",
            card.get(),
            column.name()
        )));
    }
    Ok(v)
}

/// The card's counted columns [`card_add`] moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardColumn {
    Waiting,
    LoadsPending,
}

impl CardColumn {
    fn name(self) -> &'static str {
        match self {
            CardColumn::Waiting => "waiting",
            CardColumn::LoadsPending => "loads_pending",
        }
    }
}

pub fn card_set_subsidy_seq(c: &mut dyn Conn, card: CardNo, seq: u16) -> Result<()> {
    c.exec(
        "UPDATE cards SET subsidy_seq = $2 WHERE no = $1",
        &[card.get().into(), u32::from(seq).into()],
    )?;
    Ok(())
}

// ---- top-up devices' operators ----------------------------------------------------------------

pub fn device_operator(c: &mut dyn Conn, device: PhysicalId) -> Result<Option<i64>> {
    c.query_opt(
        "SELECT operator_id FROM device_operators WHERE device = $1",
        &[device_key(device).into()],
    )?
    .map(|r| r.int(0))
    .transpose()
}

/// Assigns (`Some`) or removes (`None`) the operator whose cash the device takes.
pub fn device_operator_set(
    c: &mut dyn Conn,
    device: PhysicalId,
    operator: Option<i64>,
    now: NaiveDateTime,
) -> Result<()> {
    match operator {
        Some(op) => c.exec(
            "INSERT INTO device_operators (device, operator_id, assigned_at) VALUES ($1, $2, $3) \
             ON CONFLICT (device) DO UPDATE SET operator_id = excluded.operator_id, \
             assigned_at = excluded.assigned_at",
            &[device_key(device).into(), op.into(), time_key(now).into()],
        )?,
        None => c.exec(
            "DELETE FROM device_operators WHERE device = $1",
            &[device_key(device).into()],
        )?,
    };
    Ok(())
}
