//! 报表: the daily report over a date range, by merchant, device, subject and item code;
//! cash per operator and shift; downloads as XLSX and CSV; a print view. The figures are the
//! API's `GET /reports/daily`, one call per day, summed here with checked arithmetic.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeDelta};
use maud::{Markup, html};
use rust_xlsxwriter::{Format, Workbook};
use serde::Deserialize;
use serde_json::Value;

use super::session::{Op, enc};
use super::{Console, layout};
use crate::access::Permission as P;

/// The longest range one report covers (one API call per day).
pub(crate) const MAX_DAYS: i64 = 62;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub debits: i64,
    pub debit_amount: i64,
    pub debit_fee: i64,
    pub reversals: i64,
    pub reversal_amount: i64,
    pub reversal_fee: i64,
}

impl Totals {
    fn of(v: &Value) -> Option<Totals> {
        let f = |k: &str| v[k].as_i64();
        Some(Totals {
            debits: f("debits")?,
            debit_amount: f("debit_amount")?,
            debit_fee: f("debit_fee")?,
            reversals: f("reversals")?,
            reversal_amount: f("reversal_amount")?,
            reversal_fee: f("reversal_fee")?,
        })
    }

    fn add(&mut self, o: &Totals) -> Option<()> {
        self.debits = self.debits.checked_add(o.debits)?;
        self.debit_amount = self.debit_amount.checked_add(o.debit_amount)?;
        self.debit_fee = self.debit_fee.checked_add(o.debit_fee)?;
        self.reversals = self.reversals.checked_add(o.reversals)?;
        self.reversal_amount = self.reversal_amount.checked_add(o.reversal_amount)?;
        self.reversal_fee = self.reversal_fee.checked_add(o.reversal_fee)?;
        Some(())
    }

    pub fn net(&self) -> Option<i64> {
        self.debit_amount.checked_sub(self.reversal_amount)
    }

    /// The columns after the group's name: counts as counts, money as fen.
    fn cells(&self) -> [(i64, bool); 7] {
        [
            (self.debits, false),
            (self.debit_amount, true),
            (self.debit_fee, true),
            (self.reversals, false),
            (self.reversal_amount, true),
            (self.reversal_fee, true),
            (self.net().unwrap_or(0), true),
        ]
    }
}

pub(crate) const HEADERS: [&str; 8] = [
    "分组",
    "消费笔数",
    "消费金额（元）",
    "手续费（元）",
    "冲正笔数",
    "冲正金额（元）",
    "冲正手续费（元）",
    "净额（元）",
];

/// One grouping: its sheet name, its lines in order, its total.
pub(crate) struct Section {
    pub title: &'static str,
    pub lines: Vec<(String, Totals)>,
    pub total: Totals,
}

const SECTIONS: [(&str, &str, &str); 4] = [
    ("商户", "merchants", "merchant_no"),
    ("设备", "devices", "device"),
    ("科目", "subjects", "subject"),
    ("品项代码", "items", "item_code"),
];

