//! Bodies of the policy routes (`GET /v1/policies/{name}` answers a runtime `PolicyInfo`).

use rmhost_core::policy::PolicyKind;
use rmhost_runtime::{BindingInfo, PolicyInfo, ReloadOutcome};
use serde::{Deserialize, Serialize};

/// `GET /v1/policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyList {
    /// Loaded policies with their stats.
    pub policies: Vec<PolicyInfo>,
    /// Every binding the caller may see.
    pub bindings: Vec<BindingInfo>,
    /// Whether the Wasm pooling allocator is in use.
    pub pooling_allocator: bool,
}

/// The bind and unbind routes: the binding as it now is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BindingAnswer {
    /// The tenant, or `None` for the default binding.
    pub tenant: Option<String>,
    /// The kind bound.
    pub kind: PolicyKind,
    /// The policy now bound, or `None` after an unbind.
    pub policy: Option<String>,
}

/// `POST /v1/policies/reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReloadAnswer {
    /// What happened to each file.
    pub outcomes: Vec<ReloadOutcome>,
}
