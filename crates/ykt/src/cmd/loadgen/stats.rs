//! What the load generator measures: a latency histogram per operation kind, outcomes by
//! return code and by transport failure, and the tally of money it was told is booked
//! (checked against the host's books at the end).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use ykt_proto::{Fen, ReturnCode};

/// Latencies are recorded in microseconds, 1 µs … 60 s, 3 significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Records the host acknowledged with code 0 (or that may have been booked without an
/// answer reaching us).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub amount: Fen,
}

impl Tally {
    pub fn add(&mut self, amount: Fen) {
        self.records += 1;
        self.amount += amount;
    }

    /// Takes back one `add(amount)` (a load whose fate became known).
    pub fn remove(&mut self, amount: Fen) {
        self.records = self.records.saturating_sub(1);
        self.amount -= amount;
    }

    fn merge(&mut self, o: Tally) {
        self.records += o.records;
        self.amount += o.amount;
    }
}

pub struct Stats {
    pub latency: Histogram<u64>,
    /// Operations that got an answer, by return code.
    pub codes: BTreeMap<u8, u64>,
    /// Operations that got no answer, by reason.
    pub failures: BTreeMap<&'static str, u64>,
    /// Acknowledged with code 0.
    pub acked: Tally,
    /// Sent, no answer: the host may or may not have booked them.
    pub uncertain: Tally,
    /// Round trips of load authorisations (0x08) alone.
    pub load_latency: Histogram<u64>,
    /// Loads onto cards, by purpose (`docs/loads.md`).
    pub top_ups: LoadTally,
    pub pick_ups: LoadTally,
}

/// What loadgen knows of its loads: written to the card and confirmed to the host
/// (`posted`: the upload or the card's next record acknowledged), voided (the card
/// pulled before the write), and those whose fate the host may not know (`uncertain`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadTally {
    pub posted: Tally,
    pub voided: Tally,
    pub uncertain: Tally,
}

impl LoadTally {
    fn merge(&mut self, o: LoadTally) {
        self.posted.merge(o.posted);
        self.voided.merge(o.voided);
        self.uncertain.merge(o.uncertain);
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            // Bounds are constants within the crate's limits: creation cannot fail.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
            codes: BTreeMap::new(),
            failures: BTreeMap::new(),
            acked: Tally::default(),
            uncertain: Tally::default(),
            load_latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
            top_ups: LoadTally::default(),
            pick_ups: LoadTally::default(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, took: Duration, code: ReturnCode) {
        self.latency.saturating_record(micros(took));
        *self.codes.entry(code.0).or_default() += 1;
    }

    /// A 0x08 round trip (also counted in `record`'s overall latency).
    pub fn record_load(&mut self, took: Duration) {
        self.load_latency.saturating_record(micros(took));
    }

    pub fn fail(&mut self, reason: &'static str) {
        *self.failures.entry(reason).or_default() += 1;
    }

    pub fn merge(&mut self, o: &Stats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&o.latency);
        for (k, v) in &o.codes {
            *self.codes.entry(*k).or_default() += v;
        }
        for (k, v) in &o.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.acked.merge(o.acked);
        self.uncertain.merge(o.uncertain);
        let _ = self.load_latency.add(&o.load_latency);
        self.top_ups.merge(o.top_ups);
        self.pick_ups.merge(o.pick_ups);
    }

    pub fn answered(&self) -> u64 {
        self.codes.values().sum()
    }

    /// Everything that was not code 0.
    pub fn errors(&self) -> u64 {
        self.codes
            .iter()
            .filter(|(c, _)| **c != 0)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.failures.values().sum::<u64>()
    }

    /// p50 / p99 / p999 / max, human-readable.
    pub fn percentiles(&self) -> String {
        percentiles(&self.latency)
    }

    /// The same of the 0x08 round trips.
    pub fn load_percentiles(&self) -> String {
        percentiles(&self.load_latency)
    }

    /// A quantile in milliseconds (0 without samples), for `--json`.
    pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
        if h.is_empty() {
            return 0.0;
        }
        h.value_at_quantile(q) as f64 / 1000.0
    }

    /// The error table: every non-zero code with its text, then transport failures.
    pub fn error_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (code, n) in &self.codes {
            if *code != 0 {
                out.push(format!(
                    "  code {code:>3} {:<16} {n}",
                    ReturnCode(*code).text()
                ));
            }
        }
        for (reason, n) in &self.failures {
            out.push(format!("  {reason:<25} {n}"));
        }
        out
    }
}

fn micros(took: Duration) -> u64 {
    u64::try_from(took.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

/// p50 / p99 / p999 / max of `h`, human-readable.
fn percentiles(h: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {:.2} ms · p99 {:.2} ms · p999 {:.2} ms · max {:.2} ms",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_codes_latencies_and_tallies() {
        let mut a = Stats::default();
        a.record(Duration::from_millis(2), ReturnCode(0));
        a.acked.add(100);
        let mut b = Stats::default();
        b.record(Duration::from_millis(4), ReturnCode(64));
        b.fail("timeout");
        b.uncertain.add(7);
        a.merge(&b);
        assert_eq!(a.answered(), 2);
        assert_eq!(a.errors(), 2);
        assert_eq!(
            a.acked,
            Tally {
                records: 1,
                amount: 100
            }
        );
        assert_eq!(
            a.uncertain,
            Tally {
                records: 1,
                amount: 7
            }
        );
        assert_eq!(a.latency.len(), 2);
        assert!(a.latency.max() >= 3_900);
        assert_eq!(a.error_lines().len(), 2);
    }

    #[test]
    fn absurd_latencies_are_clamped_not_lost() {
        let mut s = Stats::default();
        s.record(Duration::from_secs(3600), ReturnCode(0));
        s.record(Duration::ZERO, ReturnCode(0));
        assert_eq!(s.latency.len(), 2);
    }
}