/// The range's report, summed from the daily ones.
pub(crate) fn sum_days(days: &[Value]) -> Result<Vec<Section>, String> {
    let overflow = || "报表金额溢出".to_owned();
    SECTIONS
        .iter()
        .map(|(title, list, key)| {
            let mut groups: BTreeMap<(u8, i64, String), Totals> = BTreeMap::new();
            let mut total = Totals::default();
            for day in days {
                for line in day[*list].as_array().into_iter().flatten() {
                    let t = Totals::of(line).ok_or("报表格式错误")?;
                    let k = &line[*key];
                    // Numbers in number order; the device's hex text and "no subject" apart.
                    let sort = match k {
                        Value::Null => (0, 0, "无科目".to_owned()),
                        Value::Number(n) => (1, n.as_i64().unwrap_or(0), n.to_string()),
                        other => (2, 0, layout::text(other)),
                    };
                    groups
                        .entry(sort)
                        .or_default()
                        .add(&t)
                        .ok_or_else(overflow)?;
                    total.add(&t).ok_or_else(overflow)?;
                }
            }
            Ok(Section {
                title,
                lines: groups
                    .into_iter()
                    .map(|((_, _, name), t)| (name, t))
                    .collect(),
                total,
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    /// The cash report of this operator (finance); one's own without it.
    operator: Option<String>,
    view: Option<String>,
}

fn range(c: &Console, q: &RangeQuery) -> Result<(NaiveDate, NaiveDate), layout::Refusal> {
    let today = c.shared.config.clock.now().date();
    let parse = |s: &Option<String>| match s.as_deref().filter(|s| !s.is_empty()) {
        None => Ok::<NaiveDate, layout::Refusal>(today),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            layout::failure(StatusCode::BAD_REQUEST, "日期格式应为 YYYY-MM-DD").into()
        }),
    };
    let from = parse(&q.from)?;
    let to = match &q.to {
        Some(t) if !t.is_empty() => parse(&q.to)?,
        _ => from,
    };
    if to < from || (to - from).num_days() >= MAX_DAYS {
        return Err(layout::failure(
            StatusCode::BAD_REQUEST,
            &format!("日期范围应从早到晚，最多 {MAX_DAYS} 天"),
        )
        .into());
    }
    Ok((from, to))
}

/// The daily reports of the range from the API (its permission check: `report-read`).
async fn days(
    c: &Console,
    who: &Op,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Value>, Response> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        out.push(who.get(c, &format!("/reports/daily?date={d}")).await.ok()?);
        d += TimeDelta::days(1);
    }
    Ok(out)
}

fn tables(sections: &[Section]) -> Markup {
    html! {
        @for s in sections {
            h2 { (s.title) }
            table.report id={"report-" (s.title)} {
                thead { tr { @for (i, h) in HEADERS.iter().enumerate() { th class=[(i > 0).then_some("num")] { (h) } } } }
                tbody {
                    @for (name, t) in &s.lines {
                        tr { td { (name) } @for (v, money) in t.cells() { td.num { @if money { (layout::yuan(v)) } @else { (v) } } } }
                    }
                    tr.total { td { "合计" } @for (v, money) in s.total.cells() { td.num { @if money { (layout::yuan(v)) } @else { (v) } } } }
                }
            }
        }
    }
}

fn cash_table(r: &Value) -> Markup {
    let sum = |v: &Value| html! { td.num { (layout::text(&v["count"])) } td.num { (layout::yuan_of(&v["amount"])) } };
    html! {
        table #cash {
            thead { tr { th { "操作员" } th { "班次" } th { "开始" } th { "扎帐" } th.num { "现金笔数" } th.num { "现金（元）" } th.num { "银行卡笔数" } th.num { "银行卡（元）" } th.num { "转账笔数" } th.num { "转账（元）" } } }
            tbody {
                @for s in r["shifts"].as_array().into_iter().flatten() {
                    tr { td { (layout::text(&s["operator"])) } td { (layout::text(&s["id"])) } td { (layout::text(&s["opened_at"])) } td { (layout::text(&s["closed_at"])) }
                        (sum(&s["cash"])) (sum(&s["bank_card"])) (sum(&s["transfer"])) }
                }
                tr.total { td colspan="4" { "合计" } (sum(&r["cash"])) (sum(&r["bank_card"])) (sum(&r["transfer"])) }
            }
        }
    }
}

pub(crate) async fn page(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<RangeQuery>,
) -> Result<Response, Response> {
    let (from, to) = range(&c, &q)?;
    let days = days(&c, &who, from, to).await?;
    let sections =
        sum_days(&days).map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    let operator = q.operator.clone().filter(|o| !o.is_empty());
    let cash = match &operator {
        Some(o) if who.can(P::ReportRead) => Some(
            who.get(
                &c,
                &format!("/reports/cash?operator={}&date={from}", enc(o)),
            )
            .await
            .ok()?,
        ),
        _ if who.can(P::ShiftOwn) => {
            Some(who.get(&c, &format!("/me/shift?date={from}")).await.ok()?)
        }
        _ => None,
    };
    let span = if from == to {
        from.to_string()
    } else {
        format!("{from} 至 {to}")
    };
    let link = |kind: &str| format!("/reports/daily.{kind}?from={from}&to={to}");
    if q.view.as_deref() == Some("print") {
        let body = html! {
            h1 { "消费日报 " (span) }
            (tables(&sections))
            @if let Some(r) = &cash { h2 { "现金（" (layout::text(&r["operator"])) "，" (from) "）" } (cash_table(r)) }
        };
        return Ok(layout::bare(StatusCode::OK, "报表打印", body));
    }
    let body = html! {
        form.noprint method="get" action="/reports" {
            label for="from" { "开始日期" } input #from type="date" name="from" value=(from);
            " " label for="to" { "结束日期" } input #to type="date" name="to" value=(to);
            " " label for="operator" { "操作员（现金）" } input #operator name="operator" value=(operator.clone().unwrap_or_default()) maxlength="64";
            " " button #show type="submit" { "查询" }
        }
        p.noprint {
            a #xlsx href=(link("xlsx")) { "下载 Excel（XLSX）" } " · "
            a #csv href=(link("csv")) { "下载 CSV" } " · "
            a #print href={"/reports?view=print&from=" (from) "&to=" (to)} { "打印视图" }
        }
        p { "期间：" (span) }
        (tables(&sections))
        @if let Some(r) = &cash { h2 { "现金按操作员、班次（" (layout::text(&r["operator"])) "，" (from) "）" } (cash_table(r)) }
    };
    Ok(layout::page(&who, "/reports", "报表", body))
}

