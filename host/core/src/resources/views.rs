//! Read-only views of the ledger: one allocation, filtered lists, per-tenant and global
//! usage against quotas, counters and the self-check.

use super::*;

impl ResourceManager {
    /// One allocation.
    pub fn get(&self, id: u64) -> Option<Allocation> {
        self.inner.ledger.lock().get(id).cloned()
    }

    /// Live allocations matching `filter`, by id.
    pub fn allocations(&self, filter: &AllocationFilter) -> Vec<Allocation> {
        let ledger = self.inner.ledger.lock();
        let mut v: Vec<Allocation> = ledger
            .iter()
            .filter(|a| filter.tenant.as_ref().is_none_or(|t| *t == a.tenant))
            .filter(|a| filter.kind.is_none_or(|k| k == a.kind))
            .filter(|a| filter.owner.as_ref().is_none_or(|o| *o == a.owner))
            .cloned()
            .collect();
        v.sort_by_key(|a| a.id);
        v
    }

    /// Global use of `kind` (cheap: the ledger keeps running totals).
    pub fn global_used(&self, kind: ResourceKind) -> u64 {
        self.inner.ledger.lock().global_used(kind)
    }

    /// One tenant's use of every kind against its quotas.
    pub fn tenant_usage(&self, tenant: &str) -> TenantUsage {
        let ledger = self.inner.ledger.lock();
        let quotas = self.inner.quotas.read();
        self.tenant_usage_in(&ledger, &quotas, tenant)
    }

    fn tenant_usage_in(
        &self,
        ledger: &Ledger,
        quotas: &HashMap<(String, ResourceKind), u64>,
        tenant: &str,
    ) -> TenantUsage {
        let kinds = ResourceKind::ALL
            .iter()
            .map(|&kind| {
                let t = ledger.tenant_totals(tenant, kind);
                kind_usage(
                    kind,
                    t,
                    quotas
                        .get(&(tenant.to_string(), kind))
                        .copied()
                        .or_else(|| self.inner.defaults.limit(kind)),
                )
            })
            .collect();
        TenantUsage {
            tenant: tenant.to_string(),
            kinds,
            requests_per_minute_limit: self.inner.rates.limit_for(tenant),
        }
    }

    /// Global use per kind, and each tenant's use against its quotas.
    pub fn usage(&self) -> LedgerUsage {
        let ledger = self.inner.ledger.lock();
        let quotas = self.inner.quotas.read();
        let global = ResourceKind::ALL
            .iter()
            .map(|&kind| {
                kind_usage(
                    kind,
                    ledger.global_totals(kind),
                    Some(self.inner.limits.get(kind)),
                )
            })
            .collect();
        let mut names: Vec<String> = ledger.tenants();
        names.extend(quotas.keys().map(|(t, _)| t.clone()));
        names.sort();
        names.dedup();
        let tenants = names
            .iter()
            .map(|tenant| self.tenant_usage_in(&ledger, &quotas, tenant))
            .collect();
        LedgerUsage {
            global,
            tenants,
            allocations: ledger.len(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> ResourceStats {
        self.inner.stats.lock().clone()
    }

    /// Runs the ledger's self-check (tests and debugging).
    pub fn check_invariants(&self) -> Result<(), crate::invariant::InvariantViolation> {
        self.inner.ledger.lock().check_invariants()
    }
}

fn kind_usage(kind: ResourceKind, t: Totals, limit: Option<u64>) -> KindUsage {
    KindUsage {
        kind,
        used: t.used,
        limit,
        percentage: limit
            .filter(|l| *l > 0)
            .map(|l| (t.used as f64) * 100.0 / l as f64),
        allocations: t.count,
    }
}

pub(crate) fn validate_tenant(tenant: &str) -> Result<(), ResourceError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= crate::limits::MAX_NAME_LEN
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ResourceError::InvalidRequest {
            field: "tenant".into(),
            reason: format!("{tenant:?} must be 1-128 characters of A-Z a-z 0-9 - _ ."),
        })
    }
}
