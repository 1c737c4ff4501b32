//! Policy routes: list loaded policies with their stats and bindings, bind and unbind per
//! tenant (or the default), reload the watched directory.

use super::body::{JsonBody, JsonObject};
use super::doc::{BadRequest, BodyRefused, Forbidden, NotFound, Unauthorized, Unavailable};
use super::{ApiError, AppState, Caller, valid_tenant};
use crate::wire::{BindingAnswer, ErrorBody, PolicyInfo, PolicyList, ReloadAnswer};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use rmhost_core::host::binding;
use rmhost_core::policy::PolicyKind;
use rmhost_runtime::RuntimeError;
use serde::Deserialize;

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let msg = e.to_string();
        match e {
            RuntimeError::NotLoaded(_) => ApiError::not_found(msg),
            RuntimeError::WrongKind { .. }
            | RuntimeError::BadName(_)
            | RuntimeError::Invalid { .. } => ApiError::invalid(msg),
            other => ApiError::internal(other),
        }
    }
}

/// Binds on this host's runtime (which validates the policy), then stores the binding in
/// the shared ledger, if any; when the ledger refuses, the previous binding is put back, so
/// an acknowledged binding is a durable one that every host applies. Off the async workers:
/// a ledger write waits up to the backend timeout.
async fn bind(
    s: &AppState,
    tenant: Option<String>,
    kind: PolicyKind,
    policy: Option<String>,
) -> Result<(), ApiError> {
    let (rt, host) = (s.runtime.clone(), s.host.clone());
    tokio::task::spawn_blocking(move || {
        let before = rt
            .bindings()
            .into_iter()
            .find(|b| b.tenant == tenant && b.kind == kind)
            .map(|b| b.policy);
        rt.bind(tenant.as_deref(), kind, policy.as_deref())?;
        let stored = binding(tenant.as_deref(), kind, policy.as_deref());
        if let Err(e) = host.store_binding(&stored, false) {
            let _ = rt.bind(tenant.as_deref(), kind, before.as_deref());
            return Err(ApiError::from(e));
        }
        Ok(())
    })
    .await
    .map_err(ApiError::internal)?
}

fn kind(raw: &str) -> Result<PolicyKind, ApiError> {
    raw.parse()
        .map_err(|e: String| ApiError::invalid(format!("kind: {e}")))
}

/// `GET /v1/policies`: loaded policies (kinds, hash, calls, faults, mean and p99 call time,
/// instance memory) and every binding. A tenant token sees the default bindings and its
/// own.
#[utoipa::path(
    get,
    path = "/v1/policies",
    operation_id = "list_policies",
    tag = "policies",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Loaded policies and the bindings the caller may see", body = PolicyList),
        Unauthorized,
    )
)]
pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<PolicyList> {
    let rt = &s.runtime;
    let mut bindings = rt.bindings();
    bindings.retain(|b| b.tenant.as_deref().is_none_or(|t| caller.may_access(t)));
    let mut policies = rt.list();
    for p in &mut policies {
        tenant_view(&caller, p);
    }
    Json(PolicyList {
        policies,
        bindings,
        pooling_allocator: rt.pooling(),
    })
}

/// `GET /v1/policies/{name}`.
#[utoipa::path(
    get,
    path = "/v1/policies/{name}",
    operation_id = "get_policy",
    tag = "policies",
    params(("name" = String, Path, description = "The policy's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy with its stats and the bindings the caller may see", body = PolicyInfo),
        BadRequest, Unauthorized, NotFound,
    )
)]
pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<PolicyInfo>, ApiError> {
    let Path(name) = p?;
    let mut info = loaded(&s, &name)?;
    tenant_view(&caller, &mut info);
    Ok(Json(info))
}

fn loaded(s: &AppState, name: &str) -> Result<PolicyInfo, ApiError> {
    s.runtime
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no policy named {name:?} is loaded")))
}

/// What a caller may see of a policy: a tenant sees the default bindings and its own, and
/// whether it (not another tenant) is quarantined.
fn tenant_view(caller: &Caller, p: &mut PolicyInfo) {
    p.bindings
        .retain(|b| b.tenant.as_deref().is_none_or(|t| caller.may_access(t)));
    p.quarantined_tenants.retain(|t| caller.may_access(t));
}

/// `POST /v1/policies/{name}/lift-quarantine` (admin): lifts every quarantine of a policy
/// (for tenant-less calls and every tenant) without a new version.
#[utoipa::path(
    post,
    path = "/v1/policies/{name}/lift-quarantine",
    operation_id = "lift_policy_quarantine",
    tag = "policies",
    description = "Admin only.",
    params(("name" = String, Path, description = "The policy's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy, no longer quarantined", body = PolicyInfo),
        BadRequest, Unauthorized, Forbidden, NotFound,
    )
)]
pub async fn lift_quarantine(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<PolicyInfo>, ApiError> {
    let Path(name) = p?;
    caller.admin()?;
    s.runtime.lift_quarantine(&name)?;
    loaded(&s, &name).map(Json)
}

/// Body of the bind routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindBody {
    /// The loaded policy to bind.
    policy: String,
}

