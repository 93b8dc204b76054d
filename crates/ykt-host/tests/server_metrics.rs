//! `/metrics` of a fresh server lists every metric family before the first request.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use ykt_host::server::METRIC_FAMILIES;

/// The `# TYPE` lines of a Prometheus text: (family, type).
fn types(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

// issue 10.9
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_server_lists_every_metric_family() {
    let w = sqlite().await;
    let http = w.server.http_addr();
    let (status, text) = support::http(http, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    let listed = types(&text);
    for f in METRIC_FAMILIES {
        assert!(
            text.contains(&format!("# HELP {} {}", f.name, f.help)),
            "{} has no HELP line in:\n{text}",
            f.name
        );
        assert!(
            listed.contains(&(f.name.to_owned(), f.kind.prometheus().to_owned())),
            "{} is not typed {} in:\n{text}",
            f.name,
            f.kind.prometheus()
        );
    }

    // After traffic, every family shown is one of the list: none is recorded by a bare name.
    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    t.sign_in().await;
    t.request(debit(w.cards[0], 0, 10_000, 100, 1))
        .await
        .unwrap();
    let (_, text) = support::http(http, "GET", "/metrics", None, "").await;
    for (name, _) in types(&text) {
        assert!(
            METRIC_FAMILIES.iter().any(|f| f.name == name),
            "{name} is not in METRIC_FAMILIES"
        );
    }
    w.server.shutdown().await;
}
