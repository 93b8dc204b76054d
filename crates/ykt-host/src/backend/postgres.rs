//! PostgreSQL: one connection per writer thread; statements prepared once per connection.
//! Cross-process safety comes from row locks (`FOR UPDATE`), primary keys and the
//! blacklist version row, all inside the batch's transaction.

use std::collections::HashMap;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};

use crate::error::{HostError, Result};
use crate::sql::{Conn, Dialect, Row, Value};

/// An arbitrary constant: the advisory lock that serialises migrations across processes.
const MIGRATION_LOCK: i64 = 0x0079_6b74_5f6d_6967;

pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Rows changed so far (`Conn::changes`), counted from what the statements report.
    changes: u64,
    /// `Conn::note_config_change` since the last `take_config_change`.
    config_changed: bool,
}

impl PgConn {
    /// Connects (e.g. `host=127.0.0.1 user=postgres dbname=ykt`) and applies the migrations.
    pub fn connect(url: &str) -> Result<PgConn> {
        let client = Client::connect(url, NoTls)?;
        let mut c = PgConn {
            client,
            statements: HashMap::new(),
            changes: 0,
            config_changed: false,
        };
        c.client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        let migrated = super::schema::migrate(
            &mut c,
            &[
                (1, super::schema::postgres_v1()),
                (2, super::schema::V2.to_owned()),
                (3, super::schema::V3.to_owned()),
                (4, super::schema::postgres_v4()),
                (5, super::schema::V5.to_owned()),
                (6, super::schema::V6.to_owned()),
                (7, super::schema_people::postgres_v7()),
                (8, super::schema_loads::postgres_v8()),
                (9, super::schema_subsidies::postgres_v9()),
                (10, super::schema_lifecycle::postgres_v10()),
                (11, super::schema_merchants::postgres_v11()),
                (12, super::schema_reconcile::postgres_v12()),
                (13, super::schema_authcards::postgres_v13()),
            ],
        );
        c.client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
        migrated?;
        Ok(c)
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// Converts our values to the types the server inferred for each parameter.
fn params(stmt: &Statement, values: &[Value]) -> Result<Vec<Box<dyn ToSql + Sync>>> {
    if stmt.params().len() != values.len() {
        return Err(HostError::Invariant(format!(
            "statement takes {} parameters, got {}",
            stmt.params().len(),
            values.len()
        )));
    }
    stmt.params()
        .iter()
        .zip(values)
        .map(|(ty, v)| -> Result<Box<dyn ToSql + Sync>> {
            let mismatch = || HostError::Invariant(format!("value {v:?} for a {ty} parameter"));
            Ok(match (v, ty) {
                (Value::Null, &Type::TEXT) => Box::new(None::<String>),
                (Value::Null, &Type::BYTEA) => Box::new(None::<Vec<u8>>),
                (Value::Null, &Type::INT4) => Box::new(None::<i32>),
                (Value::Null, _) => Box::new(None::<i64>),
                (Value::Int(i), &Type::INT4) => {
                    Box::new(i32::try_from(*i).map_err(|_| mismatch())?)
                }
                (Value::Int(i), &Type::INT8) => Box::new(*i),
                (Value::Text(s), &Type::TEXT | &Type::VARCHAR) => Box::new(s.clone()),
                (Value::Bytes(b), &Type::BYTEA) => Box::new(b.clone()),
                _ => return Err(mismatch()),
            })
        })
        .collect()
}

fn column(row: &postgres::Row, i: usize) -> Result<Value> {
    let ty = row.columns()[i].type_();
    Ok(match *ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Value::Null, |v| Value::Int(i64::from(v))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, |v| Value::Int(i64::from(v))),
        Type::TEXT | Type::VARCHAR => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Value::Null, Value::Bytes),
        _ => return Err(HostError::Corrupt(format!("column {i} of type {ty}"))),
    })
}

/// Whether a statement run as a query changes rows (it has a `RETURNING` clause).
fn is_write(sql: &str) -> bool {
    let verb = sql.split_whitespace().next().unwrap_or("");
    ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|w| verb.eq_ignore_ascii_case(w))
}

fn is_transaction_control(sql: &str) -> bool {
    let verb = sql.split_whitespace().next().unwrap_or("");
    ["BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "SET"]
        .iter()
        .any(|w| verb.eq_ignore_ascii_case(w))
}

impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        let p = params(&stmt, values)?;
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|b| b.as_ref()).collect();
        let n = self.client.execute(&stmt, &refs)?;
        self.changes += n;
        Ok(n)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        let p = params(&stmt, values)?;
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|b| b.as_ref()).collect();
        let rows = self.client.query(&stmt, &refs)?;
        if is_write(sql) {
            // `UPDATE … RETURNING` and the like: one row back per row changed.
            self.changes += rows.len() as u64;
        }
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| column(r, i))
                    .collect::<Result<_>>()
                    .map(Row)
            })
            .collect()
    }

    fn note_config_change(&mut self) {
        self.config_changed = true;
    }

    fn take_config_change(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    fn changes(&self) -> u64 {
        self.changes
    }

    fn set_read_only(&mut self) -> Result<()> {
        // REPEATABLE READ: a read job sees one snapshot (blacklist version and its changes).
        self.batch(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        )
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql)?;
        if !is_transaction_control(sql) {
            // A script may change rows without saying how many: assume it did.
            self.changes += 1;
        }
        Ok(())
    }
}
