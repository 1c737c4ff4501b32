//! The API's OpenAPI 3.1 document, generated from the handlers' own `#[utoipa::path]`
//! annotations and the wire types' schemas, and served at `GET /openapi.json`.
//!
//! The router is built with `utoipa_axum`'s `routes!`, so a route exists only together
//! with its documented operation (see [`super::document`]). What lives here: the document's
//! frame (info, tags, the bearer scheme), the error responses every operation shares, and
//! the handler that serves the document.

use super::AppState;
use crate::wire::ErrorBody;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The document's frame; the operations are added by the router (`routes!`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rmhost",
        description = "rmhost's HTTP API. Every `/v1` route needs `Authorization: Bearer TOKEN` \
            when the daemon has an `[auth]` table: the admin token may do everything, a tenant \
            token sees and touches its own tenant only (another tenant's objects answer as \
            missing ones). Operations marked *admin only* answer 403 to a tenant token. \
            Without `[auth]` the daemon serves loopback only and every caller is the admin. \
            The probes (`/health`, `/ready`, `/livez`, `/readyz`, `/v1/health`) and this \
            document (`/openapi.json`) need no token."
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody, crate::wire::RateDecision)),
    tags(
        (name = "system", description = "Probes, health, profiles, pools and this document"),
        (name = "resources", description = "Allocations, quotas, usage and rate limits"),
        (name = "policies", description = "Wasm policies and their bindings"),
        (name = "caches", description = "Caches and their entries"),
        (name = "memory", description = "Memory pressure, gc, snapshots and leaks"),
        (name = "events", description = "The server-sent event stream"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme every authenticated operation names.
#[derive(Debug)]
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token or a tenant's token (`[auth]` in rmhost.toml holds \
                         their SHA-256 hashes).",
                    ))
                    .build(),
            ),
        );
    }
}

// The error answers operations share. Each is an `ErrorBody` (`{"error", "message", ...}`).
// They exist for the document only (`ApiError` builds the answers), so none is constructed.

/// 400 `invalid_request`: a malformed path, query or body; the message names the field.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 400)]
pub struct BadRequest(ErrorBody);

/// 401 `unauthorized`: no bearer token, or an unknown one.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 401)]
pub struct Unauthorized(ErrorBody);

/// 403 `forbidden`: the token may not touch this tenant, or the operation is admin only.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 403)]
pub struct Forbidden(ErrorBody);

/// 404 `not_found`: no such object (or another tenant's, to a tenant token).
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 404)]
pub struct NotFound(ErrorBody);

/// 409: a quota, a limit or the existing state refuses the change (`quota_exceeded`,
/// `limit_exceeded`, `over_share`, `conflict`).
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 409)]
pub struct Conflict(ErrorBody);

/// 413 `payload_too_large`: the body is over `[http] max_body_bytes`; 415
/// `unsupported_media_type`: the body is not sent as `application/json`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefused {
    /// The body is over `[http] max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not sent as `application/json`.
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// 503 `unavailable`: the shared-state backend is unreachable, or the host sheds load
/// (`Retry-After` says when to try again).
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(
    status = 503,
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(ErrorBody);

/// `GET /openapi.json`: this document. Needs no token.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "get_openapi",
    tag = "system",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API",
        content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.to_string(),
    )
}
