//! Operator authorisation cards (授权卡, R-B11, `docs/operators.md`): issue, the card
//! office's state changes, PIN reset, and the terminal's online check (0x0A). The codes of
//! a check come from `checks::auth_card` (80–88) and `checks::auth_card_pin` (89); here is
//! only what a check changes: the wrong-PIN counter, the lock, and the record of the use.
//! PIN hashes are computed and verified by the callers off the writer threads
//! (`secrets.rs`); these functions store and compare what they are given.

use chrono::NaiveDateTime;
use serde_json::json;
use ykt_proto::{AuthCheckRequest, AuthFunctions, PhysicalId, ReturnCode};

use super::checks;
use super::journal::Change;
use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::repo;
use crate::repo_authcards::{self as ra, AuthCard, AuthCardState, AuthCardUse};
use crate::repo_people;

/// Wrong PINs in a row that lock a card (83 from then on, until the card office resets it).
pub const MAX_PIN_FAILURES: u32 = 5;
/// Longest validity a card is issued with: five years.
pub const MAX_VALIDITY_DAYS: i64 = 5 * 366;
/// Most cards listed at once; most uses shown.
pub const MAX_LIST: u32 = 10_000;

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(HostError::Invalid(m.into()))
}

/// What the API, the CLI and the journal show of a card: never its PIN hash.
pub fn view(a: &AuthCard) -> serde_json::Value {
    json!({
        "no": a.no,
        "operator_id": a.operator_id,
        "state": a.state.as_str(),
        "valid_from": a.valid_from.to_string(),
        "valid_until": a.valid_until.to_string(),
        "functions": a.functions.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "pin_failures": a.pin_failures,
        "tries_left": tries_left(a),
        "issued_by": a.issued_by,
        "issued_at": a.issued_at.to_string(),
        "changed_at": a.changed_at.to_string(),
    })
}

fn tries_left(a: &AuthCard) -> u8 {
    u8::try_from(MAX_PIN_FAILURES.saturating_sub(a.pin_failures)).unwrap_or(0)
}

/// What the card office gives to issue a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuthCard {
    pub operator_id: i64,
    pub valid_from: NaiveDateTime,
    pub valid_until: NaiveDateTime,
    pub functions: AuthFunctions,
    /// Argon2id hash of the initial PIN, computed by the caller.
    pub pin_hash: String,
}

/// Issues a card to an active operator; its number is the next of the cards' own sequence
/// (from 900001, apart from cardholders' cards).
pub fn issue(
    tx: &mut Tx<'_>,
    new: &NewAuthCard,
    issued_by: i64,
    now: NaiveDateTime,
) -> Result<(AuthCard, Change)> {
    if new.valid_from >= new.valid_until {
        return invalid("valid_from must be before valid_until");
    }
    if (new.valid_until - new.valid_from).num_days() > MAX_VALIDITY_DAYS {
        return invalid(format!(
            "a card is valid for at most {MAX_VALIDITY_DAYS} days"
        ));
    }
    if new.functions == AuthFunctions::NONE {
        return invalid("a card authorises at least one function");
    }
    let Some(op) = repo_people::operator_by_id(tx.conn, new.operator_id, true)? else {
        return invalid(format!("no operator {}", new.operator_id));
    };
    if op.status != repo_people::OperatorStatus::Active {
        return invalid(format!("operator {} is disabled", op.login));
    }
    let seq = repo::bump_meta(tx.conn, "auth_card_no_seq")?;
    let no = u32::try_from(seq)
        .map_err(|_| HostError::Invalid("authorisation card numbers are exhausted".into()))?;
    if ra::get(tx.conn, no, false)?.is_some() {
        return Err(HostError::Invariant(format!(
            "auth card {no} exists beyond the sequence"
        )));
    }
    let card = AuthCard {
        no,
        operator_id: new.operator_id,
        state: AuthCardState::Normal,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        functions: new.functions,
        pin_hash: new.pin_hash.clone(),
        pin_failures: 0,
        issued_by,
        issued_at: now,
        changed_at: now,
    };
    ra::insert(tx.conn, &card)?;
    let change = Change::new("authcard.issue", format!("authcard:{no}")).after(view(&card));
    Ok((card, change))
}

