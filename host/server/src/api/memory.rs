//! Cache, memory, gc, snapshot and leak routes.

use super::body::{JsonBody, JsonObject};
use super::doc::{BadRequest, BodyRefused, Forbidden, NotFound, Unauthorized, Unavailable};
use super::{ApiError, AppState, Caller};
use crate::wire::{CacheDeleted, GcReport, LeakList, MemorySnapshot, MemoryStatus};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmhost_core::limits::MAX_NAME_LEN;
use rmhost_core::memory::{CacheError, CacheInfo, purge};
use rmhost_core::resources::CacheDef;
use serde::Deserialize;

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        let msg = e.to_string();
        match e {
            CacheError::NotFound(_) => ApiError::not_found(msg),
            CacheError::AlreadyExists(_) => ApiError::conflict("conflict", msg),
            CacheError::Invalid { .. } | CacheError::NotAccounting(_) | CacheError::TooLong(_) => {
                ApiError::invalid(msg)
            }
            CacheError::OverShare { .. } => ApiError::conflict("over_share", msg),
            CacheError::Policy(_) => ApiError::invalid(msg),
            CacheError::Shared(e) => ApiError::from(e),
        }
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    super::span::in_current_span(f)
        .await
        .map_err(ApiError::internal)
}

/// The registry name of the cache a caller calls `name`. Cache names are scoped per
/// tenant: a tenant's own caches live as `TENANT/NAME` (or under a plain name the admin
/// declared for it), so two tenants may both have a `sessions` cache and neither learns
/// that the other's exists — another tenant's cache answers exactly as a missing one, on
/// every route. The admin addresses registry names as they are.
pub(super) fn resolve(s: &AppState, caller: &Caller, name: &str) -> Result<String, ApiError> {
    let missing = || ApiError::not_found(format!("no cache named {name:?}"));
    let held_by = |id: &str, t: &str| s.host.caches.tenant_of(id).is_ok_and(|o| o == t);
    match caller.tenant() {
        None => s
            .host
            .caches
            .tenant_of(name)
            .map(|_| name.to_string())
            .map_err(|_| missing()),
        Some(t) => {
            let scoped = format!("{t}/{name}");
            if held_by(&scoped, t) {
                Ok(scoped)
            } else if held_by(name, t) {
                Ok(name.to_string())
            } else {
                Err(missing())
            }
        }
    }
}

/// The registry name for a cache `caller` declares as `name`.
fn declared_name(caller: &Caller, name: &str) -> Result<String, ApiError> {
    match caller.tenant() {
        None => Ok(name.to_string()),
        Some(_) if name.contains('/') => Err(ApiError::invalid(format!(
            "name: {name:?} may not contain '/'"
        ))),
        Some(_) if name.is_empty() || name.len() > MAX_NAME_LEN => Err(ApiError::invalid(format!(
            "name: must be 1-{MAX_NAME_LEN} bytes"
        ))),
        Some(t) => Ok(format!("{t}/{name}")),
    }
}

/// `info` as `caller` sees it: a tenant sees its caches under its own names.
fn view(caller: &Caller, mut info: CacheInfo) -> CacheInfo {
    if let Some(t) = caller.tenant()
        && let Some(own) = info.name.strip_prefix(&format!("{t}/"))
    {
        info.name = own.to_string();
    }
    info
}

/// Body of `PUT /v1/caches/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheBody {
    /// The cache's capacity, bytes (1 to 2^62; a live cache's cannot change).
    #[schema(minimum = 1, maximum = 4_611_686_018_427_387_904_u64)]
    capacity_bytes: u64,
    /// The owning tenant (a tenant token: its own, the default; the admin: `default`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    tenant: Option<String>,
    /// The eviction policy (a loaded policy's name, or a native one); none: the default.
    #[serde(default)]
    policy: Option<String>,
}

/// `PUT /v1/caches/{name}`: creates the cache (201), or on an existing one swaps its
/// policy (200, warm handoff). Changing the capacity of a live cache is refused (409).
#[utoipa::path(
    put,
    path = "/v1/caches/{name}",
    operation_id = "put_cache",
    tag = "caches",
    params(("name" = String, Path, description = "The cache: a tenant token names its own caches (1-128 bytes, no `/`), the admin registry names (`TENANT/NAME`, up to 257 bytes)", min_length = 1, max_length = 257)),
    request_body = CacheBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cache existed: its policy is now the one asked for", body = CacheInfo),
        (status = 201, description = "Created", body = CacheInfo),
        BadRequest, Unauthorized, Forbidden,
        (status = 404, description = "The policy named is not loaded", body = crate::wire::ErrorBody),
        (status = 409, description = "A live cache's capacity differs (`conflict`), or the capacity is over the tenant's share (`over_share`) or quota", body = crate::wire::ErrorBody),
        BodyRefused, Unavailable,
    )
)]
pub async fn put_cache(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<CacheBody>,
) -> Result<Response, ApiError> {
    let Path(name) = p?;
    let JsonObject(b) = body?;
    let tenant = b
        .tenant
        .clone()
        .or_else(|| caller.tenant().map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    caller.check(&tenant)?;
    let host = s.host.clone();
    if let Ok(id) = resolve(&s, &caller, &name) {
        let existing = cache_info(&s, &id)?;
        if existing.stats.capacity_bytes != b.capacity_bytes {
            return Err(ApiError::conflict(
                "conflict",
                format!(
                    "cache {name:?} exists with capacity {} bytes; DELETE it to change the capacity",
                    existing.stats.capacity_bytes
                ),
            ));
        }
        let n = id.clone();
        blocking(move || host.set_cache_policy(&n, b.policy.as_deref())).await??;
        return Ok(Json(view(&caller, cache_info(&s, &id)?)).into_response());
    }
    let def = CacheDef {
        name: declared_name(&caller, &name)?,
        tenant,
        capacity_bytes: b.capacity_bytes,
        policy: b.policy,
    };
    let id = def.name.clone();
    blocking(move || host.create_cache(&def)).await??;
    Ok((
        StatusCode::CREATED,
        Json(view(&caller, cache_info(&s, &id)?)),
    )
        .into_response())
}

fn cache_info(s: &AppState, name: &str) -> Result<CacheInfo, ApiError> {
    Ok(s.host.caches.info(name)?)
}

/// `GET /v1/caches`: every cache the caller may see, with stats.
#[utoipa::path(
    get,
    path = "/v1/caches",
    operation_id = "list_caches",
    tag = "caches",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every cache the caller may see, with its counters", body = Vec<CacheInfo>),
        Unauthorized,
    )
)]
pub async fn list_caches(State(s): State<AppState>, caller: Caller) -> Json<Vec<CacheInfo>> {
    let mut v = s.host.caches.list();
    v.retain(|c| caller.may_access(&c.tenant));
    Json(v.into_iter().map(|c| view(&caller, c)).collect())
}

