#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The code tables of `codes.rs` against the spec's tables 6.1.3 and 6.2.2, kept verbatim in
//! `tests/fixtures/codes.tsv` so that a fresh clone tests them without the spec beside it.

use std::collections::BTreeMap;

use ykt_proto::{InfoCode, ReturnCode};

const FIXTURE: &str = include_str!("fixtures/codes.tsv");
const RETURN_CODES: &str = "6.1.3";
const INFO_CODES: &str = "6.2.2";

/// The fixture's rows of one table: code → text.
fn fixture(table: &str) -> BTreeMap<u8, String> {
    let mut rows = BTreeMap::new();
    for line in FIXTURE.lines().filter(|l| !l.starts_with('#')) {
        let mut cols = line.split('\t');
        let (t, code, text) = (cols.next(), cols.next(), cols.next());
        assert!(cols.next().is_none(), "more than 3 columns: {line:?}");
        let (Some(t), Some(code), Some(text)) = (t, code, text) else {
            panic!("fewer than 3 columns: {line:?}");
        };
        assert!(
            t == RETURN_CODES || t == INFO_CODES,
            "unknown table: {line:?}"
        );
        if t == table {
            let code: u8 = code.parse().expect("code 0–255");
            assert!(
                rows.insert(code, text.to_owned()).is_none(),
                "code {code} twice"
            );
        }
    }
    rows
}

fn ours<C: Copy>(table: &[(C, &str)], number: impl Fn(C) -> u8) -> BTreeMap<u8, String> {
    table
        .iter()
        .map(|(c, text)| (number(*c), (*text).to_owned()))
        .collect()
}

/// `ours` (code → text, from a TABLE of `table_len` entries) is the fixture's `table` of
/// `count` rows, and `text_of` gives each code its text.
fn assert_table(
    ours: BTreeMap<u8, String>,
    table_len: usize,
    count: usize,
    table: &str,
    text_of: impl Fn(u8) -> Option<&'static str>,
) {
    assert_eq!(ours.len(), table_len, "a code twice in TABLE");
    assert_eq!(ours.len(), count);
    assert_eq!(ours, fixture(table));
    for (n, text) in &ours {
        assert_eq!(text_of(*n), Some(text.as_str()));
    }
}

// R-C6.1: every entry of 6.1.3 with its exact text, and nothing else. issue 10.16
#[test]
fn return_code_table_matches_the_fixture() {
    let ours = ours(ReturnCode::TABLE, |c| c.0);
    assert_table(ours, ReturnCode::TABLE.len(), 70, RETURN_CODES, |n| {
        ReturnCode(n).table_text()
    });
}

// R-C6.2: every entry of 6.2.2 with its exact text, and nothing else. issue 10.16
#[test]
fn info_code_table_matches_the_fixture() {
    let ours = ours(InfoCode::TABLE, |c| c.0);
    assert_table(ours, InfoCode::TABLE.len(), 10, INFO_CODES, |n| {
        InfoCode(n).table_text()
    });
}

/// The rows `code<TAB>text` of the spec's body between the last `start` and the next `end`
/// (the contents page names each heading once before the body does).
fn spec_rows(spec: &str, start: &str, end: &str) -> BTreeMap<u8, String> {
    let body = spec.rsplit(start).next().expect("section start");
    let section = body.split(end).next().expect("section end");
    section
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(n, t)| n.parse::<u8>().ok().map(|n| (n, t.trim_end().to_owned())))
        .collect()
}

/// The spec in a `shared/spec/` beside the repository or beside one of its parent folders
/// (a worktree lies one level deeper than the main checkout).
fn spec_beside_the_repository() -> Option<String> {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)?;
    repository.ancestors().skip(1).find_map(|dir| {
        std::fs::read_to_string(dir.join("shared/spec/terminal-access-spec-v1.2.zh.txt")).ok()
    })
}

// R-C6.1, R-C6.2: the fixture is the spec's tables, when the spec happens to lie beside the
// repository (`shared/spec/` beside it or a parent folder); a clone without it tests
// against the fixture only. issue 10.16
#[test]
fn fixture_matches_the_spec_when_it_is_beside_the_repository() {
    let Some(spec) = spec_beside_the_repository() else {
        eprintln!("no shared/spec beside the repository: the fixture alone is checked");
        return;
    };
    assert_eq!(
        spec_rows(&spec, "6.1.3 返回码对照表", "6.2 提示信息码"),
        fixture(RETURN_CODES)
    );
    assert_eq!(
        spec_rows(&spec, "信息码定义", "6.3 交易流程"),
        fixture(INFO_CODES)
    );
}
