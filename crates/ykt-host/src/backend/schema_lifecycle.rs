//! V10: the card office's lifecycle of a card's money (R-B6, R-B7). A replacement (补卡)
//! links the lost or bad old card to its new card; the old card's balance moves to money
//! waiting for the new card once the replacement is due, late records of the old card are
//! covered by corrections (`domain::replacements`) and its late credits (reversal,
//! cancellation) are forwarded to the new card (`forwarded`, `domain::late_credits`). A
//! closure (销户) blocks a card at once and pays its balance out when due, in cash (tallied
//! as a payout in the clerk's shift, `cash_payouts`) or to a bank account
//! (`domain::closures`); a credit arriving after the payout is owed to the holder (`owed`,
//! account `refund:owed`). The waiting period and the batch approval threshold are system
//! parameters in `meta`.

const V10: &str = "
CREATE TABLE card_replacements (
    old_card {INT} PRIMARY KEY,
    new_card {INT} NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    fee {INT} NOT NULL CHECK (fee >= 0),
    fee_method TEXT NOT NULL,
    requested_by {INT},
    requested_at {INT} NOT NULL,
    due_at {INT} NOT NULL,
    state TEXT NOT NULL,
    moved_at {INT},
    moved {INT} NOT NULL DEFAULT 0,
    load_id {INT},
    corrected {INT} NOT NULL DEFAULT 0,
    corrections {INT} NOT NULL DEFAULT 0,
    forwarded {INT} NOT NULL DEFAULT 0
);
CREATE INDEX card_replacements_due ON card_replacements (state, due_at);
CREATE TABLE card_closures (
    card_no {INT} PRIMARY KEY,
    method TEXT NOT NULL,
    bank_account TEXT,
    batch_no {INT},
    requested_by {INT},
    requested_at {INT} NOT NULL,
    due_at {INT} NOT NULL,
    state TEXT NOT NULL,
    paid_at {INT},
    paid_by {INT},
    amount {INT} NOT NULL DEFAULT 0,
    transfer_id TEXT,
    owed {INT} NOT NULL DEFAULT 0
);
CREATE INDEX card_closures_due ON card_closures (state, due_at);
CREATE TABLE cash_payouts (
    transfer_id TEXT PRIMARY KEY,
    shift_id {INT} NOT NULL REFERENCES shifts(id),
    operator_id {INT} NOT NULL,
    amount {INT} NOT NULL CHECK (amount > 0),
    at {INT} NOT NULL
);
CREATE INDEX cash_payouts_shift ON cash_payouts (shift_id);
INSERT INTO accounts (id, kind, balance) VALUES
    ('income:card_fee', 'income', 0), ('refund:cash', 'refund', 0), ('refund:bank', 'refund', 0),
    ('refund:owed', 'refund', 0);
INSERT INTO meta (name, value) VALUES
    ('replacement_wait_days', 2), ('closure_batch_approval', 1000000), ('closure_batch_seq', 0);
";

pub fn sqlite_v10() -> String {
    V10.replace("{INT}", "INTEGER")
}

pub fn postgres_v10() -> String {
    V10.replace("{INT}", "BIGINT")
}
