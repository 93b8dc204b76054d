//! 设备: the terminals with their status (last report, pending records, blacklist version,
//! clock), every downloadable parameter editable (pushed at once by the API when the terminal
//! is connected), and record-collection orders.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::cards::parse_yuan;
use super::dashboard::done_text;
use super::session::{Op, SignedIn};
use super::{Console, layout};
use crate::access::Permission as P;

/// Devices per page of the list.
const PAGE: u32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    after: Option<String>,
}

/// The list, a page at a time in ID order. `GET /api/v1/devices` answers all of them at
/// once (4 MB for 3,000), so the page reads its slice itself under the same permission.
pub(crate) async fn list(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<ListQuery>,
) -> Result<Response, Response> {
    if !who.can(P::DeviceRead) {
        return Err(crate::server::auth::missing_permission(P::DeviceRead));
    }
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(
            a.parse::<ykt_proto::PhysicalId>()
                .map_err(|_| layout::failure(StatusCode::BAD_REQUEST, "设备号应为 8 位十六进制"))?,
        ),
        None => None,
    };
    let page = crate::server::jobs::read(&c.shared.store, move |tx| {
        crate::repo::device_list(tx.conn, after, PAGE)
    })
    .await
    .map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
    let next = (page.len() == PAGE as usize).then(|| page.last().map(|d| d.id.to_string()));
    let devices = Value::Array(
        page.iter()
            .map(|d| crate::server::admin::device_json(d, c.shared.registry.is_connected(d.id)))
            .collect(),
    );
    let body = html! {
        table #devices {
            thead { tr {
                th { "物理 ID" } th.num { "终端号" } th.num { "商户" } th { "状态" } th { "在线" }
                th { "最近报告" } th.num { "未上传" } th.num { "黑名单版本" } th { "终端时钟" } th.num { "参数版本" }
            } }
            tbody {
                @for d in devices.as_array().into_iter().flatten() {
                    @let r = &d["last_report"];
                    tr {
                        td { a href={"/devices/" (layout::text(&d["id"]))} { (layout::text(&d["id"])) } }
                        td.num { (layout::text(&d["terminal_no"])) }
                        td.num { (layout::text(&d["merchant_no"])) }
                        td { @if d["status"] == "enabled" { "启用" } @else { "停用" } }
                        td { @if d["connected"] == true { "在线" } @else { "离线" } }
                        td { (layout::text(&r["at"])) }
                        td.num { (layout::text(&r["pending_records"])) }
                        td.num { (layout::text(&r["blacklist_version"])) }
                        td { (layout::text(&r["terminal_clock"])) }
                        td.num { (layout::text(&d["params"]["version"])) }
                    }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if let Some(Some(n)) = next { p.pager { a #next href={"/devices?after=" (n)} { "下一页" } } }
    };
    Ok(layout::page(&who, "/devices", "设备", body))
}

/// `[1,2,3,7]` as `1-3,7`.
pub(crate) fn ranges(classes: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < classes.len() {
        let start = classes[i];
        let mut end = start;
        while i + 1 < classes.len() && classes[i + 1] == end + 1 {
            i += 1;
            end = classes[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// `1-3,7` (or `all`, or empty for none) as the class list.
pub(crate) fn parse_classes(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s == "all" || s == "全部" {
        return Ok((0..=255).collect());
    }
    let mut out = Vec::new();
    for part in s
        .split([',', '，'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |x: &str| {
            x.trim()
                .parse::<u8>()
                .map_err(|_| format!("卡类别 {part:?} 应为 0–255"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("卡类别范围 {part:?} 颠倒"));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '，', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// `3=5,4=2` (class = percent).
fn parse_fees(s: &str) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for part in items(s) {
        let (class, pct) = part
            .split_once('=')
            .ok_or_else(|| format!("费率 {part:?} 应为 类别=百分比"))?;
        let class: u8 = class
            .trim()
            .parse()
            .map_err(|_| format!("费率 {part:?}：类别 0–255"))?;
        let pct: u64 = pct
            .trim()
            .parse()
            .map_err(|_| format!("费率 {part:?}：百分比为整数"))?;
        m.insert(class.to_string(), json!(pct));
    }
    Ok(m)
}

/// `06:30-09:00,11:00-13:00`.
fn parse_hours(s: &str) -> Result<Vec<Value>, String> {
    items(s)
        .map(|part| {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| format!("时段 {part:?} 应为 HH:MM-HH:MM"))?;
            Ok(json!({"start": a.trim(), "end": b.trim()}))
        })
        .collect()
}

/// `4=6.00:2` (item code = price in 元 : subject).
fn parse_prices(s: &str) -> Result<Vec<Value>, String> {
    items(s)
        .map(|part| {
            let (code, rest) = part
                .split_once('=')
                .ok_or_else(|| format!("价目 {part:?} 应为 代码=元[:科目]"))?;
            let (price, subject) = rest.split_once(':').unwrap_or((rest, ""));
            let code: u16 = code
                .trim()
                .parse()
                .map_err(|_| format!("价目 {part:?}：代码"))?;
            let price = parse_yuan(price).ok_or_else(|| format!("价目 {part:?}：价格（元）"))?;
            let mut v = json!({"code": code, "price": price});
            if !subject.trim().is_empty() {
                let subject: u16 = subject
                    .trim()
                    .parse()
                    .map_err(|_| format!("价目 {part:?}：科目"))?;
                v["subject"] = json!(subject);
            }
            Ok(v)
        })
        .collect()
}

fn fees_text(v: &Value) -> String {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, p)| format!("{k}={p}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn hours_text(v: &Value) -> String {
    let short = |s: &Value| {
        let s = s.as_str().unwrap_or("");
        s.strip_suffix(":00")
            .filter(|t| t.len() == 5)
            .unwrap_or(s)
            .to_owned()
    };
    v.as_array()
        .into_iter()
        .flatten()
        .map(|w| format!("{}-{}", short(&w["start"]), short(&w["end"])))
        .collect::<Vec<_>>()
        .join(",")
}

fn prices_text(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut s = format!(
                "{}={}",
                layout::text(&p["code"]),
                layout::yuan_of(&p["price"])
            );
            if let Some(sub) = p["subject"].as_u64() {
                s.push_str(&format!(":{sub}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn classes_text(v: &Value) -> String {
    let list: Vec<u64> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    if list.len() == 256 {
        "all".to_owned()
    } else {
        ranges(&list)
    }
}

/// The parameter form: every field the host downloads.
fn params_form(who: &SignedIn, id: &str, p: &Value) -> Markup {
    let money = |k: &str| layout::yuan_of(&p[k]);
    let select = |name: &str, options: &[(&str, &str)]| {
        html! {
            select #(name) name=(name) {
                @for (value, label) in options {
                    option value=(value) selected[p[name] == *value] { (label) }
                }
            }
        }
    };
    let number = |name: &str, label: &str| {
        html! { div.row { label for=(name) { (label) } input #(name) name=(name) value=(layout::text(&p[name])) maxlength="10"; } }
    };
    let yuan = |name: &str, label: &str| {
        html! { div.row { label for=(name) { (label) "（元）" } input #(name) name=(name) value=(money(name)) maxlength="12"; } }
    };
    html! {
        form #params method="post" action={"/devices/" (id) "/params"} {
            (layout::csrf(who))
            fieldset {
                legend { "参数（版本 " (layout::text(&p["version"])) "）" }
                div.row { label for="work_mode" { "工作模式" }
                    (select("work_mode", &[("full-online", "全联机"), ("auto", "自动"), ("offline", "脱机")])) }
                div.row { label for="consumption_mode" { "消费方式" }
                    (select("consumption_mode", &[("unit-price", "单价"), ("fixed-amount", "定额"), ("coded", "编码（价目表）")])) }
                (yuan("fixed_amount", "定额金额"))
                (yuan("max_balance", "卡余额上限"))
                (yuan("min_balance", "卡余额下限"))
                (number("max_daily_uses", "每日消费次数上限"))
                (yuan("single_password_threshold", "单笔密码限额"))
                (yuan("daily_password_threshold", "日累计密码限额"))
                (number("wallet_no", "钱包号"))
                (number("max_offline_hours", "脱机最长小时数"))
                div.row { label for="allowed_classes" { "允许的卡类别" } input #allowed_classes name="allowed_classes" value=(classes_text(&p["allowed_classes"])) maxlength="1024"; span.muted { " 例：1-3,7；all 为全部；空为不允许" } }
                div.row { label for="fee_rates" { "各类别费率（%）" } input #fee_rates name="fee_rates" value=(fees_text(&p["fee_rates"])) maxlength="2048"; span.muted { " 例：3=5,4=2" } }
                div.row { label for="working_hours" { "营业时段" } input #working_hours name="working_hours" value=(hours_text(&p["working_hours"])) maxlength="512"; span.muted { " 例：06:30-09:00；空为全天" } }
                div.row { label for="price_list" { "价目表" } textarea #price_list name="price_list" rows="3" cols="60" maxlength="20000" { (prices_text(&p["price_list"])) } span.muted { " 代码=元:科目，逗号分隔" } }
                div.row { button #save-params type="submit" { "保存并下发" } }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn page(
    State(c): State<Console>,
    who: Op,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Result<Response, Response> {
    let d = who
        .get(&c, &format!("/devices/{}", super::session::enc(&id)))
        .await
        .ok()?;
    let id = layout::text(&d["id"]);
    let r = &d["last_report"];
    let done = q.done.as_deref().and_then(done_text);
    let body = html! {
        @if let Some(t) = done { p.msg.ok #done { (t) } }
        table #device {
            tbody {
                tr { th { "终端号" } td { (layout::text(&d["terminal_no"])) } }
                tr { th { "商户" } td { (layout::text(&d["merchant_no"])) } }
                tr { th { "状态" } td { @if d["status"] == "enabled" { "启用" } @else { "停用" } } }
                tr { th { "在线" } td #connected { @if d["connected"] == true { "在线" } @else { "离线" } } }
                tr { th { "最近报告" } td { (layout::text(&r["at"])) } }
                tr { th { "未上传流水" } td { (layout::text(&r["pending_records"])) } }
                tr { th { "终端黑名单版本" } td { (layout::text(&r["blacklist_version"])) } }
                tr { th { "终端时钟" } td { (layout::text(&r["terminal_clock"])) } }
                tr { th { "单笔限额（元）" } td { (layout::yuan_of(&d["max_amount"])) } }
            }
        }
        @if who.can(P::DeviceWrite) {
            (params_form(&who, &id, &d["params"]))
            h2 { "采集流水" }
            form method="post" action={"/devices/" (id) "/collect"} {
                (layout::csrf(&who))
                div.row { label for="card_no" { "卡号（0 为全部）" } input #card_no name="card_no" value="0" maxlength="10"; }
                div.row { label for="count" { "笔数" } input #count name="count" value="10" maxlength="5"; }
                div.row { button #collect type="submit" { "发送采集指令" } }
            }
        } @else {
            h2 { "参数" }
            pre { (serde_json::to_string_pretty(&d["params"]).unwrap_or_default()) }
        }
    };
    Ok(layout::page(&who, "/devices", &format!("设备 {id}"), body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamsForm {
    csrf: String,
    work_mode: String,
    consumption_mode: String,
    fixed_amount: String,
    max_balance: String,
    min_balance: String,
    max_daily_uses: String,
    single_password_threshold: String,
    daily_password_threshold: String,
    wallet_no: String,
    max_offline_hours: String,
    allowed_classes: String,
    fee_rates: String,
    working_hours: String,
    price_list: String,
}

fn patch(f: &ParamsForm) -> Result<Value, String> {
    let yuan = |name: &str, v: &str| parse_yuan(v).ok_or_else(|| format!("{name}：金额格式错误"));
    let int = |name: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("{name}：应为非负整数"))
    };
    Ok(json!({
        "work_mode": f.work_mode,
        "consumption_mode": f.consumption_mode,
        "fixed_amount": yuan("定额金额", &f.fixed_amount)?,
        "max_balance": yuan("卡余额上限", &f.max_balance)?,
        "min_balance": yuan("卡余额下限", &f.min_balance)?,
        "max_daily_uses": int("每日消费次数上限", &f.max_daily_uses)?,
        "single_password_threshold": yuan("单笔密码限额", &f.single_password_threshold)?,
        "daily_password_threshold": yuan("日累计密码限额", &f.daily_password_threshold)?,
        "wallet_no": int("钱包号", &f.wallet_no)?,
        "max_offline_hours": int("脱机最长小时数", &f.max_offline_hours)?,
        "allowed_classes": parse_classes(&f.allowed_classes)?,
        "fee_rates": parse_fees(&f.fee_rates)?,
        "working_hours": parse_hours(&f.working_hours)?,
        "price_list": parse_prices(&f.price_list)?,
    }))
}

pub(crate) async fn set_params(
    State(c): State<Console>,
    who: Op,
    Path(id): Path<String>,
    Form(f): Form<ParamsForm>,
) -> Result<Response, Response> {
    who.check_csrf(&f.csrf)?;
    let body = patch(&f).map_err(|e| layout::failure(StatusCode::BAD_REQUEST, &e))?;
    let id = super::session::enc(&id);
    let r = who
        .send(&c, Method::PUT, &format!("/devices/{id}/params"), &body)
        .await
        .ok()?;
    let done = if r["pushed"] == true {
        "pushed"
    } else {
        "params"
    };
    Ok(Redirect::to(&format!("/devices/{id}?done={done}")).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectForm {
    csrf: String,
    card_no: u32,
    count: u32,
}

pub(crate) async fn collect(
    State(c): State<Console>,
    who: Op,
    Path(id): Path<String>,
    Form(f): Form<CollectForm>,
) -> Result<Response, Response> {
    who.check_csrf(&f.csrf)?;
    let id = super::session::enc(&id);
    let body = json!({"card_no": f.card_no, "count": f.count});
    who.send(&c, Method::POST, &format!("/devices/{id}/collect"), &body)
        .await
        .ok()?;
    Ok(Redirect::to(&format!("/devices/{id}?done=collect")).into_response())
}

#[cfg(test)]
mod tests {
    use super::{parse_classes, ranges};

    #[test]
    fn classes_round_trip_as_ranges() {
        let c = parse_classes("7, 1-3 ,3").unwrap_or_default();
        assert_eq!(c, vec![1, 2, 3, 7]);
        let as_u64: Vec<u64> = c.iter().map(|&x| u64::from(x)).collect();
        assert_eq!(ranges(&as_u64), "1-3,7");
        assert_eq!(parse_classes("all").map(|v| v.len()), Ok(256));
        assert_eq!(parse_classes(""), Ok(vec![]));
        assert!(parse_classes("3-1").is_err());
        assert!(parse_classes("256").is_err());
    }
}
