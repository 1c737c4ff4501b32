//! Conversions between the generated WIT types and `rmhost_core::policy`'s domain types, at the
//! edge, so no generated type escapes `runtime/`.

use super::bindings::{pressure, priority, quota, wit_types};
use rmhost_core::policy::{
    CacheStat, Holder, PoolStat, PressureAction, PressureLevel, QuotaDecision, QuotaRequest,
    ResourceKind, SystemUsage, TenantState, Waiter,
};

use pressure::exports::rmhost::policy::pressure as wp;
use priority::exports::rmhost::policy::priority as wpr;
use quota::exports::rmhost::policy::quota as wq;

pub(crate) fn level(l: PressureLevel) -> wit_types::PressureLevel {
    match l {
        PressureLevel::Normal => wit_types::PressureLevel::Normal,
        PressureLevel::Warning => wit_types::PressureLevel::Warning,
        PressureLevel::Critical => wit_types::PressureLevel::Critical,
    }
}

fn kind(k: ResourceKind) -> wit_types::ResourceKind {
    match k {
        ResourceKind::Memory => wit_types::ResourceKind::Memory,
        ResourceKind::Cpu => wit_types::ResourceKind::Cpu,
        ResourceKind::Connections => wit_types::ResourceKind::Connections,
        ResourceKind::Requests => wit_types::ResourceKind::Requests,
        ResourceKind::FileHandles => wit_types::ResourceKind::FileHandles,
    }
}

pub(crate) fn usage(u: &SystemUsage) -> wit_types::Usage {
    wit_types::Usage {
        cpu_percent: u.cpu_percent,
        memory_used_bytes: u.memory_used_bytes,
        memory_total_bytes: u.memory_total_bytes,
        process_rss_bytes: u.process_rss_bytes,
        connections_active: u.connections_active,
        requests_per_minute: u.requests_per_minute,
        load_average_1m: u.load_average_1m,
        pressure: level(u.pressure),
    }
}

pub(crate) fn request(r: &QuotaRequest) -> wq::Request {
    wq::Request {
        tenant: r.tenant.clone(),
        owner: r.owner.clone(),
        kind: kind(r.kind),
        amount: r.amount,
        priority: r.priority,
    }
}

pub(crate) fn tenant_state(t: &TenantState) -> wq::TenantState {
    wq::TenantState {
        used: t.used,
        limit: t.limit,
        allocations: t.allocations,
    }
}

pub(crate) fn holders(hs: &[Holder]) -> Vec<wq::Holder> {
    hs.iter()
        .map(|h| wq::Holder {
            allocation: h.allocation,
            owner: h.owner.clone(),
            amount: h.amount,
            priority: h.priority,
            age_ms: h.age_ms,
        })
        .collect()
}

pub(crate) fn decision(d: wq::Decision) -> QuotaDecision {
    match d {
        wq::Decision::Grant => QuotaDecision::Grant,
        wq::Decision::Deny(reason) => QuotaDecision::Deny(reason),
        wq::Decision::Preempt(ids) => QuotaDecision::Preempt(ids),
    }
}

pub(crate) fn waiter(w: &Waiter) -> wpr::Waiter {
    wpr::Waiter {
        tenant: w.tenant.clone(),
        priority: w.priority,
        enqueued_ms: w.enqueued_ms,
        queue: w.queue.clone(),
    }
}

pub(crate) fn cache_stats(cs: &[CacheStat]) -> Vec<wp::CacheStat> {
    cs.iter()
        .map(|c| wp::CacheStat {
            name: c.name.clone(),
            bytes: c.bytes,
            entries: c.entries,
            hit_ratio: c.hit_ratio,
        })
        .collect()
}

pub(crate) fn pool_stats(ps: &[PoolStat]) -> Vec<wp::PoolStat> {
    ps.iter()
        .map(|p| wp::PoolStat {
            name: p.name.clone(),
            size: p.size,
            idle: p.idle,
            waiting: p.waiting,
        })
        .collect()
}

pub(crate) fn actions(actions: Vec<wp::Action>) -> Vec<PressureAction> {
    actions
        .into_iter()
        .map(|a| match a {
            wp::Action::TrimCache(t) => PressureAction::TrimCache {
                cache: t.cache,
                bytes: t.bytes,
            },
            wp::Action::ShrinkPool(s) => PressureAction::ShrinkPool {
                pool: s.pool,
                idle: s.idle,
            },
            wp::Action::Throttle(t) => PressureAction::Throttle {
                tenant: t.tenant,
                requests_per_minute: t.requests_per_minute,
            },
            wp::Action::ShedBelow(priority) => PressureAction::ShedBelow { priority },
            wp::Action::PurgeAllocator => PressureAction::PurgeAllocator,
            wp::Action::Alert(message) => PressureAction::Alert { message },
        })
        .collect()
}
