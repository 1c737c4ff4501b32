//! `GET /metrics`: the registry of [`crate::metrics`], as OpenMetrics when the scraper
//! asks for it, else the Prometheus text format 0.0.4.

use super::{ApiError, AppState, Caller};
use crate::metrics::Format;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

/// The handler. With tokens configured it needs the admin token (the figures name every
/// tenant and cache), unless `[auth] metrics_public = true`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    tag = "system",
    description = "Admin only, unless `[auth] metrics_public = true` (then no token is needed).",
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "OpenMetrics when `Accept` asks for it, else the Prometheus text format 0.0.4",
            content(
                (String = "text/plain"),
                (String = "application/openmetrics-text"),
            )),
        crate::api::doc::Unauthorized,
        crate::api::doc::Forbidden,
    )
)]
pub async fn metrics(
    State(s): State<AppState>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    if !s.host.config.auth.metrics_public {
        caller?.admin()?;
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let metrics = s.metrics.clone();
    let text = tokio::task::spawn_blocking(move || metrics.encode(format))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], text))
}
