//! Prometheus metrics: requests by message type and return code, debit latency, connected
//! terminals. One recorder per process (tests start several servers in one process).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
                    Ok(()) => Some(handle),
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

/// One request answered: its message type and return code.
pub(crate) fn request(kind: &'static str, code: u8) {
    metrics::counter!("ykt_requests_total", "type" => kind, "code" => code.to_string())
        .increment(1);
}

/// A frame refused before it reached a handler (bad MAC, replay, garbage, …).
pub(crate) fn refused(reason: &'static str) {
    metrics::counter!("ykt_frames_refused_total", "reason" => reason).increment(1);
}

pub(crate) fn debit_latency(secs: f64) {
    metrics::histogram!("ykt_debit_seconds").record(secs);
}

pub(crate) fn terminals(delta: f64) {
    metrics::gauge!("ykt_connected_terminals").increment(delta);
}

/// Records held in the exception queue and not resolved yet (R-B3).
pub(crate) fn exceptions_open(n: i64) {
    metrics::gauge!("ykt_exceptions_open").set(n as f64);
}

pub(crate) fn connections(delta: f64) {
    metrics::gauge!("ykt_connections").increment(delta);
}
