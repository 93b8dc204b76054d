//! V12: card-vs-account reconciliation (卡库不平, R-B10) and the host's copy of card PINs. One row per card a reconciliation
//! run found out of agreement with its account, kept after it agrees again (`resolved_at`) so
//! the card office sees what was found and when it was explained. The thresholds of the alarm
//! are system parameters in `meta`. `card_pins`: the Argon2id hash of a card's PIN (the PIN
//! itself lives on the card as verification data) and the wrong tries since the last right
//! one; `pin_max_failures` wrong tries lock the card (54).

const V12: &str = "
CREATE TABLE card_reconcile (
    card_no {INT} PRIMARY KEY,
    state TEXT NOT NULL,
    card_balance {INT} NOT NULL,
    book_balance {INT} NOT NULL,
    difference {INT} NOT NULL,
    missing {INT} NOT NULL,
    last_counter {INT} NOT NULL,
    last_device {INT} NOT NULL,
    last_time {INT} NOT NULL,
    since {INT} NOT NULL,
    checked_at {INT} NOT NULL,
    resolved_at {INT},
    collect_count {INT} NOT NULL,
    collect_sent_at {INT}
);
CREATE INDEX card_reconcile_state ON card_reconcile (state, since);
CREATE TABLE card_pins (
    card_no {INT} PRIMARY KEY,
    hash TEXT NOT NULL,
    failures {INT} NOT NULL,
    changed_at {INT} NOT NULL
);
INSERT INTO meta (name, value) VALUES
    ('reconcile_alarm_days', 2), ('reconcile_alarm_fen', 10000), ('pin_max_failures', 3);
";

pub fn sqlite_v12() -> String {
    V12.replace("{INT}", "INTEGER")
}

pub fn postgres_v12() -> String {
    V12.replace("{INT}", "BIGINT")
}
