//! The web console in a real browser (issue 14, R-B12): headless Chromium driven by
//! Debian's chromedriver against a real `ykt serve --demo`, a real `ykt pos --headless` at
//! the counter. Every page visited passes `tidy` and leaves the browser console clean
//! (`browser_support`); each test saves screenshots under the target's tmp dir
//! (`console-shots/`, the ones in `docs/console/` come from there).
#![allow(clippy::unwrap_used)]

mod browser_support;
mod serve_support;
mod support;

use std::io::Cursor;
use std::path::PathBuf;

use browser_support::Browser;
use calamine::{Data, Reader, Xlsx};
use serde_json::{Value, json};
use serve_support::Serve;
use support::{Pos, audit};

const DEVICE: &str = "10000001";

fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn browser(s: &Serve) -> Browser {
    Browser::start(
        &format!("http://{}", s.http),
        &s.dir.path().join("downloads"),
    )
}

/// Logs in with an initial password and changes it (the console insists, R-B1).
fn first_login(b: &mut Browser, login: &str, initial: &str, new: &str) {
    b.open("/");
    assert!(b.path().starts_with("/login"), "{}", b.path());
    b.fill("#login", login);
    b.fill("#password", initial);
    b.click("#submit");
    assert_eq!(b.path(), "/password");
    // Every other page sends the operator back here until the password is changed.
    b.open("/cards");
    assert_eq!(b.path(), "/password");
    b.fill("#old", initial);
    b.fill("#new", new);
    b.fill("#again", new);
    b.click("#change");
    assert_eq!(b.path(), "/?done=password", "{}", b.source());
    assert_eq!(b.text("#done"), "密码已修改");
}

