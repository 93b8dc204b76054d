//! V11: merchants' types and commission, maintenance mode and payouts (R-B8, R-B9).
//! `kind` decides which trades fit a merchant (code 42); existing merchants become
//! `general` (sales and top-ups), so nothing they did before is refused. `commission_bp`
//! is the merchant's commission (管理费) in basis points of a payout's gross. `payouts`
//! records each payout period (解款) with its transfers' ids. `maintenance` (meta, 0/1) is
//! the administrator's maintenance mode (code 8).

const V11: &str = "
ALTER TABLE merchants ADD COLUMN kind TEXT NOT NULL DEFAULT 'general';
ALTER TABLE merchants ADD COLUMN commission_bp {INT} NOT NULL DEFAULT 0
    CHECK (commission_bp >= 0 AND commission_bp <= 10000);
CREATE TABLE payouts (
    merchant_no {INT} NOT NULL REFERENCES merchants(no),
    seq {INT} NOT NULL,
    period_from {INT} NOT NULL,
    period_to {INT} NOT NULL,
    gross {INT} NOT NULL CHECK (gross > 0),
    commission {INT} NOT NULL CHECK (commission >= 0),
    net {INT} NOT NULL CHECK (net >= 0),
    commission_bp {INT} NOT NULL,
    net_transfer TEXT NOT NULL,
    commission_transfer TEXT,
    bank_ref TEXT NOT NULL,
    paid_by TEXT NOT NULL,
    paid_at {INT} NOT NULL,
    PRIMARY KEY (merchant_no, seq),
    CHECK (gross = commission + net)
);
INSERT INTO accounts (id, kind, balance) VALUES
    ('income:commission', 'income', 0), ('bank:payout', 'bank', 0);
INSERT INTO meta (name, value) VALUES ('maintenance', 0), ('payout_approval_threshold', 1000000);
";

pub fn sqlite_v11() -> String {
    [V11, super::schema_dayend::V11_DAYEND]
        .concat()
        .replace("{INT}", "INTEGER")
}

pub fn postgres_v11() -> String {
    [V11, super::schema_dayend::V11_DAYEND]
        .concat()
        .replace("{INT}", "BIGINT")
}
