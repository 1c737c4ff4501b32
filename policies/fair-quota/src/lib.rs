//! Fair quota: per-tenant limits with priority preemption, plus a system-memory fairness
//! rule.
//!
//! 1. **Fairness.** When system memory use (`memory-used-bytes / memory-total-bytes`) is
//!    above `fair_memory_percent` (default 90), memory requests below priority
//!    `fair_min_priority` (default 2) are denied, whatever the tenant's quota: low-priority
//!    work yields first when the machine itself is short.
//! 2. **Limit.** No limit: grant. Within the limit: grant. A request larger than the whole
//!    limit: deny.
//! 3. **Preemption.** Over the limit, take holders from `preemptible` (the host offers them
//!    lowest priority, then oldest, first) whose priority is below the request's, in that
//!    order, until they free enough; then answer `preempt` with exactly those. If they
//!    cannot free enough, deny with the numbers.
//!
//! The limit is the host's (`tenant-state.limit`), optionally tightened per tenant and
//! kind by the setting `limit.<tenant>.<kind>` (kind: memory, cpu, connections, requests,
//! file-handles). Since the host offers `preemptible` only when its own limit would be
//! exceeded, a request that is over only the tightened limit is denied, not preempted for.
//! Without settings and below the fairness threshold this decides like the host's
//! `NativeQuota`.

use rmhost_policy::{Decision, Holder, Quota, Request, ResourceKind, TenantState, Usage, setting};

/// The quota policy. See the crate docs.
#[derive(Debug, Clone, Copy)]
pub struct FairQuota {
    /// System memory use, in percent, above which low-priority memory requests are denied.
    pub fair_memory_percent: u64,
    /// Memory requests below this priority are denied above the threshold.
    pub fair_min_priority: u8,
}

impl Default for FairQuota {
    fn default() -> Self {
        FairQuota {
            fair_memory_percent: parsed("fair_memory_percent").unwrap_or(90),
            fair_min_priority: parsed("fair_min_priority").unwrap_or(2),
        }
    }
}

fn parsed<T: std::str::FromStr>(key: &str) -> Option<T> {
    setting(key).and_then(|s| s.trim().parse().ok())
}

/// The WIT name of a kind, as used in settings and messages.
pub fn kind_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Memory => "memory",
        ResourceKind::Cpu => "cpu",
        ResourceKind::Connections => "connections",
        ResourceKind::Requests => "requests",
        ResourceKind::FileHandles => "file-handles",
    }
}

impl FairQuota {
    /// Whether system memory use is above the fairness threshold.
    fn memory_tight(&self, system: &Usage) -> bool {
        system.memory_total_bytes > 0
            && (system.memory_used_bytes as u128) * 100
                > (system.memory_total_bytes as u128) * self.fair_memory_percent as u128
    }
}

impl Quota for FairQuota {
    fn decide(
        &mut self,
        req: &Request,
        tenant: &TenantState,
        system: &Usage,
        preemptible: &[Holder],
    ) -> Decision {
        let kind = kind_name(req.kind);
        if req.kind == ResourceKind::Memory
            && req.priority < self.fair_min_priority
            && self.memory_tight(system)
        {
            let pct =
                (system.memory_used_bytes as u128 * 100 / system.memory_total_bytes as u128) as u64;
            return Decision::Deny(format!(
                "system memory is {pct}% used (above {}%): memory requests below priority {} \
                 are refused until it drops",
                self.fair_memory_percent, self.fair_min_priority
            ));
        }
        let configured = parsed::<u64>(&format!("limit.{}.{kind}", req.tenant));
        let limit = match (tenant.limit, configured) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(l) => l,
                None => return Decision::Grant,
            },
        };
        let wanted = tenant.used.saturating_add(req.amount);
        if wanted <= limit {
            return Decision::Grant;
        }
        if req.amount > limit {
            return Decision::Deny(format!(
                "request of {} exceeds the tenant's whole {kind} quota of {limit}",
                req.amount
            ));
        }
        let mut need = wanted - limit;
        let mut chosen = Vec::new();
        for h in preemptible.iter().filter(|h| h.priority < req.priority) {
            chosen.push(h.allocation);
            need = need.saturating_sub(h.amount);
            if need == 0 {
                return Decision::Preempt(chosen);
            }
        }
        Decision::Deny(format!(
            "{kind} quota of {limit} exhausted ({} in use, {} requested, not enough \
             lower-priority allocations to preempt)",
            tenant.used, req.amount
        ))
    }
}