/// The workbook: one sheet per grouping, numbers in 元 with a two-decimal format (the cells
/// hold fen / 100, exact to the cent), a bold header row frozen, a totals row.
pub(crate) fn workbook(sections: &[Section]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    let head = Format::new().set_bold().set_background_color("#E9EEF4");
    let money = Format::new().set_num_format("0.00");
    let total_money = Format::new().set_num_format("0.00").set_bold();
    let bold = Format::new().set_bold();
    for s in sections {
        let ws = wb.add_worksheet();
        ws.set_name(s.title)?;
        for (col, h) in HEADERS.iter().enumerate() {
            ws.write_string_with_format(0, col as u16, *h, &head)?;
        }
        ws.set_column_width(0, 14)?;
        for col in 1..HEADERS.len() as u16 {
            ws.set_column_width(col, 14)?;
        }
        ws.set_freeze_panes(1, 0)?;
        let mut row = 1u32;
        let put =
            |ws: &mut rust_xlsxwriter::Worksheet, row: u32, name: &str, t: &Totals, total: bool| {
                let (m, plain) = if total {
                    (&total_money, &bold)
                } else {
                    (&money, &Format::new())
                };
                ws.write_string_with_format(row, 0, name, plain)?;
                for (i, (v, is_money)) in t.cells().iter().enumerate() {
                    let col = i as u16 + 1;
                    if *is_money {
                        ws.write_number_with_format(row, col, *v as f64 / 100.0, m)?;
                    } else {
                        ws.write_number_with_format(row, col, *v as f64, plain)?;
                    }
                }
                Ok::<(), rust_xlsxwriter::XlsxError>(())
            };
        for (name, t) in &s.lines {
            put(ws, row, name, t, false)?;
            row += 1;
        }
        put(ws, row, "合计", &s.total, true)?;
    }
    wb.save_to_buffer()
}

/// CSV: one table, the grouping in the first column; money in 元 with two decimals.
pub(crate) fn csv_text(sections: &[Section]) -> String {
    let mut out = String::from("\u{feff}类别");
    for h in HEADERS {
        out.push(',');
        out.push_str(h);
    }
    out.push_str("\r\n");
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    for s in sections {
        let lines = s.lines.iter().map(|(n, t)| (n.as_str(), t));
        for (name, t) in lines.chain(std::iter::once(("合计", &s.total))) {
            out.push_str(s.title);
            out.push(',');
            out.push_str(&field(name));
            for (v, money) in t.cells() {
                out.push(',');
                out.push_str(&if money {
                    layout::yuan(v)
                } else {
                    v.to_string()
                });
            }
            out.push_str("\r\n");
        }
    }
    out
}

fn download(kind: &'static str, name: String, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

pub(crate) async fn xlsx(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<RangeQuery>,
) -> Result<Response, Response> {
    let (from, to) = range(&c, &q)?;
    let sections = sum_days(&days(&c, &who, from, to).await?)
        .map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    let bytes = workbook(&sections)
        .map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
    Ok(download(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        format!("daily-{from}-{to}.xlsx"),
        bytes,
    ))
}

pub(crate) async fn csv(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<RangeQuery>,
) -> Result<Response, Response> {
    let (from, to) = range(&c, &q)?;
    let sections = sum_days(&days(&c, &who, from, to).await?)
        .map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    Ok(download(
        "text/csv; charset=utf-8",
        format!("daily-{from}-{to}.csv"),
        csv_text(&sections).into_bytes(),
    ))
}