/// `PUT /v1/tenants/{t}/policies/{kind}` `{"policy": NAME}` (admin): binds a policy for one
/// tenant while every other tenant keeps its own.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/policies/{kind}",
    operation_id = "bind_tenant_policy",
    tag = "policies",
    description = "Admin only. Binds a policy for one tenant while every other tenant keeps its own.",
    params(("tenant" = String, Path, description = "The tenant (1-128 of A-Z a-z 0-9 - _ .)", pattern = "^[A-Za-z0-9._-]{1,128}$"), ("kind" = PolicyKind, Path, description = "The policy kind")),
    request_body = BindBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The binding as it now is", body = BindingAnswer),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "The shared state refused to store the binding", body = ErrorBody),
        BodyRefused,
        Unavailable,
    )
)]
pub async fn bind_tenant(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    body: JsonBody<BindBody>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path((tenant, k)) = p?;
    caller.admin()?;
    valid_tenant(&tenant)?;
    let k = kind(&k)?;
    let JsonObject(b) = body?;
    bind(&s, Some(tenant.clone()), k, Some(b.policy.clone())).await?;
    Ok(Json(BindingAnswer {
        tenant: Some(tenant),
        kind: k,
        policy: Some(b.policy),
    }))
}

/// `DELETE /v1/tenants/{t}/policies/{kind}` (admin): back to the default binding.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/policies/{kind}",
    operation_id = "unbind_tenant_policy",
    tag = "policies",
    description = "Admin only. The tenant goes back to the default binding.",
    params(("tenant" = String, Path, description = "The tenant (1-128 of A-Z a-z 0-9 - _ .)", pattern = "^[A-Za-z0-9._-]{1,128}$"), ("kind" = PolicyKind, Path, description = "The policy kind")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The binding as it now is", body = BindingAnswer),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "The shared state refused to store the binding", body = ErrorBody),
        Unavailable,
    )
)]
pub async fn unbind_tenant(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path((tenant, k)) = p?;
    caller.admin()?;
    valid_tenant(&tenant)?;
    let k = kind(&k)?;
    bind(&s, Some(tenant.clone()), k, None).await?;
    Ok(Json(BindingAnswer {
        tenant: Some(tenant),
        kind: k,
        policy: None,
    }))
}

/// `PUT /v1/policies/default/{kind}` `{"policy": NAME}` (admin): the default binding.
#[utoipa::path(
    put,
    path = "/v1/policies/default/{kind}",
    operation_id = "bind_default_policy",
    tag = "policies",
    description = "Admin only. The default binding.",
    params(("kind" = PolicyKind, Path, description = "The policy kind")),
    request_body = BindBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The binding as it now is", body = BindingAnswer),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "The shared state refused to store the binding", body = ErrorBody),
        BodyRefused,
        Unavailable,
    )
)]
pub async fn bind_default(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<BindBody>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path(k) = p?;
    caller.admin()?;
    let k = kind(&k)?;
    let JsonObject(b) = body?;
    bind(&s, None, k, Some(b.policy.clone())).await?;
    Ok(Json(BindingAnswer {
        tenant: None,
        kind: k,
        policy: Some(b.policy),
    }))
}

/// `DELETE /v1/policies/default/{kind}` (admin): the native default again.
#[utoipa::path(
    delete,
    path = "/v1/policies/default/{kind}",
    operation_id = "unbind_default_policy",
    tag = "policies",
    description = "Admin only. Back to the native default.",
    params(("kind" = PolicyKind, Path, description = "The policy kind")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The binding as it now is", body = BindingAnswer),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "The shared state refused to store the binding", body = ErrorBody),
        Unavailable,
    )
)]
pub async fn unbind_default(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path(k) = p?;
    caller.admin()?;
    let k = kind(&k)?;
    bind(&s, None, k, None).await?;
    Ok(Json(BindingAnswer {
        tenant: None,
        kind: k,
        policy: None,
    }))
}

/// `POST /v1/policies/reload` (admin): re-reads the watched directory now.
#[utoipa::path(
    post,
    path = "/v1/policies/reload",
    operation_id = "reload_policies",
    tag = "policies",
    description = "Admin only. Re-reads the watched policy directory now.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What happened to each file", body = ReloadAnswer),
        Unauthorized, Forbidden,
    )
)]
pub async fn reload(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<ReloadAnswer>, ApiError> {
    caller.admin()?;
    let runtime = s.runtime.clone();
    let dir = std::path::PathBuf::from(&s.host.config.policies.dir);
    let outcomes = tokio::task::spawn_blocking(move || {
        runtime.reload_dir().or_else(|_| runtime.load_dir(&dir))
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(ReloadAnswer { outcomes }))
}
