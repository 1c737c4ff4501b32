//! How the host carries out a pressure policy's actions: caches trim through the registry,
//! pools shrink through the pool manager, throttles and shedding go to the resource
//! manager, the allocator is purged with `malloc_trim`, alerts are logged (the monitor
//! publishes the `Alert` event itself).

use crate::events::{Event, EventBus};
use crate::memory::{ActionError, ActionSink, CacheRegistry, OverShare};
use crate::policy::PoolStat;
use crate::pools::PoolManager;
use crate::resources::ResourceManager;
use std::sync::Arc;

/// The host's [`ActionSink`], over the managers it acts on.
pub struct HostSink {
    caches: Arc<CacheRegistry>,
    resources: ResourceManager,
    pools: PoolManager,
    events: EventBus,
}

impl std::fmt::Debug for HostSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSink").finish_non_exhaustive()
    }
}

impl HostSink {
    /// A sink over the host's managers.
    pub fn new(
        caches: Arc<CacheRegistry>,
        resources: ResourceManager,
        pools: PoolManager,
        events: EventBus,
    ) -> Self {
        HostSink {
            caches,
            resources,
            pools,
            events,
        }
    }
}

impl ActionSink for HostSink {
    fn trim_cache(&self, cache: &str, bytes: u64) -> Result<String, ActionError> {
        let freed = self.caches.trim(cache, bytes)?;
        Ok(format!("freed {freed} bytes"))
    }

    fn shrink_pool(&self, pool: &str, idle: u32) -> Result<String, ActionError> {
        let closed = self.pools.shrink(pool, idle)?;
        Ok(format!("closed {closed} idle connections of {pool}"))
    }

    fn throttle(&self, tenant: &str, requests_per_minute: u32) -> Result<String, ActionError> {
        self.resources
            .rate_limits()
            .throttle(tenant, requests_per_minute);
        Ok(format!(
            "{tenant} limited to {requests_per_minute} requests/min"
        ))
    }

    fn shed_below(&self, priority: u8) -> Result<String, ActionError> {
        self.resources.shed_below(priority);
        Ok(format!(
            "refusing new allocations below priority {priority}"
        ))
    }

    fn purge_allocator(&self) -> Result<String, ActionError> {
        let before = crate::memory::purge::rss_bytes();
        let released = crate::memory::purge::malloc_trim();
        let after = crate::memory::purge::rss_bytes();
        Ok(format!(
            "malloc_trim {}: rss {before} -> {after} bytes",
            if released {
                "released memory"
            } else {
                "released nothing"
            }
        ))
    }

    fn alert(&self, message: &str) -> Result<String, ActionError> {
        // The monitor publishes the Alert event itself; the sink only logs it.
        tracing::warn!(target: "rmhost::alert", "{message}");
        Ok("raised".into())
    }

    fn pool_stats(&self) -> Vec<PoolStat> {
        self.pools.stats()
    }

    /// Over by what a tenant holds now (memory allocations plus its caches' contents, not
    /// their declared capacity): trimming brings that back to the share and then stops,
    /// instead of draining the cache a little more on every response.
    fn over_share(&self) -> Vec<OverShare> {
        let held = self.caches.snapshot();
        let in_caches = |t: &str| held.iter().filter(|c| c.tenant == t).map(|c| c.bytes).sum();
        self.resources
            .memory_shares_holding(&in_caches)
            .into_iter()
            .filter(|s| s.over)
            .map(|s| OverShare {
                by: s.accounted_bytes - s.share_bytes,
                base_requests_per_minute: Some(
                    self.resources.rate_limits().base_limit_for(&s.tenant),
                ),
                tenant: s.tenant,
            })
            .collect()
    }

    fn relieved(&self) {
        self.resources.rate_limits().clear_throttles();
        self.resources.shed_below(0);
        self.events.publish(Event::Alert {
            message: "memory pressure back to normal: throttles and shedding lifted".into(),
        });
    }
}
