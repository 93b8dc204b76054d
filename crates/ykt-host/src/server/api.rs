//! The admin API's request and error plumbing, in one place: every refusal is JSON
//! `{"error": …}` (`docs/admin-api.md`). [`ApiJson`], [`ApiPath`] and [`ApiQuery`] wrap
//! axum's extractors and turn their rejections (malformed JSON, a wrong type, an unknown
//! field, a missing `Content-Type`, a body too large, a bad path segment or query) into 400;
//! unknown routes and methods under `/api/v1` get 404 and 405 with the same JSON shape.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::HostError;

/// Largest request body the admin API reads (the largest real one, a full price list, is
/// far below it).
pub const MAX_BODY: usize = 256 * 1024;

/// An API error: 400 for invalid requests, 409 for refusals with their code, 500 otherwise.
pub(crate) struct ApiError(pub(crate) HostError);

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self.0 {
            HostError::Invalid(m) => (StatusCode::BAD_REQUEST, json!({"error": m})),
            HostError::Forbidden(m) => (StatusCode::FORBIDDEN, json!({"error": m})),
            HostError::Refused(c) => (
                StatusCode::CONFLICT,
                json!({"error": c.table_text().unwrap_or("refused"), "code": c.0}),
            ),
            other => {
                tracing::error!(error = %other, "admin request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": other.to_string()}),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

pub(crate) type ApiResult = Result<Json<Value>, ApiError>;

pub(crate) fn invalid(m: impl Into<String>) -> ApiError {
    ApiError(HostError::Invalid(m.into()))
}

/// A JSON body; request types refuse unknown fields (`#[serde(deny_unknown_fields)]`).
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(invalid(r.body_text())),
        }
    }
}

/// Path parameters.
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(invalid(r.body_text())),
        }
    }
}

/// A query string; its types refuse unknown parameters.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(invalid(r.body_text())),
        }
    }
}

/// Any path under `/api/v1` that is not a route.
pub(crate) async fn no_route() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "no such route under /api/v1"})),
    )
        .into_response()
}

/// A route asked with a method it does not take.
pub(crate) async fn wrong_method() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "method not allowed on this route"})),
    )
        .into_response()
}
