//! The end-of-run check: what the host booked for the load generator's merchant against
//! what the load generator was told. A record acknowledged with code 0 but not booked is
//! lost; anything booked beyond what was sent (acknowledged or unanswered) is booked twice.

use serde_json::Value;

use super::stats::Tally;

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

    #[test]
    fn parses_the_route_answer() {
        let v = serde_json::json!({"booked_records": 3, "booked_amount": 9, "merchant_balance": 9});
        assert_eq!(HostBooks::from_json(&v), Some(books(3, 9, 9)));
        assert_eq!(HostBooks::from_json(&serde_json::json!({})), None);
    }
}
