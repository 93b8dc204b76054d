//! The registrar's cardholder file (R-B2): CSV with or without BOM, Chinese or English
//! headers, XLSX, every error with its line, export round trips; and the ID number's
//! GB 11643 check digit.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ykt_host::domain::cardholders::{self as ch, Identity};
use ykt_host::import::{self, Format, LineError};
use ykt_host::repo_holders::{Cardholder, HolderFields, HolderKind, HolderStatus};

// R-B2: a UTF-8 CSV with BOM and Chinese headers, columns in any order.
#[test]
fn csv_with_bom_and_chinese_headers() {
    let csv = "\u{feff}姓名,学工号,类别,电话\n张三,2021001,学生,13800138000\n\n李四,T-9,临时,\n";
    let rows = import::parse(Format::Csv, csv.as_bytes()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].number, "2021001");
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].fields.phone.as_deref(), Some("13800138000"));
    assert_eq!(rows[1].fields.kind, HolderKind::Temporary);
    assert_eq!(rows[1].line, 4);
    let en = "number,name,kind,department\n2021001,张三,student,数学系\n";
    let rows = import::parse(Format::Csv, en.as_bytes()).unwrap();
    assert_eq!(rows[0].fields.department, "数学系");
}

// R-B2: every bad line is reported with its line number; nothing is returned to import.
#[test]
fn every_error_with_its_line() {
    let csv = "学工号,姓名,类别,身份证号\n\
               2021001,张三,学生,11010519491231002X\n\
               2021002,,学生,\n\
               2021003,王五,老师,\n\
               2021001,重复,学生,\n\
               2021004,赵六,学生,110105194912310021\n";
    let errors: Vec<LineError> = import::parse(Format::Csv, csv.as_bytes()).unwrap_err();
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5, 6], "{errors:?}");
    assert!(errors[2].error.contains("重复"));
    let e = import::parse(Format::Csv, "学工号,姓名\n1,张三\n".as_bytes()).unwrap_err();
    assert_eq!(e[0].line, 1);
    assert!(e[0].error.contains("类别"));
    let e = import::parse(Format::Csv, "学工号,姓名,类别,年级\n".as_bytes()).unwrap_err();
    assert!(e[0].error.contains("未知列"));
    let e = import::parse(Format::Csv, b"number,name,kind\n1,\xff\xfe,student\n").unwrap_err();
    assert_eq!(e[0].line, 2);
    assert!(import::parse(Format::Xlsx, b"not a zip").is_err());
}

// R-B2: an XLSX file (first sheet; numbers typed as numbers) imports like its CSV.
#[test]
fn xlsx_first_sheet() {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["学工号", "姓名", "类别", "部门", "身份证号", "电话"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_number(1, 0, 2021001.0).unwrap();
    sheet.write_string(1, 1, "张三").unwrap();
    sheet.write_string(1, 2, "学生").unwrap();
    sheet.write_string(1, 3, "物理系").unwrap();
    sheet.write_string(1, 4, "11010519491231002X").unwrap();
    sheet.write_number(1, 5, 13800138000.0).unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let rows = import::parse(Format::Xlsx, &bytes).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].number, "2021001");
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].fields.phone.as_deref(), Some("13800138000"));
    assert_eq!(
        rows[0].fields.id_number.as_deref(),
        Some("11010519491231002X")
    );
}

fn holder() -> Cardholder {
    Cardholder {
        id: 1,
        number: "2021001".into(),
        fields: HolderFields {
            name: "张三".into(),
            kind: HolderKind::Staff,
            department: "后勤处".into(),
            id_number: Some("11010519491231002X".into()),
            phone: None,
        },
        status: HolderStatus::Active,
        created_at: chrono::NaiveDateTime::default(),
    }
}

// R-B2: an export (CSV and XLSX) has the import's header and imports back to the same
// fields; masked ID numbers are refused on the way back in rather than stored.
#[test]
fn export_round_trips() {
    for format in [Format::Csv, Format::Xlsx] {
        let bytes = import::export(format, &[holder()], Identity::Shown).unwrap();
        let rows = import::parse(format, &bytes).unwrap();
        assert_eq!(rows[0].fields, holder().fields, "{format:?}");
        let masked = import::export(format, &[holder()], Identity::Masked).unwrap();
        let e = import::parse(format, &masked).unwrap_err();
        assert_eq!(e[0].line, 2, "{format:?}");
    }
}

