//! Sample inputs for guest calls made outside any traffic: the smoke call before a version
//! is swapped in, and the timed calls of `policy check`. Call `i` varies the tenant, the
//! priority and the usage, so repeated calls are not all the same.

use rmhost_core::policy::{CacheStat, PoolStat, QuotaRequest, ResourceKind, TenantState, Waiter};

/// A quota request and the tenant's state for call `i`.
pub(crate) fn quota(i: u32) -> (QuotaRequest, TenantState) {
    let req = QuotaRequest {
        tenant: format!("t{}", i % 8),
        owner: "rmhost".into(),
        kind: ResourceKind::Memory,
        amount: 10,
        priority: (i % 4) as u8,
    };
    let state = TenantState {
        used: u64::from(i) * 10,
        limit: Some(100_000),
        allocations: i,
    };
    (req, state)
}

/// A waiter for call `i`.
pub(crate) fn waiter(i: u32) -> Waiter {
    Waiter {
        tenant: format!("t{}", i % 8),
        priority: (i % 4) as u8,
        enqueued_ms: u64::from(i),
        queue: "sample".into(),
    }
}

/// One cache and one pool, as a pressure policy sees them.
pub(crate) fn standing() -> ([CacheStat; 1], [PoolStat; 1]) {
    (
        [CacheStat {
            name: "sample".into(),
            bytes: 1000,
            entries: 10,
            hit_ratio: 0.5,
        }],
        [PoolStat {
            name: "sample".into(),
            size: 4,
            idle: 2,
            waiting: 0,
        }],
    )
}
