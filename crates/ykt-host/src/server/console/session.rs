//! Who is at the browser, and the in-process call into the admin API on their behalf.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use tower::ServiceExt;

use super::Console;
use super::layout;
use crate::access::Permission;
use crate::domain::operators;
use crate::repo_people::{Operator, PasswordState};
use crate::secrets;
use crate::server::auth::{CSRF_HEADER, SESSION_COOKIE, cookie};
use crate::server::jobs;
use crate::server::routes::PREFIX;

/// The most an API answer read back by the console may weigh (an export is the largest).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A signed-in operator, whatever their password state (the password page, logout).
#[derive(Clone, Debug)]
pub(crate) struct SignedIn {
    pub operator: Operator,
    /// The session's CSRF token: put in every form, checked on every POST.
    pub csrf: String,
    cookie: String,
    client: Option<ConnectInfo<SocketAddr>>,
}

/// A signed-in operator who has changed the initial password: every other page.
#[derive(Clone, Debug)]
pub(crate) struct Op(pub SignedIn);

impl std::ops::Deref for Op {
    type Target = SignedIn;
    fn deref(&self) -> &SignedIn {
        &self.0
    }
}

impl FromRequestParts<Console> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let Some(value) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let value = value.to_owned();
        let (policy, now) = (c.shared.config.login, c.shared.config.clock.now());
        let v = value.clone();
        let found = jobs::read(&c.shared.store, move |tx| {
            operators::session_resolve(tx, &v, &policy, now)
        })
        .await
        .map_err(|e| layout::failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
        let Some((session, operator)) = found else {
            return Err(to_login());
        };
        Ok(SignedIn {
            operator,
            csrf: session.csrf,
            cookie: value,
            client: parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        })
    }
}

impl FromRequestParts<Console> for Op {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let s = SignedIn::from_request_parts(parts, c).await?;
        if s.operator.password == PasswordState::MustChange {
            return Err(Redirect::to("/password").into_response());
        }
        Ok(Op(s))
    }
}

/// What the API answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The body of a success, or the page that says why not (the API's own status and
    /// message: a 403 stays a 403).
    pub fn ok(self) -> Result<Value, layout::Refusal> {
        if self.status.is_success() {
            return Ok(self.json());
        }
        Err(self.refusal().into())
    }

    pub fn refusal(&self) -> Response {
        let v = self.json();
        let why = v["error"].as_str().unwrap_or("请求失败").to_owned();
        layout::failure(self.status, &why)
    }

    pub fn error_text(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or("请求失败")
            .to_owned()
    }
}

impl SignedIn {
    pub fn can(&self, p: Permission) -> bool {
        self.operator.roles.granting(p).is_some()
    }

    /// A form's token against the session's; `Err` is the 403 page.
    pub fn check_csrf(&self, given: &str) -> Result<(), layout::Refusal> {
        if secrets::same(given.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(layout::failure(
                StatusCode::FORBIDDEN,
                "表单已过期（CSRF 令牌错误），请返回重试",
            )
            .into())
        }
    }

    /// Calls the admin API at `PREFIX + path` as this operator's browser session.
    pub async fn api(
        &self,
        c: &Console,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{PREFIX}{path}"))
            .header(header::COOKIE, format!("{SESSION_COOKIE}={}", self.cookie))
            .header(CSRF_HEADER, &self.csrf);
        let body = match body {
            Some((kind, bytes)) => {
                req = req.header(header::CONTENT_TYPE, kind);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = match req.body(body) {
            Ok(r) => r,
            Err(e) => return internal(&e.to_string()),
        };
        if let Some(ci) = self.client {
            req.extensions_mut().insert(ci);
        }
        call(c, req).await
    }

    pub async fn get(&self, c: &Console, path: &str) -> Answer {
        self.api(c, Method::GET, path, None).await
    }

    pub async fn send(&self, c: &Console, method: Method, path: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.api(c, method, path, Some(("application/json", bytes)))
            .await
    }
}

fn internal(why: &str) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: HeaderMap::new(),
        bytes: serde_json::to_vec(&serde_json::json!({ "error": why })).unwrap_or_default(),
    }
}

/// One request through the API router, in process.
pub(crate) async fn call(c: &Console, req: Request<Body>) -> Answer {
    let r = match c.api.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = r.into_parts();
    match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(b) => Answer {
            status: parts.status,
            headers: parts.headers,
            bytes: b.to_vec(),
        },
        Err(e) => internal(&e.to_string()),
    }
}

/// Percent-encodes a query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
