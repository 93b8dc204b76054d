//! deploy/grafana/ykt.json and deploy/prometheus/alerts.yml (#16): every metric they name is
//! one this process exports, and Prometheus accepts the rules (`promtool check rules`; CI
//! installs Debian's `prometheus` package for it: scripts/test).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use ykt_host::server::{METRIC_FAMILIES, MetricKind};

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// The `ykt_…` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("ykt_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// A name an expression may use for a family: itself, or a histogram's series.
fn exported(name: &str) -> bool {
    METRIC_FAMILIES.iter().any(|f| {
        f.name == name
            || (f.kind == MetricKind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(f.name)))
    })
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/ykt.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = d["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

// #16: the dashboard and the alerts name only exported metrics, and between them cover
// what an operator alarms on.
#[test]
fn dashboard_and_alerts_name_only_exported_metrics() {
    let (dash, alerts) = (dashboard_exprs(), alert_exprs());
    assert!(alerts.len() >= 10, "{alerts:?}");
    for expr in dash.iter().chain(&alerts) {
        for name in metric_names(expr) {
            assert!(
                exported(&name),
                "{name} (in `{expr}`) is not in METRIC_FAMILIES"
            );
        }
    }
    let alarmed: Vec<String> = alerts.iter().flat_map(|e| metric_names(e)).collect();
    // R-B10: card-vs-account disagreements past the alarm's days or amount.
    assert!(
        alarmed.iter().any(|n| n == "ykt_reconcile_unexplained"),
        "no alert on ykt_reconcile_unexplained"
    );
    for must in [
        "ykt_exceptions_open",
        "ykt_terminals_silent",
        "ykt_blacklist_lag_versions",
        "ykt_store_commit_seconds_bucket",
        "ykt_store_batch_seconds_bucket",
        "ykt_store_queue_depth",
        "ykt_store_writer_busy_microseconds_total",
    ] {
        assert!(alarmed.iter().any(|n| n == must), "no alert on {must}");
        assert!(
            dash.iter()
                .any(|e| metric_names(e).iter().any(|n| n == must)),
            "no dashboard panel on {must}"
        );
    }
}

// #16: Prometheus itself accepts the rule file.
#[test]
fn promtool_accepts_the_alert_rules() {
    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(deploy("prometheus/alerts.yml"))
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("promtool not runnable ({e}): apt-get install prometheus; not checked here");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}
