//! End to end, subsidy batches (R-B5): a real `ykt serve --demo`; a clerk imports a list
//! written as XLSX (a bad one first, refused line by line), one finance officer checks it,
//! neither the checker nor the clerk may approve, a second officer approves; the clerk issues
//! it; the report shows it waiting; the batch is revoked, the money back with funding; the
//! daily report shows the day's subsidy money; `ykt audit` is clean.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use std::path::Path;

use serde_json::Value;
use serve_support::{Serve, as_op, json, login, ok};
use support::audit;

/// A subsidy list as an XLSX file: (学工号, 卡号, 金额 in 元, 备注); amounts and card numbers
/// typed as numbers, as a spreadsheet holds them.
fn write_list(path: &Path, rows: &[(&str, Option<u32>, f64, &str)]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["学工号", "卡号", "金额", "备注"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (r, (number, card, amount, note)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, *number).unwrap();
        if let Some(card) = card {
            sheet.write_number(r, 1, f64::from(*card)).unwrap();
        }
        sheet.write_number(r, 2, *amount).unwrap();
        sheet.write_string(r, 3, *note).unwrap();
    }
    book.save(path).unwrap();
}

fn sum(v: &Value, key: &str) -> (u64, i64) {
    (
        v[key]["count"].as_u64().unwrap(),
        v[key]["amount"].as_i64().unwrap(),
    )
}

