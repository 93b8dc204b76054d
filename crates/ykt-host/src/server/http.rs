//! The HTTP listener: `GET /healthz`, `GET /metrics` (Prometheus text) and the admin API
//! under `/api/v1` (bearer token; see `docs/admin-api.md`), and the web console at `/`
//! (`console/`, `docs/console.md`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::routes::{AccessTable, PREFIX};
use super::{Shared, admin, api, auth};

/// Every admin route with its declared access (`routes.rs`).
pub(crate) fn api() -> (Router<Arc<Shared>>, AccessTable) {
    admin::routes()
        .merge(super::bulk::routes())
        .merge(super::operators_api::routes())
        .merge(super::cardholders_api::routes())
        .merge(super::subsidies_api::routes())
        .merge(super::reconcile_api::routes())
        .merge(super::pin_api::routes())
        .merge(super::merchants_api::routes())
        .merge(super::dayend_api::routes())
        .finish()
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let (api, _) = api();
    // The 405 fallback reaches the routes present when it is set: set it last.
    let api = api
        .method_not_allowed_fallback(api::wrong_method)
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            auth::require,
        ))
        .fallback(api::no_route)
        .layer(DefaultBodyLimit::max(api::MAX_BODY));
    let tls = shared.config.tls.clone();
    let api: Router = Router::new()
        .nest(PREFIX, api)
        .with_state(Arc::clone(&shared));
    // The web console (issue 14) at `/`: it calls the API router above in process.
    let console = super::console::router(Arc::clone(&shared), api.clone());
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(shared)
        .merge(api)
        .merge(console);
    if let Some(tls) = tls {
        return super::tls::serve(listener, tls, app, stop).await;
    }
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
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
    let now = s.config.clock.now();
    let unexplained =
        move |tx: &mut crate::ledger::Tx<'_>| crate::domain::reconcile::unexplained(tx, now);
    match super::jobs::read(&s.store, unexplained).await {
        Ok(n) => super::metrics::reconcile_unexplained(n),
        Err(e) => tracing::warn!(error = %e, "cannot count unexplained reconciliations"),
    }
    let silent_since = now - super::monitoring::SILENT_AFTER;
    let health =
        move |tx: &mut crate::ledger::Tx<'_>| super::monitoring::terminal_health(tx, silent_since);
    match super::jobs::read(&s.store, health).await {
        Ok(h) => super::metrics::terminal_health(&h),
        Err(e) => tracing::warn!(error = %e, "cannot read the terminals' health"),
    }
    super::metrics::writer_totals(s.store.writer_stats());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
