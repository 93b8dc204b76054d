//! The end-of-run check: what the host booked for the load generator's merchant against
//! what the load generator was told. A record acknowledged with code 0 but not booked is
//! lost; anything booked beyond what was sent (acknowledged or unanswered) is booked twice.

use serde_json::Value;

use super::stats::{LoadTally, Tally};

/// The host's books for one merchant (`GET /api/v1/bulk/books/{merchant}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBooks {
    pub records: u64,
    pub amount: i64,
    pub merchant_balance: i64,
}

impl HostBooks {
    pub fn from_json(v: &Value) -> Option<HostBooks> {
        Some(HostBooks {
            records: v.get("booked_records")?.as_u64()?,
            amount: v.get("booked_amount")?.as_i64()?,
            merchant_balance: v.get("merchant_balance")?.as_i64()?,
        })
    }
}

/// Every discrepancy found; empty when the books agree.
pub fn compare(acked: Tally, uncertain: Tally, host: HostBooks) -> Vec<String> {
    let mut problems = Vec::new();
    if host.records < acked.records || host.amount < acked.amount {
        problems.push(format!(
            "LOST: the host booked {} records / {} fen, but acknowledged {} records / {} fen",
            host.records, host.amount, acked.records, acked.amount
        ));
    }
    let (max_records, max_amount) = (
        acked.records + uncertain.records,
        acked.amount + uncertain.amount,
    );
    if host.records > max_records || host.amount > max_amount {
        problems.push(format!(
            "DOUBLE-BOOKED: the host booked {} records / {} fen, more than the {} records / {} fen sent",
            host.records, host.amount, max_records, max_amount
        ));
    }
    if host.merchant_balance != host.amount {
        problems.push(format!(
            "LEDGER: the merchant account holds {} fen, its booked records say {} fen",
            host.merchant_balance, host.amount
        ));
    }
    problems
}

/// The loads of the run's devices and the accounts loads pass through, as the host holds
/// them (the `loads` part of the books route).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBooks {
    /// (count, amount) by purpose and state: `cash_posted`, `pickup_pending`, …
    pub by_state: std::collections::BTreeMap<String, (u64, i64)>,
    pub cash_tallied: i64,
    pub pending_top_ups: i64,
    pub topup_pending_account: i64,
    pub waiting_left: i64,
    pub waiting_account: i64,
    pub subsidy_left: i64,
    pub subsidy_account: i64,
}

impl LoadBooks {
    pub fn from_json(v: &Value) -> Option<LoadBooks> {
        let int = |k: &str| v.get(k)?.as_i64();
        let mut by_state = std::collections::BTreeMap::new();
        for (k, x) in v.get("by_state")?.as_object()? {
            by_state.insert(
                k.clone(),
                (x.get("count")?.as_u64()?, x.get("amount")?.as_i64()?),
            );
        }
        Some(LoadBooks {
            by_state,
            cash_tallied: int("cash_tallied")?,
            pending_top_ups: int("pending_top_ups")?,
            topup_pending_account: int("topup_pending_account")?,
            waiting_left: int("waiting_left")?,
            waiting_account: int("waiting_account")?,
            subsidy_left: int("subsidy_left")?,
            subsidy_account: int("subsidy_account")?,
        })
    }

    fn get(&self, key: &str) -> Tally {
        let (records, amount) = self.by_state.get(key).copied().unwrap_or_default();
        Tally { records, amount }
    }
}

impl std::fmt::Display for LoadBooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p, v, pe, k) = (
            self.get("cash_posted"),
            self.get("cash_voided"),
            self.get("cash_pending"),
            self.get("pickup_posted"),
        );
        write!(
            f,
            "top-ups posted {} / {} fen, voided {}, pending {}; cash tallied {} fen; pick-ups posted {} / {} fen; \
             topup:pending {} fen (pending top-ups {}), waiting {} (left {}), subsidy {} (left {})",
            p.records,
            p.amount,
            v.records,
            pe.records,
            self.cash_tallied,
            k.records,
            k.amount,
            self.topup_pending_account,
            self.pending_top_ups,
            self.waiting_account,
            self.waiting_left,
            self.subsidy_account,
            self.subsidy_left
        )
    }
}

