//! Operators over the admin API (R-B1, `docs/operators.md`): logging in and out, one's own
//! password and API tokens, the administrator's management of operators, the journal.
//! Argon2id runs on blocking threads, never on a store writer.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::{self, Caller, Credential, SESSION_COOKIE};
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P, Role, Roles};
use crate::domain::journal::{self, Actor, Filter};
use crate::domain::operators::{self, LoginRefusal, NewOperator, Verified};
use crate::error::HostError;
use crate::repo_people::OperatorStatus;
use crate::secrets;

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Api {
    Api::new()
        .post("/login", Access::Public, login)
        .post("/logout", Access::SignedIn, logout)
        .get("/me", Access::SignedIn, me)
        .get("/roles", Access::SignedIn, roles)
        .post("/me/password", Access::SignedIn, change_password)
        .get("/me/tokens", Access::Own, my_tokens)
        .post("/me/tokens", Access::Own, create_my_token)
        .delete("/me/tokens/{id}", Access::Own, revoke_my_token)
        .get("/operators", Access::Needs(P::OperatorRead), list)
        .post("/operators", Access::Needs(P::OperatorWrite), add)
        .get("/operators/{login}", Access::Needs(P::OperatorRead), show)
        .post(
            "/operators/{login}/enable",
            Access::Needs(P::OperatorWrite),
            enable,
        )
        .post(
            "/operators/{login}/disable",
            Access::Needs(P::OperatorWrite),
            disable,
        )
        .put(
            "/operators/{login}/roles",
            Access::Needs(P::OperatorWrite),
            set_roles,
        )
        .post(
            "/operators/{login}/password",
            Access::Needs(P::OperatorWrite),
            reset_password,
        )
        .get(
            "/operators/{login}/tokens",
            Access::Needs(P::OperatorRead),
            tokens,
        )
        .post(
            "/operators/{login}/tokens",
            Access::Needs(P::OperatorWrite),
            create_token,
        )
        .delete(
            "/operators/{login}/tokens/{id}",
            Access::Needs(P::OperatorWrite),
            revoke_token,
        )
        .get("/journal", Access::Needs(P::JournalRead), journal_list)
}

/// At the first start, when there is no operator at all: creates the first system
/// administrator (`admin`) with a random initial password, returned once so that the caller
/// can hand it over (`ykt serve` writes it to `DATA/admin-password`, mode 0600). `None`
/// when operators exist. Blocking: hashes a password.
pub fn first_start(store: &crate::Store, now: NaiveDateTime) -> crate::Result<Option<String>> {
    if store.read(|tx| crate::repo_people::operator_count(tx.conn))? > 0 {
        return Ok(None);
    }
    let password = secrets::initial_password()?;
    let hash = secrets::hash_password(&password)?;
    let made = store.execute(move |tx| operators::bootstrap(tx, &hash, now))?;
    Ok(made.map(|_| password))
}

impl<St: Send + Sync> FromRequestParts<St> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError(HostError::Corrupt(
                "route reached without an authenticated caller".into(),
            ))
        })
    }
}

/// The client's address, for the journal of a login.
pub(crate) struct ClientAddr(pub String);

impl<St: Send + Sync> FromRequestParts<St> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let addr = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        Ok(ClientAddr(addr))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError(HostError::Closed))
}

async fn hash(password: String) -> Result<String, ApiError> {
    if let Some(why) = secrets::password_problem(&password) {
        return Err(invalid(why));
    }
    blocking(move || secrets::hash_password(&password))
        .await?
        .map_err(ApiError)
}

/// A hash of nothing anyone knows: an unknown login costs what a known one does.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        secrets::random_hex32()
            .and_then(|p| secrets::hash_password(&p))
            .unwrap_or_default()
    })
}

