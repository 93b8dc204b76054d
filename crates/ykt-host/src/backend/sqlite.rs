//! SQLite: one connection per writer, WAL, `synchronous=FULL` (NORMAL may lose committed
//! transactions on power loss), statements cached.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::Result;
use crate::sql::{Conn, Dialect, Row, Value};

/// Page cache per connection, KiB: holds the hot b-tree pages of cards, accounts and
/// records; bounded, so three connections stay well inside the host's memory budget.
const CACHE_KIB: i64 = 32 * 1024;

/// WAL size (pages of 4 KiB) at which a committing writer checkpoints by itself.
const FALLBACK_CHECKPOINT_PAGES: i64 = 16_384;
/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

pub struct SqliteConn {
    conn: rusqlite::Connection,
    read_only: bool,
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
        // should that thread fall behind: it bounds the WAL at ~64 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", FALLBACK_CHECKPOINT_PAGES)?;
        conn.set_prepared_statement_cache_capacity(128);
        let mut c = SqliteConn {
            conn,
            read_only: false,
        };
        super::schema::migrate(
            &mut c,
            &[
                (1, super::schema::sqlite_v1()),
                (2, super::schema::V2.to_owned()),
                (3, super::schema::V3.to_owned()),
            ],
        )?;
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

    fn changes(&self) -> u64 {
        self.conn.total_changes()
    }

    fn set_read_only(&mut self) -> Result<()> {
        self.read_only = true;
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

/// Starts a thread that checkpoints the WAL of `path` in the background (PASSIVE: it never
/// blocks the writer or readers) until `alive` can no longer be upgraded, i.e. every
/// handle of the store is gone. Durability is unchanged: a transaction is durable when
/// its WAL frames are synced at COMMIT; the checkpoint only moves them into the main file.
pub fn spawn_checkpointer(path: &Path, alive: std::sync::Weak<()>) -> Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    std::thread::Builder::new()
        .name("ykt-checkpoint".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "background checkpoint failed; the writer checkpoints itself");
                }
            }
        })
        .map_err(|e| crate::error::HostError::Db {
            message: format!("cannot start the checkpoint thread: {e}"),
            retryable: false,
        })?;
    Ok(())
}
