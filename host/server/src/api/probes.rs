//! `/livez` and `/readyz`: the probe endpoints in the shape of Kubernetes' API server.
//! Plain `ok` when every check passes; with `?verbose` (or on failure) one line per check,
//! `[+]name ok` or `[-]name failed: why`, then `livez check passed` / `readyz check failed`.
//! `/readyz` means what `/ready` means (not started, draining, or shared state unreachable
//! is 503); `/livez` is 200 while the process answers at all.

use super::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmhost_core::health::HealthStatus;

/// One check's outcome: its name and, when it failed, why.
type Check = (&'static str, Result<(), String>);

/// `GET /livez[?verbose]`: 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/livez",
    operation_id = "get_livez",
    tag = "system",
    security(()),
    params(("verbose" = Option<String>, Query, description = "Present (with any value or none): one line per check")),
    responses(
        (status = 200, description = "`ok`, or with `verbose` one line per check", body = String, content_type = "text/plain"),
    )
)]
pub async fn livez(query: RawQuery) -> Response {
    render("livez", &[("ping", Ok(()))], verbose(&query))
}

/// `GET /readyz[?verbose]`: 200 when serving and the shared state is reachable, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "get_readyz",
    tag = "system",
    security(()),
    params(("verbose" = Option<String>, Query, description = "Present (with any value or none): one line per check")),
    responses(
        (status = 200, description = "`ok`, or with `verbose` one line per check", body = String, content_type = "text/plain"),
        (status = 503, description = "Not serving yet, draining, or the shared state is unreachable; one line per check", body = String, content_type = "text/plain"),
    )
)]
pub async fn readyz(State(s): State<AppState>, query: RawQuery) -> Response {
    let serving = if s.host.is_ready() {
        Ok(())
    } else {
        Err("not serving yet, or draining".to_string())
    };
    let state = s.host.state_check();
    let state = if state.status == HealthStatus::Unhealthy {
        Err(state.message)
    } else {
        Ok(())
    };
    render(
        "readyz",
        &[("serving", serving), ("state", state)],
        verbose(&query),
    )
}

/// `?verbose` anywhere in the query (with or without a value), as Kubernetes reads it.
fn verbose(RawQuery(q): &RawQuery) -> bool {
    q.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some("verbose"))
    })
}

fn render(probe: &str, checks: &[Check], verbose: bool) -> Response {
    let passed = checks.iter().all(|(_, r)| r.is_ok());
    let body = if passed && !verbose {
        "ok".to_string()
    } else {
        let mut lines: Vec<String> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => format!("[+]{name} ok"),
                Err(why) => format!("[-]{name} failed: {why}"),
            })
            .collect();
        let verdict = if passed { "passed" } else { "failed" };
        lines.push(format!("{probe} check {verdict}"));
        lines.join("\n") + "\n"
    };
    let status = if passed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