fn refusal(r: LoginRefusal) -> Response {
    let (status, body) = match r {
        LoginRefusal::BadCredentials => (
            StatusCode::UNAUTHORIZED,
            json!({"error": "用户名或密码错误"}),
        ),
        LoginRefusal::Locked { until } => (
            StatusCode::FORBIDDEN,
            json!({"error": format!("登录失败次数过多，账户锁定至 {until}"), "locked_until": until.to_string()}),
        ),
        LoginRefusal::Disabled => (StatusCode::FORBIDDEN, json!({"error": "账户已停用"})),
    };
    (status, Json(body)).into_response()
}

fn session_cookie(s: &Shared, value: &str, max_age: i64) -> String {
    let secure = if s.config.secure_cookies || s.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    )
}

fn me_json(o: &crate::repo_people::Operator) -> Value {
    let mut v = operators::view(o);
    v["permissions"] = json!(
        P::ALL
            .iter()
            .filter(|p| o.roles.granting(**p).is_some())
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
    );
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginReq {
    login: String,
    password: String,
}

async fn login(
    State(s): S,
    ClientAddr(client): ClientAddr,
    ApiJson(r): ApiJson<LoginReq>,
) -> Result<Response, ApiError> {
    let now = s.config.clock.now();
    let policy = s.config.login;
    let who = r.login.clone();
    let candidate = jobs::read(&s.store, move |tx| {
        operators::login_candidate(tx, &who, now)
    })
    .await?;
    let verified = match candidate {
        Ok(o) => {
            let (pw, h) = (r.password.clone(), o.password_hash.clone());
            if blocking(move || secrets::verify_password(&pw, &h)).await? {
                Verified::Matches {
                    hash: o.password_hash,
                }
            } else {
                Verified::Differs
            }
        }
        Err(LoginRefusal::BadCredentials) => {
            let pw = r.password.clone();
            blocking(move || secrets::verify_password(&pw, decoy_hash())).await?;
            tracing::warn!(login = %r.login, %client, "login refused: no such operator");
            return Ok(refusal(LoginRefusal::BadCredentials));
        }
        Err(other) => return Ok(refusal(other)),
    };
    let who = r.login.clone();
    let outcome = jobs::execute(&s.store, move |tx| {
        match operators::record_login(tx, &who, &verified, &policy, &client, now)? {
            Ok(o) => {
                let opened = operators::session_open(tx, &o, &client, now)?;
                Ok(Ok((o, opened)))
            }
            Err(refused) => Ok(Err(refused)),
        }
    })
    .await?;
    let (o, opened) = match outcome {
        Ok(x) => x,
        Err(refused) => return Ok(refusal(refused)),
    };
    let cookie = session_cookie(&s, &opened.cookie, policy.session_idle.num_seconds());
    let mut body = me_json(&o);
    body["csrf_token"] = json!(opened.csrf);
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

async fn logout(
    State(s): S,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let now = s.config.clock.now();
    if let (Credential::Session(_), Some(c)) =
        (&caller.credential, auth::cookie(&headers, SESSION_COOKIE))
    {
        let (c, actor) = (c.to_owned(), caller.actor.clone());
        jobs::execute(&s.store, move |tx| {
            operators::session_close(tx, &actor, &c, now)
        })
        .await?;
    }
    let cookie = session_cookie(&s, "", 0);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"logged_out": true})),
    )
        .into_response())
}

