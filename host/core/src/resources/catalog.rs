//! What a shared ledger keeps besides allocations: policy bindings and the caches declared
//! through the API. Every host on one ledger binds the same policies and declares the same
//! caches (each with its own contents: entries are local to a host), and a restarted host
//! gets them back. The manager never reads these; the host applies them (see
//! `host::catalog`), because bindings belong to the policy runtime and caches to the cache
//! registry.

use super::ResourceError;
use crate::policy::PolicyKind;
use serde::{Deserialize, Serialize};

/// A binding as stored: (tenant, kind) -> policy. `tenant: None` is the default binding of
/// the kind; `policy: None` (only in a change) means the binding was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBinding {
    /// The tenant, or `None` for the default binding.
    pub tenant: Option<String>,
    /// The kind it decides.
    pub kind: PolicyKind,
    /// The policy's name (`None`: unbound).
    pub policy: Option<String>,
}

/// A cache declared through the API, as stored: enough to declare it again elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDef {
    /// The registry name (`TENANT/NAME` for a tenant's own caches).
    pub name: String,
    /// The owning tenant.
    pub tenant: String,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
    /// The eviction policy the cache names (`None`: its tenant's binding).
    pub policy: Option<String>,
}

/// Bindings and cache definitions kept by a shared ledger. Changes are announced to the
/// other hosts, which receive them as [`RemoteChange::Binding`](super::RemoteChange) and
/// [`RemoteChange::Cache`](super::RemoteChange).
pub trait SharedCatalog: Send + Sync {
    /// Every stored binding.
    fn bindings(&self) -> Result<Vec<StoredBinding>, ResourceError>;
    /// Stores a binding, or removes it when `binding.policy` is `None`; with `seed`, only
    /// where the ledger holds none for (tenant, kind) (config and `--policy` bindings seed
    /// the ledger, they do not overwrite what the API set). Answers what the ledger holds
    /// afterwards.
    fn set_binding(
        &self,
        binding: &StoredBinding,
        seed: bool,
    ) -> Result<Option<String>, ResourceError>;
    /// Every stored cache definition.
    fn cache_defs(&self) -> Result<Vec<CacheDef>, ResourceError>;
    /// Stores (or replaces) a cache definition.
    fn put_cache_def(&self, def: &CacheDef) -> Result<(), ResourceError>;
    /// Removes a cache definition (absent: nothing happens).
    fn remove_cache_def(&self, name: &str) -> Result<(), ResourceError>;
}
