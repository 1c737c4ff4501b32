//! The HTTP API: `/health`, `/ready`, `/livez`, `/readyz`, `/metrics` and the JSON `/v1/...` routes, on axum.
//!
//! Owns: routing, auth, request validation and the mapping of library errors to HTTP.
//! Handlers only translate: every decision is made by the managers in `Host`. Guest calls
//! may block for up to a policy's deadline, so handlers that can reach a policy run the
//! manager call on the blocking pool.

mod auth;
mod error;
mod events;
mod guard;
mod memory;
mod metrics;
mod policies;
mod probes;
mod resources;
mod span;
mod system;

pub use auth::{Authenticator, Caller};
pub use error::ApiError;
pub use span::TARGET as SPAN_TARGET;

use crate::daemon::Daemon;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use rmhost_core::host::Host;
use rmhost_runtime::PolicyRuntime;
use std::sync::Arc;
use tokio::sync::watch;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The host's managers.
    pub host: Arc<Host>,
    /// The policies deciding for them.
    pub runtime: PolicyRuntime,
    /// Token resolution.
    pub auth: Authenticator,
    /// Flips to true when the daemon shuts down (ends event streams and profiles).
    pub stopping: watch::Receiver<bool>,
    /// Profiles that may run at once (`[http] max_profiles`).
    pub profiles: Arc<tokio::sync::Semaphore>,
    /// What `/metrics` encodes, and the HTTP layer's own families.
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(s: &AppState) -> Authenticator {
        s.auth.clone()
    }
}

/// The whole API. `stopping` ends long-lived responses (event streams) at shutdown so the
/// server can drain.
pub fn router(daemon: Arc<Daemon>, stopping: watch::Receiver<bool>) -> Router {
    let body_limit = usize::try_from(daemon.host.config.http.max_body_bytes).unwrap_or(usize::MAX);
    let state = AppState {
        auth: Authenticator::new(&daemon.host.config.auth),
        host: daemon.host.clone(),
        runtime: daemon.runtime.clone(),
        stopping,
        profiles: Arc::new(tokio::sync::Semaphore::new(
            daemon.host.config.http.max_profiles as usize,
        )),
        metrics: Arc::new(Metrics::new(daemon.host.clone(), daemon.runtime.clone())),
    };
    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/livez", get(probes::livez))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/health", get(system::health))
        .route("/v1/usage", get(resources::usage))
        .route("/v1/profile", get(system::profile))
        .route(
            "/v1/allocations",
            post(resources::allocate).get(resources::list),
        )
        .route(
            "/v1/allocations/{id}",
            get(resources::get_one).delete(resources::release),
        )
        .route("/v1/allocations/{id}/renew", post(resources::renew))
        .route(
            "/v1/tenants/{tenant}/quotas",
            get(resources::get_quotas).put(resources::put_quotas),
        )
        .route("/v1/ratelimit/check", post(resources::rate_check))
        .route("/v1/ledger/repair", post(resources::repair))
        .route("/v1/events", get(events::stream))
        .route("/v1/policies", get(policies::list))
        .route("/v1/policies/reload", post(policies::reload))
        .route("/v1/policies/{name}", get(policies::get_one))
        .route(
            "/v1/policies/{name}/lift-quarantine",
            post(policies::lift_quarantine),
        )
        .route(
            "/v1/policies/default/{kind}",
            axum::routing::put(policies::bind_default).delete(policies::unbind_default),
        )
        .route(
            "/v1/tenants/{tenant}/policies/{kind}",
            axum::routing::put(policies::bind_tenant).delete(policies::unbind_tenant),
        )
        .route("/v1/pools", get(system::pools))
        .route("/v1/caches", get(memory::list_caches))
        .route(
            "/v1/caches/{name}",
            get(memory::get_cache)
                .put(memory::put_cache)
                .delete(memory::delete_cache),
        )
        .route(
            "/v1/caches/{name}/entries/{key}",
            get(memory::get_entry)
                .put(memory::put_entry)
                .delete(memory::delete_entry),
        )
        .route("/v1/caches/{name}/trim", post(memory::trim))
        .route("/v1/memory", get(memory::memory))
        .route("/v1/gc", post(memory::gc))
        .route("/v1/snapshot", get(memory::snapshot))
        .route("/v1/leaks", get(memory::leaks))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            system::count_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::loopback_only,
        ))
        // Outermost, so refusals by the guards count too; `Router::layer` still runs it
        // after routing, where `MatchedPath` is known.
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::http::track,
        ))
        // The request's trace span, around everything the metrics see.
        .layer(axum::middleware::from_fn(span::trace))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