/// A change of state by the card office.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// 挂失.
    ReportLost,
    /// 冻结.
    Freeze,
    /// 解冻.
    Unfreeze,
    /// 禁用.
    Disable,
    /// 注销.
    Cancel,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::ReportLost,
        Action::Freeze,
        Action::Unfreeze,
        Action::Disable,
        Action::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReportLost => "lost",
            Action::Freeze => "freeze",
            Action::Unfreeze => "unfreeze",
            Action::Disable => "disable",
            Action::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn operation(self) -> &'static str {
        match self {
            Action::ReportLost => "authcard.lost",
            Action::Freeze => "authcard.freeze",
            Action::Unfreeze => "authcard.unfreeze",
            Action::Disable => "authcard.disable",
            Action::Cancel => "authcard.cancel",
        }
    }

    /// The state the action leads to from `from`; `None` when it does not apply there.
    /// The one table of the card's lifecycle.
    pub fn next(self, from: AuthCardState) -> Option<AuthCardState> {
        use AuthCardState as S;
        match (self, from) {
            (Action::ReportLost, S::Normal | S::Frozen | S::Locked) => Some(S::Lost),
            (Action::Freeze, S::Normal) => Some(S::Frozen),
            (Action::Unfreeze, S::Frozen) => Some(S::Normal),
            (Action::Disable, S::Normal | S::Frozen | S::Locked | S::Lost) => Some(S::Disabled),
            (Action::Cancel, s) if s != S::Cancelled => Some(S::Cancelled),
            _ => None,
        }
    }
}

/// Applies a card-office action, under the card's row lock.
pub fn act(
    tx: &mut Tx<'_>,
    no: u32,
    action: Action,
    now: NaiveDateTime,
) -> Result<(AuthCard, Change)> {
    let Some(mut card) = ra::get(tx.conn, no, true)? else {
        return invalid(format!("no authorisation card {no}"));
    };
    let before = view(&card);
    let Some(next) = action.next(card.state) else {
        return invalid(format!(
            "authorisation card {no} is {}: cannot {}",
            card.state.as_str(),
            action.as_str()
        ));
    };
    card.state = next;
    card.changed_at = now;
    ra::update(tx.conn, &card)?;
    let change = Change::new(action.operation(), format!("authcard:{no}"))
        .before(before)
        .after(view(&card));
    Ok((card, change))
}

/// Sets a new PIN (hash computed by the caller), clears the wrong-PIN counter and unlocks a
/// locked card. Not for a card out of use (lost, frozen, disabled, cancelled).
pub fn reset_pin(
    tx: &mut Tx<'_>,
    no: u32,
    pin_hash: &str,
    now: NaiveDateTime,
) -> Result<(AuthCard, Change)> {
    let Some(mut card) = ra::get(tx.conn, no, true)? else {
        return invalid(format!("no authorisation card {no}"));
    };
    if !matches!(card.state, AuthCardState::Normal | AuthCardState::Locked) {
        return invalid(format!(
            "authorisation card {no} is {}: its PIN cannot be reset",
            card.state.as_str()
        ));
    }
    let before = view(&card);
    card.state = AuthCardState::Normal;
    card.pin_failures = 0;
    card.pin_hash = pin_hash.to_owned();
    card.changed_at = now;
    ra::update(tx.conn, &card)?;
    let change = Change::new("authcard.reset-pin", format!("authcard:{no}"))
        .before(before)
        .after(view(&card));
    Ok((card, change))
}

/// What the PIN of a check was found to be, by the caller, off the writer thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinVerdict {
    /// The card was not found when the caller looked: nothing was verified.
    NotChecked,
    /// Verified against this hash (the card's at the time): `matches` says the result. A block
    /// that did not open is a wrong PIN.
    Checked { hash: String, matches: bool },
}

/// The answer to a check: 0 or 80–89, the operator on success, PIN attempts left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    pub code: ReturnCode,
    pub operator: u32,
    pub tries_left: u8,
}

/// The terminal's online check (0x0A): the device's checks (FEP 10–13, device 20, 22–24),
/// then the card's (80–88), then the PIN (89; the last allowed wrong PIN locks the card).
/// A refusal by the card's state is an answer, not an error: the use is recorded with its
/// code and the wrong-PIN counter moves in the same transaction.
pub fn check(
    tx: &mut Tx<'_>,
    fep: u32,
    device: PhysicalId,
    req: &AuthCheckRequest,
    pin: &PinVerdict,
    now: NaiveDateTime,
) -> Result<CheckOutcome> {
    let d = checks::device_row(tx, fep, device)?;
    if let Some(code) = d.status.refusal() {
        return crate::error::refuse(code);
    }
    let card = ra::get(tx.conn, req.card_no, true)?;
    let outcome = match checks::auth_card(card.as_ref(), req.function, req.time) {
        Err(HostError::Refused(code)) => CheckOutcome {
            code,
            operator: 0,
            tries_left: card.as_ref().map_or(0, tries_left),
        },
        Err(e) => return Err(e),
        Ok(()) => {
            let Some(mut card) = card else {
                return Err(HostError::Invariant(
                    "auth card check passed without a card".into(),
                ));
            };
            let matches = match pin {
                PinVerdict::Checked { hash, matches } if *hash == card.pin_hash => *matches,
                // Issued or reset since the caller looked: the terminal asks again.
                _ => return crate::error::refuse(ReturnCode::SYSTEM_FAILURE),
            };
            let code = match checks::auth_card_pin(matches) {
                Ok(()) => ReturnCode::SUCCESS,
                Err(HostError::Refused(code)) => code,
                Err(e) => return Err(e),
            };
            let failures = if matches {
                0
            } else {
                card.pin_failures.saturating_add(1)
            };
            if failures != card.pin_failures {
                card.pin_failures = failures;
                if failures >= MAX_PIN_FAILURES {
                    card.state = AuthCardState::Locked;
                }
                card.changed_at = now;
                ra::update(tx.conn, &card)?;
            }
            let operator = if matches {
                u32::try_from(card.operator_id).unwrap_or(0)
            } else {
                0
            };
            CheckOutcome {
                code,
                operator,
                tries_left: tries_left(&card),
            }
        }
    };
    ra::use_insert(
        tx.conn,
        &AuthCardUse {
            card_no: req.card_no,
            device,
            function: req.function,
            terminal_time: req.time,
            at: now,
            code: outcome.code,
        },
    )?;
    Ok(outcome)
}

