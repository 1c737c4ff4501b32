//! Allocation, quota, usage and rate-limit routes.

use super::body::{JsonBody, JsonObject};
use super::doc::{BadRequest, BodyRefused, Forbidden, NotFound, Unauthorized, Unavailable};
use super::{ApiError, AppState, Caller, int64, int64_opt, valid_tenant};
use crate::wire::{ErrorBody, QuotaEntry, Quotas, RateDecision, RepairReport, UsageReport};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmhost_core::host::RateCheckError;
use rmhost_core::policy::ResourceKind;
use rmhost_core::resources::{Allocation, AllocationFilter, AllocationRequest};
use serde::{Deserialize, Serialize};

/// Runs a manager call that may reach a Wasm policy on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    super::span::in_current_span(f)
        .await
        .map_err(ApiError::internal)
}

/// `POST /v1/allocations` -> 201 with the allocation.
#[utoipa::path(
    post,
    path = "/v1/allocations",
    operation_id = "allocate",
    tag = "resources",
    description = "Grants an allocation against a tenant's quota (a tenant token: its own tenant only).",
    request_body = AllocationRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Granted", body = Allocation),
        BadRequest, Unauthorized, Forbidden,
        (status = 409, description = "Over the tenant's quota or the global limit, or denied by the quota policy (`quota_exceeded`, `limit_exceeded`)", body = ErrorBody),
        BodyRefused, Unavailable,
    )
)]
pub async fn allocate(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<AllocationRequest>,
) -> Result<Response, ApiError> {
    let JsonObject(req) = body?;
    caller.check(&req.tenant)?;
    int64("amount", req.amount)?;
    int64_opt("ttl_ms", req.ttl_ms)?;
    let m = s.host.resources.clone();
    let a = blocking(move || m.allocate(req)).await??;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

fn parse_id(p: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(raw) = p?;
    let id = raw.parse::<u64>().map_err(|_| {
        ApiError::invalid(format!(
            "id: {raw:?} is not an allocation id (a positive integer)"
        ))
    })?;
    int64("id", id)
}

fn visible(caller: &Caller, a: &Allocation) -> Result<(), ApiError> {
    // A tenant token gets the same answer for another tenant's id as for a missing one,
    // so ids do not leak which allocations exist.
    if caller.may_access(&a.tenant) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no live allocation with id {}",
            a.id
        )))
    }
}

/// `GET /v1/allocations/{id}`.
#[utoipa::path(
    get,
    path = "/v1/allocations/{id}",
    operation_id = "get_allocation",
    tag = "resources",
    params(("id" = u64, Path, description = "The allocation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The allocation", body = Allocation),
        BadRequest, Unauthorized, NotFound, Unavailable,
    )
)]
pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Allocation>, ApiError> {
    let id = parse_id(p)?;
    let m = s.host.resources.clone();
    let a = blocking(move || m.get(id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("no live allocation with id {id}")))?;
    visible(&caller, &a)?;
    Ok(Json(a))
}

/// `DELETE /v1/allocations/{id}`; a second release is 404.
#[utoipa::path(
    delete,
    path = "/v1/allocations/{id}",
    operation_id = "release_allocation",
    tag = "resources",
    params(("id" = u64, Path, description = "The allocation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Released (a second release is 404)", body = Allocation),
        BadRequest, Unauthorized, NotFound, Unavailable,
    )
)]
pub async fn release(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Allocation>, ApiError> {
    let id = parse_id(p)?;
    let m = s.host.resources.clone();
    let a = blocking(move || {
        if let Some(a) = m.get(id)? {
            visible(&caller, &a)?;
        }
        Ok::<_, ApiError>(m.release(id)?)
    })
    .await??;
    Ok(Json(a))
}

/// `POST /v1/allocations/{id}/renew`.
#[utoipa::path(
    post,
    path = "/v1/allocations/{id}/renew",
    operation_id = "renew_allocation",
    tag = "resources",
    params(("id" = u64, Path, description = "The allocation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The lease, renewed", body = Allocation),
        BadRequest, Unauthorized, NotFound, Unavailable,
    )
)]
pub async fn renew(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Allocation>, ApiError> {
    let id = parse_id(p)?;
    let m = s.host.resources.clone();
    let a = blocking(move || {
        if let Some(a) = m.get(id)? {
            visible(&caller, &a)?;
        }
        Ok::<_, ApiError>(m.renew(id)?)
    })
    .await??;
    Ok(Json(a))
}

/// `POST /v1/ledger/repair` (admin): recomputes the ledger's counters from the live
/// allocations (drift repair, as at start) and answers how many were wrong.
#[utoipa::path(
    post,
    path = "/v1/ledger/repair",
    operation_id = "repair_ledger",
    tag = "resources",
    description = "Admin only.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The counters recomputed", body = RepairReport),
        Unauthorized, Forbidden, Unavailable,
    )
)]
pub async fn repair(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<RepairReport>, ApiError> {
    caller.admin()?;
    let m = s.host.resources.clone();
    let ledger = m
        .shared_ledger()
        .map_or("memory", |l| l.backend())
        .to_string();
    let fixed = blocking(move || m.repair()).await??;
    Ok(Json(RepairReport { ledger, fixed }))
}

/// Query of `GET /v1/allocations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant's (a tenant token: its own, the default).
    #[param(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    tenant: Option<String>,
    /// Only this kind.
    #[param(inline)]
    kind: Option<ResourceKind>,
    /// Only this owner's.
    #[param(max_length = 256)]
    owner: Option<String>,
}

