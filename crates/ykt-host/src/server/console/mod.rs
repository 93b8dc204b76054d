//! The card office's web console (issue 14, R-B12): server-rendered pages (maud) at `/`,
//! beside the admin API under `/api/v1`.
//!
//! The console is a thin client of the admin API, like the CLI: every page reads and every
//! action writes by calling the API's own router in process ([`session::Op::api`]) with the
//! browser's session cookie. So each action runs the same handler, domain function, permission
//! check (`access.rs`) and journal entry (`jobs::change`) as over the API; the console only
//! hides what the operator's roles lack and checks the form's CSRF token first.

mod cards;
mod chart;
mod dashboard;
mod devices;
mod import;
mod layout;
mod lists;
mod login;
mod reports;
mod session;
mod stats;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::Shared;

/// What every console handler gets: the host, and the admin API as an in-process service.
#[derive(Clone)]
pub(crate) struct Console {
    pub shared: Arc<Shared>,
    /// The API router (`/api/v1/...`, with its auth middleware), state applied.
    pub api: Router,
}

/// The strict policy: our own files only, no inline script or style, no framing.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/favicon.svg");

pub(crate) fn router(shared: Arc<Shared>, api: Router) -> Router {
    let state = Console { shared, api };
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/password",
            get(login::password_form).post(login::password_submit),
        )
        .route("/cards", get(cards::search))
        .route("/cards/{no}", get(cards::page))
        .route("/cards/{no}/action", post(cards::action))
        .route("/cards/{no}/deposit", post(cards::deposit))
        .route(
            "/cardholders/import",
            get(import::page)
                .post(import::submit)
                .layer(axum::extract::DefaultBodyLimit::max(import::MAX_FORM)),
        )
        .route("/devices", get(devices::list))
        .route("/devices/{id}", get(devices::page))
        .route("/devices/{id}/params", post(devices::set_params))
        .route("/devices/{id}/collect", post(devices::collect))
        .route("/reports", get(reports::page))
        .route("/reports/daily.xlsx", get(reports::xlsx))
        .route("/reports/daily.csv", get(reports::csv))
        .route("/merchants", get(lists::merchants))
        .route("/feps", get(lists::feps))
        .route("/exceptions", get(lists::exceptions))
        .route(
            "/exceptions/{device}/{serial}/resolve",
            post(lists::resolve),
        )
        .route("/journal", get(lists::journal))
        .route("/operators", get(lists::operators))
        .route("/blacklist", get(lists::blacklist))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/static/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
}

async fn icon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON)
}

/// Every console answer: the CSP, no sniffing, no referrer, never cached (pages show money).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}
