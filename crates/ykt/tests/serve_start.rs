//! Starting `ykt serve` (the real binary): ready means ready, a failed start leaves nothing.
#![allow(clippy::unwrap_used)]

mod serve_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serve_support::ykt;

/// Entries of a directory, sorted; `None` when it does not exist.
fn listing(p: &Path) -> Option<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .ok()?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Some(v)
}

fn serve(data: &Path, terminal: &str, http: &str) -> Command {
    let mut c = ykt();
    c.args(["serve", "--demo", "--data"]).arg(data).args([
        "--terminal-listen",
        terminal,
        "--http-listen",
        http,
    ]);
    c
}

// issue 10.10: a port in use → non-zero exit, a clear message, nothing written to the data
// directory (a fresh one is not created, an existing one is left as it was).
#[test]
fn port_in_use_fails_before_writing_anything() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("notes.txt"), "mine").unwrap();
    for (data, terminal, http) in [
        (&fresh, "127.0.0.1:0", port.as_str()),
        (&fresh, port.as_str(), "127.0.0.1:0"),
        (&existing, "127.0.0.1:0", port.as_str()),
    ] {
        let before = listing(data);
        let out = serve(data, terminal, http).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started on a port in use: {stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {port}")),
            "unclear message: {stderr}"
        );
        assert_eq!(listing(data), before, "the data directory changed");
    }
    assert_eq!(
        std::fs::read_to_string(existing.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// `GET /healthz`: `Some((status, body))`, `None` when nothing answers yet.
fn healthz(addr: SocketAddr) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

// issue 10.10: polled from the moment the process starts, /healthz never says ok while
// serve.addr or the demo's files are missing; it says "starting" (503) before.
#[test]
fn healthz_is_ok_only_when_the_demo_files_and_serve_addr_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A free port for HTTP, known before the server writes serve.addr.
    let http = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = serve(&data, "127.0.0.1:0", &http.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut answers = Vec::new();
    let mut polls = 0u32;
    let ok = loop {
        polls += 1;
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ykt serve exited: {status}");
        }
        // A guard against a hang, not a timing: the demo is ready long before.
        assert!(polls < 200_000, "never ready: {:?}", answers.last());
        match healthz(http) {
            Some((200, body)) => break body,
            Some((status, body)) => answers.push((status, body)),
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let devices = listing(&data.join("devices")).unwrap_or_default();
    let cards = listing(&data.join("cards")).unwrap_or_default();
    let addr_written = data.join("serve.addr").exists();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok.contains(r#""status":"ok""#), "{ok}");
    assert!(addr_written, "healthz ok before serve.addr");
    assert_eq!(
        devices.len(),
        5,
        "healthz ok before the devices: {devices:?}"
    );
    assert_eq!(cards.len(), 10, "healthz ok before the cards: {cards:?}");
    for (status, body) in answers {
        assert_eq!(status, 503, "{body}");
        assert!(body.contains(r#""status":"starting""#), "{body}");
    }
}
