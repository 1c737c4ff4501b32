//! Policy routes: list loaded policies with their stats and bindings, bind and unbind per
//! tenant (or the default), reload the watched directory.

use super::{ApiError, AppState, Caller};
use crate::wire::{BindingAnswer, PolicyInfo, PolicyList, ReloadAnswer};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use rmhost_core::policy::PolicyKind;
use rmhost_runtime::RuntimeError;
use serde::Deserialize;

type JsonBody<T> = Result<Json<T>, JsonRejection>;

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

fn kind(raw: &str) -> Result<PolicyKind, ApiError> {
    raw.parse()
        .map_err(|e: String| ApiError::invalid(format!("kind: {e}")))
}

/// `GET /v1/policies`: loaded policies (kinds, hash, calls, faults, mean and p99 call time,
/// instance memory) and every binding. A tenant token sees the default bindings and its
/// own.
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindBody {
    policy: String,
}

/// `PUT /v1/tenants/{t}/policies/{kind}` `{"policy": NAME}` (admin): binds a policy for one
/// tenant while every other tenant keeps its own.
pub async fn bind_tenant(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    body: JsonBody<BindBody>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path((tenant, k)) = p?;
    caller.admin()?;
    let k = kind(&k)?;
    let Json(b) = body?;
    s.runtime.bind(Some(&tenant), k, Some(&b.policy))?;
    Ok(Json(BindingAnswer {
        tenant: Some(tenant),
        kind: k,
        policy: Some(b.policy),
    }))
}

/// `DELETE /v1/tenants/{t}/policies/{kind}` (admin): back to the default binding.
pub async fn unbind_tenant(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path((tenant, k)) = p?;
    caller.admin()?;
    let k = kind(&k)?;
    s.runtime.bind(Some(&tenant), k, None)?;
    Ok(Json(BindingAnswer {
        tenant: Some(tenant),
        kind: k,
        policy: None,
    }))
}

/// `PUT /v1/policies/default/{kind}` `{"policy": NAME}` (admin): the default binding.
pub async fn bind_default(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    body: JsonBody<BindBody>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path(k) = p?;
    caller.admin()?;
    let k = kind(&k)?;
    let Json(b) = body?;
    s.runtime.bind(None, k, Some(&b.policy))?;
    Ok(Json(BindingAnswer {
        tenant: None,
        kind: k,
        policy: Some(b.policy),
    }))
}

/// `DELETE /v1/policies/default/{kind}` (admin): the native default again.
pub async fn unbind_default(
    State(s): State<AppState>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<BindingAnswer>, ApiError> {
    let Path(k) = p?;
    caller.admin()?;
    let k = kind(&k)?;
    s.runtime.bind(None, k, None)?;
    Ok(Json(BindingAnswer {
        tenant: None,
        kind: k,
        policy: None,
    }))
}

/// `POST /v1/policies/reload` (admin): re-reads the watched directory now.
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