/// `GET /v1/allocations?tenant=T&kind=K&owner=O`. A tenant token lists its own only.
#[utoipa::path(
    get,
    path = "/v1/allocations",
    operation_id = "list_allocations",
    tag = "resources",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live allocations that match", body = Vec<Allocation>),
        BadRequest, Unauthorized, Forbidden, Unavailable,
    )
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Allocation>>, ApiError> {
    let Query(q) = q?;
    if let Some(t) = &q.tenant {
        valid_tenant(t)?;
    }
    if let Some(o) = &q.owner {
        rmhost_core::limits::check_len("owner", o, rmhost_core::limits::MAX_OWNER_LEN)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let tenant = match (caller.tenant(), q.tenant) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(format!(
                "this token may not access tenant {asked:?}"
            )));
        }
        (Some(own), _) => Some(own.to_string()),
        (None, asked) => asked,
    };
    let m = s.host.resources.clone();
    let filter = AllocationFilter {
        tenant,
        kind: q.kind,
        owner: q.owner,
    };
    Ok(Json(blocking(move || m.allocations(&filter)).await??))
}

/// Body of `PUT /v1/tenants/{t}/quotas`: a limit per kind; `null` removes one, an absent
/// key leaves it as it is.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    /// Bytes.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    memory: Option<Option<u64>>,
    /// Millicores.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    cpu: Option<Option<u64>>,
    /// Open connections.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    connections: Option<Option<u64>>,
    /// Requests.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    requests: Option<Option<u64>>,
    /// Open file handles.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    file_handles: Option<Option<u64>>,
    /// The tenant's rate limit, requests per minute (at least 1).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    requests_per_minute: Option<Option<u32>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_ref().and_then(|o| o.as_ref()).serialize(s)
    }
}

/// `PUT /v1/tenants/{t}/quotas` (admin only).
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/quotas",
    operation_id = "put_quotas",
    tag = "resources",
    description = "Admin only. A limit per kind; `null` removes one, an absent key leaves it as it is.",
    params(("tenant" = String, Path, description = "The tenant (1-128 of A-Z a-z 0-9 - _ .)", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    request_body = QuotaBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's quotas now", body = Quotas),
        BadRequest, Unauthorized, Forbidden, BodyRefused, Unavailable,
    )
)]
pub async fn put_quotas(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<QuotaBody>,
) -> Result<Json<Quotas>, ApiError> {
    let Path(tenant) = p?;
    caller.admin()?;
    valid_tenant(&tenant)?;
    let JsonObject(b) = body?;
    for (field, v) in [
        ("memory", b.memory),
        ("cpu", b.cpu),
        ("connections", b.connections),
        ("requests", b.requests),
        ("file_handles", b.file_handles),
    ] {
        int64_opt(field, v.flatten())?;
    }
    if b.requests_per_minute == Some(Some(0)) {
        return Err(ApiError::invalid("requests_per_minute: must be at least 1"));
    }
    let m = s.host.resources.clone();
    let t = tenant.clone();
    blocking(move || {
        for (kind, v) in [
            (ResourceKind::Memory, b.memory),
            (ResourceKind::Cpu, b.cpu),
            (ResourceKind::Connections, b.connections),
            (ResourceKind::Requests, b.requests),
            (ResourceKind::FileHandles, b.file_handles),
        ] {
            if let Some(limit) = v {
                m.set_quota(&t, kind, limit)?;
            }
        }
        if let Some(rpm) = b.requests_per_minute {
            m.set_rate_override(&t, rpm)?;
        }
        Ok::<_, ApiError>(())
    })
    .await??;
    Ok(Json(quotas_of(&s, &tenant).await?))
}

