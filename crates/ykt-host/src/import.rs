//! Imported files, pure: bytes in, valid rows or every error with its line out. [`Sheet`] is
//! the one reader of CSV (UTF-8, with or without BOM) and XLSX (the first sheet; its
//! unpacked size bounded) with a header row naming the columns in Chinese or English; the
//! subsidy lists (`import_subsidies`) use it too.
//!
//! The registrar's cardholder file (R-B2) and its export in the same columns:
//! 学工号/number, 姓名/name, 类别/kind (required), 部门/department, 身份证号/id_number,
//! 电话/phone (optional). Line numbers count the header as line 1.

use std::collections::HashSet;
use std::io::{Cursor, Read};

use calamine::{Data, Reader};
use serde::Serialize;

use crate::domain::cardholders::{self as ch, Identity, ImportRow};
use crate::repo_holders::{Cardholder, HolderFields};

/// Largest file and most data rows one import takes.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
pub const MAX_ROWS: usize = 100_000;

/// The columns, in export order: (Chinese, English).
pub const COLUMNS: [(&str, &str); 6] = [
    ("学工号", "number"),
    ("姓名", "name"),
    ("类别", "kind"),
    ("部门", "department"),
    ("身份证号", "id_number"),
    ("电话", "phone"),
];
const REQUIRED: [usize; 3] = [0, 1, 2];

/// The file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

pub const XLSX_MEDIA_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: u64,
    pub error: String,
}

pub(crate) fn err(line: u64, error: impl Into<String>) -> Vec<LineError> {
    vec![LineError {
        line,
        error: error.into(),
    }]
}

/// Every valid row, or every error (a file with any error imports nothing).
pub fn parse(format: Format, bytes: &[u8]) -> Result<Vec<ImportRow>, Vec<LineError>> {
    rows(Sheet::read(format, bytes, &COLUMNS, &REQUIRED)?)
}

/// Most bytes the parts of an XLSX file may unpack to, all together: a small file that
/// unpacks to gigabytes (a zip bomb) is refused before it is parsed.
pub const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

/// A file's non-empty lines after its header, with where each named column is.
pub struct Sheet {
    /// The header's line number.
    pub head_line: u64,
    /// For each column of the caller's list, the cell index it is in (`None`: absent).
    pub at: Vec<Option<usize>>,
    pub lines: Table,
}

impl Sheet {
    /// Reads the file and matches its header against `columns` ((Chinese, English) names);
    /// an unknown, repeated or missing required column is an error of the header's line.
    pub fn read(
        format: Format,
        bytes: &[u8],
        columns: &[(&str, &str)],
        required: &[usize],
    ) -> Result<Sheet, Vec<LineError>> {
        if bytes.len() > MAX_BYTES {
            return Err(err(0, "文件超过 32 MiB"));
        }
        let table = match format {
            Format::Csv => csv_table(bytes)?,
            Format::Xlsx => {
                check_unpacked(bytes, MAX_UNPACKED)?;
                xlsx_table(bytes)?
            }
        };
        let mut lines = table
            .into_iter()
            .filter(|(_, cells)| cells.iter().any(|c| !c.is_empty()));
        let Some((head_line, header)) = lines.next() else {
            return Err(err(1, "文件为空：缺少表头"));
        };
        let mut at = vec![None; columns.len()];
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            let Some(col) = columns
                .iter()
                .position(|(zh, en)| name == zh || name.eq_ignore_ascii_case(en))
            else {
                return Err(err(head_line, format!("未知列 {name:?}")));
            };
            if at[col].replace(i).is_some() {
                return Err(err(head_line, format!("重复列 {name:?}")));
            }
        }
        if let Some(&missing) = required.iter().find(|&&c| at[c].is_none()) {
            let (zh, en) = columns[missing];
            return Err(err(head_line, format!("缺少列 {zh}/{en}")));
        }
        let lines: Table = lines.take(MAX_ROWS + 1).collect();
        if let Some((line, _)) = lines.get(MAX_ROWS) {
            return Err(err(*line, format!("行数超过 {MAX_ROWS}")));
        }
        Ok(Sheet {
            head_line,
            at,
            lines,
        })
    }

    /// The cell of column `col` on a line ("" when absent).
    pub fn cell(&self, cells: &[String], col: usize) -> String {
        self.at[col]
            .and_then(|i| cells.get(i))
            .cloned()
            .unwrap_or_default()
    }
}

