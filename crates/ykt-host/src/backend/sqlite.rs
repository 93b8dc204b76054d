//! SQLite: one connection per writer, WAL, `synchronous=FULL` (NORMAL may lose committed
//! transactions on power loss), statements cached.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::Result;
use crate::sql::{Conn, Dialect, Row, Value};

/// Page cache per connection, KiB: holds the hot b-tree pages of cards, accounts and
/// records; bounded, so three connections stay well inside the host's memory budget.
const CACHE_KIB: i64 = 32 * 1024;
/// Page cache of a reader connection, KiB (`set_read_only`).
const READER_CACHE_KIB: i64 = 8 * 1024;

/// WAL size (pages of 4 KiB) at which a committing writer checkpoints by itself: only a
/// fallback, should the checkpointer thread fall behind (`spawn_checkpointer`).
const FALLBACK_CHECKPOINT_PAGES: i64 = 131_072;
/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// WAL frames (pages) after which the writer is asked to rewind the WAL (256 MiB): rarely,
/// as each rewind costs the writer the copy of the frames of the last few batches.
pub const REWIND_AT_FRAMES: i64 = 65_536;

pub struct SqliteConn {
    conn: rusqlite::Connection,
    read_only: bool,
    /// Set by the checkpointer when the writer should rewind the WAL (`spawn_checkpointer`).
    rewind: Option<Arc<AtomicBool>>,
    /// `Conn::note_config_change` since the last `take_config_change`.
    config_changed: bool,
}

impl SqliteConn {
    /// Opens (creating if needed) the database file and applies the migrations.
    pub fn open(path: &Path) -> Result<SqliteConn> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The default 2 MiB page cache made every debit re-read b-tree pages from the OS
        // and spill dirty pages mid-transaction (profiled: ~15 % of the host's time).
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // Savepoints (one per job in a group commit) journal in memory, not a temp file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints run on their own thread (`spawn_checkpointer`): inline on the writer
        // they cost ~17 % of its time at every thousandth page. This is only the fallback
        // should that thread fall behind: it bounds the WAL at ~256 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", FALLBACK_CHECKPOINT_PAGES)?;
        conn.set_prepared_statement_cache_capacity(128);
        let mut c = SqliteConn {
            conn,
            read_only: false,
            rewind: None,
            config_changed: false,
        };
        super::schema::migrate(
            &mut c,
            &[
                (1, super::schema::sqlite_v1()),
                (2, super::schema::V2.to_owned()),
                (3, super::schema::V3.to_owned()),
                (4, super::schema::sqlite_v4()),
                (5, super::schema::V5.to_owned()),
                (6, super::schema::V6.to_owned()),
                (7, super::schema_people::sqlite_v7()),
                (8, super::schema_loads::sqlite_v8()),
                (9, super::schema_subsidies::sqlite_v9()),
                (10, super::schema_lifecycle::sqlite_v10()),
                (11, super::schema_merchants::sqlite_v11()),
                (12, super::schema_reconcile::sqlite_v12()),
                (13, super::schema_authcards::sqlite_v13()),
            ],
        )?;
        Ok(c)
    }
}

impl SqliteConn {
    /// Makes this (the writer's) connection rewind the WAL between batches when `flag`
    /// says so; the flag comes from [`spawn_checkpointer`].
    pub fn rewinding_on(mut self, flag: Arc<AtomicBool>) -> SqliteConn {
        self.rewind = Some(flag);
        self
    }

    /// Opens an existing database file to read only, without migrating it: a backup or a
    /// restored copy being audited (`backup.rs`).
    pub fn open_read_only(path: &Path) -> Result<SqliteConn> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut c = SqliteConn {
            conn,
            read_only: false,
            rewind: None,
            config_changed: false,
        };
        c.set_read_only()?;
        Ok(c)
    }
}

/// Our SQL is written with `$n` placeholders and `FOR UPDATE` row locks; SQLite numbers
/// parameters `?n` and needs no row locks (one writer holds the whole database).
fn translate(sql: &str) -> String {
    sql.replace('$', "?").replace(" FOR UPDATE", "")
}

struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

fn params(values: &[Value]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(&translate(sql))?;
        let n = stmt.execute(rusqlite::params_from_iter(params(values)))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(&translate(sql))?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params(values)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cols = Vec::with_capacity(width);
            for i in 0..width {
                cols.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => {
                        return Err(crate::error::HostError::Corrupt(format!(
                            "float {v} in column {i}"
                        )));
                    }
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                });
            }
            out.push(Row(cols));
        }
        Ok(out)
    }

    fn note_config_change(&mut self) {
        self.config_changed = true;
    }

    fn take_config_change(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    fn changes(&self) -> u64 {
        self.conn.total_changes()
    }

    fn between_batches(&mut self) {
        let Some(flag) = &self.rewind else { return };
        if !flag.load(Ordering::Relaxed) {
            return;
        }
        // The checkpointer has copied nearly every frame: copy the rest here, where no new
        // frame can come in, so the next BEGIN finds the WAL fully copied and rewinds it.
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            }) {
            Ok((0, log, copied)) if log == copied => flag.store(false, Ordering::Relaxed),
            // The checkpointer is busy copying: next batch.
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "rewinding the WAL failed"),
        }
    }

    fn set_read_only(&mut self) -> Result<()> {
        self.read_only = true;
        // Audits and reports sort and join whole tables: their temporary b-trees go to
        // temporary files (the OS's page cache), not into the host's memory (measured on
        // 1,000,000 cards: an audit took the host from 74 MiB to 438 MiB with MEMORY).
        self.conn.pragma_update(None, "temp_store", "FILE")?;
        // A reader scans rather than revisits: a small cache, which also bounds the memory
        // of its sorts (SQLite sorts within `cache_size`, then spills to a file).
        self.conn
            .pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        Ok(self.conn.pragma_update(None, "query_only", true)?)
    }

    fn begin(&mut self) -> Result<()> {
        // A writer takes the write lock at once; a reader's deferred BEGIN is a snapshot.
        self.batch(if self.read_only {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        })
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        // BEGIN, SAVEPOINT, RELEASE and COMMIT run for every job of a group commit: keep
        // them prepared instead of parsing them each time. Scripts go through as they are.
        if sql.contains(';') || sql.trim_start().starts_with("PRAGMA") {
            return Ok(self.conn.execute_batch(sql)?);
        }
        let mut stmt = self.conn.prepare_cached(sql)?;
        stmt.raw_execute()?;
        Ok(())
    }
}