rmhost_policy::export_quota!(FairQuota);

#[cfg(test)]
mod tests {
    use super::*;
    use rmhost_policy::{PressureLevel, testing::set_setting};

    fn req(kind: ResourceKind, amount: u64, priority: u8) -> Request {
        Request {
            tenant: "t".into(),
            owner: "o".into(),
            kind,
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
    fn usage(used: u64, total: u64) -> Usage {
        Usage {
            cpu_percent: 0.0,
            memory_used_bytes: used,
            memory_total_bytes: total,
            process_rss_bytes: 0,
            connections_active: 0,
            requests_per_minute: 0,
            load_average_1m: 0.0,
            pressure: PressureLevel::Normal,
        }
    }
    fn state(used: u64, limit: Option<u64>) -> TenantState {
        TenantState {
            used,
            limit,
            allocations: 1,
        }
    }

    #[test]
    fn grants_within_limit_and_when_unlimited() {
        let mut q = FairQuota::default();
        let s = usage(10, 100);
        assert_eq!(
            q.decide(
                &req(ResourceKind::Memory, 50, 0),
                &state(50, Some(100)),
                &s,
                &[]
            ),
            Decision::Grant
        );
        assert_eq!(
            q.decide(&req(ResourceKind::Cpu, 500, 0), &state(50, None), &s, &[]),
            Decision::Grant
        );
    }

    #[test]
    fn preempts_just_enough_lower_priority_holders_in_offered_order() {
        let mut q = FairQuota::default();
        let s = usage(10, 100);
        let t = state(90, Some(100));
        let hs = [holder(1, 20, 0), holder(2, 30, 1), holder(3, 40, 1)];
        assert_eq!(
            q.decide(&req(ResourceKind::Memory, 40, 5), &t, &s, &hs),
            Decision::Preempt(vec![1, 2])
        );
        // Priority 1 may only preempt priority 0: 20 is not enough for 30.
        assert!(matches!(
            q.decide(&req(ResourceKind::Memory, 40, 1), &t, &s, &hs),
            Decision::Deny(_)
        ));
        assert!(matches!(
            q.decide(&req(ResourceKind::Memory, 101, 9), &t, &s, &hs),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn denies_low_priority_memory_when_the_system_is_tight() {
        let mut q = FairQuota::default();
        let tight = usage(91, 100);
        let unlimited = state(0, None);
        let Decision::Deny(why) =
            q.decide(&req(ResourceKind::Memory, 1, 1), &unlimited, &tight, &[])
        else {
            panic!("expected a denial")
        };
        assert!(why.contains("91%"), "{why}");
        assert_eq!(
            q.decide(&req(ResourceKind::Memory, 1, 2), &unlimited, &tight, &[]),
            Decision::Grant
        );
        assert_eq!(
            q.decide(&req(ResourceKind::Cpu, 1, 0), &unlimited, &tight, &[]),
            Decision::Grant
        );
        assert_eq!(
            q.decide(
                &req(ResourceKind::Memory, 1, 0),
                &unlimited,
                &usage(90, 100),
                &[]
            ),
            Decision::Grant
        );
        assert_eq!(
            q.decide(
                &req(ResourceKind::Memory, 1, 0),
                &unlimited,
                &usage(5, 0),
                &[]
            ),
            Decision::Grant
        );
    }

    #[test]
    fn settings_tighten_limits_and_tune_fairness() {
        set_setting("limit.t.connections", Some("10"));
        set_setting("fair_min_priority", Some("5"));
        let mut q = FairQuota::default();
        let s = usage(95, 100);
        assert!(matches!(
            q.decide(
                &req(ResourceKind::Connections, 5, 0),
                &state(8, None),
                &s,
                &[]
            ),
            Decision::Deny(_)
        ));
        assert_eq!(
            q.decide(
                &req(ResourceKind::Connections, 2, 0),
                &state(8, Some(100)),
                &s,
                &[]
            ),
            Decision::Grant
        );
        assert!(matches!(
            q.decide(&req(ResourceKind::Memory, 1, 4), &state(0, None), &s, &[]),
            Decision::Deny(_)
        ));
        set_setting("limit.t.connections", None);
        set_setting("fair_min_priority", None);
    }
}
