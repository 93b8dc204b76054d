//! Several `ykt serve` processes on one database (R-H7), and checks shared by the PostgreSQL
//! and scale-out end-to-end suites. Included with `#[path]` by tests that also declare
//! `mod serve_support;` and `mod support;`.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::serve_support::{Serve, ykt};
use crate::support::{Pos, audit};

/// Starts `ykt serve` on ports 0 as FEP `fep`, on `database` (SQLite under the data
/// directory when `None`), seeding the demo campus when `demo`. `prepare` runs on the fresh
/// data directory before the process starts (e.g. to copy the system key file into it).
pub fn start_host(
    database: Option<&str>,
    fep: u32,
    demo: bool,
    prepare: impl FnOnce(&Path),
) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    prepare(&data);
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut cmd = ykt();
    cmd.arg("serve")
        .arg("--data")
        .arg(&data)
        .args(["--terminal-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--fep-id", &fep.to_string()])
        .stdout(Stdio::piped())
        .stderr(log);
    if demo {
        cmd.arg("--demo");
    }
    if let Some(db) = database {
        cmd.args(["--database", db]);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
            panic!("ykt serve (FEP {fep}) exited before it was ready:\n{log}");
        }
        if line.starts_with("ykt serve ready") {
            break;
        }
    }
    // Drain stdout so the server can never block on it.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let addr: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("serve.addr")).unwrap()).unwrap();
    Serve {
        terminal: addr["terminal"].as_str().unwrap().parse().unwrap(),
        http: addr["http"].as_str().unwrap().parse().unwrap(),
        child,
        dir,
        database: database.map(str::to_owned),
    }
}

/// Makes `device` (provisioned by the demo of `seeded`) a terminal of `host`: its
/// provisioning file in `host`'s data directory, with `host`'s terminal address.
pub fn move_device(seeded: &Serve, host: &Serve, device: &str) {
    let mut prov = seeded.provisioning(device);
    prov["host"] = Value::String(host.terminal.to_string());
    let dir = host.data().join("devices");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{device}.json")),
        serde_json::to_string_pretty(&prov).unwrap(),
    )
    .unwrap();
}

/// The demo's MF1 card image `no`.
pub fn card(s: &Serve, no: u32) -> PathBuf {
    s.data().join("cards").join(format!("{no}.mf1"))
}

/// The system's balance of card `no` (`ykt card info`).
pub fn host_balance(s: &Serve, no: u32) -> i64 {
    s.cli_json(&["card", "info", &no.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

/// What `ykt card show` reads from an MF1 image: the main wallet's balance in fen and
/// whether the lock flag (R-F4.15) is set.
pub fn card_state(s: &Serve, no: u32) -> (i64, bool) {
    let o = ykt()
        .args(["card", "show"])
        .arg(card(s, no))
        .arg("--keys")
        .arg(s.data().join("keys"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let locked = text.contains("已锁定");
    let main = text
        .lines()
        .find(|l| l.contains("主钱包块 (main): 卡余额 "))
        .unwrap_or_else(|| panic!("no main wallet in:\n{text}"));
    let yuan = main
        .split("卡余额 ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    let (whole, cents) = yuan.split_once('.').unwrap();
    let fen = whole.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap();
    (fen, locked)
}

/// The day's report (`ykt report daily`), totals for every merchant.
pub fn report_total(s: &Serve) -> Value {
    s.cli_json(&["report", "daily"])["total"].clone()
}

/// SIGTERM the hosts (all must exit 0), then `ykt audit` on their database must pass.
pub fn stop_all_and_audit(hosts: Vec<Serve>) {
    let db = hosts[0].database.clone();
    let mut dirs = Vec::new();
    for h in hosts {
        dirs.push(h.stop());
    }
    audit(&dirs[0].path().join("data"), db.as_deref());
}

/// Lets `ms` of virtual time pass in 1 s steps, waiting (in real time) after each step for
/// the answer to every request the terminal sent meanwhile: one big `advance` would also fire
/// the 5 s timeout of a heartbeat sent on the way, as if the host had not answered.
pub fn pass_time(pos: &mut Pos, ms: u64) {
    for _ in 0..ms.div_ceil(1_000) {
        let mut from = pos.seen.len();
        pos.advance(1_000);
        loop {
            let sent: Vec<String> = pos.seen[from..]
                .iter()
                .filter_map(|l| l["sent"].as_str().map(str::to_owned))
                .collect();
            from = pos.seen.len();
            if sent.is_empty() {
                break;
            }
            for m in sent {
                let answer = serde_json::json!({"received": format!("{m}_response")});
                pos.ok(serde_json::json!({"cmd":"wait","for":"line","match":answer,"timeout_ms":10000}));
            }
        }
    }
}
