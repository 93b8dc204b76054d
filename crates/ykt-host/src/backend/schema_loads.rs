//! V8: money onto the card (R-B4, R-B5, docs/loads.md).
//!
//! - `loads`: one row per load authorisation (0x08), keyed by the terminal's `(device, serial)`,
//!   with what the card showed before, the amount, the account it came from and its state
//!   (`pending` → `posted` | `voided`).
//! - `waiting_loads`: money waiting for a card (card-office deposits, issued subsidies) until
//!   a pick-up writes it onto the card: `waiting` → `claimed` (by a pick-up's `(device,
//!   serial)`) → `posted`, or back to `waiting` when the pick-up is voided; `revoked` and
//!   `expired` give it back to where it came from.
//! - Columns on `cards`, read with the card on every tap at no extra query: `waiting` (the sum
//!   of its `waiting` loads, info code 2), `subsidy_seq` (posted pick-ups, as the card counts
//!   them, code 63) and `loads_pending` (its pending loads: only then does a record settle one).
//! - `device_operators`: the operator whose cash a top-up device takes (their shift tally).
//! - The top-up limits (code 90) as system parameters in `meta`; 0 = no limit.
//! - V1's `subsidies` were markers that moved no money: each pending one becomes a waiting
//!   subsidy load funded from `funding`, so nothing a cardholder was told waits is lost.

const V8: &str = "
CREATE TABLE loads (
    device BIGINT NOT NULL,
    serial BIGINT NOT NULL,
    card_no BIGINT NOT NULL,
    purpose TEXT NOT NULL,
    card_type TEXT NOT NULL,
    counter_before BIGINT NOT NULL,
    balance_before BIGINT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    subsidy_seq BIGINT NOT NULL,
    time BIGINT NOT NULL,
    funding TEXT NOT NULL,
    operator_id BIGINT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    settled_at BIGINT,
    cpu_online_seq BIGINT,
    cpu_terminal_id BIGINT,
    wallet_no BIGINT NOT NULL,
    PRIMARY KEY (device, serial)
);
CREATE INDEX loads_card ON loads (card_no, state);
CREATE TABLE waiting_loads (
    id {SERIAL} PRIMARY KEY,
    card_no BIGINT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    source TEXT NOT NULL,
    batch BIGINT,
    transfer_id TEXT NOT NULL,
    state TEXT NOT NULL,
    claim_device BIGINT,
    claim_serial BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    settled_at BIGINT
);
CREATE INDEX waiting_loads_card ON waiting_loads (card_no, state);
CREATE INDEX waiting_loads_claim ON waiting_loads (claim_device, claim_serial);
CREATE INDEX waiting_loads_batch ON waiting_loads (batch, state);
CREATE TABLE device_operators (
    device BIGINT PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators(id),
    assigned_at BIGINT NOT NULL
);
ALTER TABLE cards ADD COLUMN waiting BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN subsidy_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN loads_pending BIGINT NOT NULL DEFAULT 0;
INSERT INTO accounts (id, kind, balance) VALUES
    ('topup:pending', 'topup', 0), ('waiting', 'waiting', 0), ('subsidy', 'subsidy', 0),
    ('bank:sim', 'bank', 0);
INSERT INTO meta (name, value) VALUES
    ('topup_max_amount', 0), ('topup_max_per_day', 0), ('topup_max_balance', 0);
INSERT INTO waiting_loads (card_no, amount, source, batch, transfer_id, state, created_at)
    SELECT card_no, amount, 'subsidy', batch, 'v8sub:' || CAST(id AS TEXT), 'waiting', 0
    FROM subsidies WHERE status = 'pending';
INSERT INTO transfers (id, from_account, to_account, amount, kind, time)
    SELECT transfer_id, 'funding', 'subsidy', amount, 'migration', 0 FROM waiting_loads;
UPDATE accounts SET balance = balance - (SELECT COALESCE(SUM(amount), 0) FROM waiting_loads)
    WHERE id = 'funding';
UPDATE accounts SET balance = (SELECT COALESCE(SUM(amount), 0) FROM waiting_loads)
    WHERE id = 'subsidy';
UPDATE cards SET waiting = (SELECT COALESCE(SUM(w.amount), 0) FROM waiting_loads w
    WHERE w.card_no = cards.no);
UPDATE subsidies SET status = 'migrated' WHERE status = 'pending';
";

pub fn sqlite_v8() -> String {
    V8.replace("{SERIAL}", "INTEGER")
}

pub fn postgres_v8() -> String {
    V8.replace("{SERIAL}", "BIGSERIAL")
}
