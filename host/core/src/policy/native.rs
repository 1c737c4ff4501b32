//! Native defaults for the quota, priority and pressure kinds. They follow the WIT contract
//! exactly, so a Wasm policy can be compared with its native twin, and they are what a
//! faulting or quarantined Wasm policy falls back to.

use super::{
    CacheStat, Holder, PoolStat, PressureAction, PressureLevel, PressurePolicy, PriorityPolicy,
    QuotaDecision, QuotaPolicy, QuotaRequest, SystemUsage, TenantState, Waiter,
};

/// Grants within the tenant's limit; over it, preempts the tenant's lower-priority
/// allocations (lowest priority, then oldest, first) when that frees enough, else denies.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeQuota;

impl QuotaPolicy for NativeQuota {
    fn name(&self) -> &str {
        "builtin:quota"
    }

    fn grants_what_fits(&self, _tenant: &str) -> bool {
        true
    }

    fn decide(
        &self,
        req: &QuotaRequest,
        tenant: &TenantState,
        _system: &SystemUsage,
        preemptible: &[Holder],
    ) -> QuotaDecision {
        let Some(limit) = tenant.limit else {
            return QuotaDecision::Grant;
        };
        let wanted = tenant.used.saturating_add(req.amount);
        if wanted <= limit {
            return QuotaDecision::Grant;
        }
        if req.amount > limit {
            return QuotaDecision::Deny(format!(
                "request of {} exceeds the tenant's whole {} quota of {}",
                req.amount, req.kind, limit
            ));
        }
        let mut need = wanted - limit;
        let mut chosen = Vec::new();
        for h in preemptible.iter().filter(|h| h.priority < req.priority) {
            chosen.push(h.allocation);
            need = need.saturating_sub(h.amount);
            if need == 0 {
                return QuotaDecision::Preempt(chosen);
            }
        }
        QuotaDecision::Deny(format!(
            "{} quota of {} exhausted ({} in use, {} requested)",
            req.kind, limit, tenant.used, req.amount
        ))
    }
}

/// Aging priority: `rank = enqueued_ms - priority * boost_ms`, so a waiter of priority p
/// is served before any waiter of lower priority that arrived less than `boost_ms` per
/// level before it.
#[derive(Debug, Clone, Copy)]
pub struct NativePriority {
    /// How many milliseconds of waiting one priority level is worth.
    pub boost_ms: i64,
}

impl Default for NativePriority {
    fn default() -> Self {
        NativePriority { boost_ms: 1000 }
    }
}

impl PriorityPolicy for NativePriority {
    fn name(&self) -> &str {
        "builtin:aging"
    }

    fn rank(&self, w: &Waiter) -> i64 {
        (w.enqueued_ms as i64).saturating_sub((w.priority as i64).saturating_mul(self.boost_ms))
    }
}

/// The default pressure response: warning trims every cache by 10%; critical trims 30%,
/// closes every idle pool connection and sheds work below priority 2, and alerts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativePressure;

impl PressurePolicy for NativePressure {
    fn name(&self) -> &str {
        "builtin:pressure"
    }

    fn respond(
        &self,
        level: PressureLevel,
        system: &SystemUsage,
        caches: &[CacheStat],
        pools: &[PoolStat],
    ) -> Vec<PressureAction> {
        let pct = match level {
            PressureLevel::Normal => return Vec::new(),
            PressureLevel::Warning => 10,
            PressureLevel::Critical => 30,
        };
        let mut out: Vec<PressureAction> = caches
            .iter()
            .filter(|c| c.bytes > 0)
            .map(|c| PressureAction::TrimCache {
                cache: c.name.clone(),
                bytes: c.bytes * pct / 100,
            })
            .collect();
        if level == PressureLevel::Critical {
            out.extend(
                pools
                    .iter()
                    .filter(|p| p.idle > 0)
                    .map(|p| PressureAction::ShrinkPool {
                        pool: p.name.clone(),
                        idle: p.idle,
                    }),
            );
            out.push(PressureAction::ShedBelow { priority: 2 });
            out.push(PressureAction::PurgeAllocator);
            out.push(PressureAction::Alert {
                message: format!(
                    "critical memory pressure: process RSS {} MiB",
                    system.process_rss_bytes >> 20
                ),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ResourceKind;

    fn req(amount: u64, priority: u8) -> QuotaRequest {
        QuotaRequest {
            tenant: "t".into(),
            owner: "o".into(),
            kind: ResourceKind::Memory,
            amount,
            priority,
        }
    }

    fn holder(id: u64, amount: u64, priority: u8) -> Holder {
        Holder {
            allocation: id,
            owner: "x".into(),
            amount,
            priority,
            age_ms: 0,
        }
    }

    #[test]
    fn grants_within_limit_and_when_unlimited() {
        let s = SystemUsage::default();
        let t = TenantState {
            used: 50,
            limit: Some(100),
            allocations: 1,
        };
        assert_eq!(
            NativeQuota.decide(&req(50, 0), &t, &s, &[]),
            QuotaDecision::Grant
        );
        let u = TenantState {
            used: 50,
            limit: None,
            allocations: 1,
        };
        assert_eq!(
            NativeQuota.decide(&req(500, 0), &u, &s, &[]),
            QuotaDecision::Grant
        );
    }

    #[test]
    fn preempts_just_enough_lower_priority_holders() {
        let s = SystemUsage::default();
        let t = TenantState {
            used: 90,
            limit: Some(100),
            allocations: 3,
        };
        let hs = [holder(1, 20, 0), holder(2, 30, 1), holder(3, 40, 1)];
        assert_eq!(
            NativeQuota.decide(&req(40, 5), &t, &s, &hs),
            QuotaDecision::Preempt(vec![1, 2])
        );
        assert!(matches!(
            NativeQuota.decide(&req(40, 1), &t, &s, &hs),
            QuotaDecision::Deny(_)
        ));
        assert!(matches!(
            NativeQuota.decide(&req(101, 9), &t, &s, &hs),
            QuotaDecision::Deny(_)
        ));
    }

    #[test]
    fn aging_priority_ranks_by_boost() {
        let p = NativePriority { boost_ms: 100 };
        let w = |priority, enqueued_ms| Waiter {
            tenant: "t".into(),
            priority,
            enqueued_ms,
            queue: "q".into(),
        };
        assert!(p.rank(&w(2, 1150)) < p.rank(&w(0, 1000)));
        assert!(p.rank(&w(1, 1150)) > p.rank(&w(0, 1000)));
    }

    #[test]
    fn pressure_default_scales_with_level() {
        let caches = [CacheStat {
            name: "c".into(),
            bytes: 1000,
            entries: 10,
            hit_ratio: 0.5,
        }];
        let pools = [PoolStat {
            name: "p".into(),
            size: 4,
            idle: 3,
            waiting: 0,
        }];
        let s = SystemUsage::default();
        assert!(
            NativePressure
                .respond(PressureLevel::Normal, &s, &caches, &pools)
                .is_empty()
        );
        assert_eq!(
            NativePressure.respond(PressureLevel::Warning, &s, &caches, &pools),
            vec![PressureAction::TrimCache {
                cache: "c".into(),
                bytes: 100
            }]
        );
        let crit = NativePressure.respond(PressureLevel::Critical, &s, &caches, &pools);
        assert!(crit.contains(&PressureAction::TrimCache {
            cache: "c".into(),
            bytes: 300
        }));
        assert!(crit.contains(&PressureAction::ShrinkPool {
            pool: "p".into(),
            idle: 3
        }));
        assert!(crit.contains(&PressureAction::ShedBelow { priority: 2 }));
    }
}
