//! The page shell (header, navigation limited to the operator's roles) and small helpers.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::SignedIn;
use crate::access::Permission as P;

/// The navigation: each entry shown only to whom has its permission (`None`: everyone).
const NAV: &[(&str, &str, Option<P>)] = &[
    ("/", "总览", None),
    ("/cards", "持卡人与卡", Some(P::CardRead)),
    ("/merchants", "商户", Some(P::MerchantRead)),
    ("/devices", "设备", Some(P::DeviceRead)),
    ("/feps", "前置机", Some(P::FepRead)),
    ("/reports", "报表", Some(P::ReportRead)),
    ("/exceptions", "异常流水", Some(P::ExceptionRead)),
    ("/journal", "操作日志", Some(P::JournalRead)),
    ("/operators", "操作员", Some(P::OperatorRead)),
    ("/blacklist", "黑名单", Some(P::BlacklistRead)),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · 一卡通" }
            link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/static/console.css";
            script src="/static/console.js" defer {}
        }
    }
}

/// A page for a signed-in operator.
pub(crate) fn page(who: &SignedIn, here: &str, title: &str, body: Markup) -> Response {
    page_with(who, here, title, None, body)
}

/// `page` that reloads itself every `refresh` seconds (the dashboard).
pub(crate) fn page_with(
    who: &SignedIn,
    here: &str,
    title: &str,
    refresh: Option<u32>,
    body: Markup,
) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body {
                header {
                    span.brand { "一卡通管理" }
                    nav {
                        @for (href, label, need) in NAV {
                            @if need.is_none_or(|p| who.can(p)) {
                                a href=(href) class=[(*href == here).then_some("here")] { (label) }
                            }
                        }
                    }
                    div.who {
                        span { (who.operator.name) "（" (who.operator.login) "）" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            button.plain type="submit" { "退出" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut r = Html(doc.into_string()).into_response();
    // A `Refresh` header rather than a script: the page reloads itself under the strict CSP.
    if let Some(secs) = refresh
        && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert("refresh", v);
    }
    r
}

/// A page without the operator's header (login, errors before a session).
pub(crate) fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body { main { (body) } }
        }
    };
    (status, Html(doc.into_string())).into_response()
}

/// What went wrong, with the status the API gave (403 stays 403).
pub(crate) fn failure(status: StatusCode, why: &str) -> Response {
    let title = if status == StatusCode::FORBIDDEN {
        "权限不足"
    } else {
        "操作失败"
    };
    bare(
        status,
        title,
        html! {
            div.login {
                h1 { (title) }
                p.msg.error { (why) }
                p { a href="/" { "返回总览" } }
            }
        },
    )
}

/// Fen as 元 with two decimals, by integer arithmetic.
pub(crate) fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// A fen field of a JSON answer as 元.
pub(crate) fn yuan_of(v: &serde_json::Value) -> String {
    v.as_i64().map_or_else(|| "—".to_owned(), yuan)
}

/// A hidden CSRF field for a form.
pub(crate) fn csrf(who: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// A JSON value as text for a table cell (strings without quotes).
pub(crate) fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn yuan_has_two_decimals() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123_456), "1234.56");
        assert_eq!(yuan(-1), "-0.01");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
    }
}

/// A refusal page, boxed (a `Response` is large for an `Err`); `?` turns it back into the
/// handler's response.
#[derive(Debug)]
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Refusal {
        Refusal(Box::new(r))
    }
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Response {
        *r.0
    }
}
