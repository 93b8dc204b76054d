//! Backups and restores (#16) through the real binary: `ykt backup` of a `ykt serve` under
//! load (`ykt loadgen` and a terminal of our own whose acknowledged debits we note),
//! `ykt restore` elsewhere, the audit, and every debit acknowledged before the backup began
//! in the copy; what restore refuses; the backups `ykt serve` schedules itself; and on
//! PostgreSQL the pg_dump / pg_restore round trip docs/operations.md gives.
#![allow(clippy::unwrap_used)]

mod serve_support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serve_support::*;
use ykt_proto::*;

/// Our own terminal's device (loadgen registers devices of its own).
const DEVICE: &str = "10000003";
/// A demo card with 60.00 元: a debit of 1 fen at a time never runs it dry here.
const CARD: u32 = 2;
const CARD_BALANCE: Fen = 6_000;

/// A terminal debiting `CARD` 1 fen at a time until `stop`; the serials the host
/// acknowledged (code 0, after COMMIT: R-P5.2), in order.
struct Debits {
    acked: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Debits {
    fn start(s: &Serve) -> Debits {
        let (mut t, resp) = Terminal::sign_in(s.terminal, &s.provisioning(DEVICE));
        assert_eq!(resp.code, ReturnCode::SUCCESS);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (list, flag) = (Arc::clone(&acked), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let (mut balance, mut counter) = (CARD_BALANCE, 0u32);
            for serial in 1.. {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let reply = t.request(Message::DebitRequest(DebitRequest {
                    card_no: CardNo::new(CARD).unwrap(),
                    card_type: CardType::Mf1,
                    card_counter: counter,
                    balance_before: balance,
                    amount: 1,
                    fee: 0,
                    wallet_no: 1,
                    item_code: 0,
                    serial,
                    time: campus_now(),
                }));
                match reply {
                    Message::DebitResponse(d) if d.code == ReturnCode::SUCCESS => {
                        balance -= 1;
                        counter += 1;
                        list.lock().unwrap().push(serial);
                    }
                    other => panic!("debit {serial} answered {other:?}"),
                }
            }
        });
        Debits {
            acked,
            stop,
            thread,
        }
    }

    fn acked(&self) -> Vec<u32> {
        self.acked.lock().unwrap().clone()
    }

