//! The primitive both backends provide: run one SQL statement with `$n` parameters inside the
//! current transaction. All of the host's SQL is written once against it (`repo.rs`);
//! backends differ only in their migrations and in how they run a statement.

use crate::error::{HostError, Result};

/// A parameter or column value. Money and time are `Int` (fen, epoch seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row.
#[derive(Clone, Debug)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| HostError::Corrupt(format!("row has no column {i}")))
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(HostError::Corrupt(format!(
                "column {i}: expected integer, got {other:?}"
            ))),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            other => Err(HostError::Corrupt(format!(
                "column {i}: expected integer, got {other:?}"
            ))),
        }
    }

    /// An integer column that must fit `T` (ids, counters, codes).
    pub fn int_as<T: TryFrom<i64>>(&self, i: usize) -> Result<T> {
        let v = self.int(i)?;
        T::try_from(v).map_err(|_| HostError::Corrupt(format!("column {i}: {v} out of range")))
    }

    pub fn text(&self, i: usize) -> Result<&str> {
        match self.get(i)? {
            Value::Text(v) => Ok(v),
            other => Err(HostError::Corrupt(format!(
                "column {i}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<&str>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            other => Err(HostError::Corrupt(format!(
                "column {i}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn bytes(&self, i: usize) -> Result<&[u8]> {
        match self.get(i)? {
            Value::Bytes(v) => Ok(v),
            other => Err(HostError::Corrupt(format!(
                "column {i}: expected bytes, got {other:?}"
            ))),
        }
    }
}

/// Which SQL dialect a connection speaks, for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// One database connection with an open transaction, as the writer drives it.
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the number of rows changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs one query; returns every row (callers bound their queries with LIMIT).
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs statements without parameters (BEGIN, SAVEPOINT, migrations).
    fn batch(&mut self, sql: &str) -> Result<()>;
    /// From now on this connection only reads (a reader of the store).
    fn set_read_only(&mut self) -> Result<()>;
    /// How many rows this connection has inserted, updated or deleted since it opened; it
    /// never goes down, not even on rollback. The writer compares it around a job to know
    /// whether a refused job left writes behind that must be undone.
    fn changes(&self) -> u64;
    /// Housekeeping the writer does between two batches, outside any transaction.
    fn between_batches(&mut self) {}
    /// Notes that configuration rows (feps, merchants, devices) were written.
    fn note_config_change(&mut self);
    /// Whether configuration rows were written since the last call (`cache.rs`).
    fn take_config_change(&mut self) -> bool;
    /// Starts a write transaction (SQLite takes the write lock at once: no lock upgrades).
    fn begin(&mut self) -> Result<()> {
        self.batch("BEGIN")
    }

    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| HostError::Corrupt(format!("no row from: {sql}")))
    }
}
