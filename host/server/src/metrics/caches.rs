//! Per-cache and per-policy figures: what rmhost exists for. Caches are labelled by
//! `cache` (the registered name; a tenant's are `TENANT/NAME`) and `tenant`, both bounded
//! by `[limits] max_caches_per_tenant`; policies by `policy`, a loaded file's name.

use super::emit::{self, counters, gauges, histograms};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use rmhost_core::host::Host;
use rmhost_core::memory::{CacheInfo, CacheStats};
use rmhost_runtime::{CallHistogram, PolicyRuntime};
use std::fmt;
use std::sync::Arc;

/// Entries that left a cache (or whose value was replaced), by the cause `CacheEvicted`
/// carries: `size` (evicted for room or not admitted), `expired`, `trimmed` (pressure, `gc`
/// or a trim request), `removed` (the caller deleted it) and `replaced`.
pub fn eviction_causes(s: &CacheStats) -> [(&'static str, u64); 5] {
    s.removals.by_cause()
}

fn label(c: &CacheInfo) -> [(&'static str, &str); 2] {
    [("cache", c.name.as_str()), ("tenant", c.tenant.as_str())]
}

/// `rmhost_cache_*`.
#[derive(Debug)]
pub struct CacheCollector {
    host: Arc<Host>,
}

impl CacheCollector {
    /// Reads `host.caches` at each scrape.
    pub fn new(host: Arc<Host>) -> Self {
        CacheCollector { host }
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let caches = self.host.caches.list();
        let w = &mut enc;
        let each = |f: fn(&CacheStats) -> u64| caches.iter().map(move |c| (label(c), f(&c.stats)));
        let help = "Lookups that found a live entry.";
        counters(w, "cache_hits", help, each(|s| s.hits))?;
        let help = "Lookups that found nothing.";
        counters(w, "cache_misses", help, each(|s| s.misses))?;
        counters(
            w,
            "cache_evictions",
            "Entries that left (or whose value was replaced), by cause.",
            caches.iter().flat_map(|c| {
                eviction_causes(&c.stats).map(|(cause, n)| {
                    let [cache, tenant] = label(c);
                    ([cache, tenant, ("cause", cause)], n)
                })
            }),
        )?;
        gauges(w, "cache_bytes", "Bytes held.", each(|s| s.bytes))?;
        let help = "Capacity, bytes.";
        gauges(w, "cache_capacity_bytes", help, each(|s| s.capacity_bytes))?;
        gauges(w, "cache_entries", "Live entries.", each(|s| s.entries))?;
        gauges(
            w,
            "cache_fill_ratio",
            "Bytes held over capacity, 0-1.",
            caches.iter().map(|c| {
                let s = &c.stats;
                let fill = if s.capacity_bytes == 0 {
                    0.0
                } else {
                    s.bytes as f64 / s.capacity_bytes as f64
                };
                (label(c), fill)
            }),
        )?;
        counters(
            w,
            "cache_policy_observe_seconds",
            "Time spent inside the eviction policy's observe calls.",
            caches
                .iter()
                .map(|c| (label(c), c.stats.policy_ns as f64 / 1e9)),
        )
    }
}

/// `rmhost_policy_*`.
#[derive(Debug)]
pub struct PolicyCollector {
    runtime: PolicyRuntime,
}

impl PolicyCollector {
    /// Reads the runtime's per-policy counters at each scrape.
    pub fn new(runtime: PolicyRuntime) -> Self {
        PolicyCollector { runtime }
    }
}

fn seconds(h: &CallHistogram) -> emit::Histogram {
    emit::Histogram {
        bounds: h.bounds_ns.iter().map(|b| *b as f64 / 1e9).collect(),
        cumulative: h.cumulative_counts.clone(),
        sum: h.sum_ns as f64 / 1e9,
    }
}

impl Collector for PolicyCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let policies = self.runtime.metrics();
        let w = &mut enc;
        let label = |name: &str| [("policy", name.to_string())];
        let help = "Guest calls, faulted or not.";
        counters(
            w,
            "policy_calls",
            help,
            policies.iter().map(|p| (label(&p.name), p.calls)),
        )?;
        let help = "Guest calls that trapped, ran out of fuel or time, or answered invalidly.";
        counters(
            w,
            "policy_faults",
            help,
            policies.iter().map(|p| (label(&p.name), p.faults)),
        )?;
        counters(
            w,
            "policy_quarantines",
            "Quarantines entered, over every (policy, tenant) account.",
            policies.iter().map(|p| (label(&p.name), p.quarantines)),
        )?;
        gauges(
            w,
            "policy_quarantined_accounts",
            "Tenants (and tenant-less callers) the policy is quarantined for now.",
            policies
                .iter()
                .map(|p| (label(&p.name), p.quarantined_accounts)),
        )?;
        gauges(
            w,
            "policy_memory_bytes",
            "Largest linear memory of an instance of the current version.",
            policies.iter().map(|p| (label(&p.name), p.memory_bytes)),
        )?;
        histograms(
            w,
            "policy_call_duration_seconds",
            "Guest call time.",
            policies
                .iter()
                .map(|p| (label(&p.name), seconds(&p.latency))),
        )
    }
}
