//! Table 6.1.3 walked (R-C6.1, issue 13's acceptance): every return code a host can produce
//! names the test that produces it from state, and that test exists and asserts that code;
//! the few codes a host cannot produce are listed, each with why, in `docs/spec-notes.md`.

use std::path::{Path, PathBuf};

use ykt_proto::ReturnCode;

/// (code, test file from the workspace root, test function).
const PRODUCED: &[(u8, &str, &str)] = &[
    (
        1,
        "crates/ykt-host/tests/store.rs",
        "full_queue_refuses_with_system_failure",
    ),
    (
        3,
        "crates/ykt-host/tests/server_money_wire.rs",
        "database_failure_is_code_3",
    ),
    (
        8,
        "crates/ykt-host/tests/conformance/merchants.rs",
        "maintenance_mode",
    ),
    (
        10,
        "crates/ykt-host/tests/conformance/suite.rs",
        "fep_lifecycle",
    ),
    (
        11,
        "crates/ykt-host/tests/conformance/suite.rs",
        "fep_lifecycle",
    ),
    (
        12,
        "crates/ykt-host/tests/conformance/suite.rs",
        "fep_lifecycle",
    ),
    (
        13,
        "crates/ykt-host/tests/conformance/suite.rs",
        "fep_lifecycle",
    ),
    (
        14,
        "crates/ykt-host/tests/server_bad_input.rs",
        "bad_input_is_refused_and_others_are_served",
    ),
    (
        15,
        "crates/ykt-proto/tests/session.rs",
        "unknown_version_gets_a_readable_error_response",
    ),
    (
        20,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        21,
        "crates/ykt-host/tests/server_bad_input.rs",
        "bad_input_is_refused_and_others_are_served",
    ),
    (
        22,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        23,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        24,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        25,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        26,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        27,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        28,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        29,
        "crates/ykt-host/tests/conformance/suite.rs",
        "device_lifecycle",
    ),
    (
        30,
        "crates/ykt-host/tests/conformance/suite.rs",
        "records_unique_per_device_serial",
    ),
    (
        31,
        "crates/ykt-host/tests/conformance/suite.rs",
        "reversal_codes",
    ),
    (
        32,
        "crates/ykt-host/tests/conformance/suite.rs",
        "reversal_codes",
    ),
    (
        33,
        "crates/ykt-host/tests/conformance/suite.rs",
        "amount_codes",
    ),
    (
        34,
        "crates/ykt-host/tests/conformance/suite.rs",
        "reversal_codes",
    ),
    (
        35,
        "crates/ykt-host/tests/conformance/suite.rs",
        "reversal_codes",
    ),
    (
        36,
        "crates/ykt-host/tests/conformance/suite.rs",
        "merchant_codes",
    ),
    (
        37,
        "crates/ykt-host/tests/conformance/loads.rs",
        "reversal_after_pickup_is_refused",
    ),
    (
        40,
        "crates/ykt-host/tests/conformance/suite.rs",
        "merchant_codes",
    ),
    (
        41,
        "crates/ykt-host/tests/conformance/suite.rs",
        "merchant_codes",
    ),
    (
        42,
        "crates/ykt-host/tests/conformance/merchants.rs",
        "merchant_type_codes",
    ),
    (
        43,
        "crates/ykt-host/tests/conformance/suite.rs",
        "merchant_codes",
    ),
    (
        44,
        "crates/ykt-host/tests/conformance/merchants.rs",
        "merchant_account_check",
    ),
    (
        45,
        "crates/ykt-host/tests/conformance/merchants.rs",
        "merchant_balance_codes",
    ),
    (
        50,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        51,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        52,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        53,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        54,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        55,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        56,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        57,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        58,
        "crates/ykt-host/tests/conformance/reconcile.rs",
        "reconcile_classifies_each_kind",
    ),
    (
        59,
        "crates/ykt-host/tests/conformance/suite.rs",
        "card_lifecycle_codes",
    ),
    (
        60,
        "crates/ykt-host/tests/conformance/reconcile.rs",
        "pin_wrong_tries_lock_the_card",
    ),
    (
        61,
        "crates/ykt-host/tests/conformance/suite.rs",
        "lifetime_counter",
    ),
    (
        62,
        "crates/ykt-host/tests/conformance/suite.rs",
        "lifetime_counter",
    ),
    (
        63,
        "crates/ykt-host/tests/conformance/loads.rs",
        "deposit_waits_and_is_picked_up",
    ),
    (
        64,
        "crates/ykt-host/tests/conformance/suite.rs",
        "amount_codes",
    ),
    (
        66,
        "crates/ykt-host/tests/conformance/suite.rs",
        "amount_codes",
    ),
    (
        67,
        "crates/ykt-host/tests/conformance/suite.rs",
        "amount_codes",
    ),
    (
        68,
        "crates/ykt-host/tests/conformance/suite.rs",
        "amount_codes",
    ),
    (
        69,
        "crates/ykt-host/tests/conformance/exceptions.rs",
        "debits_beyond_the_account_are_held",
    ),
    (
        70,
        "crates/ykt-host/tests/conformance/reconcile.rs",
        "reconcile_classifies_each_kind",
    ),
    (
        71,
        "crates/ykt-host/tests/conformance/suite.rs",
        "amount_codes",
    ),
    (
        80,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        81,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        82,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        83,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        84,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        85,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        86,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        87,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        88,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        89,
        "crates/ykt-host/tests/conformance/authcards.rs",
        "auth_card_codes",
    ),
    (
        90,
        "crates/ykt-host/tests/conformance/loads.rs",
        "top_up_limits_and_functions",
    ),
    (
        99,
        "crates/ykt-host/tests/conformance/loads.rs",
        "cpu_load_mac_and_tac",
    ),
];