async fn me(caller: Caller) -> ApiResult {
    Ok(Json(me_json(&caller.operator)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    old_password: String,
    new_password: String,
}

async fn change_password(
    State(s): S,
    caller: Caller,
    ApiJson(r): ApiJson<PasswordChange>,
) -> ApiResult {
    let now = s.config.clock.now();
    let id = caller.id();
    let current = jobs::read(&s.store, move |tx| operators::by_id(tx, id))
        .await?
        .password_hash;
    let (old, h) = (r.old_password.clone(), current.clone());
    if !blocking(move || secrets::verify_password(&old, &h)).await? {
        return Err(invalid("原密码错误"));
    }
    if r.old_password == r.new_password {
        return Err(invalid("新密码不能与原密码相同"));
    }
    let new_hash = hash(r.new_password).await?;
    let actor = caller.actor.clone();
    let o = jobs::execute(&s.store, move |tx| {
        operators::change_own_password(tx, &actor, id, &current, &new_hash, now)
    })
    .await?;
    Ok(Json(me_json(&o)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenReq {
    #[serde(default)]
    label: String,
    /// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (end of that day excluded: its midnight).
    #[serde(default)]
    expires_at: Option<String>,
}

fn parse_time(s: &str) -> Result<NaiveDateTime, ApiError> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| {
            invalid(format!(
                "{s:?}: a time is YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"
            ))
        })
}

async fn token_for(s: &Shared, actor: Actor, login: String, r: TokenReq) -> ApiResult {
    let now = s.config.clock.now();
    let expires = r.expires_at.as_deref().map(parse_time).transpose()?;
    let (t, text) = jobs::execute(&s.store, move |tx| {
        operators::token_create(tx, &actor, &login, &r.label, expires, now)
    })
    .await?;
    let mut v = operators::token_view(&t);
    v["token"] = json!(text);
    Ok(Json(v))
}

async fn my_tokens(State(s): S, caller: Caller) -> ApiResult {
    let login = caller.login().to_owned();
    tokens(State(s), ApiPath(login)).await
}

async fn create_my_token(State(s): S, caller: Caller, ApiJson(r): ApiJson<TokenReq>) -> ApiResult {
    token_for(&s, caller.actor.clone(), caller.login().to_owned(), r).await
}

async fn revoke_my_token(State(s): S, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult {
    revoke(&s, caller.actor.clone(), caller.login().to_owned(), id).await
}

async fn revoke(s: &Shared, actor: Actor, login: String, id: String) -> ApiResult {
    let now = s.config.clock.now();
    let t = jobs::execute(&s.store, move |tx| {
        operators::token_revoke(tx, &actor, &login, &id, now)
    })
    .await?;
    Ok(Json(operators::token_view(&t)))
}

async fn list(State(s): S) -> ApiResult {
    let all = jobs::read(&s.store, operators::list).await?;
    Ok(Json(Value::Array(
        all.iter().map(operators::view).collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddReq {
    login: String,
    name: String,
    roles: Vec<String>,
    /// The initial password; when absent one is generated and shown once.
    #[serde(default)]
    password: Option<String>,
}

fn roles_of(names: &[String]) -> Result<Roles, ApiError> {
    Roles::parse_list(&names.join(",")).map_err(invalid)
}

async fn add(State(s): S, caller: Caller, ApiJson(r): ApiJson<AddReq>) -> ApiResult {
    let now = s.config.clock.now();
    let roles = roles_of(&r.roles)?;
    let (password, generated) = match r.password {
        Some(p) => (p, false),
        None => (secrets::initial_password()?, true),
    };
    let n = NewOperator {
        login: r.login,
        name: r.name,
        roles,
        password_hash: hash(password.clone()).await?,
    };
    let actor = caller.actor.clone();
    let o = jobs::execute(&s.store, move |tx| operators::add(tx, &actor, &n, now)).await?;
    let mut v = operators::view(&o);
    if generated {
        v["initial_password"] = json!(password);
    }
    Ok(Json(v))
}

async fn show(State(s): S, ApiPath(login): ApiPath<String>) -> ApiResult {
    let o = jobs::read(&s.store, move |tx| operators::get(tx, &login)).await?;
    Ok(Json(operators::view(&o)))
}

async fn set_status(
    s: &Shared,
    caller: Caller,
    login: String,
    status: OperatorStatus,
) -> ApiResult {
    let now = s.config.clock.now();
    if status == OperatorStatus::Disabled && login == caller.login() {
        return Err(invalid("不能停用自己的账户"));
    }
    let actor = caller.actor.clone();
    let o = jobs::execute(&s.store, move |tx| {
        operators::set_status(tx, &actor, &login, status, now)
    })
    .await?;
    Ok(Json(operators::view(&o)))
}

async fn enable(State(s): S, caller: Caller, ApiPath(login): ApiPath<String>) -> ApiResult {
    set_status(&s, caller, login, OperatorStatus::Active).await
}

async fn disable(State(s): S, caller: Caller, ApiPath(login): ApiPath<String>) -> ApiResult {
    set_status(&s, caller, login, OperatorStatus::Disabled).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesReq {
    roles: Vec<String>,
}

async fn set_roles(
    State(s): S,
    caller: Caller,
    ApiPath(login): ApiPath<String>,
    ApiJson(r): ApiJson<RolesReq>,
) -> ApiResult {
    let now = s.config.clock.now();
    let roles = roles_of(&r.roles)?;
    let actor = caller.actor.clone();
    let o = jobs::execute(&s.store, move |tx| {
        operators::set_roles(tx, &actor, &login, roles, now)
    })
    .await?;
    Ok(Json(operators::view(&o)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetReq {
    #[serde(default)]
    password: Option<String>,
}

async fn reset_password(
    State(s): S,
    caller: Caller,
    ApiPath(login): ApiPath<String>,
    ApiJson(r): ApiJson<ResetReq>,
) -> ApiResult {
    let now = s.config.clock.now();
    let (password, generated) = match r.password {
        Some(p) => (p, false),
        None => (secrets::initial_password()?, true),
    };
    let h = hash(password.clone()).await?;
    let actor = caller.actor.clone();
    let o = jobs::execute(&s.store, move |tx| {
        operators::reset_password(tx, &actor, &login, &h, now)
    })
    .await?;
    let mut v = operators::view(&o);
    if generated {
        v["initial_password"] = json!(password);
    }
    Ok(Json(v))
}

async fn tokens(State(s): S, ApiPath(login): ApiPath<String>) -> ApiResult {
    let all = jobs::read(&s.store, move |tx| operators::tokens_of(tx, &login)).await?;
    Ok(Json(Value::Array(
        all.iter().map(operators::token_view).collect(),
    )))
}

async fn create_token(
    State(s): S,
    caller: Caller,
    ApiPath(login): ApiPath<String>,
    ApiJson(r): ApiJson<TokenReq>,
) -> ApiResult {
    token_for(&s, caller.actor.clone(), login, r).await
}

async fn revoke_token(
    State(s): S,
    caller: Caller,
    ApiPath((login, id)): ApiPath<(String, String)>,
) -> ApiResult {
    revoke(&s, caller.actor.clone(), login, id).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JournalQuery {
    operator: Option<String>,
    target: Option<String>,
    operation: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Entries older than this sequence number (paging backwards).
    before: Option<i64>,
    limit: Option<u32>,
}

async fn journal_list(State(s): S, ApiQuery(q): ApiQuery<JournalQuery>) -> ApiResult {
    let f = Filter {
        operator: q.operator,
        target: q.target,
        operation: q.operation,
        from: q.from.as_deref().map(parse_time).transpose()?,
        to: q.to.as_deref().map(parse_time).transpose()?,
        before_seq: q.before,
        limit: q.limit.unwrap_or(100).min(journal::MAX_PAGE),
    };
    let entries = jobs::read(&s.store, move |tx| journal::list(tx, &f)).await?;
    let next = entries.last().map(|e| e.seq);
    Ok(Json(json!({"entries": entries, "next_before": next})))
}

/// The roles with their titles and permissions, for the CLI and the console.
async fn roles() -> ApiResult {
    Ok(Json(Value::Array(
        Role::ALL
            .iter()
            .map(|r| {
                json!({"role": r.as_str(), "title": r.title(),
                       "permissions": P::ALL.iter().filter(|p| r.grants(**p)).map(|p| p.as_str()).collect::<Vec<_>>()})
            })
            .collect(),
    )))
}
