//! `rmhost gc` and `rmhost snapshot`: trim caches to their low watermark and hand free heap
//! back to the OS (`malloc_trim(0)` on glibc); report accounted memory and allocator stats
//! (`mallinfo2` on glibc). Elsewhere both allocator calls are no-ops reported as such.

use super::registry::{CacheBytes, CacheRegistry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resident set size of this process, bytes, from `/proc/self/statm` (0 when unreadable).
pub fn rss_bytes() -> u64 {
    let page = page_size();
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Returns free heap to the OS; true when glibc released something.
pub fn malloc_trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own arenas.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// glibc allocator figures, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllocatorStats {
    /// Whether the figures are real (glibc) or absent.
    pub available: bool,
    /// Non-mmapped space obtained from the OS (`arena`).
    pub arena: u64,
    /// Space in mmapped regions (`hblkhd`).
    pub mmapped: u64,
    /// Space in use (`uordblks`).
    pub in_use: u64,
    /// Free space held by the allocator (`fordblks`).
    pub free: u64,
    /// Releasable top-of-heap space (`keepcost`).
    pub releasable: u64,
}

/// Reads `mallinfo2` on glibc.
pub fn allocator_stats() -> AllocatorStats {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 returns a plain struct by value.
        let m = unsafe { libc::mallinfo2() };
        AllocatorStats {
            available: true,
            arena: m.arena as u64,
            mmapped: m.hblkhd as u64,
            in_use: m.uordblks as u64,
            free: m.fordblks as u64,
            releasable: m.keepcost as u64,
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        AllocatorStats::default()
    }
}

/// What `gc` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    /// RSS before, bytes.
    pub rss_before: u64,
    /// RSS after, bytes.
    pub rss_after: u64,
    /// Bytes freed from caches (to their low watermarks).
    pub cache_bytes_freed: u64,
    /// Whether `malloc_trim` released memory.
    pub allocator_released: bool,
}

/// Trims every cache to its low watermark, then returns free heap to the OS.
pub fn gc(caches: &CacheRegistry) -> GcReport {
    let rss_before = rss_bytes();
    let cache_bytes_freed = caches.trim_to_low_watermark();
    let allocator_released = malloc_trim();
    GcReport {
        rss_before,
        rss_after: rss_bytes(),
        cache_bytes_freed,
        allocator_released,
    }
}

/// One policy instance's memory, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceMemory {
    /// Policy name (and cache or tenant it serves).
    pub name: String,
    /// Linear memory, bytes.
    pub bytes: u64,
}

/// `rmhost snapshot`: accounted memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemorySnapshot {
    /// Process RSS, bytes.
    pub rss_bytes: u64,
    /// Per cache.
    pub caches: Vec<CacheBytes>,
    /// Total bytes in caches.
    pub cache_bytes: u64,
    /// Per tenant: granted memory allocations plus its caches' bytes.
    pub tenants: BTreeMap<String, u64>,
    /// Per policy instance.
    pub policy_instances: Vec<InstanceMemory>,
    /// Allocator figures.
    pub allocator: AllocatorStats,
}

/// Builds a snapshot. `tenant_allocations` comes from the ledger (memory kind), `instances`
/// from the policy runtime; cache bytes are added to their tenants.
pub fn snapshot(
    caches: &CacheRegistry,
    tenant_allocations: &BTreeMap<String, u64>,
    instances: Vec<InstanceMemory>,
) -> MemorySnapshot {
    let per_cache = caches.snapshot();
    let mut tenants = tenant_allocations.clone();
    for c in &per_cache {
        *tenants.entry(c.tenant.clone()).or_default() += c.bytes;
    }
    MemorySnapshot {
        rss_bytes: rss_bytes(),
        cache_bytes: per_cache.iter().map(|c| c.bytes).sum(),
        caches: per_cache,
        tenants,
        policy_instances: instances,
        allocator: allocator_stats(),
    }
}