/// The audit's findings on authorisation cards (R-B11): a normal card at or past the wrong-PIN
/// limit, a locked card below it (each lock is the limit's doing and only a PIN reset clears
/// the count), and a card no `authcard.issue` journal entry names (every card is issued by a
/// person, R-B1).
pub fn audit(conn: &mut dyn crate::sql::Conn, limit: u32) -> Result<Vec<String>> {
    let max = i64::from(MAX_PIN_FAILURES);
    let mut out = Vec::new();
    for r in conn.query(
        "SELECT no, state, pin_failures FROM auth_cards \
         WHERE (state = 'normal' AND pin_failures >= $1) \
            OR (state = 'locked' AND pin_failures < $1) ORDER BY no LIMIT $2",
        &[max.into(), i64::from(limit).into()],
    )? {
        out.push(format!(
            "authcard:{} is {} with {} wrong PINs",
            r.int(0)?,
            r.text(1)?,
            r.int(2)?
        ));
    }
    for r in conn.query(
        "SELECT a.no FROM auth_cards a WHERE NOT EXISTS (SELECT 1 FROM journal j \
         WHERE j.operation = 'authcard.issue' AND j.target = 'authcard:' || CAST(a.no AS TEXT)) \
         ORDER BY a.no LIMIT $1",
        &[i64::from(limit).into()],
    )? {
        out.push(format!(
            "authcard:{} has no issue in the journal",
            r.int(0)?
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ykt_proto::AuthFunction;

    fn card(state: AuthCardState) -> AuthCard {
        let t = |d| {
            chrono::NaiveDate::from_ymd_opt(2026, 3, d)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or_default()
        };
        AuthCard {
            no: 900_001,
            operator_id: 1,
            state,
            valid_from: t(1),
            valid_until: t(31),
            functions: AuthFunctions::NONE.with(AuthFunction::Reversal),
            pin_hash: String::new(),
            pin_failures: 0,
            issued_by: 1,
            issued_at: t(1),
            changed_at: t(1),
        }
    }

    fn code_of(state: AuthCardState) -> Option<u8> {
        let c = card(state);
        match checks::auth_card(Some(&c), AuthFunction::Reversal, c.valid_from) {
            Ok(()) => None,
            Err(HostError::Refused(code)) => Some(code.0),
            Err(_) => Some(0),
        }
    }

    proptest! {
        // R-B11: any sequence of card-office actions keeps the lifecycle's rules: cancelled is
        // final, only unfreeze returns to normal and only from frozen, no action locks a card
        // (only wrong PINs do), and each state answers its own code (81, 82, 84, 87; normal 0).
        #[test]
        fn lifecycle_state_machine(actions in proptest::collection::vec(0usize..5, 0..40)) {
            let mut state = AuthCardState::Normal;
            for i in actions {
                let action = Action::ALL[i];
                let before = state;
                if let Some(next) = action.next(state) {
                    prop_assert_ne!(before, AuthCardState::Cancelled);
                    prop_assert_ne!(next, AuthCardState::Locked);
                    if next == AuthCardState::Normal {
                        prop_assert_eq!((action, before), (Action::Unfreeze, AuthCardState::Frozen));
                    }
                    state = next;
                }
                let expected = match state {
                    AuthCardState::Normal => None,
                    AuthCardState::Lost => Some(81),
                    AuthCardState::Frozen => Some(82),
                    AuthCardState::Locked => Some(83),
                    AuthCardState::Disabled => Some(84),
                    AuthCardState::Cancelled => Some(87),
                };
                prop_assert_eq!(code_of(state), expected);
            }
        }
    }
}
