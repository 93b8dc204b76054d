//! The real `ykt serve` process on a temporary data directory (SQLite or a fresh PostgreSQL
//! database), the `ykt` CLI against it, and a blocking protocol client for terminals.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::Value;
use ykt_proto::*;

pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

pub fn ykt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ykt"));
    c.env_remove("YKT_SERVER")
        .env_remove("YKT_TOKEN")
        // No developer's `ykt login` is ever used by a test; tests that log in set their own.
        .env("YKT_CONFIG_DIR", "/nonexistent/ykt-test-logins")
        .env("RUST_BACKTRACE", "0");
    c
}

/// A fresh PostgreSQL database, dropped at the end; `None` (skipped, with a line saying so)
/// when PostgreSQL is unreachable, except with `CI=true` where it is mandatory.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn create() -> Option<PgDb> {
        let mut admin = match postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            Ok(c) => c,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true: PostgreSQL at 127.0.0.1:5432 is mandatory but unreachable: {e}")
            }
            Err(e) => {
                eprintln!("skipped: PostgreSQL unreachable ({e})");
                return None;
            }
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "ykt_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Some(PgDb { name })
    }

    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={}",
            self.name
        )
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A running `ykt serve --demo`.
pub struct Serve {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub database: Option<String>,
    pub terminal: SocketAddr,
    pub http: SocketAddr,
}

impl Serve {
    /// Starts the server on port 0 and waits until it says it is ready (it prints one line
    /// to stdout then, after writing DATA/serve.addr).
    pub fn start(database: Option<String>) -> Serve {
        Serve::start_with(database, &[])
    }

    /// `start` with more flags of `ykt serve`.
    pub fn start_with(database: Option<String>, flags: &[&str]) -> Serve {
        Serve::start_with_env(database, flags, &[])
    }

