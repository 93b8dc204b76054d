//! Backups of the SQLite database (#16): a consistent copy taken while `ykt serve` writes,
//! through SQLite's online backup API (a file copy of a live WAL database can be torn),
//! and its way back.
//!
//! The copy reads one snapshot: its connection opens a read transaction before the first
//! step and keeps it to the last. In WAL mode a reader never blocks the writer, and the
//! steps all read that snapshot, so a busy writer neither waits for the backup nor makes
//! it start over (a step outside a transaction would see each commit and restart). What
//! the snapshot costs is WAL growth: checkpoints cannot rewind the WAL while it is open.
//! The copy goes in small steps with a pause between them, so it takes a bounded share of
//! the disk. Every transaction committed before the snapshot began is in the copy.
//!
//! A backup file is a SQLite database in rollback-journal mode (one self-contained file)
//! holding the copy and, in the table [`CARRIED_TABLE`], the files of the data directory a
//! host needs besides its database (the caller chooses them: `ykt backup`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::backend::sqlite::SqliteConn;
use crate::error::{HostError, Result};
use crate::ledger::{self, AuditReport};
use crate::sql::Conn;

/// The table of a backup file that carries the data directory's other files.
pub const CARRIED_TABLE: &str = "ykt_backup_files";

/// How fast a copy goes: pages (of the database's page size, 4 KiB) per step, and the
/// pause after each step.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub pages_per_step: i32,
    pub pause: Duration,
}

impl Pace {
    /// `ykt backup` and `ykt restore`: an operator waits for it (~400 MiB/s at most).
    pub const INTERACTIVE: Pace = Pace {
        pages_per_step: 1_024,
        pause: Duration::from_millis(1),
    };
    /// The backups `ykt serve` schedules: 1 MiB a step, then 5 ms for everyone else
    /// (~200 MiB/s at most).
    pub const BACKGROUND: Pace = Pace {
        pages_per_step: 256,
        pause: Duration::from_millis(5),
    };
}

/// A file of the data directory carried in a backup: its path relative to the directory
/// and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarriedFile {
    pub name: String,
    pub content: Vec<u8>,
}

/// What a copy did.
#[derive(Clone, Copy, Debug)]
pub struct Copied {
    pub pages: u64,
    pub steps: u64,
    /// The size of the file written.
    pub bytes: u64,
    pub duration: Duration,
}

/// What a backup file holds.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The schema version of the copy.
    pub schema_version: i64,
    /// The schema version this build migrates to.
    pub current_version: i64,
    /// Every table of the database and its rows, by name (the carried files not among them).
    pub tables: Vec<(String, u64)>,
    /// The carried files: name and size.
    pub carried: Vec<(String, u64)>,
    pub bytes: u64,
}

/// Copies the live database `db` into a new backup file `out` (refused if it exists),
/// with `carried` in it. Stops with an error, leaving nothing behind, when `stop` is set.
pub fn backup(
    db: &Path,
    out: &Path,
    carried: &[CarriedFile],
    pace: Pace,
    stop: &AtomicBool,
) -> Result<Copied> {
    if !db.is_file() {
        return Err(HostError::Invalid(format!(
            "no database at {} (a data directory of `ykt serve` holds one)",
            db.display()
        )));
    }
    // Read-write, never create: a read-only connection cannot open a WAL database whose
    // shared-memory file is missing (no `ykt serve` running). It only reads.
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    source.busy_timeout(Duration::from_secs(5))?;
    source.pragma_update(None, "query_only", true)?;
    // The snapshot: taken at the first read of this transaction, kept until the end.
    source.execute_batch("BEGIN")?;
    source.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    write_new(out, |dest| {
        let copied = copy(&source, dest, pace, stop)?;
        carry(dest, carried)?;
        Ok(copied)
    })
}

/// Puts the backup file `from` back as the database `db` (refused if it exists); returns
/// the files it carried, for the caller to write. `from` should pass [`inspect`] first.
pub fn restore(from: &Path, db: &Path) -> Result<(Copied, Vec<CarriedFile>)> {
    let source = open_backup(from)?;
    let files = carried_files(&source)?;
    let copied = write_new(db, |dest| {
        let copied = copy(&source, dest, Pace::INTERACTIVE, &AtomicBool::new(false))?;
        // The carried files go to their own files; their content (the key file) must not
        // linger in the database's free pages.
        dest.pragma_update(None, "secure_delete", true)?;
        dest.execute_batch(&format!("DROP TABLE IF EXISTS {CARRIED_TABLE}"))?;
        Ok(copied)
    })?;
    Ok((copied, files))
}

/// Checks that `path` is a ykt database this build can use (a SQLite file, with ykt's
/// schema at this version or an older one, intact) and says what it holds.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let conn = open_backup(path)?;
    let not_ykt = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            HostError::Invalid(format!("{} is not a SQLite database", path.display()))
        }
        _ => HostError::from(e),
    };
    let names = table_names(&conn).map_err(not_ykt)?;
    if !names.iter().any(|n| n == "schema_version") {
        return Err(HostError::Invalid(format!(
            "{} is a SQLite database but not one of ykt (no schema_version table)",
            path.display()
        )));
    }
    let schema_version: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let current_version = current_schema_version()?;
    if schema_version > current_version || schema_version < 1 {
        return Err(HostError::Invalid(format!(
            "{} has schema version {schema_version}; this ykt knows versions 1 to \
             {current_version} (use the ykt that wrote it, or a newer one)",
            path.display()
        )));
    }
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(HostError::Invalid(format!(
            "{} is damaged: {check}",
            path.display()
        )));
    }
    let mut tables = Vec::new();
    for name in names.iter().filter(|n| *n != CARRIED_TABLE) {
        let rows: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM \"{name}\""), [], |r| {
            r.get(0)
        })?;
        tables.push((name.clone(), u64::try_from(rows).unwrap_or(0)));
    }
    let carried = carried_files(&conn)?
        .into_iter()
        .map(|f| (f.name, f.content.len() as u64))
        .collect();
    Ok(Inspection {
        schema_version,
        current_version,
        tables,
        carried,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    })
}