fn cell_f64(d: &Data) -> f64 {
    match d {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

/// The fen of a JSON field as the workbook's 元.
fn yuan(v: &Value) -> f64 {
    v.as_i64().unwrap() as f64 / 100.0
}

// R-B12, R-H4, R-F4.5, R-B6: the card office's day in the browser. The administrator logs
// in and changes the initial password; finds a card by its display number and reports it
// lost: the dashboard's blacklist version moves on; sets the terminal's allowed classes to
// 2–5 and the POS refuses the class-1 card (code 59, 卡无此权限); allows every class again,
// the POS sells; the daily report downloaded as XLSX holds exactly the API's figures.
#[test]
fn card_office_day_in_the_browser() {
    let s = Serve::start(None);
    let initial = std::fs::read_to_string(s.data().join("admin-password")).unwrap();
    let mut b = browser(&s);
    first_login(&mut b, "admin", initial.trim(), "campus-admin-1");
    let v0: u64 = b.text("#blacklist-version").parse().unwrap();
    assert_eq!(b.text("#open-exceptions"), "0");

    // Card 9, found by its display number.
    let card = s.cli_json(&["card", "info", "9"]);
    let display = card["display_no"].as_u64().unwrap().to_string();
    b.open("/cards");
    b.fill("#q", &display);
    b.click("#search");
    assert!(b.text("#cards").contains(&display));
    b.click("#cards a[href='/cards/9']");
    assert_eq!(b.text("#status"), "正常");
    b.click("#do-lose");
    assert_eq!(b.path(), "/cards/9?done=lose");
    assert_eq!(b.text("#status"), "挂失");
    b.screenshot(&shots().join("card.png"));
    assert_eq!(s.cli_json(&["card", "info", "9"])["status"], "lost");
    b.open("/");
    let v1: u64 = b.text("#blacklist-version").parse().unwrap();
    assert_eq!(v1, v0 + 1, "the loss moved the blacklist on");

    // The terminal's allowed classes, set in the browser, pushed to the connected POS.
    let mut pos = Pos::start(&s.data(), DEVICE, &s.dir.path().join("j1"));
    pos.signed_in();
    let params_version =
        |s: &Serve| s.cli_json(&["device", "show", DEVICE])["params"]["version"].clone();
    let mut before = s.cli_json(&["device", "show", DEVICE])["params"].clone();
    b.open(&format!("/devices/{DEVICE}"));
    b.choose("#work_mode", "offline");
    b.fill("#allowed_classes", "2-5");
    b.click("#save-params");
    assert_eq!(b.text("#done"), "参数已保存并已下发到终端");
    // The form carries every parameter back as it was, but the two changed.
    let after = s.cli_json(&["device", "show", DEVICE])["params"].clone();
    before["work_mode"] = json!("offline");
    before["allowed_classes"] = json!([2, 3, 4, 5]);
    before["version"] = after["version"].clone();
    assert_eq!(after, before);
    b.screenshot(&shots().join("device.png"));
    pos.wait_event(json!({"event":"params_updated","version":params_version(&s)}));
    pos.advance(3_000);
    let card7 = s.data().join("cards").join("7.mf1");
    pos.amount(100);
    pos.place(&card7);
    pos.wait_event(json!({"event":"refused","code":59})); // code 59
    pos.remove();
    pos.advance(3_000);

    b.open(&format!("/devices/{DEVICE}"));
    b.fill("#allowed_classes", "all");
    b.click("#save-params");
    pos.wait_event(json!({"event":"params_updated","version":params_version(&s)}));
    // The refused amount (1.00) is still keyed in: the first sale is of it.
    for (card, fen) in [("7", 100), ("8", 130)] {
        pos.amount(fen);
        pos.place(&s.data().join("cards").join(format!("{card}.mf1")));
        pos.wait_event(json!({"event":"record","kind":"purchase","amount":fen}));
        pos.remove();
        pos.advance(3_000);
    }
    pos.ok(json!({"cmd":"wait","for":"pending","count":0,"timeout_ms":10000}));

    // The report: on the page, and downloaded as XLSX, against the API's own figures.
    let api = s.cli_json(&["report", "daily"]);
    assert_eq!(api["total"]["debits"], 2, "{api}");
    b.open("/");
    assert_eq!(b.text("#debits"), "2");
    assert_eq!(b.text("#amount"), "2.30");
    b.screenshot(&shots().join("dashboard.png"));
    b.open("/reports");
    assert!(b.text("#report-商户").contains("2.30"));
    b.screenshot(&shots().join("reports.png"));
    b.click_in_place("#xlsx");
    let bytes = b.downloaded("daily-");
    let mut wb = Xlsx::new(Cursor::new(bytes)).unwrap();
    for (sheet, list, key) in [
        ("商户", "merchants", "merchant_no"),
        ("设备", "devices", "device"),
        ("科目", "subjects", "subject"),
        ("品项代码", "items", "item_code"),
    ] {
        let range = wb.worksheet_range(sheet).unwrap();
        let rows: Vec<&[Data]> = range.rows().collect();
        assert_eq!(rows[0][0], Data::String("分组".into()));
        let lines = api[list].as_array().unwrap();
        assert_eq!(rows.len(), lines.len() + 2, "{sheet}: header, lines, total");
        for (row, line) in rows[1..].iter().zip(lines) {
            let name = match &line[key] {
                Value::Null => "无科目".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(row[0], Data::String(name), "{sheet}");
            assert_eq!(
                cell_f64(&row[1]),
                line["debits"].as_f64().unwrap(),
                "{sheet}"
            );
            assert_eq!(cell_f64(&row[2]), yuan(&line["debit_amount"]), "{sheet}");
            assert_eq!(cell_f64(&row[3]), yuan(&line["debit_fee"]), "{sheet}");
            assert_eq!(
                cell_f64(&row[4]),
                line["reversals"].as_f64().unwrap(),
                "{sheet}"
            );
            assert_eq!(cell_f64(&row[5]), yuan(&line["reversal_amount"]), "{sheet}");
        }
        let total = rows.last().unwrap();
        assert_eq!(total[0], Data::String("合计".into()));
        assert_eq!(
            cell_f64(&total[1]),
            api["total"]["debits"].as_f64().unwrap()
        );
        assert_eq!(cell_f64(&total[2]), yuan(&api["total"]["debit_amount"]));
        assert_eq!(cell_f64(&total[7]), yuan(&api["net_amount"]));
    }
    let (status, csv) = b.fetch("/reports/daily.csv");
    assert_eq!(status, 200);
    assert!(csv.contains("商户,合计,2,2.30"), "{csv}");
    // The other pages render, validate and log nothing in the console.
    for page in [
        "/merchants",
        "/feps",
        "/exceptions",
        "/journal",
        "/operators",
        "/blacklist",
        "/devices",
        "/reports?view=print",
    ] {
        b.open(page);
    }
    b.open("/journal?operation=card.lose");
    assert!(b.text("#journal").contains("card:9"));
    b.screenshot(&shots().join("journal.png"));
    pos.quit();
    drop(b);
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}

// R-B12, R-B1: a clerk (卡务) sees no finance page or action, and forcing one is 403 even with
// a valid session and CSRF token; a form without its CSRF token is 403 too.
#[test]
fn clerk_cannot_see_or_force_finance_actions() {
    let s = Serve::start(None);
    let v = s.cli_json(&[
        "operator",
        "add",
        "--login",
        "zhang.wei",
        "--name",
        "张伟",
        "--roles",
        "clerk",
    ]);
    let initial = v["initial_password"].as_str().unwrap().to_owned();
    let mut b = browser(&s);
    first_login(&mut b, "zhang.wei", &initial, "counter-pass-1");
    assert!(b.has("header a[href='/cards']"));
    for finance in [
        "/reports",
        "/exceptions",
        "/journal",
        "/operators",
        "/devices",
    ] {
        assert!(
            !b.has(&format!("header a[href='{finance}']")),
            "{finance} shown"
        );
    }
    assert!(!b.has("#debits"), "the day's takings are finance's");
    b.screenshot(&shots().join("clerk.png"));
    b.open_refused("/reports", 403);
    assert_eq!(b.text("h1"), "权限不足");
    b.screenshot(&shots().join("refused.png"));
    assert_eq!(b.fetch("/reports").0, 403);
    assert_eq!(b.fetch("/reports/daily.xlsx").0, 403);
    // A valid CSRF token, from the clerk's own page.
    let (_, page) = b.fetch("/cards/7");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let (status, body) = b.force_post(
        "/exceptions/10000001/1/resolve",
        &[("csrf", &csrf), ("action", "book"), ("note", "强行入账")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("exception-resolve"), "{body}");
    let (status, _) = b.force_post("/cards/7/action", &[("csrf", "0000"), ("action", "freeze")]);
    assert_eq!(status, 403, "a wrong CSRF token");
    assert_eq!(s.cli_json(&["card", "info", "7"])["status"], "normal");
    // R-B2: the registrar's file, uploaded; a bad line is named and nothing is imported.
    let csv = s.dir.path().join("registrar.csv");
    std::fs::write(
        &csv,
        "学工号,姓名,类别,部门\n2026001,李明,student,计算机学院\n2026002,,student,数学学院\n",
    )
    .unwrap();
    b.open("/cards");
    b.click("#to-import");
    b.attach("#file", &csv);
    b.click_refused("#do-import", 400);
    assert!(b.text("#import-lines").contains('3'), "line 3 refused");
    std::fs::write(
        &csv,
        "学工号,姓名,类别,部门\n2026001,李明,student,计算机学院\n2026002,赵芳,student,数学学院\n",
    )
    .unwrap();
    b.attach("#file", &csv);
    b.click("#do-import");
    assert!(b.text("#done").contains("新增 2"), "{}", b.text("#done"));
    b.open("/cards?q=李明");
    assert!(b.text("#holders").contains("2026001"));
    // What a clerk may do works: a deposit waits for the card.
    b.open("/cards/7");
    b.fill("#amount", "12.50");
    b.fill("#receipt", "R-0001");
    b.click("#do-deposit");
    assert_eq!(b.text("#waiting"), "12.50");
    drop(b);
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