    /// `start_with` and environment variables for the server (`YKT_TEST_SWEEP_CLOCK`).
    pub fn start_with_env(database: Option<String>, flags: &[&str], env: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut cmd = ykt();
        cmd.args(["serve", "--demo", "--data"])
            .arg(&data)
            .args([
                "--terminal-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(flags)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(db) = &database {
            cmd.args(["--database", db]);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            if n == 0 {
                let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
                panic!("ykt serve exited before it was ready:\n{log}");
            }
            if line.starts_with("ykt serve ready") {
                break;
            }
        }
        // Nothing more comes on stdout; drain it anyway so the server can never block on it.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let addr: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("serve.addr")).unwrap())
                .unwrap();
        Serve {
            terminal: addr["terminal"].as_str().unwrap().parse().unwrap(),
            http: addr["http"].as_str().unwrap().parse().unwrap(),
            child,
            dir,
            database,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `ykt <args> --data DATA`, expected to succeed; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let o = self.cli_output(args);
        assert!(
            o.status.success(),
            "ykt {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn cli_output(&self, args: &[&str]) -> Output {
        ykt()
            .args(args)
            .arg("--data")
            .arg(self.data())
            .output()
            .unwrap()
    }

    /// `ykt <args> --json`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.cli(&a)).unwrap()
    }

    pub fn provisioning(&self, device: &str) -> Value {
        let p = self.data().join("devices").join(format!("{device}.json"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// SIGTERM, then the exit status must be success.
    pub fn stop(mut self) -> tempfile::TempDir {
        let status = terminate(&mut self.child);
        assert!(
            status.success(),
            "ykt serve exit {status:?}:\n{}",
            self.log()
        );
        assert!(
            !self.data().join("serve.addr").exists(),
            "serve.addr removed on exit"
        );
        // Keep the data for `ykt audit`; the server is gone.
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // A failed test must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGTERM to `child`; its exit status.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap()
}

/// A command's stdout; it must have succeeded.
pub fn succeeded(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A command's stderr; it must have failed.
pub fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The campus clock (UTC+8), as the demo server keeps it.
pub fn campus_now() -> NaiveDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap() + 8 * 3600, 0)
        .unwrap()
        .naive_utc()
}

pub fn device_key(prov: &Value) -> (PhysicalId, DeviceKey) {
    let id: PhysicalId = prov["physical_id"].as_str().unwrap().parse().unwrap();
    let key: [u8; 16] = hex::decode(prov["master_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let suite = match prov["mac_suite"].as_str().unwrap() {
        "sm4" => Suite::Sm4,
        _ => Suite::Aes128,
    };
    (
        id,
        DeviceKey {
            suite,
            key: Key(key),
        },
    )
}

/// A terminal over TCP: sign-in with its provisioning file, then sealed requests.
pub struct Terminal {
    stream: TcpStream,
    pub device: PhysicalId,
    session: Option<Session>,
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    let mut f = head.to_vec();
    f.resize(2 + usize::from(u16::from_be_bytes(head)), 0);
    s.read_exact(&mut f[2..]).unwrap();
    f
}

impl Terminal {
    /// Signs in; returns the terminal (session set when code 0) and the response.
    pub fn sign_in(addr: SocketAddr, prov: &Value) -> (Terminal, SignInResponse) {
        let (device, key) = device_key(prov);
        let mut stream = TcpStream::connect(addr).unwrap();
        // A safety net against a hang, not a timing assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let nonce: [u8; 8] = rand::random();
        let req = SignInRequest {
            suite: key.suite,
            clock: campus_now(),
            blacklist_version: 0,
            params_version: 0,
            nonce,
        };
        let mut out = Vec::new();
        seal_sign_in(device, &key, &req, &mut out).unwrap();
        stream.write_all(&out).unwrap();
        let frame = read_frame(&mut stream);
        let (resp, session) = open_sign_in_response(device, &key, &nonce, &frame).unwrap();
        (
            Terminal {
                stream,
                device,
                session,
            },
            resp,
        )
    }

    /// The PIN block of an authorisation-card check (0x0A) under this session.
    pub fn pin_block(&self, card_no: u32, nonce: u32, pin: &str) -> [u8; 16] {
        let pin = Pin::new(pin).expect("a PIN of 4 to 12 digits");
        self.session
            .as_ref()
            .expect("signed in")
            .seal_pin(card_no, nonce, &pin)
    }

    /// Sends a request and returns its response, answering host requests meanwhile.
    pub fn request(&mut self, msg: Message) -> Message {
        let mut out = Vec::new();
        let session = self.session.as_mut().expect("signed in");
        let seq = session.seal(&msg, 0, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
        loop {
            let frame = read_frame(&mut self.stream);
            let opened = self.session.as_mut().unwrap().open(&frame).unwrap();
            if opened.header.is_response() {
                if opened.header.corr == seq {
                    return opened.message;
                }
                continue;
            }
            self.answer_host(opened.header.seq, &opened.message);
        }
    }

    fn answer_host(&mut self, seq: u32, msg: &Message) {
        let reply = match msg {
            Message::ClockSetRequest(r) => Message::ClockSetResponse(ClockSetResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                clock: r.clock,
            }),
            Message::StatusQuery(_) => Message::StatusReport(StatusReport {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                pending_records: 0,
                clock: campus_now(),
                blacklist_version: 0,
                params_version: 1,
                work_mode: WorkMode::Auto,
                offline_minutes: 0,
            }),
            Message::ParamsPushRequest(r) => Message::ParamsPushResponse(ParamsPushResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                version: r.params.version,
            }),
            Message::CollectRequest(_) => Message::CollectResponse(CollectResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
            }),
            _ => return,
        };
        let mut out = Vec::new();
        self.session
            .as_mut()
            .unwrap()
            .seal(&reply, seq, &mut out)
            .unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// Uploads records; the per-record codes in order.
    pub fn upload(&mut self, records: Vec<Record>) -> Vec<u8> {
        match self.request(Message::UploadRequest(UploadRequest { records })) {
            Message::UploadResponse(r) => r.results.iter().map(|x| x.code.0).collect(),
            other => panic!("upload answered with {other:?}"),
        }
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `cmd` with `stdin` written to it (PINs, passwords), capturing its output.
pub fn with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `ykt <args> --data DATA` as the operator whose `ykt login` lives in `who`, with `stdin`.
pub fn as_op(s: &Serve, who: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = ykt();
    cmd.env("YKT_CONFIG_DIR", who)
        .args(args)
        .arg("--data")
        .arg(s.data());
    with_stdin(cmd, stdin)
}

pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

pub fn login(s: &Serve, who: &Path, user: &str, initial: &str, new: &str) {
    let out = ok(as_op(
        s,
        who,
        &["login", "--user", user, "--password-stdin"],
        &format!("{initial}\n{new}\n"),
    ));
    assert!(out.contains(&format!("as {user}")), "{out}");
}
