//! V7: the people of a card office (R-B1, R-B2): operators, their API tokens and browser
//! sessions, the append-only operator journal, requests awaiting a second operator, cash
//! shifts, cardholders. Secrets are stored only as hashes (Argon2id for passwords, SHA-256
//! for random tokens). Deposits made before V7 are named by one journal entry of the
//! migration, so the audit's pairing of deposits with the journal holds for old data too.

const V7: &str = "
CREATE TABLE operators (
    id {SERIAL} PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    status TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    must_change {INT} NOT NULL,
    failed_logins {INT} NOT NULL,
    locked_until {INT},
    created_at {INT} NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    operator_id {INT} NOT NULL REFERENCES operators(id),
    secret_hash TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at {INT} NOT NULL,
    expires_at {INT},
    revoked_at {INT}
);
CREATE INDEX api_tokens_operator ON api_tokens (operator_id);
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    operator_id {INT} NOT NULL REFERENCES operators(id),
    csrf TEXT NOT NULL,
    client TEXT NOT NULL,
    created_at {INT} NOT NULL,
    last_seen {INT} NOT NULL,
    ended_at {INT}
);
CREATE TABLE journal (
    seq {SERIAL} PRIMARY KEY,
    at {INT} NOT NULL,
    operator_id {INT},
    operator_login TEXT NOT NULL,
    role TEXT NOT NULL,
    client TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    before_value TEXT,
    after_value TEXT
);
CREATE INDEX journal_operator ON journal (operator_id, seq);
CREATE INDEX journal_target ON journal (target, seq);
CREATE INDEX journal_at ON journal (at);
CREATE TABLE journal_transfers (
    transfer_id TEXT PRIMARY KEY,
    seq {INT} NOT NULL
);
CREATE TABLE approvals (
    id {SERIAL} PRIMARY KEY,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    requested_by {INT} NOT NULL REFERENCES operators(id),
    requested_at {INT} NOT NULL,
    status TEXT NOT NULL,
    decided_by {INT},
    decided_at {INT},
    note TEXT
);
CREATE INDEX approvals_status ON approvals (status, id);
CREATE TABLE shifts (
    id {SERIAL} PRIMARY KEY,
    operator_id {INT} NOT NULL REFERENCES operators(id),
    opened_at {INT} NOT NULL,
    closed_at {INT}
);
CREATE INDEX shifts_operator ON shifts (operator_id, opened_at);
CREATE TABLE cash_entries (
    transfer_id TEXT PRIMARY KEY,
    shift_id {INT} NOT NULL REFERENCES shifts(id),
    operator_id {INT} NOT NULL,
    method TEXT NOT NULL,
    amount {INT} NOT NULL CHECK (amount > 0),
    at {INT} NOT NULL
);
CREATE INDEX cash_entries_shift ON cash_entries (shift_id);
CREATE TABLE cardholders (
    id {SERIAL} PRIMARY KEY,
    number TEXT{C} NOT NULL UNIQUE,
    name TEXT{C} NOT NULL,
    kind TEXT NOT NULL,
    department TEXT NOT NULL,
    id_number TEXT,
    phone TEXT,
    status TEXT NOT NULL,
    created_at {INT} NOT NULL
);
CREATE INDEX cardholders_name ON cardholders (name, number);
ALTER TABLE cards ADD COLUMN cardholder_id BIGINT;
CREATE INDEX cards_cardholder ON cards (cardholder_id);
INSERT INTO meta (name, value) VALUES ('deposit_approval_threshold', 100000);
INSERT INTO journal (at, operator_id, operator_login, role, client, operation, target)
    VALUES (0, NULL, 'system', 'system', 'migration', 'migrate.v7', 'transfers');
INSERT INTO journal_transfers (transfer_id, seq)
    SELECT id, (SELECT MAX(seq) FROM journal) FROM transfers WHERE kind = 'deposit';
";

const APPEND_ONLY: &str = "the operator journal is append-only";

pub fn sqlite_v7() -> String {
    let mut sql = V7
        .replace("{INT}", "INTEGER")
        .replace("{SERIAL}", "INTEGER")
        .replace("{C}", "");
    for table in ["journal", "journal_transfers"] {
        for event in ["UPDATE", "DELETE"] {
            sql.push_str(&format!(
                "CREATE TRIGGER {table}_no_{event} BEFORE {event} ON {table} BEGIN \
                 SELECT RAISE(ABORT, '{APPEND_ONLY}'); END;\n"
            ));
        }
    }
    sql
}

pub fn postgres_v7() -> String {
    let mut sql = V7
        .replace("{INT}", "BIGINT")
        .replace("{SERIAL}", "BIGSERIAL")
        // Bytewise order, as SQLite's: a name prefix is one range of the index.
        .replace("{C}", " COLLATE \"C\"");
    sql.push_str(&format!(
        "CREATE FUNCTION ykt_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION '{APPEND_ONLY}'; END $$;\n"
    ));
    for table in ["journal", "journal_transfers"] {
        sql.push_str(&format!(
            "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION ykt_append_only();\n"
        ));
    }
    sql
}
