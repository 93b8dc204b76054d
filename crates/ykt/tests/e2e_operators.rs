//! End to end, operators (R-B1): a real `ykt serve --demo`; the first administrator logs in
//! with the initial password and must change it; a clerk and an auditor are added; the clerk
//! imports cardholders, issues a card to one of them and takes a cash deposit; the auditor reads the journal and cannot write; the clerk's cash
//! report shows the deposit; the books are clean.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serve_support::{Serve, as_op, json, login, ok};
use support::audit;

// R-B1: the operators' day, through the real binaries.
#[test]
fn clerk_deposits_auditor_reads_books_clean() {
    let s = Serve::start(None);
    let tmp = s.dir.path();
    let initial = std::fs::read_to_string(s.data().join("admin-password")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.data().join("admin-password"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (admin, clerk, auditor) = (tmp.join("admin"), tmp.join("clerk"), tmp.join("auditor"));
    login(&s, &admin, "admin", initial.trim(), "campus-admin-1");
    let saved = std::fs::metadata(admin.join("login.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&saved.permissions()) & 0o777,
        0o600
    );

    let add = |login: &str, roles: &str| {
        let v = json(as_op(
            &s,
            &admin,
            &[
                "operator", "add", "--login", login, "--name", login, "--roles", roles, "--json",
            ],
            "",
        ));
        v["initial_password"].as_str().unwrap().to_owned()
    };
    let p = add("wang.li", "clerk");
    login(&s, &clerk, "wang.li", &p, "clerk-pass-1");
    let p = add("shen.ji", "auditor");
    login(&s, &auditor, "shen.ji", &p, "audit-pass-1");

    // The clerk imports the registrar's file and issues a card to an imported cardholder.
    let csv = tmp.join("registrar.csv");
    std::fs::write(
        &csv,
        "学工号,姓名,类别,部门\n2026001,李明,student,计算机学院\n2026002,赵芳,student,数学学院\n",
    )
    .unwrap();
    let out = ok(as_op(
        &s,
        &clerk,
        &["cardholder", "import", csv.to_str().unwrap()],
        "",
    ));
    assert!(out.contains('2'), "{out}");
    let img = tmp.join("liming.mf1");
    let issued = json(as_op(
        &s,
        &clerk,
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
    let card = issued["card_no"].as_u64().unwrap().to_string();
    let holder = json(as_op(
        &s,
        &clerk,
        &["cardholder", "show", "2026001", "--json"],
        "",
    ));
    assert_eq!(holder["cards"][0]["no"].to_string(), card, "{holder}");
    assert_eq!(holder["cards"][0]["active"], true);
    let out = ok(as_op(
        &s,
        &clerk,
        &[
            "card", "deposit", &card, "--amount", "5000", "--id", "e2e-1",
        ],
        "",
    ));
    // R-B4: the deposit waits for the card's pick-up (docs/loads.md).
    assert!(out.contains("waiting for pick-up 50.00"), "{out}");

    let j = json(as_op(
        &s,
        &auditor,
        &["journal", "--operator", "wang.li", "--json"],
        "",
    ));
    let e = &j["entries"][0];
    assert_eq!(e["operation"], "card.deposit", "{j}");
    assert_eq!(e["role"], "clerk");
    assert_eq!(e["target"], format!("card:{card}"));
    let refused = as_op(
        &s,
        &auditor,
        &["card", "deposit", &card, "--amount", "100", "--id", "e2e-2"],
        "",
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("deposit"),
        "{refused:?}"
    );

    let mine = json(as_op(&s, &clerk, &["report", "cash", "--json"], ""));
    assert_eq!(mine["cash"]["amount"], 5000, "{mine}");
    let theirs = json(as_op(
        &s,
        &admin,
        &["report", "cash", "--operator", "wang.li", "--json"],
        "",
    ));
    assert_eq!(theirs["cash"]["count"], 1);

    ok(as_op(&s, &clerk, &["logout"], ""));
    let saved = std::fs::read_to_string(clerk.join("login.json")).unwrap();
    assert!(!saved.contains("ykt_"), "token forgotten: {saved}");
    let j = json(as_op(
        &s,
        &auditor,
        &["journal", "--operation", "token.revoke", "--json"],
        "",
    ));
    assert_eq!(
        j["entries"][0]["login"], "wang.li",
        "revoked on the server: {j}"
    );

    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
