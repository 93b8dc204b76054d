//! A subsidy list (补助名单, R-B5), pure: the file's lines as rows naming a cardholder or a
//! card and an amount, or every error with its line. What needs the database (is the
//! student known, is the card active, caps) is checked at import (`domain::subsidies`).
//!
//! Columns (Chinese or English): 学工号/number or 卡号/card_no (at least one of the two
//! columns; each line names one or both), 金额/amount (元, at most two decimals), 批次号/batch
//! (optional; when given, the batch imported into), 备注/note (optional), 姓名/name (optional,
//! for the people who read the file; not checked).

use ykt_proto::Fen;

use crate::import::{Format, LineError, Sheet};

pub const COLUMNS: [(&str, &str); 6] = [
    ("学工号", "number"),
    ("卡号", "card_no"),
    ("金额", "amount"),
    ("批次号", "batch"),
    ("备注", "note"),
    ("姓名", "name"),
];
const NUMBER: usize = 0;
const CARD: usize = 1;
const AMOUNT: usize = 2;
const BATCH: usize = 3;
const NOTE: usize = 4;

/// Longest note of a line.
pub const MAX_NOTE: usize = 200;

/// Whom a line pays: a cardholder (their active card), a card, or both (which must agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payee {
    Holder(String),
    Card(u32),
    Both { holder: String, card: u32 },
}

/// One valid line of a subsidy list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsidyRow {
    pub line: u64,
    pub payee: Payee,
    pub amount: Fen,
    pub note: String,
}

/// 元 with at most two decimals as fen: digits, optionally '.' and one or two digits.
/// Refused: a sign ('+' or '-'), zero, more than two decimals, anything else.
pub fn parse_yuan(s: &str) -> Result<Fen, String> {
    let bad = || format!("金额 {s:?} 须为正数（元，最多两位小数）");
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    if frac.len() > 2 {
        return Err(format!("金额 {s:?} 超过两位小数"));
    }
    let whole: Fen = whole.parse().map_err(|_| bad())?;
    let cents: Fen = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let fen = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(bad)?;
    if fen == 0 {
        return Err(format!("金额 {s:?} 须大于零"));
    }
    Ok(fen)
}

/// A list's valid rows and its refused lines; the import checks the rows against the
/// database and reports its errors with these, so every error of a list comes at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub rows: Vec<SubsidyRow>,
    pub errors: Vec<LineError>,
}

/// The rows and the refused lines, or the file's own error (not a file, no header, a
/// missing column). `batch` is the number the list is imported as: a line naming another
/// batch is an error.
pub fn parse(format: Format, bytes: &[u8], batch: u32) -> Result<Parsed, Vec<LineError>> {
    let sheet = Sheet::read(format, bytes, &COLUMNS, &[AMOUNT])?;
    if sheet.at[NUMBER].is_none() && sheet.at[CARD].is_none() {
        return Err(vec![LineError {
            line: sheet.head_line,
            error: "缺少列 学工号/number 或 卡号/card_no".into(),
        }]);
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (line, cells) in &sheet.lines {
        match row(&sheet, cells, batch) {
            Ok((payee, amount, note)) => rows.push(SubsidyRow {
                line: *line,
                payee,
                amount,
                note,
            }),
            Err(error) => errors.push(LineError { line: *line, error }),
        }
    }
    Ok(Parsed { rows, errors })
}

fn row(sheet: &Sheet, cells: &[String], batch: u32) -> Result<(Payee, Fen, String), String> {
    let number = sheet.cell(cells, NUMBER);
    let card = sheet.cell(cells, CARD);
    let card = match card.as_str() {
        "" => None,
        c => Some(
            c.parse::<u32>()
                .ok()
                .filter(|n| ykt_proto::CardNo::new(*n).is_some())
                .ok_or_else(|| format!("卡号 {c:?} 须为 1 至 16777215"))?,
        ),
    };
    if !number.is_empty() {
        crate::domain::cardholders::check_number(&number).map_err(|e| match e {
            crate::HostError::Invalid(m) => m,
            other => other.to_string(),
        })?;
    }
    let payee = match (number.is_empty(), card) {
        (true, None) => return Err("须填学工号或卡号".into()),
        (false, None) => Payee::Holder(number),
        (true, Some(c)) => Payee::Card(c),
        (false, Some(c)) => Payee::Both {
            holder: number,
            card: c,
        },
    };
    let amount = parse_yuan(&sheet.cell(cells, AMOUNT))?;
    let named = sheet.cell(cells, BATCH);
    if !named.is_empty() && named.parse::<u32>().ok() != Some(batch) {
        return Err(format!("批次号 {named:?} 不是导入的批次 {batch}"));
    }
    let note = sheet.cell(cells, NOTE);
    if note.chars().count() > MAX_NOTE || note.chars().any(char::is_control) {
        return Err(format!("备注最多 {MAX_NOTE} 个字符，不能含控制字符"));
    }
    Ok((payee, amount, note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // R-B5: amounts are 元 with at most two decimals; sign, zero and a third decimal refused.
    #[test]
    fn amounts_in_yuan() {
        assert_eq!(parse_yuan("12"), Ok(1200));
        assert_eq!(parse_yuan("12.5"), Ok(1250));
        assert_eq!(parse_yuan("0.01"), Ok(1));
        assert_eq!(parse_yuan("007.10"), Ok(710));
        for bad in [
            "",
            "+1",
            "-1",
            "0",
            "0.00",
            "1.234",
            "1.",
            ".5",
            "1,5",
            "1e3",
            " 1",
            "１",
            "99999999999999999999",
        ] {
            assert!(parse_yuan(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        // R-B5: every amount in fen written as 元 reads back as itself.
        #[test]
        fn yuan_round_trip(fen in 1i64..=i64::MAX / 100) {
            let text = format!("{}.{:02}", fen / 100, fen % 100);
            prop_assert_eq!(parse_yuan(&text), Ok(fen));
            let (third, plus, minus) =
                (format!("{text}1"), format!("+{text}"), format!("-{text}"));
            prop_assert!(parse_yuan(&third).is_err());
            prop_assert!(parse_yuan(&plus).is_err());
            prop_assert!(parse_yuan(&minus).is_err());
        }
    }
}
