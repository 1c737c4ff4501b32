//! How the host carries out a pressure policy's actions: caches trim through the registry,
//! throttles and shedding go to the resource manager, pools shrink through a hook the pool
//! manager registers, the allocator is purged with `malloc_trim`, alerts become events.

use parking_lot::RwLock;
use rmhost_core::events::{Event, EventBus};
use rmhost_core::memory::pressure::Hook;
use rmhost_core::memory::{ActionSink, CacheRegistry};
use rmhost_core::policy::PoolStat;
use rmhost_core::resources::ResourceManager;
use std::sync::Arc;

/// Where the pools' stats come from.
pub type PoolStats = Arc<dyn Fn() -> Vec<PoolStat> + Send + Sync>;

/// The host's [`ActionSink`].
pub struct HostSink {
    caches: Arc<CacheRegistry>,
    resources: ResourceManager,
    events: EventBus,
    shrink_pool: RwLock<Option<Hook<(String, u32)>>>,
    pool_stats: RwLock<Option<PoolStats>>,
}

impl std::fmt::Debug for HostSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSink").finish_non_exhaustive()
    }
}

impl HostSink {
    /// A sink over the host's managers; pools register themselves later.
    pub fn new(caches: Arc<CacheRegistry>, resources: ResourceManager, events: EventBus) -> Self {
        HostSink {
            caches,
            resources,
            events,
            shrink_pool: RwLock::new(None),
            pool_stats: RwLock::new(None),
        }
    }

    /// The pool manager's shrink hook and stats source.
    pub fn register_pools(&self, shrink: Hook<(String, u32)>, stats: PoolStats) {
        *self.shrink_pool.write() = Some(shrink);
        *self.pool_stats.write() = Some(stats);
    }
}

impl ActionSink for HostSink {
    fn trim_cache(&self, cache: &str, bytes: u64) -> Result<String, String> {
        self.caches
            .trim(cache, bytes)
            .map(|freed| format!("freed {freed} bytes"))
            .map_err(|e| e.to_string())
    }

    fn shrink_pool(&self, pool: &str, idle: u32) -> Result<String, String> {
        match &*self.shrink_pool.read() {
            Some(h) => h((pool.to_string(), idle)),
            None => Err(format!("no pool named {pool:?} (no pools are configured)")),
        }
    }

    fn throttle(&self, tenant: &str, requests_per_minute: u32) -> Result<String, String> {
        self.resources
            .rate_limits()
            .throttle(tenant, requests_per_minute);
        Ok(format!(
            "{tenant} limited to {requests_per_minute} requests/min"
        ))
    }

    fn shed_below(&self, priority: u8) -> Result<String, String> {
        self.resources.shed_below(priority);
        Ok(format!(
            "refusing new allocations below priority {priority}"
        ))
    }

    fn purge_allocator(&self) -> Result<String, String> {
        let before = rmhost_core::memory::purge::rss_bytes();
        let released = rmhost_core::memory::purge::malloc_trim();
        let after = rmhost_core::memory::purge::rss_bytes();
        Ok(format!(
            "malloc_trim {}: rss {before} -> {after} bytes",
            if released {
                "released memory"
            } else {
                "released nothing"
            }
        ))
    }

    fn alert(&self, message: &str) -> Result<String, String> {
        // The monitor publishes the Alert event itself; the sink only logs it.
        tracing::warn!(target: "rmhost::alert", "{message}");
        Ok("raised".into())
    }

    fn pool_stats(&self) -> Vec<PoolStat> {
        self.pool_stats
            .read()
            .as_ref()
            .map(|f| f())
            .unwrap_or_default()
    }

    fn relieved(&self) {
        self.resources.rate_limits().clear_throttles();
        self.resources.shed_below(0);
        self.events.publish(Event::Alert {
            message: "memory pressure back to normal: throttles and shedding lifted".into(),
        });
    }
}
