//! The HTTP listener: `GET /healthz`, `GET /metrics` (Prometheus text) and the admin API
//! under `/api/v1` (bearer token; see `docs/admin-api.md`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::routes::{AccessTable, PREFIX};
use super::{Shared, admin, auth};

/// Every admin route with its declared access (`routes.rs`).
pub(crate) fn api() -> (Router<Arc<Shared>>, AccessTable) {
    admin::routes()
        .merge(super::bulk::routes())
        .merge(super::operators_api::routes())
        .merge(super::cardholders_api::routes())
        .finish()
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let (api, _) = api();
    let api = api.route_layer(middleware::from_fn_with_state(
        Arc::clone(&shared),
        auth::require,
    ));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .nest(PREFIX, api)
        .with_state(shared);
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

async fn healthz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "status": "ok",
        "fep": s.config.fep_id,
        "connected_terminals": s.registry.connected(),
    }))
}

async fn render_metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
