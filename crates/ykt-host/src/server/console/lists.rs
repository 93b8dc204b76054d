//! The list pages: 商户, 前置机, 异常流水 (with resolution), 操作日志 (filters), 操作员 and
//! roles, 黑名单.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::dashboard::done_text;
use super::session::{Op, enc};
use super::{Console, layout};
use crate::access::Permission as P;

/// Rows per page of the paged lists.
const PAGE: u32 = 50;

pub(crate) async fn merchants(State(c): State<Console>, who: Op) -> Result<Response, Response> {
    let list = who.get(&c, "/merchants").await.ok()?;
    let body = html! {
        table #merchants {
            thead { tr { th.num { "商户号" } th { "名称" } th { "状态" } th.num { "账户余额（元）" } } }
            tbody {
                @for m in list.as_array().into_iter().flatten() {
                    tr { td.num { (layout::text(&m["no"])) } td { (layout::text(&m["name"])) } td { (layout::text(&m["status"])) } td.num { (layout::yuan_of(&m["balance"])) } }
                }
            }
        }
    };
    Ok(layout::page(&who, "/merchants", "商户", body))
}

pub(crate) async fn feps(State(c): State<Console>, who: Op) -> Result<Response, Response> {
    let list = who.get(&c, "/feps").await.ok()?;
    let body = html! {
        table #feps {
            thead { tr { th.num { "编号" } th { "名称" } th { "状态" } th { "签到时间" } th { "本进程" } } }
            tbody {
                @for f in list.as_array().into_iter().flatten() {
                    tr { td.num { (layout::text(&f["id"])) } td { (layout::text(&f["name"])) } td { (layout::text(&f["status"])) } td { (layout::text(&f["signed_in_at"])) } td { @if f["this_process"] == true { "是" } } }
                }
            }
        }
    };
    Ok(layout::page(&who, "/feps", "前置机", body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionQuery {
    state: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

pub(crate) async fn exceptions(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<ExceptionQuery>,
) -> Result<Response, Response> {
    let state = match q.state.as_deref() {
        Some("resolved") => "resolved",
        Some("all") => "all",
        _ => "open",
    };
    let mut path = format!("/exceptions?state={state}&limit={PAGE}");
    if let Some(a) = q.after.as_deref().filter(|a| !a.is_empty()) {
        path.push_str(&format!("&after={}", enc(a)));
    }
    let page = who.get(&c, &path).await.ok()?;
    let resolve = who.can(P::ExceptionResolve);
    let done = q.done.as_deref().and_then(done_text);
    let body = html! {
        @if let Some(d) = done { p.msg.ok #done { (d) } }
        p { "未处理：" span #open { (layout::text(&page["open"])) } " · "
            a href="/exceptions?state=open" { "未处理" } " · " a href="/exceptions?state=resolved" { "已处理" } " · " a href="/exceptions?state=all" { "全部" } }
        table #exceptions {
            thead { tr { th { "设备" } th.num { "流水号" } th.num { "返回码" } th { "原因" } th { "收到时间" } th { "处理" } } }
            tbody {
                @for e in page["exceptions"].as_array().into_iter().flatten() {
                    @let (device, serial) = (layout::text(&e["device"]), layout::text(&e["serial"]));
                    tr {
                        td { (device) } td.num { (serial) } td.num { (layout::text(&e["code"])) } td { (layout::text(&e["reason"])) } td { (layout::text(&e["received_at"])) }
                        td {
                            @if e["resolution"]["state"] == "open" && resolve {
                                form.inline method="post" action={"/exceptions/" (device) "/" (serial) "/resolve"} data-confirm="确定处理这笔异常流水？" {
                                    (layout::csrf(&who))
                                    select name="action" { option value="book" { "入账" } option value="suspense" { "挂账" } option value="reject" { "拒绝" } }
                                    " " input name="note" maxlength="1000" placeholder="说明";
                                    " " button type="submit" { "处理" }
                                }
                            } @else {
                                (layout::text(&e["resolution"]["state"]))
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = page["next_after"].as_str() {
            p.pager { a href={"/exceptions?state=" (state) "&after=" (enc(next))} { "下一页" } }
        }
    };
    Ok(layout::page(&who, "/exceptions", "异常流水", body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveForm {
    csrf: String,
    action: String,
    note: String,
}

pub(crate) async fn resolve(
    State(c): State<Console>,
    who: Op,
    Path((device, serial)): Path<(String, u32)>,
    Form(f): Form<ResolveForm>,
) -> Result<Response, Response> {
    who.check_csrf(&f.csrf)?;
    let body = json!({"action": f.action, "note": f.note});
    let path = format!("/exceptions/{}/{serial}/resolve", enc(&device));
    who.send(&c, Method::POST, &path, &body).await.ok()?;
    Ok(Redirect::to("/exceptions?done=resolve").into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalQuery {
    #[serde(default)]
    operator: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
}

pub(crate) async fn journal(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<JournalQuery>,
) -> Result<Response, Response> {
    let mut filters = String::new();
    for (k, v) in [
        ("operator", &q.operator),
        ("target", &q.target),
        ("operation", &q.operation),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if v.len() > 128 {
            return Err(layout::failure(StatusCode::BAD_REQUEST, "筛选条件过长"));
        }
        if !v.is_empty() {
            filters.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let mut path = format!("/journal?limit={PAGE}{filters}");
    if let Some(b) = q.before {
        path.push_str(&format!("&before={b}"));
    }
    let page = who.get(&c, &path).await.ok()?;
    let body = html! {
        form method="get" action="/journal" {
            input name="operator" value=(q.operator) placeholder="操作员" maxlength="128";
            " " input name="operation" value=(q.operation) placeholder="操作（如 card.lose）" maxlength="128";
            " " input name="target" value=(q.target) placeholder="对象（如 card:7）" maxlength="128";
            " " input name="from" value=(q.from) placeholder="起 YYYY-MM-DD" maxlength="128";
            " " input name="to" value=(q.to) placeholder="止 YYYY-MM-DD" maxlength="128";
            " " button type="submit" { "筛选" }
        }
        table #journal {
            thead { tr { th.num { "序号" } th { "时间" } th { "操作员" } th { "角色" } th { "客户端" } th { "操作" } th { "对象" } th { "之前" } th { "之后" } } }
            tbody {
                @for e in page["entries"].as_array().into_iter().flatten() {
                    tr { td.num { (layout::text(&e["seq"])) } td { (layout::text(&e["at"])) } td { (layout::text(&e["login"])) } td { (layout::text(&e["role"])) } td { (layout::text(&e["client"])) }
                         td { (layout::text(&e["operation"])) } td { (layout::text(&e["target"])) } td { code { (layout::text(&e["before"])) } } td { code { (layout::text(&e["after"])) } } }
                }
            }
        }
        @if let Some(next) = page["next_before"].as_i64() {
            p.pager { a href={"/journal?before=" (next) (filters)} { "更早" } }
        }
    };
    Ok(layout::page(&who, "/journal", "操作日志", body))
}

pub(crate) async fn operators(State(c): State<Console>, who: Op) -> Result<Response, Response> {
    let list = who.get(&c, "/operators").await.ok()?;
    let roles = who.get(&c, "/roles").await.ok()?;
    let body = html! {
        table #operators {
            thead { tr { th { "用户名" } th { "姓名" } th { "角色" } th { "状态" } } }
            tbody {
                @for o in list.as_array().or_else(|| list["operators"].as_array()).into_iter().flatten() {
                    tr { td { (layout::text(&o["login"])) } td { (layout::text(&o["name"])) } td { (layout::text(&o["roles"])) } td { (layout::text(&o["status"])) } }
                }
            }
        }
        h2 { "角色" }
        table #roles {
            thead { tr { th { "角色" } th { "名称" } th { "权限" } } }
            tbody {
                @for r in roles.as_array().or_else(|| roles["roles"].as_array()).into_iter().flatten() {
                    tr { td { (layout::text(&r["role"])) } td { (layout::text(&r["title"])) } td { (layout::text(&r["permissions"])) } }
                }
            }
        }
    };
    Ok(layout::page(&who, "/operators", "操作员", body))
}

pub(crate) async fn blacklist(State(c): State<Console>, who: Op) -> Result<Response, Response> {
    let list = who.get(&c, "/blacklist").await.ok()?;
    // The version history: every journalled card change that moved the blacklist.
    let history = if who.can(P::JournalRead) {
        Some(
            who.get(&c, "/journal?limit=50&operation=card.")
                .await
                .ok()?,
        )
    } else {
        None
    };
    let body = html! {
        p { "当前版本：" strong #version { (layout::text(&list["version"])) } "，名单上 " (list["cards"].as_array().map_or(0, Vec::len)) " 张卡" @if list["more"] == true { "（仅显示前 10,000 张）" } }
        table #blacklist {
            thead { tr { th { "卡号" } } }
            tbody { @for card in list["cards"].as_array().into_iter().flatten().take(1000) { tr { td { (layout::text(card)) } } } }
        }
        @if let Some(h) = history {
            h2 { "版本变化（操作日志）" }
            table #history {
                thead { tr { th { "时间" } th { "操作员" } th { "操作" } th { "卡" } th.num { "版本" } } }
                tbody {
                    @for e in h["entries"].as_array().into_iter().flatten() {
                        @if !e["after"]["blacklist_version"].is_null() {
                            tr { td { (layout::text(&e["at"])) } td { (layout::text(&e["login"])) } td { (layout::text(&e["operation"])) } td { (layout::text(&e["target"])) } td.num { (layout::text(&e["after"]["blacklist_version"])) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&who, "/blacklist", "黑名单", body))
}
