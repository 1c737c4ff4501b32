//! Read-only views of the ledger: one allocation, filtered lists, per-tenant and global
//! usage against quotas, counters and the self-check.

use super::*;

impl ResourceManager {
    /// One allocation.
    pub fn get(&self, id: u64) -> Result<Option<Allocation>, ResourceError> {
        match &self.inner.shared {
            Some(s) => s.get(id),
            None => Ok(self.inner.ledger.lock().get(id).cloned()),
        }
    }

    /// Live allocations matching `filter`, by id.
    pub fn allocations(&self, filter: &AllocationFilter) -> Result<Vec<Allocation>, ResourceError> {
        if let Some(s) = &self.inner.shared {
            return s.list(filter);
        }
        let ledger = self.inner.ledger.lock();
        let mut v: Vec<Allocation> = ledger
            .iter()
            .filter(|a| filter.tenant.as_ref().is_none_or(|t| *t == a.tenant))
            .filter(|a| filter.kind.is_none_or(|k| k == a.kind))
            .filter(|a| filter.owner.as_ref().is_none_or(|o| *o == a.owner))
            .cloned()
            .collect();
        v.sort_by_key(|a| a.id);
        Ok(v)
    }

    /// Global use of `kind` (cheap: the ledger keeps running totals; a shared ledger's as
    /// last seen, refreshed by every grant and each heartbeat).
    pub fn global_used(&self, kind: ResourceKind) -> u64 {
        match &self.inner.shared {
            Some(s) => s.global_used_cached(kind),
            None => self.inner.ledger.lock().global_used(kind),
        }
    }

    /// One tenant's use of every kind against its quotas.
    pub fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage, ResourceError> {
        let by_tenant = by_tenant(&self.totals()?);
        let quotas = self.inner.quotas.read();
        Ok(self.tenant_usage_in(&by_tenant, &quotas, tenant))
    }

    /// Every counter, from whichever ledger is in use.
    fn totals(&self) -> Result<SharedTotals, ResourceError> {
        if let Some(s) = &self.inner.shared {
            return s.totals();
        }
        let ledger = self.inner.ledger.lock();
        let mut out = SharedTotals {
            allocations: ledger.len(),
            ..SharedTotals::default()
        };
        for (i, kind) in ResourceKind::ALL.iter().enumerate() {
            out.global[i] = ledger.global_totals(*kind);
        }
        for t in ledger.tenants() {
            for kind in ResourceKind::ALL {
                let tt = ledger.tenant_totals(&t, kind);
                if tt.count > 0 {
                    out.tenants.push((t.clone(), kind, tt));
                }
            }
        }
        Ok(out)
    }

    fn tenant_usage_in(
        &self,
        totals: &HashMap<(String, ResourceKind), Totals>,
        quotas: &HashMap<(String, ResourceKind), u64>,
        tenant: &str,
    ) -> TenantUsage {
        let kinds = ResourceKind::ALL
            .iter()
            .map(|&kind| {
                let t = totals
                    .get(&(tenant.to_string(), kind))
                    .copied()
                    .unwrap_or_default();
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
    pub fn usage(&self) -> Result<LedgerUsage, ResourceError> {
        let totals = self.totals()?;
        let quotas = self.inner.quotas.read();
        let global = ResourceKind::ALL
            .iter()
            .enumerate()
            .map(|(i, &kind)| kind_usage(kind, totals.global[i], Some(self.inner.limits.get(kind))))
            .collect();
        let mut names: Vec<String> = totals.tenants.iter().map(|(t, _, _)| t.clone()).collect();
        names.extend(quotas.keys().map(|(t, _)| t.clone()));
        names.sort();
        names.dedup();
        let map = by_tenant(&totals);
        let tenants = names
            .iter()
            .map(|tenant| self.tenant_usage_in(&map, &quotas, tenant))
            .collect();
        Ok(LedgerUsage {
            global,
            tenants,
            allocations: totals.allocations,
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> ResourceStats {
        self.inner.stats.lock().clone()
    }

    /// Runs the ledger's self-check (tests and debugging).
    pub fn check_invariants(&self) -> Result<(), crate::invariant::InvariantViolation> {
        if let Some(s) = &self.inner.shared {
            return s.check();
        }
        self.inner.ledger.lock().check_invariants()
    }
}

fn by_tenant(totals: &SharedTotals) -> HashMap<(String, ResourceKind), Totals> {
    totals
        .tenants
        .iter()
        .map(|(t, k, v)| ((t.clone(), *k), *v))
        .collect()
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
    if crate::limits::is_tenant_name(tenant) {
        Ok(())
    } else {
        Err(ResourceError::InvalidRequest {
            field: "tenant".into(),
            reason: format!("{tenant:?} must be 1-128 characters of A-Z a-z 0-9 - _ ."),
        })
    }
}
