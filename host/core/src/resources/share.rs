//! Fair shares: the memory each tenant may account, and who is shed first under pressure.
//!
//! A tenant's accounted memory is its memory allocations plus what it holds outside the
//! ledger (the capacity of the caches it declared, told by [`HeldElsewhere`]). Its share is
//! its memory quota, else the `[tenant_defaults]` quota, else an equal split of the memory
//! budget among the tenants holding memory (max-min fairness with equal weights). Under a
//! `shed-below`, only tenants over their share are shed while any tenant is over; when none
//! is (the pressure is not any tenant's doing), everyone below the threshold is — so one
//! tenant's excess never sheds a tenant within its share.

use super::*;

/// Memory a tenant holds outside the allocation ledger (cache capacity, for the host).
pub trait HeldElsewhere: Send + Sync {
    /// Bytes `tenant` holds.
    fn bytes(&self, tenant: &str) -> u64;
    /// Every tenant that holds some.
    fn tenants(&self) -> Vec<String>;
}

/// Nothing held elsewhere (a manager without caches).
#[derive(Debug, Default, Clone, Copy)]
pub struct NothingElsewhere;

impl HeldElsewhere for NothingElsewhere {
    fn bytes(&self, _: &str) -> u64 {
        0
    }
    fn tenants(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One tenant's memory standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryShare {
    /// Tenant.
    pub tenant: String,
    /// Accounted bytes: memory allocations plus declared cache capacity.
    pub accounted_bytes: u64,
    /// The share it may account.
    pub share_bytes: u64,
    /// Whether it is over its share.
    pub over: bool,
}

impl ResourceManager {
    /// Bytes `tenant` holds outside the ledger (its caches' capacity).
    pub(super) fn held_elsewhere(&self, tenant: &str) -> u64 {
        self.inner.elsewhere.bytes(tenant)
    }

    /// What `tenant` accounts now: memory allocations plus cache capacity.
    pub fn accounted_memory(&self, tenant: &str) -> u64 {
        let in_ledger = self
            .inner
            .ledger
            .lock()
            .tenant_totals(tenant, ResourceKind::Memory)
            .used;
        in_ledger.saturating_add(self.held_elsewhere(tenant))
    }

    /// Every tenant holding memory (allocations or caches), and `also`, each with its
    /// memory allocations: one pass over the ledger under one lock.
    fn holders(&self, also: Option<&str>) -> Vec<(String, u64)> {
        let mut names = self.inner.elsewhere.tenants();
        names.extend(also.map(str::to_string));
        let ledger = self.inner.ledger.lock();
        let used = |t: &str| ledger.tenant_totals(t, ResourceKind::Memory).used;
        names.extend(ledger.tenants().into_iter().filter(|t| used(t) > 0));
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|t| {
                let u = used(&t);
                (t, u)
            })
            .collect()
    }

    /// The memory `tenant` may account: its quota, else the default quota, else the memory
    /// budget split equally among the tenants holding memory (counting `tenant`).
    pub fn memory_share(&self, tenant: &str) -> u64 {
        self.share_among(tenant, self.holders(Some(tenant)).len())
    }

    fn share_among(&self, tenant: &str, holders: usize) -> u64 {
        self.quota(tenant, ResourceKind::Memory)
            .unwrap_or(self.inner.limits.memory_bytes / holders.max(1) as u64)
    }

    /// Every tenant holding memory, with its share; over-share tenants first, the most
    /// over first (the order trimming and throttling follow). Accounted: allocations plus
    /// declared cache capacity.
    pub fn memory_shares(&self) -> Vec<MemoryShare> {
        self.shares_with(None, &|t| self.held_elsewhere(t))
    }

    /// As [`Self::memory_shares`], accounting allocations plus `in_caches(tenant)` (what
    /// the caches hold now, for trimming: trimming their contents back to the share ends
    /// there, while their declared capacity would stay over it).
    pub fn memory_shares_holding(&self, in_caches: &dyn Fn(&str) -> u64) -> Vec<MemoryShare> {
        self.shares_with(None, in_caches)
    }

    /// The shares with `also` counted as a holder (a tenant asking for its first bytes
    /// takes part in the split).
    fn shares_with(&self, also: Option<&str>, outside: &dyn Fn(&str) -> u64) -> Vec<MemoryShare> {
        let holders = self.holders(also);
        let n = holders.len();
        let mut v: Vec<MemoryShare> = holders
            .into_iter()
            .map(|(tenant, allocated)| {
                let accounted_bytes = allocated.saturating_add(outside(&tenant));
                let share_bytes = self.share_among(&tenant, n);
                MemoryShare {
                    over: accounted_bytes > share_bytes,
                    tenant,
                    accounted_bytes,
                    share_bytes,
                }
            })
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.accounted_bytes.saturating_sub(s.share_bytes)));
        v
    }

    /// Whether a `shed-below` applies to `tenant`: it is over its share, or no tenant is.
    pub(super) fn sheddable(&self, tenant: &str) -> bool {
        let shares = self.shares_with(Some(tenant), &|t| self.held_elsewhere(t));
        let any_over = shares.iter().any(|s| s.over);
        !any_over || shares.iter().any(|s| s.tenant == tenant && s.over)
    }
}
