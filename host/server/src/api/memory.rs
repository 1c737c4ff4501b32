//! Cache, memory, gc, snapshot and leak routes.

use super::{ApiError, AppState, Caller};
use crate::wire::{
    CacheDeleted, EntryRemoved, EntryStored, EntryValue, GcReport, LeakList, MemorySnapshot,
    MemoryStatus, Trimmed,
};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmhost_core::limits::MAX_NAME_LEN;
use rmhost_core::memory::{CacheError, CacheInfo, purge};
use rmhost_core::resources::CacheDef;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

type JsonBody<T> = Result<Json<T>, JsonRejection>;

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

async fn blocking<T: Send + 'static>(
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
fn resolve(s: &AppState, caller: &Caller, name: &str) -> Result<String, ApiError> {
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheBody {
    capacity_bytes: u64,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

/// `PUT /v1/caches/{name}`: creates the cache (201), or on an existing one swaps its
/// policy (200, warm handoff). Changing the capacity of a live cache is refused (409).
pub async fn put_cache(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<CacheBody>,
) -> Result<Response, ApiError> {
    let Path(name) = p?;
    let Json(b) = body?;
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
pub async fn list_caches(State(s): State<AppState>, caller: Caller) -> Json<Vec<CacheInfo>> {
    let mut v = s.host.caches.list();
    v.retain(|c| caller.may_access(&c.tenant));
    Json(v.into_iter().map(|c| view(&caller, c)).collect())
}

/// `GET /v1/caches/{name}`.
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

/// Body of `PUT /v1/caches/{name}/entries/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    priority: Option<u8>,
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    value: Option<Value>,
}

/// `PUT /v1/caches/{name}/entries/{key}`: stores (or accounts) an entry. The size defaults
/// to the value's JSON length; without a value, `size` is required. Answers whether the
/// entry is held (`false`: larger than the cache, or not admitted by the policy).
pub async fn put_entry(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    body: JsonBody<EntryBody>,
) -> Result<Json<EntryStored>, ApiError> {
    let Path((name, key)) = p?;
    let Json(b) = body?;
    let id = resolve(&s, &caller, &name)?;
    let value: Option<Arc<str>> = b.value.as_ref().map(|v| Arc::from(v.to_string()));
    let size = match (b.size, &value) {
        (Some(0), _) => return Err(ApiError::invalid("size: must be at least 1 byte")),
        (Some(n), _) => n,
        (None, Some(v)) => v.len() as u64,
        (None, None) => return Err(ApiError::invalid("size: required when no value is given")),
    };
    if b.ttl_ms == Some(0) {
        return Err(ApiError::invalid("ttl_ms: must be at least 1"));
    }
    let ttl = b.ttl_ms.map(Duration::from_millis);
    let host = s.host.clone();
    let (n, k) = (id.clone(), key.clone());
    let held = blocking(move || {
        host.caches
            .put_cache_entry(&n, k, value, size, b.priority.unwrap_or(0), ttl)
    })
    .await??;
    Ok(Json(EntryStored {
        cache: name,
        key,
        size,
        held,
    }))
}

/// `GET /v1/caches/{name}/entries/{key}`: 200 with the value (null when stored without
/// one), 404 on a miss. Counts a hit or a miss.
pub async fn get_entry(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<EntryValue>, ApiError> {
    let Path((name, key)) = p?;
    let id = resolve(&s, &caller, &name)?;
    let host = s.host.clone();
    let (n, k) = (id.clone(), key.clone());
    match blocking(move || host.caches.read_cache_entry(&n, &k)).await?? {
        Some(v) => {
            let value = v
                .map(|text| {
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text.to_string()))
                })
                .unwrap_or(Value::Null);
            Ok(Json(EntryValue {
                cache: name,
                key,
                value,
            }))
        }
        None => Err(ApiError::not_found(format!(
            "no entry {key:?} in cache {name:?}"
        ))),
    }
}

/// `DELETE /v1/caches/{name}/entries/{key}`.
pub async fn delete_entry(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<EntryRemoved>, ApiError> {
    let Path((name, key)) = p?;
    let id = resolve(&s, &caller, &name)?;
    let host = s.host.clone();
    let (n, k) = (id.clone(), key.clone());
    if blocking(move || host.caches.remove_cache_entry(&n, &k)).await?? {
        Ok(Json(EntryRemoved {
            cache: name,
            key,
            removed: true,
        }))
    } else {
        Err(ApiError::not_found(format!(
            "no entry {key:?} in cache {name:?}"
        )))
    }
}

/// Body of `POST /v1/caches/{name}/trim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrimBody {
    bytes: u64,
}

/// `POST /v1/caches/{name}/trim`: frees at least `bytes` through the cache's policy.
pub async fn trim(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<TrimBody>,
) -> Result<Json<Trimmed>, ApiError> {
    let Path(name) = p?;
    let Json(b) = body?;
    let id = resolve(&s, &caller, &name)?;
    let host = s.host.clone();
    let n = id.clone();
    let freed = blocking(move || host.caches.trim(&n, b.bytes)).await??;
    Ok(Json(Trimmed {
        cache: name,
        freed_bytes: freed,
    }))
}

/// `GET /v1/memory`: `check_memory_usage()` — the pressure level and the figures behind it.
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
pub async fn gc(State(s): State<AppState>, caller: Caller) -> Result<Json<GcReport>, ApiError> {
    caller.admin()?;
    let host = s.host.clone();
    blocking(move || purge::gc(&host.caches)).await.map(Json)
}

/// `GET /v1/snapshot` (admin): accounted memory per cache, tenant and policy instance.
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaksQuery {
    #[serde(default)]
    scan: bool,
}

/// `GET /v1/leaks[?scan=true]` (admin): the leak findings of the last scan, or of a scan
/// run now.
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