/// Every discrepancy between the loads loadgen made and the host's books (R-B4, R-B5).
pub fn compare_loads(top_ups: LoadTally, pick_ups: LoadTally, host: &LoadBooks) -> Vec<String> {
    let mut problems = Vec::new();
    let mut within = |what: &str, host: Tally, sure: Tally, doubt: Tally| {
        if host.records < sure.records
            || host.amount < sure.amount
            || host.records > sure.records + doubt.records
            || host.amount > sure.amount + doubt.amount
        {
            problems.push(format!(
                "LOADS: the host has {what} {} / {} fen, loadgen {} / {} fen (+ {} / {} fen in doubt)",
                host.records, host.amount, sure.records, sure.amount, doubt.records, doubt.amount
            ));
        }
    };
    within(
        "top-ups posted",
        host.get("cash_posted"),
        top_ups.posted,
        top_ups.uncertain,
    );
    within(
        "top-ups voided",
        host.get("cash_voided"),
        top_ups.voided,
        top_ups.uncertain,
    );
    within(
        "pick-ups posted",
        host.get("pickup_posted"),
        pick_ups.posted,
        pick_ups.uncertain,
    );
    let none = Tally::default();
    within(
        "top-ups pending",
        host.get("cash_pending"),
        none,
        top_ups.uncertain,
    );
    within(
        "pick-ups pending (claimed)",
        host.get("pickup_pending"),
        none,
        pick_ups.uncertain,
    );
    if host.cash_tallied != host.get("cash_posted").amount {
        problems.push(format!(
            "CASH: the shifts tallied {} fen, the posted cash top-ups are {} fen",
            host.cash_tallied,
            host.get("cash_posted").amount
        ));
    }
    for (account, holds, rows) in [
        (
            "topup:pending",
            host.topup_pending_account,
            host.pending_top_ups,
        ),
        ("waiting", host.waiting_account, host.waiting_left),
        ("subsidy", host.subsidy_account, host.subsidy_left),
    ] {
        if holds != rows {
            problems.push(format!(
                "LEDGER: the {account} account holds {holds} fen, its loads say {rows} fen"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(records: u64, amount: i64) -> Tally {
        Tally { records, amount }
    }

    fn books(records: u64, amount: i64, merchant_balance: i64) -> HostBooks {
        HostBooks {
            records,
            amount,
            merchant_balance,
        }
    }

    // R-H6, R-P5.9: every acknowledged record booked exactly once.
    #[test]
    fn agreeing_books_pass() {
        assert!(compare(t(10, 500), t(0, 0), books(10, 500, 500)).is_empty());
        // Unanswered requests may or may not have been booked.
        assert!(compare(t(10, 500), t(2, 30), books(11, 510, 510)).is_empty());
        assert!(compare(t(10, 500), t(2, 30), books(12, 530, 530)).is_empty());
    }

    #[test]
    fn a_lost_record_fails() {
        let p = compare(t(10, 500), t(0, 0), books(9, 450, 450));
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("LOST"));
    }

    #[test]
    fn a_double_booking_fails() {
        let p = compare(t(10, 500), t(1, 5), books(12, 560, 560));
        assert!(p[0].starts_with("DOUBLE"));
        // Same records, money moved twice in the ledger.
        let p = compare(t(10, 500), t(0, 0), books(10, 500, 1000));
        assert!(p[0].starts_with("LEDGER"));
    }

    fn loads(posted: (u64, i64), pending: (u64, i64), cash: i64) -> LoadBooks {
        let mut b = LoadBooks {
            cash_tallied: cash,
            ..LoadBooks::default()
        };
        b.by_state.insert("cash_posted".into(), posted);
        b.by_state.insert("cash_pending".into(), pending);
        b
    }

    fn top_ups(posted: Tally, uncertain: Tally) -> LoadTally {
        LoadTally {
            posted,
            voided: Tally::default(),
            uncertain,
        }
    }

    // R-B4: every confirmed top-up posted once, its cash tallied, nothing left pending.
    #[test]
    fn agreeing_loads_pass() {
        let none = LoadTally::default();
        let b = loads((2, 300), (0, 0), 300);
        assert!(compare_loads(top_ups(t(2, 300), t(0, 0)), none, &b).is_empty());
        // A top-up in doubt may be posted or still pending.
        let b = loads((2, 300), (1, 50), 300);
        assert!(compare_loads(top_ups(t(2, 300), t(1, 50)), none, &b).is_empty());
    }

    // R-B4: a lost top-up, one left pending, cash not tallied, an account off.
    #[test]
    fn disagreeing_loads_fail() {
        let none = LoadTally::default();
        let tu = top_ups(t(2, 300), t(0, 0));
        assert!(compare_loads(tu, none, &loads((1, 100), (0, 0), 100))[0].starts_with("LOADS"));
        assert!(compare_loads(tu, none, &loads((2, 300), (1, 9), 300))[0].starts_with("LOADS"));
        assert!(compare_loads(tu, none, &loads((2, 300), (0, 0), 200))[0].starts_with("CASH"));
        let mut b = loads((2, 300), (0, 0), 300);
        b.waiting_account = 5;
        assert!(compare_loads(tu, none, &b)[0].starts_with("LEDGER"));
    }

    #[test]
    fn parses_the_route_answer() {
        let v = serde_json::json!({"booked_records": 3, "booked_amount": 9, "merchant_balance": 9});
        assert_eq!(HostBooks::from_json(&v), Some(books(3, 9, 9)));
        assert_eq!(HostBooks::from_json(&serde_json::json!({})), None);
    }
}