// R-B5, R-B1: a batch from XLSX through the CLI, under the two-person rule, books clean.
#[test]
fn subsidy_batch_from_xlsx_through_the_cli() {
    let s = Serve::start(None);
    let tmp = s.dir.path();
    let initial = std::fs::read_to_string(s.data().join("admin-password")).unwrap();
    let admin = tmp.join("admin");
    login(&s, &admin, "admin", initial.trim(), "campus-admin-1");
    let mut who = Vec::new();
    for (login_name, roles) in [
        ("wang.li", "clerk"),
        ("zhao.cw", "finance"),
        ("qian.cw", "finance"),
    ] {
        let v = json(as_op(
            &s,
            &admin,
            &[
                "operator", "add", "--login", login_name, "--name", login_name, "--roles", roles,
                "--json",
            ],
            "",
        ));
        let dir = tmp.join(login_name);
        let p = v["initial_password"].as_str().unwrap();
        login(&s, &dir, login_name, p, &format!("{login_name}-pass-1"));
        who.push(dir);
    }
    let (clerk, checker, approver) = (&who[0], &who[1], &who[2]);

    // A cardholder with a card, and a demo card named by its number.
    let csv = tmp.join("registrar.csv");
    std::fs::write(&csv, "学工号,姓名,类别\n2026001,李明,student\n").unwrap();
    ok(as_op(
        &s,
        clerk,
        &["cardholder", "import", csv.to_str().unwrap()],
        "",
    ));
    let img = tmp.join("liming.mf1");
    let issued = json(as_op(
        &s,
        clerk,
        &[
            "card",
            "issue",
            "--display-no",
            "2026001001",
            "--expiry",
            "2030-07-31",
            "--pin",
            "123456",
            "--cardholder",
            "2026001",
            "--out",
            img.to_str().unwrap(),
            "--json",
        ],
        "",
    ));
    let liming = issued["card_no"].as_u64().unwrap();
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(s.data().join("demo.json")).unwrap())
            .unwrap();
    let other = u32::try_from(demo["cards"][0].as_u64().unwrap()).unwrap();

    let expires = (serve_support::campus_now().date() + chrono::Duration::days(30)).to_string();
    let import = |file: &Path| {
        as_op(
            &s,
            clerk,
            &[
                "subsidy",
                "import",
                file.to_str().unwrap(),
                "--batch",
                "202612",
                "--name",
                "十二月伙食补助",
                "--expires",
                &expires,
                "--json",
            ],
            "",
        )
    };
    // Finance does not import: the card office does.
    let list = tmp.join("december.xlsx");
    write_list(&list, &[("2026001", None, 12.5, "伙食")]);
    let o = as_op(
        &s,
        checker,
        &[
            "subsidy",
            "import",
            list.to_str().unwrap(),
            "--batch",
            "1",
            "--name",
            "x",
            "--expires",
            &expires,
        ],
        "",
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("subsidy-import"), "{e}");
    let bad = tmp.join("bad.xlsx");
    write_list(
        &bad,
        &[
            ("2026001", None, 12.5, "伙食"),
            ("2026999", None, 10.0, "查无此人"),
            ("", Some(other), 10.005, "三位小数"),
        ],
    );
    let refused = import(&bad);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("line 3") && err.contains("line 4"), "{err}");
    assert!(!err.contains("line 2"), "{err}");

    let list = tmp.join("december.xlsx");
    write_list(
        &list,
        &[
            ("2026001", None, 12.5, "伙食"),
            ("", Some(other), 30.0, "伙食"),
        ],
    );
    let b = json(import(&list));
    assert_eq!(
        (b["lines"].as_u64(), b["total"].as_i64()),
        (Some(2), Some(4_250)),
        "{b}"
    );
    assert_eq!(b["state"], "imported");

    // The two-person rule: one checks, a second approves; not the checker, not the clerk.
    let checked = json(as_op(
        &s,
        checker,
        &["subsidy", "check", "202612", "--json"],
        "",
    ));
    assert_eq!(checked["state"], "checked");
    for (op, why) in [(checker, "不能审批自己"), (clerk, "subsidy-approve")] {
        let o = as_op(&s, op, &["subsidy", "approve", "202612"], "");
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(why) && e.contains("403"), "{e}");
    }
    let approved = json(as_op(
        &s,
        approver,
        &["subsidy", "approve", "202612", "--json"],
        "",
    ));
    assert_eq!(approved["state"], "approved");
    let out = ok(as_op(&s, clerk, &["subsidy", "issue", "202612"], ""));
    assert!(out.contains("已发放"), "{out}");

    let shown = json(as_op(
        &s,
        clerk,
        &["subsidy", "show", "202612", "--json"],
        "",
    ));
    let first = &shown["lines_page"][0];
    assert_eq!(
        (first["card_no"].as_u64(), first["amount"].as_i64()),
        (Some(liming), Some(1_250))
    );
    assert_eq!(first["state"], "waiting", "{shown}");
    let r = json(as_op(&s, approver, &["report", "subsidies", "--json"], ""));
    assert_eq!(sum(&r["batches"][0], "issued"), (2, 4_250), "{r}");
    assert_eq!(sum(&r["batches"][0], "waiting"), (2, 4_250), "{r}");
    let shown = ok(as_op(&s, approver, &["subsidy", "show", "202612"], ""));
    assert!(
        shown.contains("待领取") && shown.contains("2026001"),
        "{shown}"
    );

    let revoked = json(as_op(
        &s,
        approver,
        &["subsidy", "revoke", "202612", "--json"],
        "",
    ));
    assert_eq!(
        (revoked["state"].as_str(), revoked["revoked"].as_u64()),
        (Some("closed"), Some(2))
    );
    let r = json(as_op(&s, approver, &["report", "subsidies", "--json"], ""));
    assert_eq!(sum(&r["total"], "revoked"), (2, 4_250), "{r}");
    let text = ok(as_op(&s, approver, &["report", "subsidies"], ""));
    assert!(
        text.contains("202612") && text.contains("2 / 42.50"),
        "{text}"
    );
    let text = ok(as_op(&s, approver, &["report", "daily"], ""));
    assert!(
        text.contains("subsidies") && text.contains("2 / 42.50"),
        "{text}"
    );
    let day = json(as_op(&s, approver, &["report", "daily", "--json"], ""));
    assert_eq!(sum(&day["subsidies"], "issued"), (2, 4_250), "{day}");
    assert_eq!(sum(&day["subsidies"], "revoked"), (2, 4_250), "{day}");
    let j = json(as_op(
        &s,
        &admin,
        &["journal", "--target", "subsidy:202612", "--json"],
        "",
    ));
    let ops: Vec<&str> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "subsidy.revoke",
            "subsidy.issue",
            "approval.approve",
            "subsidy.check",
            "approval.request",
            "subsidy.import"
        ]
    );

    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
