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

    fn memory_holders(&self) -> Vec<String> {
        let mut t: Vec<String> = {
            let ledger = self.inner.ledger.lock();
            let mut t = ledger.tenants();
            t.retain(|x| ledger.tenant_totals(x, ResourceKind::Memory).used > 0);
            t
        };
        t.extend(self.inner.elsewhere.tenants());
        t.sort();
        t.dedup();
        t
    }

    /// The memory `tenant` may account: its quota, else the default quota, else the memory
    /// budget split equally among the tenants holding memory (counting `tenant`).
    pub fn memory_share(&self, tenant: &str) -> u64 {
        let holders = self.holders_with(Some(tenant)).len();
        self.share_among(tenant, holders)
    }

    fn holders_with(&self, also: Option<&str>) -> Vec<String> {
        let mut holders = self.memory_holders();
        if let Some(t) = also
            && !holders.iter().any(|h| h == t)
        {
            holders.push(t.to_string());
        }
        holders
    }

    fn share_among(&self, tenant: &str, holders: usize) -> u64 {
        self.quota(tenant, ResourceKind::Memory)
            .unwrap_or(self.inner.limits.memory_bytes / holders.max(1) as u64)
    }

    /// Every tenant holding memory, with its share; over-share tenants first, the most
    /// over first (the order trimming and throttling follow).
    pub fn memory_shares(&self) -> Vec<MemoryShare> {
        self.shares_with(None)
    }

    /// The shares with `also` counted as a holder (a tenant asking for its first bytes
    /// takes part in the split).
    fn shares_with(&self, also: Option<&str>) -> Vec<MemoryShare> {
        let holders = self.holders_with(also);
        let n = holders.len();
        let mut v: Vec<MemoryShare> = holders
            .into_iter()
            .map(|tenant| {
                let accounted_bytes = self.accounted_memory(&tenant);
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
        let shares = self.shares_with(Some(tenant));
        let any_over = shares.iter().any(|s| s.over);
        !any_over || shares.iter().any(|s| s.tenant == tenant && s.over)
    }
}
