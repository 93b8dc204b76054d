//! Migrations, one list per backend. Money is fen in 64-bit integers, time is epoch seconds
//! of the terminals' local clock (an integer), dates are epoch seconds of midnight.

use crate::error::Result;
use crate::sql::Conn;

/// Tables shared by both dialects; `{INT}`, `{BLOB}` and `{SERIAL}` are filled per dialect.
const V1: &str = "
CREATE TABLE feps (
    id {INT} PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    signed_in_at {INT}
);
CREATE TABLE merchants (
    no {INT} PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE devices (
    id {INT} PRIMARY KEY,
    terminal_no {INT} NOT NULL,
    merchant_no {INT},
    status TEXT NOT NULL,
    master_key {BLOB},
    mac_suite {INT} NOT NULL,
    functions {INT} NOT NULL,
    max_amount {INT} NOT NULL,
    params {BLOB} NOT NULL,
    report_at {INT},
    report_pending {INT},
    report_clock {INT},
    report_blacklist_version {INT}
);
CREATE TABLE cards (
    no {INT} PRIMARY KEY,
    display_no {INT} NOT NULL UNIQUE,
    status TEXT NOT NULL,
    class {INT} NOT NULL,
    expiry {INT} NOT NULL,
    balance {INT} NOT NULL,
    counter_floor {INT} NOT NULL,
    counter_next {INT} NOT NULL,
    counters_used {INT} NOT NULL
);
CREATE TABLE card_counters (
    card_no {INT} NOT NULL,
    counter {INT} NOT NULL,
    device {INT} NOT NULL,
    serial {INT} NOT NULL,
    PRIMARY KEY (card_no, counter)
);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    balance {INT} NOT NULL
);
CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    from_account TEXT NOT NULL REFERENCES accounts(id),
    to_account TEXT NOT NULL REFERENCES accounts(id),
    amount {INT} NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL,
    device {INT},
    serial {INT},
    time {INT} NOT NULL,
    CHECK (from_account <> to_account)
);
CREATE INDEX transfers_record ON transfers (device, serial);
CREATE TABLE records (
    device {INT} NOT NULL,
    serial {INT} NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    online {INT} NOT NULL,
    card_type TEXT NOT NULL,
    card_no {INT} NOT NULL,
    card_counter {INT} NOT NULL,
    wallet_no {INT} NOT NULL,
    balance_before {INT} NOT NULL,
    amount {INT} NOT NULL,
    fee {INT} NOT NULL,
    balance_after {INT} NOT NULL,
    time {INT} NOT NULL,
    merchant_no {INT} NOT NULL,
    original_serial {INT},
    item_code {INT} NOT NULL,
    tac {INT} NOT NULL,
    booked {INT} NOT NULL,
    reversed_by {INT},
    received_at {INT} NOT NULL,
    PRIMARY KEY (device, serial)
);
CREATE INDEX records_card ON records (card_no, card_counter);
CREATE TABLE blacklist (
    card_no {INT} PRIMARY KEY,
    listed {INT} NOT NULL,
    version {INT} NOT NULL
);
CREATE INDEX blacklist_version ON blacklist (version);
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value {INT} NOT NULL
);
CREATE TABLE subsidies (
    id {SERIAL} PRIMARY KEY,
    card_no {INT} NOT NULL,
    amount {INT} NOT NULL CHECK (amount > 0),
    batch {INT} NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX subsidies_card ON subsidies (card_no, status);
INSERT INTO meta (name, value) VALUES ('blacklist_version', 0), ('card_no_seq', 0);
INSERT INTO accounts (id, kind, balance) VALUES ('fee', 'fee', 0), ('funding', 'funding', 0);
";

pub fn sqlite_v1() -> String {
    V1.replace("{INT}", "INTEGER")
        .replace("{BLOB}", "BLOB")
        .replace("{SERIAL}", "INTEGER")
}

pub fn postgres_v1() -> String {
    V1.replace("{INT}", "BIGINT")
        .replace("{BLOB}", "BYTEA")
        .replace("{SERIAL}", "BIGSERIAL")
}

/// V2: the daily report (`domain::report`) reads one day of records by time.
pub const V2: &str = "CREATE INDEX records_time ON records (time);";

/// V3: records collected from a card by another terminal (R-F4.17) keep the collecting
/// device; the `suspense` account holds collected money whose terminal has no merchant.
pub const V3: &str = "ALTER TABLE records ADD COLUMN collected_by BIGINT; \
     INSERT INTO accounts (id, kind, balance) VALUES ('suspense', 'suspense', 0);";

/// V4: transfers are no longer indexed by (device, serial): only the audit joins on it
/// (a full pass, which builds its own), and the index cost every debit a random b-tree page
/// in each group commit. `config_version` moves with every change to feps, merchants and
/// devices (not a device's status report), by trigger, so that even a change made outside
/// ykt reaches the writers' caches of them (`cache.rs`).
const V4: &str = "
DROP INDEX transfers_record;
INSERT INTO meta (name, value) VALUES ('config_version', 0);
";

/// The tables of configuration and the columns whose change moves `config_version`
/// (a device's other columns are its status report).
const CONFIG_TABLES: [(&str, &str); 3] = [
    ("feps", "name, status, signed_in_at"),
    ("merchants", "name, status"),
    (
        "devices",
        "terminal_no, merchant_no, status, master_key, mac_suite, functions, max_amount, params",
    ),
];

pub fn sqlite_v4() -> String {
    let mut sql = V4.to_owned();
    for (table, columns) in CONFIG_TABLES {
        for (event, of) in [
            ("insert", String::new()),
            ("delete", String::new()),
            ("update", format!(" OF {columns}")),
        ] {
            sql.push_str(&format!(
                "CREATE TRIGGER {table}_{event}_config AFTER {event}{of} ON {table} BEGIN \
                 UPDATE meta SET value = value + 1 WHERE name = 'config_version'; END;\n"
            ));
        }
    }
    sql
}

pub fn postgres_v4() -> String {
    let mut sql = V4.to_owned();
    sql.push_str(
        "CREATE FUNCTION ykt_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         UPDATE meta SET value = value + 1 WHERE name = 'config_version'; RETURN NULL; END $$;\n",
    );
    for (table, columns) in CONFIG_TABLES {
        sql.push_str(&format!(
            "CREATE TRIGGER {table}_config AFTER INSERT OR DELETE OR UPDATE OF {columns} \
             ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ykt_config_changed();\n"
        ));
    }
    sql
}

/// V5: the accounting subject (科目, R-F4.14) of a record, resolved when the host stores it
/// from the price list of the device that made it (its item code); NULL when none.
pub const V5: &str = "ALTER TABLE records ADD COLUMN subject BIGINT;";

/// V6: the exception queue (R-B3). A record whose money left a card but which the host
/// refused for good is held here, in full (so it can be booked later), with the code the
/// terminal got and why; `exception_resolutions` records how the card office resolved it
/// (one row per exception, never an edit of the held record): `book` / `suspense`
/// (booked) or `reject`, by whom, when, a note and the state before and after (JSON).
pub const V6: &str = "
CREATE TABLE exceptions (
    device BIGINT NOT NULL,
    serial BIGINT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    online BIGINT NOT NULL,
    card_type TEXT NOT NULL,
    card_no BIGINT NOT NULL,
    card_counter BIGINT NOT NULL,
    wallet_no BIGINT NOT NULL,
    balance_before BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    fee BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    time BIGINT NOT NULL,
    merchant_no BIGINT NOT NULL,
    original_serial BIGINT,
    item_code BIGINT NOT NULL,
    tac BIGINT NOT NULL,
    code BIGINT NOT NULL,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    uploader BIGINT NOT NULL,
    PRIMARY KEY (device, serial)
);
CREATE TABLE exception_resolutions (
    device BIGINT NOT NULL,
    serial BIGINT NOT NULL,
    action TEXT NOT NULL,
    resolved_by TEXT NOT NULL,
    resolved_at BIGINT NOT NULL,
    note TEXT NOT NULL,
    state_before TEXT NOT NULL,
    state_after TEXT NOT NULL,
    PRIMARY KEY (device, serial)
);
";

/// Applies every migration newer than the database's version, each in its own transaction.
pub fn migrate(conn: &mut dyn Conn, migrations: &[(i64, String)]) -> Result<()> {
    conn.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    for (version, sql) in migrations {
        conn.batch("BEGIN")?;
        let current = conn
            .query_opt("SELECT MAX(version) FROM schema_version", &[])?
            .map(|r| r.opt_int(0))
            .transpose()?
            .flatten()
            .unwrap_or(0);
        if current >= *version {
            conn.batch("ROLLBACK")?;
            continue;
        }
        if let Err(e) = conn.batch(sql).and_then(|()| {
            conn.exec(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[(*version).into()],
            )
            .map(drop)
        }) {
            let _ = conn.batch("ROLLBACK");
            return Err(e);
        }
        conn.batch("COMMIT")?;
    }
    Ok(())
}