/// `GET /v1/tenants/{t}/quotas`: limits and current use per kind.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/quotas",
    operation_id = "get_quotas",
    tag = "resources",
    params(("tenant" = String, Path, description = "The tenant (1-128 of A-Z a-z 0-9 - _ .)", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Limits and current use per kind", body = Quotas),
        BadRequest, Unauthorized, Forbidden, Unavailable,
    )
)]
pub async fn get_quotas(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Quotas>, ApiError> {
    let Path(tenant) = p?;
    caller.check(&tenant)?;
    Ok(Json(quotas_of(&s, &tenant).await?))
}

async fn quotas_of(s: &AppState, tenant: &str) -> Result<Quotas, ApiError> {
    let m = s.host.resources.clone();
    let t = tenant.to_string();
    let usage = blocking(move || m.tenant_usage(&t)).await??;
    let quotas = usage
        .kinds
        .into_iter()
        .map(|k| {
            let entry = QuotaEntry {
                limit: k.limit,
                used: k.used,
                allocations: k.allocations,
                percentage: k.percentage,
            };
            (k.kind.as_str().to_string(), entry)
        })
        .collect();
    Ok(Quotas {
        tenant: tenant.to_string(),
        quotas,
        requests_per_minute: usage.requests_per_minute_limit,
    })
}

/// Body of `POST /v1/ratelimit/check`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    /// The tenant to count the request against.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    tenant: String,
    /// How many requests this one counts as (default 1).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    cost: Option<u32>,
}

/// `POST /v1/ratelimit/check`: 200 `{"allowed": true, ...}`, or 429 `rate_limited` with
/// `Retry-After` and the same fields.
#[utoipa::path(
    post,
    path = "/v1/ratelimit/check",
    operation_id = "check_rate_limit",
    tag = "resources",
    request_body = RateBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Allowed", body = RateDecision),
        BadRequest, Unauthorized, Forbidden, BodyRefused,
        (status = 429, description = "`rate_limited`: over the tenant's limit; the body also carries the decision's fields", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        Unavailable,
    )
)]
pub async fn rate_check(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<RateBody>,
) -> Result<Json<RateDecision>, ApiError> {
    let JsonObject(b) = body?;
    caller.check(&b.tenant)?;
    let cost = b.cost.unwrap_or(1);
    let d = s
        .host
        .rate_check(&b.tenant, cost)
        .await
        .map_err(|e| match e {
            RateCheckError::Invalid(e) => ApiError::from(e),
            RateCheckError::Unavailable(msg) => {
                let mut e = ApiError::unavailable(msg);
                e.retry_after_s = Some(1);
                e
            }
        })?;
    if d.allowed {
        return Ok(Json(d));
    }
    let message = if RateDecision::never_fits(cost, d.limit_per_minute) {
        format!(
            "cost {cost} is more than tenant {}'s whole limit of {} requests per minute: it can never be allowed",
            b.tenant, d.limit_per_minute
        )
    } else {
        format!(
            "tenant {} is over its limit of {} requests per minute; retry in {} ms",
            b.tenant, d.limit_per_minute, d.retry_after_ms
        )
    };
    Err(ApiError::rate_limited(message, d.retry_after_ms).with_extra(&d))
}

/// `GET /v1/usage`: telemetry plus the ledger (a tenant token sees its own tenant only).
#[utoipa::path(
    get,
    path = "/v1/usage",
    operation_id = "get_usage",
    tag = "resources",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "System and process figures and the ledger (a tenant token: its own tenant only)", body = UsageReport),
        Unauthorized, Unavailable,
    )
)]
pub async fn usage(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<UsageReport>, ApiError> {
    let host = s.host.clone();
    let (usage, ledger) =
        tokio::task::spawn_blocking(move || (host.telemetry.usage(), host.resources.usage()))
            .await
            .map_err(ApiError::internal)?;
    let mut ledger = ledger?;
    if let Some(own) = caller.tenant() {
        ledger.tenants.retain(|t| t.tenant == own);
    }
    Ok(Json(UsageReport {
        usage,
        allocations: ledger,
        host_id: s.host.host_id.clone(),
    }))
}