/// The check character by the standard's definition: (12 − Σ aᵢ·2^(17−i) mod 11) mod 11.
fn reference_check(first17: &[u8]) -> u8 {
    let sum: u64 = first17
        .iter()
        .enumerate()
        .map(|(i, d)| u64::from(d - b'0') * ((1u64 << (17 - i)) % 11))
        .sum();
    match (12 - sum % 11) % 11 {
        10 => b'X',
        v => b'0' + v as u8,
    }
}

proptest! {
    // R-B2: an 18-character ID number is accepted exactly when its check character is right.
    #[test]
    fn id_check_digit_accepts_exactly_the_right_one(
        digits in proptest::collection::vec(0u8..10, 17),
        last in prop::sample::select(b"0123456789Xx".to_vec()),
    ) {
        let mut id: Vec<u8> = digits.iter().map(|d| b'0' + d).collect();
        let right = reference_check(&id);
        id.push(last);
        let s = String::from_utf8(id).unwrap();
        prop_assert_eq!(ch::check_id_number(&s).is_ok(), last.to_ascii_uppercase() == right);
    }
}

// R-B5: a subsidy list — 学工号 or 卡号, 金额 in 元, 批次号 and 备注 — with every bad line
// reported by its number, the file as a whole refused.
#[test]
fn subsidy_list_errors_by_line() {
    use ykt_host::import_subsidies::{self as isub, Payee};
    let csv = "学工号,卡号,金额,批次号,备注\n\
               2026001,,12.50,9,一月\n\
               ,42,3,,\n\
               2026002,43,1,9,\n";
    let list = isub::parse(Format::Csv, csv.as_bytes(), 9).unwrap();
    assert!(list.errors.is_empty(), "{:?}", list.errors);
    let rows = list.rows;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].payee, Payee::Holder("2026001".into()));
    assert_eq!((rows[0].amount, rows[0].line), (1250, 2));
    assert_eq!(rows[1].payee, Payee::Card(42));
    assert_eq!(
        rows[2].payee,
        Payee::Both {
            holder: "2026002".into(),
            card: 43
        }
    );
    let bad = "number,card_no,amount,batch\n\
               2026001,,+5,\n\
               2026002,,-5,\n\
               2026003,,0,\n\
               2026004,,1.005,\n\
               ,,5,\n\
               2026005,,5,8\n\
               ,99999999,5,\n\
               2026006,,5,9\n";
    let list = isub::parse(Format::Csv, bad.as_bytes(), 9).unwrap();
    let errors: Vec<LineError> = list.errors;
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8], "{errors:?}");
    assert_eq!(list.rows.len(), 1, "line 9 is valid");
    assert!(errors[3].error.contains("两位小数"), "{errors:?}");
    assert!(errors[5].error.contains("批次"), "{errors:?}");
    let e = isub::parse(Format::Csv, "金额\n5\n".as_bytes(), 9).unwrap_err();
    assert_eq!(e[0].line, 1);
    assert!(e[0].error.contains("学工号"), "{e:?}");
}

// R-B5: an XLSX subsidy list with amounts and card numbers typed as numbers.
#[test]
fn subsidy_list_xlsx_numbers() {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["卡号", "金额", "备注"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_number(1, 0, 42.0).unwrap();
    sheet.write_number(1, 1, 12.34).unwrap();
    sheet.write_string(1, 2, "伙食").unwrap();
    sheet.write_number(2, 0, 43.0).unwrap();
    sheet.write_number(2, 1, 100.0).unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let rows = ykt_host::import_subsidies::parse(Format::Xlsx, &bytes, 1)
        .unwrap()
        .rows;
    let got: Vec<(u64, i64)> = rows.iter().map(|r| (r.line, r.amount)).collect();
    assert_eq!(got, [(2, 1234), (3, 10_000)]);
}

// R-B2, R-B5: an XLSX file is refused when its parts unpack to more than the bound, however
// small the file itself (a zip bomb); counted by what the parts really unpack to.
#[test]
fn xlsx_unpacked_size_is_bounded() {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "学工号").unwrap();
    for r in 1..=64u32 {
        let big = format!("{r}{}", "x".repeat(32_000));
        sheet.write_string(r, 0, &big).unwrap();
    }
    let bytes = book.save_to_buffer().unwrap();
    assert!(bytes.len() < 256 * 1024, "compresses well: {}", bytes.len());
    let e = import::check_unpacked(&bytes, 1024 * 1024).unwrap_err();
    assert!(e[0].error.contains("解压后超过 1 MiB"), "{e:?}");
    assert!(import::check_unpacked(&bytes, 4 * 1024 * 1024).is_ok());
    assert!(import::check_unpacked(b"not a zip", 1024).is_err());
}
