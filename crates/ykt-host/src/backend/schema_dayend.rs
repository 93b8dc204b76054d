//! V11 (second part): day-end (日终, R-B9); the day closes at `meta.dayend_close_minute` after the next midnight. `day_ends` holds one closed accounting day: its
//! frozen daily report and meal-period totals (JSON, served as stored and never recomputed),
//! whether the audit of the books was clean at the close, who closed it and when;
//! `day_end_balances` the snapshot of every account's balance at the close. Meal periods
//! (餐次) are rows of `meal_periods` (minutes after midnight, end exclusive).
//! `records_received` lets the daily report find the late records that arrived on a day;
//! `records.frozen` (1) marks the records a day-end counted in its frozen report, so a record
//! of a closed day without it is late, whatever the clock's resolution.

pub const V11_DAYEND: &str = "
CREATE TABLE day_ends (
    day {INT} PRIMARY KEY,
    closed_at {INT} NOT NULL,
    closed_by TEXT NOT NULL,
    report TEXT NOT NULL,
    meals TEXT NOT NULL,
    audit_clean {INT} NOT NULL,
    accounts {INT} NOT NULL
);
CREATE TABLE day_end_balances (
    day {INT} NOT NULL REFERENCES day_ends(day),
    account TEXT NOT NULL,
    balance {INT} NOT NULL,
    PRIMARY KEY (day, account)
);
CREATE TABLE meal_periods (
    name TEXT PRIMARY KEY,
    start_minute {INT} NOT NULL CHECK (start_minute >= 0 AND start_minute < 1440),
    end_minute {INT} NOT NULL CHECK (end_minute > start_minute AND end_minute <= 1440)
);
INSERT INTO meal_periods (name, start_minute, end_minute) VALUES
    ('breakfast', 360, 600), ('lunch', 600, 840), ('dinner', 960, 1200);
INSERT INTO meta (name, value) VALUES ('dayend_close_minute', 0);
CREATE INDEX records_received ON records (received_at);
ALTER TABLE records ADD COLUMN frozen {INT} NOT NULL DEFAULT 0;
";
