//! V13: operator authorisation cards (授权卡, R-B11, `docs/operators.md`). A card belongs to
//! one operator, authorises a set of terminal functions between two times, and carries its
//! PIN as an Argon2id hash here (on the card: verification data under the card's key). Wrong
//! PINs in a row lock it. Every check a terminal asks for (0x0A) is kept in `auth_card_uses`,
//! answered code included: who authorised what, where and when.

const V13: &str = "
CREATE TABLE auth_cards (
    no {INT} PRIMARY KEY CHECK (no > 0 AND no <= 4294967295),
    operator_id {INT} NOT NULL REFERENCES operators(id),
    state TEXT NOT NULL CHECK (state IN ('normal', 'lost', 'frozen', 'locked', 'disabled', 'cancelled')),
    valid_from {INT} NOT NULL,
    valid_until {INT} NOT NULL,
    functions {INT} NOT NULL CHECK (functions >= 0 AND functions < 32),
    pin_hash TEXT NOT NULL,
    pin_failures {INT} NOT NULL CHECK (pin_failures >= 0),
    issued_by {INT} NOT NULL REFERENCES operators(id),
    issued_at {INT} NOT NULL,
    changed_at {INT} NOT NULL,
    CHECK (valid_from < valid_until)
);
CREATE INDEX auth_cards_operator ON auth_cards (operator_id, no);
CREATE TABLE auth_card_uses (
    seq {SERIAL} PRIMARY KEY,
    card_no {INT} NOT NULL,
    device {INT} NOT NULL,
    function {INT} NOT NULL,
    terminal_time {INT} NOT NULL,
    at {INT} NOT NULL,
    code {INT} NOT NULL
);
CREATE INDEX auth_card_uses_card ON auth_card_uses (card_no, seq);
INSERT INTO meta (name, value) VALUES ('auth_card_no_seq', 900000);
";

pub fn sqlite_v13() -> String {
    V13.replace("{INT}", "INTEGER")
        .replace("{SERIAL}", "INTEGER")
}

pub fn postgres_v13() -> String {
    V13.replace("{INT}", "BIGINT")
        .replace("{SERIAL}", "BIGSERIAL")
}