    /// Waits until at least `n` debits are acknowledged.
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "fewer than {n} debits in 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(self) -> Vec<u32> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// `ykt loadgen` against `s` for `secs` seconds, in the background.
fn loadgen(s: &Serve, secs: u32) -> Child {
    ykt()
        .args(["loadgen", "--quiet", "--scenario", "mixed", "--server"])
        .arg(format!("http://{}", s.http))
        .arg("--terminal")
        .arg(s.terminal.to_string())
        .arg("--data")
        .arg(s.data())
        .args(["--terminals", "4", "--cards", "40", "--duration"])
        .arg(format!("{secs}s"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished_clean(loadgen: Child) {
    let o = loadgen.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("verdict: books agree, audit clean"),
        "loadgen: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = ykt();
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    c.output().unwrap()
}

/// The serials of `device` that the database at `db` holds records of.
fn stored_serials(db: &Path, device: &str) -> Vec<u32> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let key = ykt_host::repo::device_key(device.parse().unwrap());
    let mut stmt = conn
        .prepare("SELECT serial FROM records WHERE device = ?1 ORDER BY serial")
        .unwrap();
    stmt.query_map([key], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

// #16: a backup taken during `ykt loadgen` (and our own terminal's debits), restored into
// another directory, audits clean and holds every debit acknowledged before it began; the
// restored directory serves (its admin token and key file came along).
#[test]
fn a_backup_under_load_restores_every_acknowledged_debit() {
    let s = Serve::start(None);
    let load = loadgen(&s, 12);
    let debits = Debits::start(&s);
    debits.wait_for(50);
    std::thread::sleep(Duration::from_secs(1)); // loadgen is provisioned and running

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("ykt.backup");
    let before = debits.acked();
    let o = run(
        &["backup", "--data"],
        &[&s.data(), Path::new("--out"), &file],
    );
    let out = succeeded(&o);
    assert!(out.contains("audit clean"), "{out}");
    assert!(out.contains("records"), "{out}");
    assert!(out.contains("keys") && out.contains("admin-token"), "{out}");
    let during = debits.acked().len() - before.len();
    let after = debits.stop();
    assert!(during > 0, "no debit was acknowledged while the backup ran");
    finished_clean(load);

    let restored = work.path().join("restored");
    let out = succeeded(&run(
        &["restore", "--from"],
        &[&file, Path::new("--data"), &restored],
    ));
    assert!(out.contains("audit clean"), "{out}");
    let db = restored.join("ykt.db");
    let stored = stored_serials(&db, DEVICE);
    for serial in &before {
        assert!(
            stored.contains(serial),
            "acknowledged debit {serial} not in the backup"
        );
    }
    // Nothing is in the copy that was not acknowledged by the end.
    assert!(stored.iter().all(|s| after.contains(s)));
    // loadgen's records are there too: the copy was taken under its load.
    assert!(count(&db, "records") > stored.len() as i64);
    // The carried files are back, as secrets.
    for name in ["keys", "admin-token", "demo.json", "devices/10000001.json"] {
        let a = std::fs::read(s.data().join(name)).unwrap();
        assert_eq!(std::fs::read(restored.join(name)).unwrap(), a, "{name}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&restored.join("keys")), 0o600);
    }
    assert!(!restored.join("serve.addr").exists());
    s.stop();

    // The restored directory is a working host: `ykt audit` on it passes as well.
    let out = succeeded(&run(&["audit", "--data"], &[&restored]));
    assert!(out.contains("audit clean"), "{out}");
}

// #16: restore refuses a non-empty directory, a file that is not a SQLite database, a
// SQLite database that is not ykt's, and one of a schema version this ykt does not know;
// none of these leaves anything behind.
#[test]
fn restore_refuses_what_it_cannot_restore() {
    let s = Serve::start(None);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("good.backup");
    succeeded(&run(
        &["backup", "--data"],
        &[&s.data(), Path::new("--out"), &file],
    ));
    // A backup file is never overwritten.
    let err = failed(&run(
        &["backup", "--data"],
        &[&s.data(), Path::new("--out"), &file],
    ));
    assert!(err.contains("exists already"), "{err}");
    s.stop();

    let target = work.path().join("target");
    let restore = |from: &Path| {
        run(
            &["restore", "--from"],
            &[from, Path::new("--data"), &target],
        )
    };

    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("notes.txt"), b"mine").unwrap();
    let err = failed(&restore(&file));
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read(target.join("notes.txt")).unwrap(), b"mine");
    std::fs::remove_dir_all(&target).unwrap();

    let text = work.path().join("text.backup");
    std::fs::write(
        &text,
        "not a database, not at all, but long enough to be read".repeat(20),
    )
    .unwrap();
    let err = failed(&restore(&text));
    assert!(err.contains("is not a SQLite database"), "{err}");

    let foreign = work.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let err = failed(&restore(&foreign));
    assert!(err.contains("not one of ykt"), "{err}");

    let future = work.path().join("future.backup");
    std::fs::copy(&file, &future).unwrap();
    rusqlite::Connection::open(&future)
        .unwrap()
        .execute_batch("INSERT INTO schema_version (version) VALUES (999)")
        .unwrap();
    let err = failed(&restore(&future));
    assert!(err.contains("schema version 999"), "{err}");

    let err = failed(&restore(&work.path().join("missing.backup")));
    assert!(err.contains("no file"), "{err}");
    assert!(
        !target.exists(),
        "a refused restore created {}",
        target.display()
    );

    // The good one still restores.
    let out = succeeded(&restore(&file));
    assert!(out.contains("audit clean"), "{out}");
}

// #16: `ykt backup --config FILE` backs up the data directory the serve configuration
// names (the flag would win); a configuration on PostgreSQL is refused with the way to go.
#[test]
fn backup_reads_the_data_dir_from_the_serve_config() {
    let s = Serve::start(None);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("ykt.toml");
    std::fs::write(
        &config,
        format!("data = {:?}\nfep-id = 1\n", s.data().display().to_string()),
    )
    .unwrap();
    let file = work.path().join("from-config.backup");
    let out = succeeded(&run(
        &["backup", "--config"],
        &[&config, Path::new("--out"), &file],
    ));
    assert!(
        out.contains(&s.data().join("ykt.db").display().to_string()),
        "{out}"
    );
    assert!(out.contains("audit clean"), "{out}");
    assert!(count(&file, "devices") > 0);

    let pg = work.path().join("pg.toml");
    std::fs::write(&pg, "database = \"host=127.0.0.1 dbname=x\"\n").unwrap();
    let err = failed(&run(
        &["backup", "--config"],
        &[&pg, Path::new("--out"), &work.path().join("pg.backup")],
    ));
    assert!(err.contains("PostgreSQL"), "{err}");
    let bad = work.path().join("bad.toml");
    std::fs::write(&bad, "dta = \"x\"\n").unwrap();
    let err = failed(&run(
        &["backup", "--config"],
        &[&bad, Path::new("--out"), &work.path().join("bad.backup")],
    ));
    assert!(err.contains("dta"), "{err}");
    s.stop();
}

// #16: `ykt serve --backup-dir --backup-every --backup-keep` writes audited backups in the
// background, deletes the oldest beyond keep, logs each and exports the time of the last
// success; the newest restores and audits clean.
#[test]
fn serve_schedules_backups_and_keeps_the_newest() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let s = Serve::start_with(
        None,
        &[
            "--backup-dir",
            dir.to_str().unwrap(),
            "--backup-every",
            "1s",
            "--backup-keep",
            "2",
        ],
    );
    let debits = Debits::start(&s);
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.log().matches("backup written, audit clean").count() < 4 {
        assert!(
            Instant::now() < deadline,
            "no 4 backups in 60 s:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = http_get(s.http, "/metrics");
    debits.stop();
    let last: f64 = metric(&metrics, "ykt_backup_last_success_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "last success {last}, now {now}");
    assert_eq!(metric(&metrics, "ykt_backup_failures_total"), 0.0);
    let log = s.log();
    assert!(log.contains("old backup deleted"), "{log}");
    s.stop();

    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("ykt-backup-") && n.ends_with(".db"))
    );
    let out = succeeded(&run(
        &["restore", "--from"],
        &[
            &dir.join(&names[1]),
            Path::new("--data"),
            &work.path().join("r"),
        ],
    ));
    assert!(out.contains("audit clean"), "{out}");
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// `pg_dump` and `pg_restore`, or `None` (skipped, with a line saying so) when the client
/// tools are not installed, except with `CI=true` where they are mandatory.
fn pg_tools() -> Option<()> {
    let found = ["pg_dump", "pg_restore"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    match found {
        true => Some(()),
        false if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true: pg_dump and pg_restore (postgresql-client) are mandatory")
        }
        false => {
            eprintln!("skipped: pg_dump or pg_restore not installed");
            None
        }
    }
}

// #16: on PostgreSQL, the procedure of docs/operations.md: `pg_dump -Fc` of a database
// under load, `pg_restore` into a new database, `ykt audit` clean, every debit acknowledged
// before the dump began in it.
#[test]
fn pg_dump_round_trip_under_load() {
    let Some(db) = PgDb::create() else { return };
    let Some(()) = pg_tools() else { return };
    let s = Serve::start(Some(db.url()));
    let load = loadgen(&s, 10);
    let debits = Debits::start(&s);
    debits.wait_for(50);
    std::thread::sleep(Duration::from_secs(1));

    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("ykt.dump");
    let before = debits.acked();
    let o = Command::new("pg_dump")
        .args(["--format=custom", "--dbname", &db.url(), "--file"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let during = debits.acked().len() - before.len();
    debits.stop();
    assert!(during > 0, "no debit was acknowledged while pg_dump ran");
    finished_clean(load);
    s.stop();

    let copy = PgDb::create().unwrap();
    let o = Command::new("pg_restore")
        .args(["--exit-on-error", "--no-owner", "--dbname", &copy.url()])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ykt()
        .args(["audit", "--database", &copy.url(), "--data"])
        .arg(work.path().join("unused"))
        .output()
        .unwrap();
    let out = succeeded(&o);
    assert!(out.contains("audit clean"), "{out}");

    let mut c = postgres::Client::connect(&copy.url(), postgres::NoTls).unwrap();
    let key = ykt_host::repo::device_key(DEVICE.parse().unwrap());
    let stored: Vec<u32> = c
        .query("SELECT serial FROM records WHERE device = $1", &[&key])
        .unwrap()
        .iter()
        .map(|r| u32::try_from(r.get::<_, i64>(0)).unwrap())
        .collect();
    for serial in &before {
        assert!(
            stored.contains(serial),
            "acknowledged debit {serial} not in the dump"
        );
    }
}
