//! 总览: today's debits, TPS, the hourly chart, the terminals' health, open exceptions.
//! Reloads itself every 30 seconds (a `Refresh` header: no script).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{PreEscaped, html};
use serde::Deserialize;

use super::session::Op;
use super::{Console, chart, layout, stats};
use crate::access::Permission as P;
use crate::domain::blacklist;
use crate::server::jobs;

/// A terminal whose clock is further off than this is listed (the spec's terminals keep
/// time by the host's 0x45 pushes; a minute off means that is not working).
const DRIFT_LISTED_SECS: i64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Done {
    done: Option<String>,
}

/// The fixed texts a redirect may ask to show (never text from the query itself).
pub(crate) fn done_text(what: &str) -> Option<&'static str> {
    Some(match what {
        "password" => "密码已修改",
        "lose" => "已挂失",
        "found" => "已解挂",
        "freeze" => "已冻结",
        "unfreeze" => "已解冻",
        "cancel" => "已注销",
        "deposit" => "已存款，款项待卡片领取",
        "approval" => "金额达到审批阈值，已提交待第二人审批",
        "params" => "参数已保存",
        "pushed" => "参数已保存并已下发到终端",
        "collect" => "采集指令已发送",
        "resolve" => "异常流水已处理",
        _ => return None,
    })
}

pub(crate) async fn page(
    State(c): State<Console>,
    who: Op,
    Query(q): Query<Done>,
) -> Result<Response, Response> {
    let now = c.shared.config.clock.now();
    let fail = |e: crate::error::HostError| {
        layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
    };
    let figures = if who.can(P::ReportRead) {
        Some(
            jobs::read(&c.shared.store, move |tx| stats::today(tx, now))
                .await
                .map_err(fail)?,
        )
    } else {
        None
    };
    let version = if who.can(P::BlacklistRead) {
        Some(
            jobs::read(&c.shared.store, blacklist::version)
                .await
                .map_err(fail)?,
        )
    } else {
        None
    };
    let devices = if who.can(P::DeviceRead) {
        let v = match version {
            Some(v) => v,
            None => jobs::read(&c.shared.store, blacklist::version)
                .await
                .map_err(fail)?,
        };
        Some(
            jobs::read(&c.shared.store, move |tx| {
                stats::terminal_health(tx, v, DRIFT_LISTED_SECS)
            })
            .await
            .map_err(fail)?,
        )
    } else {
        None
    };
    // Connected to this process (each FEP process shows its own terminals).
    let connected = i64::try_from(c.shared.registry.connected()).unwrap_or(i64::MAX);
    let open = if who.can(P::ExceptionRead) {
        who.get(&c, "/exceptions?limit=1").await.ok()?["open"].as_i64()
    } else {
        None
    };
    let done = q.done.as_deref().and_then(done_text);
    let body = html! {
        @if let Some(d) = done { p.msg.ok #done { (d) } }
        p.muted { "数据时间 " (now.format("%Y-%m-%d %H:%M:%S")) "，每 30 秒自动刷新" }
        div.tiles {
            @if let Some(f) = &figures {
                @let day = stats::total(&f.today).unwrap_or_default();
                div.tile { div.label { "今日消费笔数" } div.value #debits { (day.count) } }
                div.tile { div.label { "今日消费金额（元）" } div.value #amount { (layout::yuan(day.amount)) } }
                div.tile { div.label { "当前 TPS（近 60 秒）" } div.value #tps { (tps(f.last_minute)) } }
            }
            @if let Some(v) = version {
                div.tile { div.label { "黑名单版本" } div.value #blacklist-version { (v) } }
            }
            @if let Some(t) = &devices {
                div.tile { div.label { "在线终端" } div.value #connected { (connected) } }
                div.tile.warn[t.enabled > connected] { div.label { "离线终端（已启用）" } div.value #offline { ((t.enabled - connected).max(0)) } }
                div.tile.warn[t.pending.0 > 0] { div.label { "有未上传流水的终端" } div.value #pending { (t.pending.0) } }
                div.tile.warn[t.behind.0 > 0] { div.label { "黑名单落后的终端" } div.value #behind { (t.behind.0) } }
                div.tile.warn[t.drift.0 > 0] { div.label { "时钟偏差超过 1 分钟" } div.value #drift { (t.drift.0) } }
            }
            @if let Some(n) = open {
                div.tile.warn[n > 0] { div.label { "未处理异常流水" } div.value #open-exceptions { (n) } }
            }
        }
        @if let Some(f) = &figures {
            h2 { "今日按小时消费金额（元）：" span.today { "今日" } " 对比 " span.yesterday { "昨日" } }
            div.chart { (PreEscaped(chart::hourly(&f.today, &f.yesterday))) }
        }
        @if let Some(t) = &devices {
            @if t.pending.0 + t.behind.0 + t.drift.0 > 0 {
                h2 { "需要关注的终端（每项最多列 " (stats::LISTED) " 台）" }
                table {
                    thead { tr { th { "终端" } th { "情况" } } }
                    tbody {
                        @for (id, n) in &t.pending.1 { tr { td { a href={"/devices/" (id)} { (id) } } td { "未上传流水 " (n) " 笔" } } }
                        @for (id, v) in &t.behind.1 { tr { td { a href={"/devices/" (id)} { (id) } } td { "黑名单版本 " (v) "，落后" } } }
                        @for (id, s) in &t.drift.1 { tr { td { a href={"/devices/" (id)} { (id) } } td { "时钟偏差 " (s) " 秒" } } }
                    }
                }
            }
        }
    };
    Ok(layout::page_with(&who, "/", "总览", Some(30), body))
}

/// Debits per second over the last minute, two decimals, by integer arithmetic.
fn tps(last_minute: i64) -> String {
    let hundredths = last_minute.saturating_mul(100) / 60;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}
