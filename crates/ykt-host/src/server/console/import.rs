//! 持卡人导入: the registrar's CSV or XLSX file, uploaded from the browser and handed to
//! `POST /api/v1/cardholders/import` as it is (all rows or none; each refused line shown).

use axum::extract::{Multipart, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::session::{Op, SignedIn};
use super::{Console, layout};
use crate::access::Permission as P;
use crate::import::MAX_BYTES;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The request's limit: the file and the form's few other bytes.
pub(crate) const MAX_FORM: usize = MAX_BYTES + 64 * 1024;

fn form(who: &SignedIn) -> Markup {
    html! {
        form #import method="post" action="/cardholders/import" enctype="multipart/form-data" {
            (layout::csrf(who))
            div.row { label for="file" { "文件（CSV 或 XLSX）" } input #file type="file" name="file" accept=".csv,.xlsx" required; }
            p.muted { "表头：学工号,姓名,类别,部门,身份证号,手机号。全部正确才导入，否则列出每一处错误。" }
            div.row { button #do-import type="submit" { "导入" } }
        }
    }
}

pub(crate) async fn page(who: Op) -> Result<Response, Response> {
    if !who.can(P::CardholderWrite) {
        return Err(crate::server::auth::missing_permission(P::CardholderWrite));
    }
    Ok(layout::page(&who, "/cards", "导入持卡人", form(&who)))
}

fn bad(why: &str) -> Response {
    layout::failure(StatusCode::BAD_REQUEST, why)
}

pub(crate) async fn submit(
    State(c): State<Console>,
    who: Op,
    mut parts: Multipart,
) -> Result<Response, Response> {
    let (mut csrf, mut file) = (None, None);
    while let Some(field) = parts.next_field().await.map_err(|e| bad(&e.body_text()))? {
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(|e| bad(&e.body_text()))?),
            Some("file") => {
                let name = field.file_name().unwrap_or("").to_lowercase();
                let bytes = field.bytes().await.map_err(|e| bad(&e.body_text()))?;
                file = Some((name, bytes.to_vec()));
            }
            _ => return Err(bad("表单字段不对")),
        }
    }
    who.check_csrf(csrf.as_deref().unwrap_or(""))?;
    let Some((name, bytes)) = file else {
        return Err(bad("请选择文件"));
    };
    let media = if name.ends_with(".xlsx") {
        XLSX
    } else if name.ends_with(".csv") {
        "text/csv"
    } else {
        return Err(bad("文件须为 .csv 或 .xlsx"));
    };
    let a = who
        .api(
            &c,
            Method::POST,
            "/cardholders/import",
            Some((media, bytes)),
        )
        .await;
    let v = a.json();
    let body = html! {
        @if a.status.is_success() {
            p.msg.ok #done { "导入完成：新增 " (layout::text(&v["added"])) "，更新 " (layout::text(&v["updated"])) "，未变 " (layout::text(&v["unchanged"])) }
        } @else {
            p.msg.error #import-error { (a.error_text()) }
            table #import-lines {
                thead { tr { th.num { "行" } th { "错误" } } }
                tbody {
                    @for l in v["lines"].as_array().into_iter().flatten() {
                        tr { td.num { (layout::text(&l["line"])) } td { (layout::text(&l["error"])) } }
                    }
                }
            }
        }
        (form(&who))
    };
    let mut r = layout::page(&who, "/cards", "导入持卡人", body);
    *r.status_mut() = if a.status.is_success() {
        StatusCode::OK
    } else {
        a.status
    };
    Ok(r)
}
