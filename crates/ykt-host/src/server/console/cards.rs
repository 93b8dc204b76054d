//! 持卡人与卡: search (card number, display number, 学工号, name), a card's page and its
//! actions (loss / found, freeze / unfreeze, cancel, deposit).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::dashboard::done_text;
use super::session::{Op, enc};
use super::{Console, layout};
use crate::access::Permission as P;
use crate::repo;
use crate::server::jobs;
use ykt_proto::DisplayNo;

/// The most a search term may be: a name or a number, never a paragraph.
const MAX_QUERY: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn status_title(s: &str) -> &'static str {
    match s {
        "normal" => "正常",
        "lost" => "挂失",
        "frozen" => "冻结",
        "bad" => "坏卡",
        "locked" => "锁定",
        "disabled" => "停用",
        "cancelled" => "注销",
        _ => "未知",
    }
}

pub(crate) async fn search(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Response> {
    if !who.can(P::CardRead) {
        return Err(layout::failure(
            StatusCode::FORBIDDEN,
            "权限不足：需要 card-read 权限",
        ));
    }
    let term = q.q.trim().to_owned();
    if term.chars().count() > MAX_QUERY {
        return Err(layout::failure(StatusCode::BAD_REQUEST, "查询内容过长"));
    }
    // A number may be a card number or a display number: both are looked up by key.
    let mut cards: Vec<Value> = Vec::new();
    if let Ok(n) = term.parse::<u64>() {
        if let Ok(no) = u32::try_from(n) {
            let a = who.get(&c, &format!("/cards/{no}")).await;
            if a.status.is_success() {
                cards.push(a.json());
            }
        }
        if let Some(d) = DisplayNo::new(n) {
            let found = jobs::read(&c.shared.store, move |tx| repo::card_by_display(tx.conn, d))
                .await
                .map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
            if let Some(card) = found
                && !cards.iter().any(|v| v["card_no"] == card.no.get())
            {
                cards.push(crate::server::admin::card_json(&card));
            }
        }
    }
    let holders = if !term.is_empty() && who.can(P::CardholderRead) {
        who.get(&c, &format!("/cardholders?limit=50&q={}", enc(&term)))
            .await
            .ok()?["cardholders"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let body = html! {
        form method="get" action="/cards" {
            input #q name="q" value=(term) maxlength="64" placeholder="卡号、显示卡号、学工号或姓名";
            " "
            button #search type="submit" { "查询" }
            @if who.can(P::CardholderWrite) { " " a #to-import href="/cardholders/import" { "导入持卡人" } }
        }
        @if !term.is_empty() {
            h2 { "卡" }
            @if cards.is_empty() { p.muted { "没有号码为 " (term) " 的卡" } }
            @else {
                table #cards {
                    thead { tr { th { "卡号" } th { "显示卡号" } th { "状态" } th { "类别" } th.num { "余额（元）" } } }
                    tbody {
                        @for v in &cards {
                            tr {
                                td { a href={"/cards/" (layout::text(&v["card_no"]))} { (layout::text(&v["card_no"])) } }
                                td { (layout::text(&v["display_no"])) }
                                td { (status_title(v["status"].as_str().unwrap_or(""))) }
                                td { (layout::text(&v["class"])) }
                                td.num { (layout::yuan_of(&v["balance"])) }
                            }
                        }
                    }
                }
            }
            @if who.can(P::CardholderRead) {
                h2 { "持卡人" }
                @if holders.is_empty() { p.muted { "没有匹配的持卡人" } }
                @else {
                    table #holders {
                        thead { tr { th { "学工号" } th { "姓名" } th { "类别" } th { "部门" } th { "状态" } } }
                        tbody {
                            @for h in &holders {
                                tr {
                                    td { (layout::text(&h["number"])) }
                                    td { (layout::text(&h["name"])) }
                                    td { (layout::text(&h["kind_title"])) }
                                    td { (layout::text(&h["department"])) }
                                    td { (layout::text(&h["status_title"])) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&who, "/cards", "持卡人与卡", body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn page(
    State(c): State<Console>,
    who: Op,
    Path(no): Path<u32>,
    Query(q): Query<Done>,
) -> Result<Response, Response> {
    let card = who.get(&c, &format!("/cards/{no}")).await.ok()?;
    let waiting = who.get(&c, &format!("/cards/{no}/waiting")).await.ok()?;
    let status = card["status"].as_str().unwrap_or("").to_owned();
    let actions: &[(&str, &str, Option<&str>)] = match status.as_str() {
        "normal" => &[("lose", "挂失", None), ("freeze", "冻结", None)],
        "lost" => &[("found", "解挂", None)],
        "frozen" => &[("unfreeze", "解冻", None)],
        _ => &[],
    };
    let done = q.done.as_deref().and_then(done_text);
    let body = html! {
        @if let Some(d) = done { p.msg.ok #done { (d) } }
        table #card {
            tbody {
                tr { th { "卡号" } td #card-no { (no) } }
                tr { th { "显示卡号" } td { (layout::text(&card["display_no"])) } }
                tr { th { "状态" } td #status { (status_title(&status)) } }
                tr { th { "类别" } td { (layout::text(&card["class"])) } }
                tr { th { "有效期" } td { (layout::text(&card["expiry"])) } }
                tr { th { "账面余额（元）" } td.num #balance { (layout::yuan_of(&card["balance"])) } }
                tr { th { "待领取（元）" } td.num #waiting { (layout::yuan_of(&waiting["waiting"])) } }
                tr { th { "在黑名单上" } td { @if card["blacklisted"] == true { "是" } @else { "否" } } }
                tr { th { "持卡人" } td { (layout::text(&card["cardholder"])) } }
            }
        }
        @if who.can(P::CardWrite) && status != "cancelled" {
            h2 { "卡务操作" }
            @for (action, label, _) in actions {
                form.inline method="post" action={"/cards/" (no) "/action"} {
                    (layout::csrf(&who))
                    input type="hidden" name="action" value=(action);
                    button #{"do-" (action)} type="submit" { (label) }
                }
            }
            form.inline method="post" action={"/cards/" (no) "/action"} data-confirm="注销后此卡不能再使用，确定注销？" {
                (layout::csrf(&who))
                input type="hidden" name="action" value="cancel";
                button.danger #do-cancel type="submit" { "注销" }
            }
        }
        @if who.can(P::Deposit) && status == "normal" {
            h2 { "存款" }
            form method="post" action={"/cards/" (no) "/deposit"} {
                (layout::csrf(&who))
                div.row { label for="amount" { "金额（元）" } input #amount name="amount" required pattern="[0-9]{1,8}(\\.[0-9]{1,2})?" maxlength="11"; }
                div.row { label for="receipt" { "收据号" } input #receipt name="id" required maxlength="64"; }
                div.row { label for="method" { "方式" }
                    select #method name="method" {
                        option value="cash" { "现金" }
                        option value="bank-card" { "银行卡" }
                        option value="transfer" { "转账" }
                    }
                }
                div.row { button #do-deposit type="submit" { "存款" } }
            }
        }
        h2 { "待领取款项" }
        table #loads {
            thead { tr { th { "编号" } th { "来源" } th.num { "金额（元）" } th { "状态" } } }
            tbody {
                @for l in waiting["waiting_loads"].as_array().into_iter().flatten() {
                    tr {
                        td { (layout::text(&l["id"])) }
                        td { (layout::text(&l["source"])) }
                        td.num { (layout::yuan_of(&l["amount"])) }
                        td { (layout::text(&l["state"])) }
                    }
                }
            }
        }
    };
    Ok(layout::page(&who, "/cards", &format!("卡 {no}"), body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionForm {
    csrf: String,
    action: String,
}

pub(crate) async fn action(
    State(c): State<Console>,
    who: Op,
    Path(no): Path<u32>,
    Form(f): Form<ActionForm>,
) -> Result<Response, Response> {
    who.check_csrf(&f.csrf)?;
    // The API names the actions and refuses any other; the console passes the word through.
    if !matches!(
        f.action.as_str(),
        "lose" | "found" | "freeze" | "unfreeze" | "cancel"
    ) {
        return Err(layout::failure(StatusCode::BAD_REQUEST, "未知的卡务操作"));
    }
    who.api(&c, Method::POST, &format!("/cards/{no}/{}", f.action), None)
        .await
        .ok()?;
    Ok(Redirect::to(&format!("/cards/{no}?done={}", f.action)).into_response())
}

/// "12.34" 元 as fen, without floats; at most two decimals.
pub(crate) fn parse_yuan(s: &str) -> Option<i64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || whole.len() > 12 || frac.len() > 2 {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    w.checked_mul(100)?.checked_add(f)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepositForm {
    csrf: String,
    amount: String,
    id: String,
    method: String,
}

pub(crate) async fn deposit(
    State(c): State<Console>,
    who: Op,
    Path(no): Path<u32>,
    Form(f): Form<DepositForm>,
) -> Result<Response, Response> {
    who.check_csrf(&f.csrf)?;
    let Some(amount) = parse_yuan(&f.amount) else {
        return Err(layout::failure(
            StatusCode::BAD_REQUEST,
            "金额格式错误：元，最多两位小数",
        ));
    };
    let body = json!({"amount": amount, "id": f.id, "method": f.method});
    let a = who
        .send(&c, Method::POST, &format!("/cards/{no}/deposit"), &body)
        .await;
    let done = if a.status == StatusCode::ACCEPTED {
        "approval"
    } else {
        a.ok()?;
        "deposit"
    };
    Ok(Redirect::to(&format!("/cards/{no}?done={done}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_yuan;

    #[test]
    fn yuan_parses_to_fen() {
        assert_eq!(parse_yuan("12.34"), Some(1234));
        assert_eq!(parse_yuan("12.3"), Some(1230));
        assert_eq!(parse_yuan("12"), Some(1200));
        assert_eq!(parse_yuan("0.05"), Some(5));
        for bad in ["", ".5", "1.234", "-1", "1e3", "1,00", "9999999999999"] {
            assert_eq!(parse_yuan(bad), None, "{bad}");
        }
    }
}
