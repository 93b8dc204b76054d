//! Who is calling, and may they (R-B1): the one place every admin request is authenticated
//! and its route's declared [`Access`] checked.
//!
//! Credentials, in this order: `Authorization: Bearer` with the legacy admin token (acts as
//! the first system administrator, so scripts written before operators keep working) or an
//! operator's `ykt_…` API token; else the `ykt_session` cookie of a browser session, whose
//! state-changing requests must carry its CSRF token in `X-CSRF-Token`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, jobs};
use crate::access::{Access, Permission, Role};
use crate::domain::journal::Actor;
use crate::domain::operators;
use crate::repo_people::{Operator, PasswordState, WebSession};
use crate::secrets;

pub const SESSION_COOKIE: &str = "ykt_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The legacy admin token of `DATA/admin-token`.
    AdminToken,
    /// An operator's API token.
    ApiToken,
    /// A browser session (its cookie's stored form).
    Session(WebSession),
}

/// The authenticated caller of a request, as handlers see it.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub operator: Operator,
    pub credential: Credential,
    /// Who the journal names: the operator, the role used, the client address.
    pub actor: Actor,
}

impl Caller {
    pub fn id(&self) -> i64 {
        self.operator.id
    }

    pub fn login(&self) -> &str {
        &self.operator.login
    }
}

fn refuse(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn unauthorized(why: &str) -> Response {
    refuse(StatusCode::UNAUTHORIZED, json!({"error": why}))
}

pub fn missing_permission(p: Permission) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        json!({"error": format!("权限不足：需要 {} 权限", p.as_str()), "missing_permission": p.as_str()}),
    )
}

pub(crate) fn client_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Resolves the request's credentials to an operator; `Err` is the response to send.
async fn authenticate(
    s: &Shared,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Operator, Credential), Response> {
    let now = s.config.clock.now();
    let policy = s.config.login;
    if let Some(given) = bearer(headers) {
        let given = given.to_owned();
        let legacy = !s.config.admin_token.is_empty()
            && secrets::same(given.as_bytes(), s.config.admin_token.as_bytes());
        let found = if legacy {
            jobs::read(&s.store, operators::first_admin)
                .await
                .map(|o| o.map(|o| (o, Credential::AdminToken)))
        } else {
            jobs::read(&s.store, move |tx| {
                operators::token_resolve(tx, &given, now)
            })
            .await
            .map(|o| o.map(|o| (o, Credential::ApiToken)))
        };
        return match found {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(unauthorized("令牌无效、已过期或已吊销")),
            Err(e) => Err(super::admin::ApiError::from(e).into_response()),
        };
    }
    let Some(c) = cookie(headers, SESSION_COOKIE) else {
        return Err(unauthorized("未登录：需要登录会话或 API 令牌"));
    };
    let c = c.to_owned();
    let found = jobs::read(&s.store, move |tx| {
        operators::session_resolve(tx, &c, &policy, now)
    })
    .await;
    match found {
        Ok(Some((session, o))) => {
            if changes_state(method) {
                let given = headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !secrets::same(given.as_bytes(), session.csrf.as_bytes()) {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        json!({"error": "CSRF 令牌缺失或错误"}),
                    ));
                }
            }
            let touch = session.clone();
            if let Err(e) = jobs::execute(&s.store, move |tx| {
                operators::session_touch(tx, &touch, now)
            })
            .await
            {
                tracing::warn!(error = %e, "session keep-alive not written");
            }
            Ok((o, Credential::Session(session)))
        }
        Ok(None) => Err(unauthorized("会话已过期，请重新登录")),
        Err(e) => Err(super::admin::ApiError::from(e).into_response()),
    }
}

/// The middleware: declared access, credentials, first-login password change, permission.
pub(crate) async fn require(
    State(s): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        // No route matched: only the JSON 404 / 405 fallbacks answer, no handler runs.
        return next.run(req).await;
    };
    let Some(access) = s.access.lookup(req.method(), &path) else {
        if s.access.has_path(&path) {
            return super::api::wrong_method().await;
        }
        tracing::error!(method = %req.method(), %path, "admin route without a declared permission refused");
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "route without a declared permission"}),
        );
    };
    if access == Access::Public {
        return next.run(req).await;
    }
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let (operator, credential) = match authenticate(&s, &method, &headers).await {
        Ok(x) => x,
        Err(response) => {
            tracing::warn!(%path, "admin request without valid credentials refused");
            return response;
        }
    };
    // The legacy admin token predates first-login password changes; it keeps working.
    let must_change =
        operator.password == PasswordState::MustChange && credential != Credential::AdminToken;
    let role: Option<Role> = match access {
        Access::Public | Access::SignedIn => None,
        Access::Own | Access::Needs(_) if must_change => {
            return refuse(
                StatusCode::FORBIDDEN,
                json!({"error": "请先修改初始密码", "must_change_password": true}),
            );
        }
        Access::Own => None,
        Access::Needs(p) => match operator.roles.granting(p) {
            Some(r) => Some(r),
            None => return missing_permission(p),
        },
    };
    let actor = Actor::operator(operator.id, &operator.login, role, &client_of(&req));
    req.extensions_mut().insert(Caller {
        operator,
        credential,
        actor,
    });
    next.run(req).await
}