/// Codes no host answer carries; `docs/spec-notes.md` says why, one row each.
const NOT_BY_A_HOST: &[u8] = &[2, 9, 65];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text of `fn name(` up to the next item at the file's top level (or the end).
fn function_body(text: &str, name: &str) -> Option<String> {
    let text = format!("\n{text}");
    let start = [format!("\nfn {name}("), format!(" fn {name}(")]
        .iter()
        .filter_map(|p| text.find(p.as_str()))
        .min()?;
    let rest = &text[start + 1..];
    let end = [
        "\nfn ",
        "\npub fn ",
        "\nasync fn ",
        "\n#[",
        "\n//",
        "\nmacro_rules!",
    ]
    .iter()
    .filter_map(|p| rest.find(p))
    .min()
    .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// Whether `body` names `code`: its constant (`CARD_BAD`) or its number as a token of its own.
fn mentions(body: &str, code: ReturnCode) -> bool {
    if code
        .name()
        .is_some_and(|n| body.contains(&format!("::{n}")))
    {
        return true;
    }
    let digits = code.0.to_string();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    body.match_indices(&digits).any(|(i, _)| {
        let before = body[..i].chars().next_back();
        let after = body[i + digits.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

// R-C6.1: each code of the table (but 0) is produced by exactly one named test, or excused.
#[test]
fn every_code_a_host_can_produce_names_its_test() {
    for &(code, text) in ReturnCode::TABLE.iter().filter(|(c, _)| c.0 != 0) {
        let producers = PRODUCED.iter().filter(|p| p.0 == code.0).count();
        let excused = NOT_BY_A_HOST.contains(&code.0);
        assert!(
            (producers == 1 && !excused) || (producers == 0 && excused),
            "code {} {text}: {producers} producing tests, excused: {excused}",
            code.0
        );
    }
    for &(code, file, test) in PRODUCED {
        let path = workspace().join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let body =
            function_body(&text, test).unwrap_or_else(|| panic!("{file} has no test fn {test}"));
        assert!(
            mentions(&body, ReturnCode(code)),
            "{file}::{test} does not assert code {code}"
        );
    }
}

// R-C6.1: the codes a host does not produce are explained, and only those.
#[test]
fn codes_a_host_cannot_produce_are_explained() {
    let notes = std::fs::read_to_string(workspace().join("docs/spec-notes.md")).unwrap();
    let section = notes
        .split("\n## ")
        .find(|s| s.starts_with("Return codes a host does not produce"))
        .expect("docs/spec-notes.md: section 'Return codes a host does not produce'");
    let rows: Vec<u8> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(rows, NOT_BY_A_HOST, "the rows of the section");
}

#[test]
fn the_checks_themselves_work() {
    let text = "fn a() {\n    assert_eq!(x, 53);\n}\n\n// next\npub fn b() { 530 }\n";
    let a = function_body(text, "a").unwrap();
    assert!(mentions(&a, ReturnCode(53)));
    assert!(!mentions(&a, ReturnCode(5)));
    let b = function_body(text, "b").unwrap();
    assert!(!mentions(&b, ReturnCode(53)));
    assert!(mentions("ReturnCode::CARD_BAD", ReturnCode(53)));
    assert!(function_body(text, "c").is_none());
}
