//! Declaring a cache for a tenant: the per-tenant bounds that the registry alone cannot
//! know (it has no quotas), checked where caches and the ledger meet.

use super::Host;
use crate::memory::{AccountingCache, CacheError};
use crate::policy::EvictionPolicy;
use std::sync::Arc;

impl Host {
    /// Registers an accounting cache of `capacity_bytes` for `tenant`, refusing it when the
    /// tenant already has `[limits] max_caches_per_tenant` caches, or when its capacity
    /// with what the tenant already accounts (memory allocations and other caches) would
    /// exceed the tenant's memory share (its quota, the `[tenant_defaults]` one, or an
    /// equal split of the budget). The capacity counts from then on against the tenant's
    /// memory quota, so one tenant's declared cache can never push another into shedding.
    pub fn declare_cache(
        &self,
        name: &str,
        tenant: &str,
        capacity_bytes: u64,
        policy: Box<dyn EvictionPolicy>,
    ) -> Result<Arc<AccountingCache>, CacheError> {
        // One declaration at a time, so two racing ones cannot both fit the same room.
        let _one = self.declaring.lock();
        let max = self.config.limits.max_caches_per_tenant as usize;
        let over = |reason: String| CacheError::OverShare {
            tenant: tenant.to_string(),
            reason,
        };
        if self.caches.count_for(tenant) >= max {
            return Err(over(format!(
                "already holds {max} caches, the most [limits] max_caches_per_tenant allows"
            )));
        }
        let accounted = self.resources.accounted_memory(tenant);
        let share = self.resources.memory_share(tenant);
        if accounted.saturating_add(capacity_bytes) > share {
            return Err(over(format!(
                "a cache of {capacity_bytes} bytes with the {accounted} bytes it accounts \
                 would exceed its memory share of {share} bytes"
            )));
        }
        self.caches
            .register_cache(name, tenant, capacity_bytes, policy)
    }
}
