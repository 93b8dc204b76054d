//! The HTTP listener: `GET /healthz`, `GET /metrics` (Prometheus text) and the admin API
//! under `/api/v1` (bearer token; see `docs/admin-api.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Shared, admin, api};

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    // The 405 fallback reaches the routes present when it is set: set it last.
    let api = admin::routes()
        .merge(super::bulk::routes())
        .method_not_allowed_fallback(api::wrong_method)
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            require_token,
        ))
        .fallback(api::no_route)
        .layer(DefaultBodyLimit::max(api::MAX_BODY));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .nest("/api/v1", api)
        .with_state(shared);
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// `ok` only once the process is ready (`Server::ready`): before, 503 `starting`.
async fn healthz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let (status, word) = if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    };
    let body = serde_json::json!({
        "status": word,
        "fep": s.config.fep_id,
        "connected_terminals": s.registry.connected(),
    });
    (status, axum::Json(body))
}

async fn render_metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    // The queue is shared by every process on the database: counted where it lives.
    match super::jobs::read(&s.store, crate::domain::exceptions::count_open).await {
        Ok(n) => super::metrics::exceptions_open(n),
        Err(e) => tracing::warn!(error = %e, "cannot count open exceptions"),
    }
    super::metrics::writer_totals(s.store.writer_stats());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if s.config.admin_token.is_empty() || !same(given.as_bytes(), s.config.admin_token.as_bytes()) {
        tracing::warn!(path = %req.uri().path(), "admin request without a valid token refused");
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "missing or wrong admin token"})),
        )
            .into_response();
    }
    next.run(req).await
}
