//! Caches declared through the API and policy bindings, kept on the shared ledger when
//! there is one (`[state] ledger = "postgres://…"`): a change is stored before it is
//! acknowledged, other hosts apply it when they hear of it, and a host that starts applies
//! what the ledger holds. Without a shared ledger these are plain local changes.
//!
//! Entries are never shared: each host's cache of a name has its own contents and its own
//! eviction instance; what is shared is that the cache exists, its capacity and policy.

use super::Host;
use crate::memory::{AccountingCache, CacheError};
use crate::policy::PolicyKind;
use crate::resources::{CacheDef, RemoteChange, ResourceError, StoredBinding};
use std::sync::Arc;

/// What [`Host::restore_catalog`] applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogRestore {
    /// Bindings applied.
    pub bindings: usize,
    /// Caches declared.
    pub caches: usize,
    /// What could not be applied, each naming the binding or cache and why.
    pub skipped: Vec<String>,
}

impl Host {
    /// Declares an accounting cache (see [`Host::declare_cache`] for the per-tenant bounds)
    /// with the eviction policy `def.policy` names, else its tenant's binding. On a shared
    /// ledger the definition is stored too; if it cannot be, the cache is taken back and
    /// the ledger's error answered, so an acknowledged cache is always a durable one.
    pub fn create_cache(&self, def: &CacheDef) -> Result<Arc<AccountingCache>, CacheError> {
        let policy = self.policies.eviction(&def.tenant, def.policy.as_deref())?;
        let cache = self.declare_cache(&def.name, &def.tenant, def.capacity_bytes, policy)?;
        if let Some(l) = self.resources.shared_ledger()
            && let Err(e) = l.put_cache_def(def)
        {
            let _ = self.caches.unregister(&def.name);
            return Err(e.into());
        }
        Ok(cache)
    }

    /// Swaps a cache's eviction policy (warm handoff): the named one, else the tenant's
    /// binding. Stored first on a shared ledger, so a refused store changes nothing.
    pub fn set_cache_policy(&self, name: &str, policy: Option<&str>) -> Result<(), CacheError> {
        let info = self.caches.info(name)?;
        let instance = self.policies.eviction(&info.tenant, policy)?;
        if let Some(l) = self.resources.shared_ledger() {
            l.put_cache_def(&CacheDef {
                name: name.to_string(),
                tenant: info.tenant.clone(),
                capacity_bytes: info.stats.capacity_bytes,
                policy: policy.map(str::to_string),
            })?;
        }
        self.caches.set_policy(name, instance)
    }

    /// Deletes a cache, and its definition from the shared ledger first.
    pub fn delete_cache(&self, name: &str) -> Result<(), CacheError> {
        self.caches.info(name)?;
        if let Some(l) = self.resources.shared_ledger() {
            l.remove_cache_def(name)?;
        }
        self.caches.unregister(name)
    }

    /// Stores a binding made on this host (already applied to its runtime) in the shared
    /// ledger; nothing without one. With `seed` (config and `--policy` bindings) only where
    /// the ledger holds none, answering the binding that holds.
    pub fn store_binding(
        &self,
        binding: &StoredBinding,
        seed: bool,
    ) -> Result<Option<String>, ResourceError> {
        match self.resources.shared_ledger() {
            Some(l) => l.set_binding(binding, seed),
            None => Ok(binding.policy.clone()),
        }
    }

    /// Applies what the shared ledger holds: every stored binding (the ledger's win over
    /// this host's config, as for quotas) and every stored cache not declared here yet.
    /// Call it once the policies are loaded. What cannot be applied (a policy not loaded
    /// on this host, a cache over the tenant's share here) is skipped with a warning and
    /// reported; it stays in the ledger for the hosts that can.
    pub fn restore_catalog(&self) -> Result<CatalogRestore, ResourceError> {
        let mut out = CatalogRestore::default();
        let Some(l) = self.resources.shared_ledger() else {
            return Ok(out);
        };
        for b in l.bindings()? {
            match self.apply_binding(&b) {
                Ok(()) => out.bindings += 1,
                Err(e) => out.skipped.push(e),
            }
        }
        for def in l.cache_defs()? {
            if self.caches.info(&def.name).is_ok() {
                continue;
            }
            match self.declare_def(&def) {
                Ok(()) => out.caches += 1,
                Err(e) => out.skipped.push(e),
            }
        }
        for s in &out.skipped {
            tracing::warn!(reason = %s, "shared catalog entry not applied on this host");
        }
        Ok(out)
    }

    /// Applies a change another host made: the runtime's bindings and the caches go with
    /// the ledger; the rest is the resource manager's.
    pub fn apply_remote(&self, change: RemoteChange) {
        let failed = match change {
            RemoteChange::Binding(b) => self.apply_binding(&b).err(),
            RemoteChange::Cache { name, def: None } => match self.caches.unregister(&name) {
                Err(CacheError::NotFound(_)) | Ok(()) => None,
                Err(e) => Some(format!("cache {name:?}: {e}")),
            },
            RemoteChange::Cache { def: Some(d), .. } => self.apply_cache_def(&d).err(),
            RemoteChange::Resync => {
                self.resources.apply_remote(RemoteChange::Resync);
                self.restore_catalog().err().map(|e| e.to_string())
            }
            other => {
                self.resources.apply_remote(other);
                None
            }
        };
        if let Some(e) = failed {
            tracing::warn!(reason = %e, "another host's change not applied on this host");
        }
    }

    fn apply_binding(&self, b: &StoredBinding) -> Result<(), String> {
        self.policies
            .apply_binding(b.tenant.as_deref(), b.kind, b.policy.as_deref())
            .map_err(|e| {
                let who = b.tenant.as_deref().unwrap_or("(default)");
                format!("binding {who}/{}: {e}", b.kind)
            })
    }

    /// A definition heard from another host: declared when new here, its policy swapped
    /// when it changed, redeclared when its capacity did.
    fn apply_cache_def(&self, d: &CacheDef) -> Result<(), String> {
        let why = |e: CacheError| format!("cache {:?}: {e}", d.name);
        match self.caches.info(&d.name) {
            Err(_) => self.declare_def(d),
            Ok(info) if info.stats.capacity_bytes != d.capacity_bytes => {
                self.caches.unregister(&d.name).map_err(why)?;
                self.declare_def(d)
            }
            Ok(info) => {
                let p = self
                    .policies
                    .eviction(&info.tenant, d.policy.as_deref())
                    .map_err(|e| why(e.into()))?;
                self.caches.set_policy(&d.name, p).map_err(why)
            }
        }
    }

    fn declare_def(&self, d: &CacheDef) -> Result<(), String> {
        let why = |e: CacheError| format!("cache {:?}: {e}", d.name);
        let policy = self
            .policies
            .eviction(&d.tenant, d.policy.as_deref())
            .map_err(|e| why(e.into()))?;
        self.declare_cache(&d.name, &d.tenant, d.capacity_bytes, policy)
            .map(|_| ())
            .map_err(why)
    }
}

/// A [`StoredBinding`] from borrowed parts.
pub fn binding(tenant: Option<&str>, kind: PolicyKind, policy: Option<&str>) -> StoredBinding {
    StoredBinding {
        tenant: tenant.map(str::to_string),
        kind,
        policy: policy.map(str::to_string),
    }
}
