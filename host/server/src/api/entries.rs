//! Cache entry routes: store, read and remove an entry, and trim a cache through its
//! policy. Cache names resolve as in [`super::memory`] (a tenant's own names).

use super::body::{JsonBody, JsonObject};
use super::doc::{BadRequest, BodyRefused, Conflict, NotFound, Unauthorized, Unavailable};
use super::memory::{blocking, resolve};
use super::{ApiError, AppState, Caller, int64, int64_opt};
use crate::wire::{EntryRemoved, EntryStored, EntryValue, Trimmed};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Body of `PUT /v1/caches/{name}/entries/{key}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// Bytes to account for it; default: the value's JSON length (required without a value).
    #[serde(default)]
    #[schema(minimum = 1)]
    size: Option<u64>,
    /// 0-255, what the eviction policy sees.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 255)]
    priority: Option<u8>,
    /// Time to live, ms.
    #[serde(default)]
    #[schema(minimum = 1)]
    ttl_ms: Option<u64>,
    /// The value to store, any JSON (at most 1 MiB as JSON text).
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    value: Option<Value>,
}

/// `PUT /v1/caches/{name}/entries/{key}`: stores (or accounts) an entry. The size defaults
/// to the value's JSON length; without a value, `size` is required. Answers whether the
/// entry is held (`false`: larger than the cache, or not admitted by the policy).
#[utoipa::path(
    put,
    path = "/v1/caches/{name}/entries/{key}",
    operation_id = "put_cache_entry",
    tag = "caches",
    params(("name" = String, Path, description = "The cache (as in `/v1/caches/{name}`)", min_length = 1, max_length = 257), ("key" = String, Path, description = "The entry's key (at most 1024 bytes)", max_length = 1024)),
    request_body = EntryBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored (`held` says whether the cache holds it)", body = EntryStored),
        BadRequest, Unauthorized, NotFound, Conflict, BodyRefused, Unavailable,
    )
)]
pub async fn put_entry(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    body: JsonBody<EntryBody>,
) -> Result<Json<EntryStored>, ApiError> {
    let Path((name, key)) = p?;
    let JsonObject(b) = body?;
    int64_opt("size", b.size)?;
    int64_opt("ttl_ms", b.ttl_ms)?;
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
#[utoipa::path(
    get,
    path = "/v1/caches/{name}/entries/{key}",
    operation_id = "get_cache_entry",
    tag = "caches",
    params(("name" = String, Path, description = "The cache (as in `/v1/caches/{name}`)", min_length = 1, max_length = 257), ("key" = String, Path, description = "The entry's key (at most 1024 bytes)", max_length = 1024)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A hit: the value (`null` when stored without one)", body = EntryValue),
        BadRequest, Unauthorized,
        (status = 404, description = "No such cache, or a miss", body = crate::wire::ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/caches/{name}/entries/{key}",
    operation_id = "delete_cache_entry",
    tag = "caches",
    params(("name" = String, Path, description = "The cache (as in `/v1/caches/{name}`)", min_length = 1, max_length = 257), ("key" = String, Path, description = "The entry's key (at most 1024 bytes)", max_length = 1024)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = EntryRemoved),
        BadRequest, Unauthorized, NotFound,
    )
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrimBody {
    /// Bytes to free at least.
    bytes: u64,
}

/// `POST /v1/caches/{name}/trim`: frees at least `bytes` through the cache's policy.
#[utoipa::path(
    post,
    path = "/v1/caches/{name}/trim",
    operation_id = "trim_cache",
    tag = "caches",
    params(("name" = String, Path, description = "The cache (as in `/v1/caches/{name}`)", min_length = 1, max_length = 257)),
    request_body = TrimBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Bytes freed", body = Trimmed),
        BadRequest, Unauthorized, NotFound, BodyRefused,
    )
)]
pub async fn trim(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<TrimBody>,
) -> Result<Json<Trimmed>, ApiError> {
    let Path(name) = p?;
    let JsonObject(b) = body?;
    int64("bytes", b.bytes)?;
    let id = resolve(&s, &caller, &name)?;
    let host = s.host.clone();
    let n = id.clone();
    let freed = blocking(move || host.caches.trim(&n, b.bytes)).await??;
    Ok(Json(Trimmed {
        cache: name,
        freed_bytes: freed,
    }))
}
