//! Prometheus metrics: requests by message type and return code, debit latency, connected
//! terminals, store writer jobs and batches. One recorder per process (tests start several
//! servers in one process).
//!
//! Every family is a [`Family`] in [`FAMILIES`]: installing the recorder describes and
//! registers each one, so `/metrics` lists all of them (`# HELP`, `# TYPE`, a zero series)
//! before the first request. Record only through a `Family` constant, never a bare name.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// What a family measures, as Prometheus types it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The word of the `# TYPE` line.
    pub fn prometheus(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family: its name, type, help text and the labels of the zero series it shows
/// from the start.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub initial_labels: &'static [(&'static str, &'static str)],
}

const REQUESTS: Family = Family {
    name: "ykt_requests_total",
    kind: Kind::Counter,
    help: "Terminal requests answered, by message type and return code.",
    initial_labels: &[("type", "sign_in"), ("code", "0")],
};
const REFUSED: Family = Family {
    name: "ykt_frames_refused_total",
    kind: Kind::Counter,
    help: "Frames refused before a handler (bad MAC, replay, malformed, ...), by reason.",
    initial_labels: &[("reason", "bad_mac")],
};
const DEBIT_SECONDS: Family = Family {
    name: "ykt_debit_seconds",
    kind: Kind::Histogram,
    help: "Online debit latency from request to committed answer, in seconds.",
    initial_labels: &[],
};
const TERMINALS: Family = Family {
    name: "ykt_connected_terminals",
    kind: Kind::Gauge,
    help: "Terminals signed in on this process.",
    initial_labels: &[],
};
const CONNECTIONS: Family = Family {
    name: "ykt_connections",
    kind: Kind::Gauge,
    help: "Open terminal TCP connections.",
    initial_labels: &[],
};
/// Counted in the database at each scrape (the queue is shared by every process).
const EXCEPTIONS_OPEN: Family = Family {
    name: "ykt_exceptions_open",
    kind: Kind::Gauge,
    help: "Records held in the exception queue and not resolved yet (R-B3).",
    initial_labels: &[],
};
/// Counted in the database at each scrape (R-B10, `domain::reconcile`).
const RECONCILE_UNEXPLAINED: Family = Family {
    name: "ykt_reconcile_unexplained",
    kind: Kind::Gauge,
    help: "Cards whose records and account disagree without explanation (missing records, card higher or lower) for longer than the alarm's days or by at least its amount, as the last reconciliation run found.",
    initial_labels: &[],
};
const WRITER_JOBS: Family = Family {
    name: "ykt_store_writer_jobs_total",
    kind: Kind::Counter,
    help: "Jobs run by the store's writers.",
    initial_labels: &[],
};
const WRITER_BATCHES: Family = Family {
    name: "ykt_store_writer_batches_total",
    kind: Kind::Counter,
    help: "Batches (transactions) run by the store's writers.",
    initial_labels: &[],
};

/// Copied from the store at each scrape, like the writer totals (#16).
const WRITER_BUSY: Family = Family {
    name: "ykt_store_writer_busy_microseconds_total",
    kind: Kind::Counter,
    help: "Time the store's writers spent running batches, in microseconds; its rate over 1e6 times ykt_store_writers is their busy share.",
    initial_labels: &[],
};
const WRITERS: Family = Family {
    name: "ykt_store_writers",
    kind: Kind::Gauge,
    help: "Writer threads (database connections) of the store; SQLite has one.",
    initial_labels: &[],
};
const QUEUE_DEPTH: Family = Family {
    name: "ykt_store_queue_depth",
    kind: Kind::Gauge,
    help: "Jobs waiting for a store writer; a full queue answers terminals code 1.",
    initial_labels: &[],
};
const BATCH_SECONDS: Family = Family {
    name: "ykt_store_batch_seconds",
    kind: Kind::Histogram,
    help: "Time a writer took for one batch of jobs (one transaction, retries included), in seconds.",
    initial_labels: &[],
};
const COMMIT_SECONDS: Family = Family {
    name: "ykt_store_commit_seconds",
    kind: Kind::Histogram,
    help: "Time of a writer's COMMIT, the write-ahead log's fsync, in seconds.",
    initial_labels: &[],
};
/// Counted in the database at each scrape, like the exception queue: every process on one
/// database shows the same numbers.
const TERMINALS_SILENT: Family = Family {
    name: "ykt_terminals_silent",
    kind: Kind::Gauge,
    help: "Enabled terminals not heard from (heartbeat or status report) for 10 minutes or more.",
    initial_labels: &[],
};
const BLACKLIST_VERSION: Family = Family {
    name: "ykt_blacklist_version",
    kind: Kind::Gauge,
    help: "The system blacklist's current version.",
    initial_labels: &[],
};
const BLACKLIST_BEHIND: Family = Family {
    name: "ykt_terminals_blacklist_behind",
    kind: Kind::Gauge,
    help: "Enabled terminals whose last reported blacklist version is older than the current one.",
    initial_labels: &[],
};
const BLACKLIST_LAG: Family = Family {
    name: "ykt_blacklist_lag_versions",
    kind: Kind::Gauge,
    help: "Versions the furthest-behind enabled terminal's blacklist lags the current one, as last reported.",
    initial_labels: &[],
};

