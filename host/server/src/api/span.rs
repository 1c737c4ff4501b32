//! One `tracing` span per HTTP request: method, route template and status, for OTLP
//! traces (the binary exports them when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//!
//! The route is axum's [`MatchedPath`] (`/v1/caches/{name}`), never the raw path: a
//! tenant's cache and key names must not leave the host in a trace any more than in a
//! metric label; an unrouted request is `unmatched`. The span is at DEBUG under
//! [`TARGET`], so with the daemon's default `info` log filter and no exporter it is
//! disabled and costs one cached-interest check. Manager calls that reach a policy run on
//! the blocking pool inside [`in_current_span`], so a policy call's span (rmhost-runtime)
//! is a child of the request's.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The target of every request span (the binary's OTLP layer selects it).
pub const TARGET: &str = "rmhost::http";

/// The middleware: the request runs inside its span; the status is recorded on it.
pub async fn trace(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let method = req.method().as_str();
    // Field values are evaluated only when the span is enabled (nothing is formatted
    // otherwise).
    let span = tracing::debug_span!(
        target: TARGET,
        "HTTP request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    if !span.is_disabled() {
        let status = resp.status();
        // As i64: an OTLP int attribute (a u16 would arrive as a string).
        span.record("http.response.status_code", i64::from(status.as_u16()));
        // OpenTelemetry's HTTP conventions: a server span is an error on 5xx only (a 4xx
        // is the client's mistake, answered correctly).
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
    }
    resp
}

/// Runs `f` on the blocking pool inside the caller's span, so spans it opens (a policy
/// call's) are children of the request's.
pub(crate) async fn in_current_span<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await
}