/// Starts a thread that checkpoints the WAL of `path` in the background until `alive` can
/// no longer be upgraded, i.e. every handle of the store is gone; it raises `rewind`, the
/// flag the writer watches (`SqliteConn::rewinding_on`). Durability is unchanged: a transaction is
/// durable when its WAL frames are synced at COMMIT; a checkpoint only copies them into the
/// main file.
///
/// A PASSIVE checkpoint never blocks the writer, but under steady load it never catches up
/// with it either, and SQLite only rewinds the WAL when a write begins with every frame
/// copied. So once the WAL is `rewind_at` frames long (`REWIND_AT_FRAMES`) and the thread has caught up with
/// it, the thread raises the flag and the writer copies the last frames between two
/// batches. Measured without it, in a minute of lunch peak: the WAL grew to 347 MB and the
/// writer spent 12 % of its time in its own fallback checkpoints.
pub fn spawn_checkpointer(
    path: &Path,
    alive: std::sync::Weak<()>,
    rewind: Arc<AtomicBool>,
    rewind_at: i64,
) -> Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let ask = rewind;
    std::thread::Builder::new()
        .name("ykt-checkpoint".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                });
                match pass {
                    // Caught up with the WAL as it was when this pass began: the writer
                    // only has the frames of the last pass's duration left to copy.
                    Ok((frames, copied)) if frames >= rewind_at && copied == frames => {
                        ask.store(true, Ordering::Relaxed)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "background checkpoint failed; the writer checkpoints itself")
                    }
                }
            }
        })
        .map_err(|e| crate::error::HostError::Db {
            message: format!("cannot start the checkpoint thread: {e}"),
            retryable: false,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Commits `n` small transactions on `w`, each adding at least one WAL frame.
    fn write(w: &mut SqliteConn, n: i64) {
        for i in 0..n {
            w.begin().unwrap();
            w.exec(
                "INSERT INTO meta (name, value) VALUES ($1, $2)",
                &[format!("t{}", w.changes()).into(), i.into()],
            )
            .unwrap();
            w.batch("COMMIT").unwrap();
        }
    }

    /// Frames in the WAL (its length since it was last rewound), as a checkpoint reports.
    fn wal_frames(path: &Path) -> i64 {
        let c = rusqlite::Connection::open(path).unwrap();
        c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    /// A writer connection on a fresh database in `dir`, rewinding on the returned flag.
    fn writer(dir: &tempfile::TempDir) -> (std::path::PathBuf, Arc<AtomicBool>, SqliteConn) {
        let path = dir.path().join("wal.db");
        let flag = Arc::new(AtomicBool::new(false));
        let w = SqliteConn::open(&path)
            .unwrap()
            .rewinding_on(Arc::clone(&flag));
        (path, flag, w)
    }

    // Unasked, the writer leaves the WAL to the checkpointer.
    #[test]
    fn the_writer_leaves_the_wal_alone_unasked() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _flag, mut w) = writer(&dir);
        write(&mut w, 200);
        w.between_batches();
        write(&mut w, 1);
        assert!(wal_frames(&path) >= 201);
    }

    // Asked, the writer copies the WAL between batches, so the next write starts the WAL
    // over and under steady load it stays bounded.
    #[test]
    fn the_writer_rewinds_the_wal_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (path, flag, mut w) = writer(&dir);
        write(&mut w, 200);
        flag.store(true, Ordering::Relaxed);
        w.between_batches();
        assert!(!flag.load(Ordering::Relaxed), "the writer rewound");
        write(&mut w, 1);
        assert!(
            wal_frames(&path) < 10,
            "the next write started the WAL over"
        );
    }

    // The checkpointer copies the WAL and, once it is long, asks the writer to rewind.
    #[test]
    fn the_checkpointer_asks_for_a_rewind_of_a_long_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, flag, mut w) = writer(&dir);
        write(&mut w, 200);
        let alive = Arc::new(());
        spawn_checkpointer(&path, Arc::downgrade(&alive), Arc::clone(&flag), 100).unwrap();
        // Not a timing assertion: the checkpointer runs every 50 ms; give it up to a minute.
        for _ in 0..1_200 {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(flag.load(Ordering::Relaxed), "the checkpointer never asked");
        drop(alive);
    }
}