/// Set by `ykt serve --backup-dir` (#16): alarm when it falls behind by more than the
/// interval.
const BACKUP_LAST_SUCCESS: Family = Family {
    name: "ykt_backup_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    help: "When the last scheduled backup was written and audited clean, in Unix seconds (0: none yet).",
    initial_labels: &[],
};
const BACKUP_FAILURES: Family = Family {
    name: "ykt_backup_failures_total",
    kind: Kind::Counter,
    help: "Scheduled backups that failed (copy, audit or rotation).",
    initial_labels: &[],
};

/// Every family this process exports.
pub const FAMILIES: &[Family] = &[
    REQUESTS,
    REFUSED,
    DEBIT_SECONDS,
    TERMINALS,
    CONNECTIONS,
    EXCEPTIONS_OPEN,
    RECONCILE_UNEXPLAINED,
    WRITER_JOBS,
    WRITER_BATCHES,
    WRITER_BUSY,
    WRITERS,
    QUEUE_DEPTH,
    BATCH_SECONDS,
    COMMIT_SECONDS,
    TERMINALS_SILENT,
    BLACKLIST_VERSION,
    BLACKLIST_BEHIND,
    BLACKLIST_LAG,
    BACKUP_LAST_SUCCESS,
    BACKUP_FAILURES,
];

#[derive(Clone)]
pub(crate) struct Metrics {
    handle: Option<PrometheusHandle>,
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

impl Metrics {
    pub(crate) fn install() -> Metrics {
        let handle = HANDLE
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets(&[
                        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
                    ])
                    .ok()?
                    .build_recorder();
                let handle = recorder.handle();
                match metrics::set_global_recorder(recorder) {
                    Ok(()) => {
                        FAMILIES.iter().for_each(register);
                        Some(handle)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
                        None
                    }
                }
            })
            .clone();
        Metrics { handle }
    }

    pub(crate) fn render(&self) -> String {
        self.handle.as_ref().map(|h| h.render()).unwrap_or_default()
    }
}

/// Describes the family and creates its zero series, so it renders before any event.
fn register(f: &Family) {
    let labels: Vec<metrics::Label> = f
        .initial_labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, *v))
        .collect();
    match f.kind {
        Kind::Counter => {
            metrics::describe_counter!(f.name, f.help);
            metrics::counter!(f.name, labels).increment(0);
        }
        Kind::Gauge => {
            metrics::describe_gauge!(f.name, f.help);
            metrics::gauge!(f.name, labels).increment(0.0);
        }
        Kind::Histogram => {
            metrics::describe_histogram!(f.name, f.help);
            let _ = metrics::histogram!(f.name, labels);
        }
    }
}

/// One request answered: its message type and return code.
pub(crate) fn request(kind: &'static str, code: u8) {
    metrics::counter!(REQUESTS.name, "type" => kind, "code" => code.to_string()).increment(1);
}

/// A frame refused before it reached a handler (bad MAC, replay, garbage, …).
pub(crate) fn refused(reason: &'static str) {
    metrics::counter!(REFUSED.name, "reason" => reason).increment(1);
}

pub(crate) fn debit_latency(secs: f64) {
    metrics::histogram!(DEBIT_SECONDS.name).record(secs);
}

pub(crate) fn terminals(delta: f64) {
    metrics::gauge!(TERMINALS.name).increment(delta);
}

/// Records held in the exception queue and not resolved yet (R-B3).
pub(crate) fn exceptions_open(n: i64) {
    metrics::gauge!(EXCEPTIONS_OPEN.name).set(n as f64);
}

pub(crate) fn reconcile_unexplained(n: i64) {
    metrics::gauge!(RECONCILE_UNEXPLAINED.name).set(n as f64);
}

pub(crate) fn connections(delta: f64) {
    metrics::gauge!(CONNECTIONS.name).increment(delta);
}

/// The store's writer totals, copied in when `/metrics` is rendered (the store counts them
/// itself).
pub(crate) fn writer_totals(stats: crate::store::WriterStats) {
    metrics::counter!(WRITER_JOBS.name).absolute(stats.jobs);
    metrics::counter!(WRITER_BATCHES.name).absolute(stats.batches);
    metrics::counter!(WRITER_BUSY.name).absolute(stats.busy_micros);
    metrics::gauge!(WRITERS.name).set(stats.writers as f64);
    metrics::gauge!(QUEUE_DEPTH.name).set(stats.queued as f64);
}

/// A writer's batch ran (called by the store's writer threads; without a recorder, nothing).
pub(crate) fn store_batch(took: std::time::Duration) {
    metrics::histogram!(BATCH_SECONDS.name).record(took.as_secs_f64());
}

/// A writer's COMMIT returned.
pub(crate) fn store_commit(took: std::time::Duration) {
    metrics::histogram!(COMMIT_SECONDS.name).record(took.as_secs_f64());
}

/// The terminals' health as the database holds it, at a scrape.
pub(crate) fn terminal_health(h: &super::monitoring::TerminalHealth) {
    metrics::gauge!(TERMINALS_SILENT.name).set(h.silent as f64);
    metrics::gauge!(BLACKLIST_VERSION.name).set(h.blacklist_version as f64);
    metrics::gauge!(BLACKLIST_BEHIND.name).set(h.blacklist_behind as f64);
    metrics::gauge!(BLACKLIST_LAG.name).set(h.blacklist_lag as f64);
}

/// A scheduled backup was written and audited clean at `unix_secs`.
pub fn backup_succeeded(unix_secs: u64) {
    metrics::gauge!(BACKUP_LAST_SUCCESS.name).set(unix_secs as f64);
}

/// A scheduled backup failed.
pub fn backup_failed() {
    metrics::counter!(BACKUP_FAILURES.name).increment(1);
}
