//! 登录, the first-login password change, 退出.

use std::net::SocketAddr;

use axum::Extension;
use axum::Form;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::session::{self, SignedIn};
use super::{Console, layout};
use crate::secrets;
use crate::server::auth::cookie;
use crate::server::routes::PREFIX;

/// The login form's own CSRF token (no session yet): a cookie the form must repeat.
const LOGIN_CSRF: &str = "ykt_login_csrf";

fn secure(c: &Console) -> &'static str {
    if c.shared.config.secure_cookies || c.shared.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    }
}

fn login_page(status: StatusCode, token: &str, error: Option<&str>, login: &str) -> Markup {
    let _ = status;
    html! {
        div.login {
            h1 { "一卡通管理 · 登录" }
            @if let Some(e) = error { p.msg.error { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                div.row { label for="login" { "用户名" } input #login name="login" value=(login) required autocomplete="username" maxlength="64"; }
                div.row { label for="password" { "密码" } input #password type="password" name="password" required autocomplete="current-password" maxlength="256"; }
                div.row { button #submit type="submit" { "登录" } }
            }
        }
    }
}

fn with_login_token(c: &Console, status: StatusCode, error: Option<&str>, login: &str) -> Response {
    let token = match secrets::random_hex32() {
        Ok(t) => t,
        Err(e) => return layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut r = layout::bare(status, "登录", login_page(status, &token, error, login));
    let set = format!(
        "{LOGIN_CSRF}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600{}",
        secure(c)
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(crate) async fn form(State(c): State<Console>) -> Response {
    with_login_token(&c, StatusCode::OK, None, "")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginForm {
    csrf: String,
    login: String,
    password: String,
}

pub(crate) async fn submit(
    State(c): State<Console>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF).unwrap_or("");
    if expected.is_empty() || !secrets::same(expected.as_bytes(), f.csrf.as_bytes()) {
        return with_login_token(
            &c,
            StatusCode::FORBIDDEN,
            Some("表单已过期，请重新登录"),
            &f.login,
        );
    }
    let body = json!({"login": f.login, "password": f.password});
    let mut req = match Request::builder()
        .method(Method::POST)
        .uri(format!("{PREFIX}/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
    {
        Ok(r) => r,
        Err(e) => return layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if let Some(Extension(ci)) = client {
        req.extensions_mut().insert(ci);
    }
    let a = session::call(&c, req).await;
    if !a.status.is_success() {
        return with_login_token(&c, a.status, Some(&a.error_text()), &f.login);
    }
    let next = if a.json()["must_change_password"] == true {
        "/password"
    } else {
        "/"
    };
    let mut r = Redirect::to(next).into_response();
    for v in a.headers.get_all(header::SET_COOKIE) {
        r.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CsrfOnly {
    pub csrf: String,
}

pub(crate) async fn logout(
    State(c): State<Console>,
    who: SignedIn,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into();
    }
    let a = who.api(&c, Method::POST, "/logout", None).await;
    let mut r = Redirect::to("/login").into_response();
    for v in a.headers.get_all(header::SET_COOKIE) {
        r.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    r
}

fn password_page(who: &SignedIn, error: Option<&str>) -> Response {
    let first = who.operator.password == crate::repo_people::PasswordState::MustChange;
    let body = html! {
        @if first { p.msg.ok { "首次登录，请先修改初始密码。" } }
        @if let Some(e) = error { p.msg.error { (e) } }
        form method="post" action="/password" {
            (layout::csrf(who))
            div.row { label for="old" { "原密码" } input #old type="password" name="old_password" required autocomplete="current-password" maxlength="256"; }
            div.row { label for="new" { "新密码" } input #new type="password" name="new_password" required autocomplete="new-password" maxlength="256"; }
            div.row { label for="again" { "再次输入新密码" } input #again type="password" name="again" required autocomplete="new-password" maxlength="256"; }
            p.muted { "至少 8 个字符，不能全是数字。" }
            div.row { button #change type="submit" { "修改密码" } }
        }
    };
    layout::page(who, "/password", "修改密码", body)
}

pub(crate) async fn password_form(who: SignedIn) -> Response {
    password_page(&who, None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordForm {
    csrf: String,
    old_password: String,
    new_password: String,
    again: String,
}

pub(crate) async fn password_submit(
    State(c): State<Console>,
    who: SignedIn,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into();
    }
    if f.new_password != f.again {
        let mut r = password_page(&who, Some("两次输入的新密码不一致"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    let body = json!({"old_password": f.old_password, "new_password": f.new_password});
    let a = who.send(&c, Method::POST, "/me/password", &body).await;
    if !a.status.is_success() {
        let mut r = password_page(&who, Some(&a.error_text()));
        *r.status_mut() = a.status;
        return r;
    }
    Redirect::to("/?done=password").into_response()
}
