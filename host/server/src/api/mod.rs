//! The HTTP API: `/health`, `/ready`, `/livez`, `/readyz`, `/metrics` and the JSON `/v1/...` routes, on axum.
//!
//! Owns: routing, auth, request validation and the mapping of library errors to HTTP.
//! Handlers only translate: every decision is made by the managers in `Host`. Guest calls
//! may block for up to a policy's deadline, so handlers that can reach a policy run the
//! manager call on the blocking pool.

mod auth;
mod body;
mod bounds;
mod doc;
#[cfg(test)]
mod doc_tests;
mod entries;
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
pub use bounds::{int64, int64_opt, valid_tenant};
pub use error::ApiError;
pub use span::TARGET as SPAN_TARGET;

use crate::daemon::Daemon;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::FromRef;
use rmhost_core::host::Host;
use rmhost_runtime::PolicyRuntime;
use std::sync::Arc;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// The OpenAPI document `GET /openapi.json` serves, as JSON.
    pub openapi: Arc<str>,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(s: &AppState) -> Authenticator {
        s.auth.clone()
    }
}

/// Every route with its documented operation. Routes are added only through `routes!`,
/// which takes a handler's `#[utoipa::path]` (method, path, parameters, bodies, responses),
/// so the router cannot serve an operation the document lacks (a test checks the converse:
/// every documented operation is served).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(doc::openapi_json))
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(probes::livez))
        .routes(routes!(probes::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(system::v1_health))
        .routes(routes!(resources::usage))
        .routes(routes!(system::profile))
        .routes(routes!(resources::allocate, resources::list))
        .routes(routes!(resources::get_one, resources::release))
        .routes(routes!(resources::renew))
        .routes(routes!(resources::get_quotas, resources::put_quotas))
        .routes(routes!(resources::rate_check))
        .routes(routes!(resources::repair))
        .routes(routes!(events::stream))
        .routes(routes!(policies::list))
        .routes(routes!(policies::reload))
        .routes(routes!(policies::get_one))
        .routes(routes!(policies::lift_quarantine))
        .routes(routes!(policies::bind_default, policies::unbind_default))
        .routes(routes!(policies::bind_tenant, policies::unbind_tenant))
        .routes(routes!(system::pools))
        .routes(routes!(memory::list_caches))
        .routes(routes!(
            memory::get_cache,
            memory::put_cache,
            memory::delete_cache
        ))
        .routes(routes!(
            entries::get_entry,
            entries::put_entry,
            entries::delete_entry
        ))
        .routes(routes!(entries::trim))
        .routes(routes!(memory::memory))
        .routes(routes!(memory::gc))
        .routes(routes!(memory::snapshot))
        .routes(routes!(memory::leaks))
}

/// The OpenAPI document of [`router`], as `GET /openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The whole API. `stopping` ends long-lived responses (event streams) at shutdown so the
/// server can drain.
pub fn router(daemon: Arc<Daemon>, stopping: watch::Receiver<bool>) -> Router {
    let body_limit = usize::try_from(daemon.host.config.http.max_body_bytes).unwrap_or(usize::MAX);
    let state = AppState {
        openapi: Arc::from(""),
        auth: Authenticator::new(&daemon.host.config.auth),
        host: daemon.host.clone(),
        runtime: daemon.runtime.clone(),
        stopping,
        profiles: Arc::new(tokio::sync::Semaphore::new(
            daemon.host.config.http.max_profiles as usize,
        )),
        metrics: Arc::new(Metrics::new(daemon.host.clone(), daemon.runtime.clone())),
    };
    let (routes, api) = routes().split_for_parts();
    // Serialized once: the document is the same for every request.
    let openapi: Arc<str> = match api.to_json() {
        Ok(json) => json.into(),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialize");
            Arc::from("{}")
        }
    };
    let state = AppState { openapi, ..state };
    routes
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
