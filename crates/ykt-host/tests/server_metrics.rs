//! `/metrics` of a fresh server lists every metric family before the first request.
#![allow(clippy::unwrap_used)]

#[path = "server/support.rs"]
mod support;

use support::*;
use ykt_host::server::METRIC_FAMILIES;
use ykt_proto::{HeartbeatRequest, Message, ReturnCode};

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

/// The value of an unlabelled series (`name value`) in a Prometheus text.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn scrape(w: &World) -> String {
    let (status, text) = support::http(w.server.http_addr(), "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    text
}

fn heartbeat(blacklist_version: u32) -> Message {
    Message::HeartbeatRequest(HeartbeatRequest {
        clock: time(),
        blacklist_version,
        params_version: 1,
        pending_records: 0,
    })
}

// #16 (metrics): the store's writer shows its batches, commits (fsync), busy time and queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_latency_busy_time_and_queue_are_measured() {
    let w = sqlite().await;
    let before = scrape(&w).await;
    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    t.sign_in().await;
    let Message::DebitResponse(d) = t
        .request(debit(w.cards[0], 0, 10_000, 100, 1))
        .await
        .unwrap()
    else {
        panic!("not a debit response")
    };
    assert_eq!(d.code, ReturnCode::SUCCESS);
    // The connection's own jobs (status report, clock) may still wait: the queue empties.
    let mut after = scrape(&w).await;
    for _ in 0..100 {
        if value(&after, "ykt_store_queue_depth") == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(&w).await;
    }
    assert_eq!(value(&after, "ykt_store_queue_depth"), 0.0, "{after}");
    assert_eq!(value(&after, "ykt_store_writers"), 1.0);
    let grew = |name: &str| value(&after, name) > value(&before, name);
    assert!(grew("ykt_store_batch_seconds_count"), "{after}");
    assert!(grew("ykt_store_commit_seconds_count"), "{after}");
    assert!(grew("ykt_store_writer_busy_microseconds_total"), "{after}");
    // A commit is part of its batch. A batch records its commit before its own time, so a
    // scrape while the connection's last job is still in its batch may see the commit alone:
    // wait for the batch to end (a commit outside any batch never catches up).
    let commit_within_batch = |m: &str| {
        value(m, "ykt_store_commit_seconds_sum") <= value(m, "ykt_store_batch_seconds_sum")
    };
    for _ in 0..100 {
        if commit_within_batch(&after) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(&w).await;
    }
    assert!(commit_within_batch(&after), "{after}");
    w.server.shutdown().await;
}

// #16 (metrics): terminals not heard from, and how far their blacklists lag, counted in the
// database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_terminals_and_blacklist_lag_are_counted_sqlite() {
    terminal_health(sqlite().await).await;
}

// #16: the same query on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_terminals_and_blacklist_lag_are_counted_postgres() {
    if let Some(w) = postgres().await {
        terminal_health(w).await;
    }
}

async fn terminal_health(w: World) {
    let fresh = scrape(&w).await;
    let silent = value(&fresh, "ykt_terminals_silent");
    assert!(silent >= 1.0, "{fresh}");
    assert_eq!(value(&fresh, "ykt_terminals_blacklist_behind"), 0.0);

    let mut t = TestTerminal::connect(w.server.terminal_addr(), DEVICE).await;
    t.sign_in().await;
    t.request(heartbeat(0)).await.unwrap();
    let heard = scrape(&w).await;
    assert_eq!(value(&heard, "ykt_terminals_silent"), silent - 1.0);

    // Two changes to the list; the terminal still reports version 0.
    let card = w.cards[0];
    let version = w
        .store
        .execute(move |tx| {
            ykt_host::domain::blacklist::change(tx, card, true)?;
            ykt_host::domain::blacklist::change(tx, card, false)
        })
        .unwrap();
    t.request(heartbeat(0)).await.unwrap();
    let behind = scrape(&w).await;
    assert_eq!(value(&behind, "ykt_blacklist_version"), f64::from(version));
    assert_eq!(value(&behind, "ykt_terminals_blacklist_behind"), 1.0);
    assert_eq!(
        value(&behind, "ykt_blacklist_lag_versions"),
        f64::from(version)
    );

    t.request(heartbeat(version)).await.unwrap();
    let caught_up = scrape(&w).await;
    assert_eq!(value(&caught_up, "ykt_terminals_blacklist_behind"), 0.0);
    assert_eq!(value(&caught_up, "ykt_blacklist_lag_versions"), 0.0);
    w.server.shutdown().await;
}
