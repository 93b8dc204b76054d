//! V9: subsidy batches (补助批次, R-B5). A batch is imported from a list, checked by one
//! operator, approved by a second, issued (each line becomes a waiting load of V8's
//! `waiting_loads`, funded from the batch's funding account) and closed once nothing of it
//! waits. Lines name their card (resolved at import) and, once issued, their waiting load;
//! a line's pick-up is its load's (`posted`), a revoked or expired line gave its load back.
//! The caps are system parameters in `meta` (a batch may set lower ones of its own).

const V9: &str = "
CREATE TABLE subsidy_batches (
    no {INT} PRIMARY KEY,
    name TEXT NOT NULL,
    note TEXT NOT NULL,
    funding TEXT NOT NULL REFERENCES accounts(id),
    state TEXT NOT NULL,
    lines {INT} NOT NULL,
    total {INT} NOT NULL,
    batch_cap {INT} NOT NULL,
    card_cap {INT} NOT NULL,
    expires_on {INT} NOT NULL,
    sha256 TEXT NOT NULL,
    imported_by {INT} NOT NULL REFERENCES operators(id),
    imported_at {INT} NOT NULL,
    checked_by {INT},
    checked_at {INT},
    approval_id {INT},
    approved_by {INT},
    approved_at {INT},
    issued_by {INT},
    issued_at {INT},
    closed_at {INT},
    revoked {INT} NOT NULL,
    expired {INT} NOT NULL
);
CREATE INDEX subsidy_batches_state ON subsidy_batches (state, no);
CREATE TABLE subsidy_lines (
    batch_no {INT} NOT NULL REFERENCES subsidy_batches(no),
    line {INT} NOT NULL,
    card_no {INT} NOT NULL,
    holder TEXT,
    amount {INT} NOT NULL CHECK (amount > 0),
    note TEXT NOT NULL,
    state TEXT NOT NULL,
    load_id {INT},
    PRIMARY KEY (batch_no, line),
    UNIQUE (batch_no, card_no)
);
CREATE INDEX subsidy_lines_load ON subsidy_lines (load_id);
INSERT INTO meta (name, value) VALUES
    ('subsidy_batch_cap', 100000000), ('subsidy_card_cap', 200000);
";

pub fn sqlite_v9() -> String {
    V9.replace("{INT}", "INTEGER")
}

pub fn postgres_v9() -> String {
    V9.replace("{INT}", "BIGINT")
}
