//! Cardholders over the admin API (R-B2, `docs/admin-api.md`): search, add, show with cards,
//! update, status, import of the registrar's CSV / XLSX file, export. ID numbers are masked
//! unless the caller's roles grant `CardholderIdentity`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, invalid};
use super::auth::Caller;
use super::routes::Api;
use super::{Shared, jobs};
use crate::access::{Access, Permission as P};
use crate::domain::cardholders::{self as ch, Identity, Search};
use crate::import::{self, Format, XLSX_MEDIA_TYPE};
use crate::repo_holders::{Cardholder, HolderFields};

type S = State<Arc<Shared>>;

/// Most cardholders one export holds.
pub const MAX_EXPORT: usize = 200_000;

pub(crate) fn routes() -> Api {
    let read = Access::Needs(P::CardholderRead);
    let write = Access::Needs(P::CardholderWrite);
    Api::new()
        .get("/cardholders", read, search)
        .post("/cardholders", write, add)
        .get("/cardholders/export", read, export)
        .post(
            "/cardholders/import",
            write,
            import_file.layer(DefaultBodyLimit::max(import::MAX_BYTES)),
        )
        .get("/cardholders/{number}", read, show)
        .put("/cardholders/{number}", write, update)
        .post("/cardholders/{number}/status", write, set_status)
}

fn identity(caller: &Caller) -> Identity {
    if caller
        .operator
        .roles
        .granting(P::CardholderIdentity)
        .is_some()
    {
        Identity::Shown
    } else {
        Identity::Masked
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
    limit: Option<u32>,
}

async fn search(State(s): S, caller: Caller, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult {
    let req = Search {
        q: q.q,
        after: q.after,
        limit: q.limit.unwrap_or(100),
    };
    let found = jobs::read(&s.store, move |tx| ch::search(tx, &req)).await?;
    let id = identity(&caller);
    Ok(Json(json!({
        "cardholders": found.iter().map(|h| ch::view(h, id)).collect::<Vec<_>>(),
        "next_after": found.last().map(|h| h.number.clone()),
    })))
}

/// A cardholder as the API takes it: `number` only when adding (it never changes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsReq {
    number: Option<String>,
    name: String,
    kind: String,
    #[serde(default)]
    department: String,
    id_number: Option<String>,
    phone: Option<String>,
}

impl FieldsReq {
    fn fields(self) -> Result<HolderFields, ApiError> {
        let empty_none = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(HolderFields {
            name: self.name,
            kind: ch::parse_kind(&self.kind)?,
            department: self.department,
            id_number: empty_none(self.id_number),
            phone: empty_none(self.phone),
        })
    }
}

fn shown(h: &Cardholder, caller: &Caller) -> ApiResult {
    Ok(Json(ch::view(h, identity(caller))))
}

async fn add(State(s): S, caller: Caller, ApiJson(mut r): ApiJson<FieldsReq>) -> ApiResult {
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let number = r
        .number
        .take()
        .ok_or_else(|| invalid("缺少学工号 number"))?;
    let fields = r.fields()?;
    let h = jobs::execute(&s.store, move |tx| {
        ch::add(tx, &actor, &number, &fields, now)
    })
    .await?;
    shown(&h, &caller)
}

async fn show(State(s): S, caller: Caller, ApiPath(number): ApiPath<String>) -> Response {
    let found = jobs::read(&s.store, move |tx| {
        let Some(h) = ch::get(tx, &number)? else {
            return Ok(None);
        };
        let cards = ch::cards(tx, &h)?;
        Ok(Some((h, cards)))
    })
    .await;
    match found {
        Ok(Some((h, cards))) => {
            let mut v = ch::view(&h, identity(&caller));
            v["cards"] = json!(cards.iter().map(ch::card_view).collect::<Vec<_>>());
            Json(v).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({"error": "无此持卡人"}))).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

async fn update(
    State(s): S,
    caller: Caller,
    ApiPath(number): ApiPath<String>,
    ApiJson(r): ApiJson<FieldsReq>,
) -> ApiResult {
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    if r.number.is_some() {
        return Err(invalid("学工号不能修改"));
    }
    let fields = r.fields()?;
    let h = jobs::execute(&s.store, move |tx| {
        ch::update(tx, &actor, &number, &fields, now)
    })
    .await?;
    shown(&h, &caller)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusReq {
    status: String,
}

async fn set_status(
    State(s): S,
    caller: Caller,
    ApiPath(number): ApiPath<String>,
    ApiJson(r): ApiJson<StatusReq>,
) -> ApiResult {
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let status = ch::parse_status(&r.status)?;
    let h = jobs::execute(&s.store, move |tx| {
        ch::set_status(tx, &actor, &number, status, now)
    })
    .await?;
    shown(&h, &caller)
}

pub(crate) fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    match media {
        "text/csv" => Ok(Format::Csv),
        XLSX_MEDIA_TYPE => Ok(Format::Xlsx),
        _ => Err(invalid(format!(
            "Content-Type 须为 text/csv 或 {XLSX_MEDIA_TYPE}"
        ))),
    }
}

async fn import_file(
    State(s): S,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = format_of(&headers)?;
    let sha256 = hex::encode(Sha256::digest(&body));
    let rows = match tokio::task::spawn_blocking(move || import::parse(format, &body))
        .await
        .map_err(|_| ApiError(crate::HostError::Closed))?
    {
        Ok(rows) => rows,
        Err(lines) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("文件有 {} 处错误，未导入任何记录", lines.len()), "lines": lines})),
            )
                .into_response());
        }
    };
    let (now, actor) = (s.config.clock.now(), caller.actor.clone());
    let rows = Arc::new(rows);
    let counts = jobs::execute(&s.store, move |tx| {
        ch::import(tx, &actor, &rows, &sha256, now)
    })
    .await?;
    Ok(Json(json!({
        "added": counts.added,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "changed": counts.added + counts.updated > 0,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: String,
    #[serde(default)]
    q: String,
}

async fn export(
    State(s): S,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let (format, media, ext) = match q.format.as_str() {
        "csv" => (Format::Csv, "text/csv; charset=utf-8", "csv"),
        "xlsx" => (Format::Xlsx, XLSX_MEDIA_TYPE, "xlsx"),
        _ => return Err(invalid("format 须为 csv 或 xlsx")),
    };
    let query = q.q;
    let holders = jobs::read(&s.store, move |tx| {
        let mut all: Vec<Cardholder> = Vec::new();
        loop {
            let page = ch::search(
                tx,
                &Search {
                    q: query.clone(),
                    after: all.last().map(|h| h.number.clone()),
                    limit: ch::MAX_PAGE,
                },
            )?;
            let done = page.len() < ch::MAX_PAGE as usize;
            all.extend(page);
            if all.len() > MAX_EXPORT {
                return Err(crate::HostError::Invalid(format!(
                    "导出最多 {MAX_EXPORT} 条：请缩小搜索范围"
                )));
            }
            if done {
                return Ok(all);
            }
        }
    })
    .await?;
    let id = identity(&caller);
    let bytes = tokio::task::spawn_blocking(move || import::export(format, &holders, id))
        .await
        .map_err(|_| ApiError(crate::HostError::Closed))?
        .map_err(|e| ApiError(crate::HostError::Corrupt(format!("export: {e}"))))?;
    let disposition = format!("attachment; filename=\"cardholders.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, media.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