/// `GET /v1/caches/{name}`.
#[utoipa::path(
    get,
    path = "/v1/caches/{name}",
    operation_id = "get_cache",
    tag = "caches",
    params(("name" = String, Path, description = "The cache: a tenant token names its own caches (1-128 bytes, no `/`), the admin registry names (`TENANT/NAME`, up to 257 bytes)", min_length = 1, max_length = 257)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cache with its counters", body = CacheInfo),
        BadRequest, Unauthorized, NotFound,
    )
)]
pub async fn get_cache(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<CacheInfo>, ApiError> {
    let Path(name) = p?;
    let id = resolve(&s, &caller, &name)?;
    Ok(Json(view(&caller, cache_info(&s, &id)?)))
}

/// `DELETE /v1/caches/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/caches/{name}",
    operation_id = "delete_cache",
    tag = "caches",
    params(("name" = String, Path, description = "The cache: a tenant token names its own caches (1-128 bytes, no `/`), the admin registry names (`TENANT/NAME`, up to 257 bytes)", min_length = 1, max_length = 257)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = CacheDeleted),
        BadRequest, Unauthorized, NotFound, Unavailable,
    )
)]
pub async fn delete_cache(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<CacheDeleted>, ApiError> {
    let Path(name) = p?;
    let id = resolve(&s, &caller, &name)?;
    let host = s.host.clone();
    blocking(move || host.delete_cache(&id)).await??;
    Ok(Json(CacheDeleted { deleted: name }))
}

/// `GET /v1/memory`: `check_memory_usage()` — the pressure level and the figures behind it.
#[utoipa::path(
    get,
    path = "/v1/memory",
    operation_id = "get_memory",
    tag = "memory",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The pressure level and the figures behind it", body = MemoryStatus),
        Unauthorized,
    )
)]
pub async fn memory(
    State(s): State<AppState>,
    _caller: Caller,
) -> Result<Json<MemoryStatus>, ApiError> {
    let host = s.host.clone();
    blocking(move || host.memory.check_memory_usage())
        .await
        .map(Json)
}

/// `POST /v1/gc` (admin): trims every cache to its low watermark and hands free allocator
/// memory back to the OS; answers RSS before and after.
#[utoipa::path(
    post,
    path = "/v1/gc",
    operation_id = "run_gc",
    tag = "memory",
    description = "Admin only.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "RSS before and after", body = GcReport),
        Unauthorized, Forbidden,
    )
)]
pub async fn gc(State(s): State<AppState>, caller: Caller) -> Result<Json<GcReport>, ApiError> {
    caller.admin()?;
    let host = s.host.clone();
    blocking(move || purge::gc(&host.caches)).await.map(Json)
}

/// `GET /v1/snapshot` (admin): accounted memory per cache, tenant and policy instance.
#[utoipa::path(
    get,
    path = "/v1/snapshot",
    operation_id = "get_memory_snapshot",
    tag = "memory",
    description = "Admin only.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accounted memory per cache, tenant and policy instance", body = MemorySnapshot),
        Unauthorized, Forbidden,
    )
)]
pub async fn snapshot(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<MemorySnapshot>, ApiError> {
    caller.admin()?;
    let host = s.host.clone();
    blocking(move || {
        purge::snapshot(
            &host.caches,
            &host.tenant_memory(),
            host.policy_instance_memory(),
        )
    })
    .await
    .map(Json)
}

/// Query of `GET /v1/leaks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaksQuery {
    /// Run a scan now instead of answering the last one's findings.
    #[serde(default)]
    scan: bool,
}

/// `GET /v1/leaks[?scan=true]` (admin): the leak findings of the last scan, or of a scan
/// run now.
#[utoipa::path(
    get,
    path = "/v1/leaks",
    operation_id = "list_leaks",
    tag = "memory",
    description = "Admin only.",
    params(LeaksQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The suspected leaks", body = LeakList),
        BadRequest, Unauthorized, Forbidden,
    )
)]
pub async fn leaks(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<LeaksQuery>, QueryRejection>,
) -> Result<Json<LeakList>, ApiError> {
    caller.admin()?;
    let Query(q) = q?;
    let host = s.host.clone();
    let found = blocking(move || {
        if q.scan {
            host.leak_scan_once()
        } else {
            host.leaks.leaks()
        }
    })
    .await?;
    Ok(Json(LeakList { leaks: found }))
}