/// Refuses an XLSX (zip) file whose parts unpack to more than `limit` bytes, counting what
/// each part really unpacks to (a part's declared size may lie).
pub fn check_unpacked(bytes: &[u8], limit: u64) -> Result<(), Vec<LineError>> {
    let not_xlsx = |e: &dyn std::fmt::Display| err(0, format!("不是有效的 XLSX 文件：{e}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| not_xlsx(&e))?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let part = zip.by_index(i).map_err(|e| not_xlsx(&e))?;
        let left = limit - total;
        let n = std::io::copy(&mut part.take(left + 1), &mut std::io::sink())
            .map_err(|e| not_xlsx(&e))?;
        total += n;
        if total > limit {
            return Err(err(
                0,
                format!("XLSX 文件解压后超过 {} MiB", limit / (1024 * 1024)),
            ));
        }
    }
    Ok(())
}

/// (line, cells) of every non-empty line, header first.
pub type Table = Vec<(u64, Vec<String>)>;

fn csv_table(bytes: &[u8]) -> Result<Table, Vec<LineError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    // The reader's own line count skips blank lines: count the newlines before the record.
    let line_at = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let from = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            // A record's position may lie before the blank lines skipped to reach it.
            let upto = from
                + bytes[from..]
                    .iter()
                    .take_while(|b| matches!(b, b'\n' | b'\r'))
                    .count();
            1 + bytes[..upto].iter().filter(|b| **b == b'\n').count() as u64
        })
    };
    let mut table = Vec::new();
    let mut errors = Vec::new();
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                let line = line_at(rec.position());
                table.push((line, rec.iter().map(|c| c.trim().to_owned()).collect()));
            }
            Err(e) => {
                let line = line_at(e.position());
                errors.push(LineError {
                    line,
                    error: format!("CSV 格式错误（须为 UTF-8）：{e}"),
                });
            }
        }
        if table.len() > MAX_ROWS + 1 {
            break;
        }
    }
    if errors.is_empty() {
        Ok(table)
    } else {
        Err(errors)
    }
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        // Numbers typed into Excel: 学工号 and phone numbers are integers.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Int(i) => i.to_string(),
        other => other.to_string().trim().to_owned(),
    }
}

fn xlsx_table(bytes: &[u8]) -> Result<Table, Vec<LineError>> {
    let mut book = calamine::Xlsx::new(Cursor::new(bytes))
        .map_err(|e| err(0, format!("不是有效的 XLSX 文件：{e}")))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| err(0, "XLSX 文件没有工作表"))?
        .map_err(|e| err(0, format!("读取第一个工作表失败：{e}")))?;
    let first_row = u64::from(range.start().map_or(0, |(r, _)| r)) + 1;
    let first_col = range.start().map_or(0, |(_, c)| c) as usize;
    Ok(range
        .rows()
        .take(MAX_ROWS + 2)
        .enumerate()
        .map(|(i, cells)| {
            let mut v = vec![String::new(); first_col];
            v.extend(cells.iter().map(cell_text));
            (first_row + i as u64, v)
        })
        .collect())
}

fn rows(sheet: Sheet) -> Result<Vec<ImportRow>, Vec<LineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (line, cells) in &sheet.lines {
        let line = *line;
        let get = |c: usize| sheet.cell(cells, c);
        let optional = |c: usize| Some(get(c)).filter(|s| !s.is_empty());
        let number = get(0);
        let row = ch::parse_kind(&get(2)).and_then(|kind| {
            let fields = HolderFields {
                name: get(1),
                kind,
                department: get(3),
                id_number: optional(4),
                phone: optional(5),
            };
            ch::check_number(&number)?;
            ch::check_fields(&fields)?;
            Ok(fields)
        });
        match row {
            Ok(_) if !seen.insert(number.clone()) => errors.push(LineError {
                line,
                error: format!("学工号 {number:?} 在文件中重复"),
            }),
            Ok(fields) => out.push(ImportRow {
                line,
                number,
                fields,
            }),
            Err(e) => errors.push(LineError {
                line,
                error: match e {
                    crate::HostError::Invalid(m) => m,
                    other => other.to_string(),
                },
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn export_cells(h: &Cardholder, identity: Identity) -> [String; 6] {
    let f = &h.fields;
    [
        h.number.clone(),
        f.name.clone(),
        f.kind.title().to_owned(),
        f.department.clone(),
        ch::id_number_view(f.id_number.as_deref(), identity).unwrap_or_default(),
        f.phone.clone().unwrap_or_default(),
    ]
}

/// The cardholders as a file with the import's header (Chinese column names).
pub fn export(
    format: Format,
    holders: &[Cardholder],
    identity: Identity,
) -> Result<Vec<u8>, String> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
            let io = |e: csv::Error| e.to_string();
            w.write_record(COLUMNS.iter().map(|(zh, _)| *zh))
                .map_err(io)?;
            for h in holders {
                w.write_record(export_cells(h, identity)).map_err(io)?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
        Format::Xlsx => {
            let mut book = rust_xlsxwriter::Workbook::new();
            let sheet = book.add_worksheet();
            let x = |e: rust_xlsxwriter::XlsxError| e.to_string();
            for (c, (zh, _)) in COLUMNS.iter().enumerate() {
                sheet.write_string(0, c as u16, *zh).map_err(x)?;
            }
            for (r, h) in holders.iter().enumerate() {
                let row = u32::try_from(r + 1).map_err(|_| "too many rows".to_owned())?;
                for (c, v) in export_cells(h, identity).iter().enumerate() {
                    // As text: 学工号 and ID numbers are not numbers.
                    sheet.write_string(row, c as u16, v).map_err(x)?;
                }
            }
            book.save_to_buffer().map_err(x)
        }
    }
}