/// Audits the books of a database file that nothing else writes (a backup, a restored
/// database). One of an older schema is audited on a migrated scratch copy beside it: the
/// file itself is never changed.
pub fn audit_file(path: &Path) -> Result<AuditReport> {
    let found = inspect(path)?;
    if found.schema_version == found.current_version {
        return ledger::audit(&mut SqliteConn::open_read_only(path)?);
    }
    let scratch = suffixed(path, ".audit.tmp");
    let _ = std::fs::remove_file(&scratch);
    std::fs::copy(path, &scratch).map_err(io_error(&scratch))?;
    let report = SqliteConn::open(&scratch).and_then(|mut c| ledger::audit(&mut c));
    let _ = std::fs::remove_file(&scratch);
    report
}

/// The schema version this build's migrations reach, read off an empty database migrated
/// in memory (the migration lists are the one place that knows it).
pub fn current_schema_version() -> Result<i64> {
    let mut conn = SqliteConn::open(Path::new(":memory:"))?;
    conn.query_one("SELECT MAX(version) FROM schema_version", &[])?
        .int(0)
}

/// Copies every page of `source` (in its current transaction, if any) into `dest`.
fn copy(
    source: &Connection,
    dest: &mut Connection,
    pace: Pace,
    stop: &AtomicBool,
) -> Result<Copied> {
    let started = Instant::now();
    let backup = Backup::new(source, dest)?;
    let mut steps = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(HostError::Invalid(
                "backup stopped: the server is shutting down".into(),
            ));
        }
        steps += 1;
        match backup.step(pace.pages_per_step)? {
            StepResult::Done => break,
            // Busy or locked (the rare write lock of a checkpoint restart): try again.
            _ => std::thread::sleep(pace.pause),
        }
    }
    let pages = u64::try_from(backup.progress().pagecount).unwrap_or(0);
    Ok(Copied {
        pages,
        steps,
        bytes: 0,
        duration: started.elapsed(),
    })
}

/// Writes the carried files into the copy.
fn carry(dest: &Connection, files: &[CarriedFile]) -> Result<()> {
    dest.execute_batch(&format!(
        "CREATE TABLE {CARRIED_TABLE} (name TEXT PRIMARY KEY, content BLOB NOT NULL)"
    ))?;
    let mut insert = dest.prepare(&format!(
        "INSERT INTO {CARRIED_TABLE} (name, content) VALUES (?1, ?2)"
    ))?;
    for f in files {
        insert.execute(rusqlite::params![f.name, f.content])?;
    }
    Ok(())
}

fn carried_files(conn: &Connection) -> Result<Vec<CarriedFile>> {
    if !table_names(conn)?.iter().any(|n| n == CARRIED_TABLE) {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT name, content FROM {CARRIED_TABLE} ORDER BY name"
    ))?;
    let files = stmt
        .query_map([], |r| {
            Ok(CarriedFile {
                name: r.get(0)?,
                content: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(files)
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// A backup file, opened only to read (it must exist).
fn open_backup(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(HostError::Invalid(format!("no file {}", path.display())));
    }
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

/// Creates `path` (mode 0600: a backup holds the devices' keys) through a temporary file
/// that `fill` writes as a database; synced, then linked into place, which fails if `path`
/// exists. Nothing is left behind on failure.
fn write_new(path: &Path, fill: impl FnOnce(&mut Connection) -> Result<Copied>) -> Result<Copied> {
    if path.exists() {
        return Err(HostError::Invalid(format!(
            "{} exists already; it is never overwritten",
            path.display()
        )));
    }
    let tmp = suffixed(path, ".tmp");
    let _ = std::fs::remove_file(&tmp); // left over by a crash
    let result = (|| {
        create_private(&tmp)?;
        let mut dest = Connection::open(&tmp)?;
        let mut copied = fill(&mut dest)?;
        dest.close().map_err(|(_, e)| HostError::from(e))?;
        // The copy has the source's header, WAL mode included, which SQLite reads when it
        // opens the file: reopened, it leaves WAL mode for one self-contained file.
        let reopened = Connection::open(&tmp)?;
        let mode: String =
            reopened.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(HostError::Invariant(format!(
                "{} stays in journal mode {mode}",
                tmp.display()
            )));
        }
        reopened.close().map_err(|(_, e)| HostError::from(e))?;
        let file = std::fs::File::open(&tmp).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        copied.bytes = file.metadata().map_err(io_error(&tmp))?.len();
        std::fs::hard_link(&tmp, path).map_err(io_error(path))?;
        sync_parent(path);
        Ok(copied)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_error(path))?;
    f.flush().map_err(io_error(path))
}

/// Makes a new directory entry durable (best effort: not every file system syncs one).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> HostError + '_ {
    move |e| HostError::Db {
        message: format!("{}: {e}", path.display()),
        retryable: false,
    }
}
