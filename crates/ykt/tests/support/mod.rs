//! `ykt pos --headless` as a child process driven by JSON lines (`docs/pos-script.md`),
//! beside the real `ykt serve` of `serve_support`.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// A safety net against a hung process, not a timing assertion: every `wait` inside the
/// script has its own, shorter bound.
const REPLY_LIMIT: Duration = Duration::from_secs(90);

pub struct Pos {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    /// Every line printed so far (outputs and replies).
    pub seen: Vec<Value>,
    pub provision: PathBuf,
    pub journal: PathBuf,
    pub keys: PathBuf,
    /// Options after the usual ones (`--real-time`).
    extra: Vec<String>,
}

impl Pos {
    pub fn start(data: &Path, device: &str, journal: &Path) -> Pos {
        Pos::start_with(data, device, journal, &[])
    }

    /// `start` with more options (`--real-time`).
    pub fn start_with(data: &Path, device: &str, journal: &Path, extra: &[&str]) -> Pos {
        let provision = data.join("devices").join(format!("{device}.json"));
        let extra = extra.iter().map(|a| a.to_string()).collect();
        Pos::spawn(provision, journal.to_path_buf(), data.join("keys"), extra)
    }

    fn spawn(provision: PathBuf, journal: PathBuf, keys: PathBuf, extra: Vec<String>) -> Pos {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ykt"))
            .args(["pos", "--headless", "--provision"])
            .arg(&provision)
            .arg("--journal")
            .arg(&journal)
            .arg("--keys")
            .arg(&keys)
            .args(&extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Pos {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            provision,
            journal,
            keys,
            extra,
        }
    }

    /// Sends one command; returns its reply (the lines before it are kept in `seen`).
    pub fn send(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let line = self
                .lines
                .recv_timeout(REPLY_LIMIT)
                .unwrap_or_else(|e| panic!("no reply to {cmd}: {e}; seen {:#?}", self.tail()));
            self.seen.push(line.clone());
            if line.get("reply").is_some() {
                return line;
            }
        }
    }

    fn tail(&self) -> &[Value] {
        &self.seen[self.seen.len().saturating_sub(30)..]
    }

    /// Sends a command that must succeed.
    pub fn ok(&mut self, cmd: Value) -> Value {
        let r = self.send(cmd.clone());
        assert_eq!(
            r["ok"],
            true,
            "{cmd} failed: {r}; last lines {:#?}",
            self.tail()
        );
        r
    }

    pub fn wait_screen(&mut self, text: &str) -> Value {
        self.ok(json!({"cmd":"wait","for":"screen","text":text,"timeout_ms":10000}))
    }

    pub fn wait_event(&mut self, pattern: Value) -> Value {
        self.ok(json!({"cmd":"wait","for":"event","match":pattern,"timeout_ms":10000}))["matched"]
            .clone()
    }

    pub fn status(&mut self) -> Value {
        self.ok(json!({"cmd":"status"}))["status"].clone()
    }

    /// Powered on and signed in (R-P5.1).
    pub fn signed_in(&mut self) {
        self.wait_event(json!({"event":"signed_in"}));
        self.wait_screen("签到成功");
    }

    pub fn amount(&mut self, fen: u64) {
        self.ok(json!({"cmd":"amount","fen":fen}));
    }

    pub fn place(&mut self, file: &Path) {
        self.ok(json!({"cmd":"place","file":file}));
    }

    pub fn place_with_fault(&mut self, file: &Path, op: u64, kind: &str) {
        self.ok(json!({"cmd":"place","file":file,"fault":{"op":op,"kind":kind}}));
    }

    pub fn remove(&mut self) {
        self.ok(json!({"cmd":"remove"}));
    }

    pub fn key(&mut self, key: &str) {
        self.ok(json!({"cmd":"key","key":key}));
    }

    pub fn advance(&mut self, ms: u64) {
        self.ok(json!({"cmd":"advance","ms":ms}));
    }

    /// Whether some line seen so far matches every field of `pattern`.
    pub fn saw(&self, pattern: &Value) -> bool {
        self.seen.iter().any(|l| subset(pattern, l))
    }

    /// SIGKILL (a power cut, as far as the journal knows) and a fresh process on the same
    /// journal.
    pub fn kill_and_restart(mut self) -> Pos {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        Pos::spawn(
            self.provision.clone(),
            self.journal.clone(),
            self.keys.clone(),
            self.extra.clone(),
        )
    }

    /// `quit`, then the process must exit 0.
    pub fn quit(mut self) {
        let _ = self.send(json!({"cmd":"quit"}));
        let status = self.child.wait().unwrap();
        assert!(status.success(), "ykt pos exit {status:?}");
    }
}

impl Drop for Pos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn subset(pattern: &Value, line: &Value) -> bool {
    match (pattern, line) {
        (Value::Object(p), Value::Object(l)) => p
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| subset(v, lv))),
        _ => pattern == line,
    }
}

/// `ykt audit` on the data of a stopped server must pass.
pub fn audit(data: &Path, database: Option<&str>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ykt"));
    c.arg("audit").arg("--data").arg(data);
    if let Some(db) = database {
        c.args(["--database", db]);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "ykt audit failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
