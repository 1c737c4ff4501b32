//! Liveness, readiness, health and profiling routes, and the request counter middleware.

use super::doc::{BadRequest, Unauthorized};
use super::{ApiError, AppState, Caller};
use crate::wire::{HealthReport, PoolList, Profile, ProfilePoint, Ready};
use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Duration;

/// `GET /health` and `/v1/health`: the health report. Always 200 while the process
/// answers (liveness); the status inside says healthy, degraded or unhealthy.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "get_health",
    tag = "system",
    security(()),
    responses((status = 200, description = "The health report (also while degraded or unhealthy)", body = HealthReport))
)]
pub async fn health(State(s): State<AppState>) -> Response {
    health_report(s).await
}

/// `GET /v1/health`: the same report as `/health`, under the API's prefix.
#[utoipa::path(
    get,
    path = "/v1/health",
    operation_id = "get_v1_health",
    tag = "system",
    security(()),
    responses((status = 200, description = "The health report (also while degraded or unhealthy)", body = HealthReport))
)]
pub async fn v1_health(State(s): State<AppState>) -> Response {
    health_report(s).await
}

async fn health_report(s: AppState) -> Response {
    let host = s.host.clone();
    match tokio::task::spawn_blocking(move || host.health()).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// `GET /ready`: 200 while serving, 503 before start, while draining and while a
/// shared-state backend is unreachable (a replica that cannot enforce shared limits
/// should not take traffic).
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "get_ready",
    tag = "system",
    security(()),
    responses(
        (status = 200, description = "Serving", body = Ready),
        (status = 503, description = "Not started, draining, or the shared state is unreachable", body = Ready),
    )
)]
pub async fn ready(State(s): State<AppState>) -> Response {
    let state_ok = s.host.state_check().status != rmhost_core::health::HealthStatus::Unhealthy;
    if s.host.is_ready() && state_ok {
        Json(Ready { ready: true }).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready { ready: false }),
        )
            .into_response()
    }
}

/// Longest profile, ms (10 minutes).
pub const MAX_PROFILE_MS: u64 = 600_000;
/// Shortest sampling interval, ms.
pub const MIN_INTERVAL_MS: u64 = 50;

/// Query of `GET /v1/profile`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// How long to sample, ms (at most 10 minutes).
    #[param(minimum = 1, maximum = 600_000)]
    pub duration_ms: u64,
    /// Sampling interval, ms (default 1000, 50 to 600000).
    #[serde(default)]
    #[param(minimum = 50, maximum = 600_000)]
    pub interval_ms: Option<u64>,
}

/// `GET /v1/profile?duration_ms=D&interval_ms=I`: samples usage every I ms for D ms and
/// answers the time series (what `rmhost profile` records).
#[utoipa::path(
    get,
    path = "/v1/profile",
    operation_id = "run_profile",
    tag = "system",
    params(ProfileQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The samples taken", body = Profile),
        BadRequest,
        Unauthorized,
        (status = 503, description = "`[http] max_profiles` profiles are already running", body = crate::wire::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn profile(
    State(s): State<AppState>,
    _caller: Caller,
    q: Result<Query<ProfileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Profile>, ApiError> {
    let Query(q) = q?;
    if q.duration_ms == 0 || q.duration_ms > MAX_PROFILE_MS {
        return Err(ApiError::invalid(format!(
            "duration_ms: must be between 1 and {MAX_PROFILE_MS}"
        )));
    }
    let interval = q.interval_ms.unwrap_or(1000);
    if !(MIN_INTERVAL_MS..=MAX_PROFILE_MS).contains(&interval) {
        return Err(ApiError::invalid(format!(
            "interval_ms: must be between {MIN_INTERVAL_MS} and {MAX_PROFILE_MS}"
        )));
    }
    // Each profile holds a connection and a task for up to 10 minutes: a few at a time.
    let Ok(_running) = s.profiles.clone().try_acquire_owned() else {
        let mut e = ApiError::unavailable(format!(
            "{} profiles are already running ([http] max_profiles); retry when one ends",
            s.host.config.http.max_profiles
        ));
        e.retry_after_s = Some(5);
        return Err(e);
    };
    let mut stopping = s.stopping.clone();
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    let mut points = Vec::new();
    loop {
        // Shutdown ends the profile with the points taken so far, so the daemon drains.
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => break,
        }
        let t_ms = start.elapsed().as_millis() as u64;
        if t_ms > q.duration_ms {
            break;
        }
        let t = s.host.telemetry.clone();
        let usage = tokio::task::spawn_blocking(move || {
            t.sample_now();
            t.usage()
        })
        .await
        .map_err(ApiError::internal)?;
        points.push(ProfilePoint { t_ms, usage });
    }
    Ok(Json(Profile {
        duration_ms: q.duration_ms,
        interval_ms: interval,
        points,
    }))
}

/// Counts every request in the telemetry's request counters.
pub async fn count_requests(State(s): State<AppState>, req: Request, next: Next) -> Response {
    s.host.telemetry.record_request();
    next.run(req).await
}

/// `GET /v1/pools`: every pool's metrics (size, idle, in use, waiting, counters, breaker
/// state, acquire-latency histogram).
#[utoipa::path(
    get,
    path = "/v1/pools",
    operation_id = "list_pools",
    tag = "system",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every pool's metrics", body = PoolList),
        Unauthorized,
    )
)]
pub async fn pools(State(s): State<AppState>, _caller: Caller) -> Json<PoolList> {
    Json(PoolList {
        pools: s.host.pools.metrics(),
    })
}
