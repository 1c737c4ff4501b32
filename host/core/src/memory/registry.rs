//! The named caches of a host: accounting caches registered by remote apps (keys and sizes,
//! no values: they learn of evictions through `CacheEvicted` events) and typed in-process
//! caches attached by library users. Pressure policies see them as `CacheStat`s and trim
//! them by name; `gc` trims them all to their low watermark.

use super::cache::{Cache, CacheConfig, CacheStats};
use super::core::RemovalCause;
use crate::events::{Event, EventBus};
use crate::policy::{CacheStat, EvictionPolicy};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong with a cache operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// No cache of that name.
    #[error("no cache named {0:?}")]
    NotFound(String),
    /// The name is taken.
    #[error("a cache named {0:?} already exists")]
    AlreadyExists(String),
    /// A zero capacity or an empty name.
    #[error("invalid cache {name:?}: {reason}")]
    Invalid {
        /// Cache name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A key, value or name over its bound.
    #[error(transparent)]
    TooLong(#[from] crate::limits::TooLong),
    /// The tenant may not hold this cache: over its cache count or memory share.
    #[error("tenant {tenant:?}: {reason}")]
    OverShare {
        /// The declaring tenant.
        tenant: String,
        /// Which bound, with the numbers.
        reason: String,
    },
    /// The cache is typed (in-process) and has no string-keyed entries.
    #[error("cache {0:?} is an in-process typed cache: entries cannot be added by key")]
    NotAccounting(String),
    /// The eviction policy asked for cannot be had.
    #[error("policy: {0}")]
    Policy(#[from] crate::host::PolicyLookupError),
    /// The shared ledger could not store the cache's definition (nothing was changed).
    #[error(transparent)]
    Shared(#[from] crate::resources::ResourceError),
}

/// What the registry needs of any cache, typed or accounting.
pub trait CacheHandle: Send + Sync {
    /// Counters.
    fn stats(&self) -> CacheStats;
    /// Frees at least `bytes` through the policy; returns bytes freed.
    fn trim(&self, bytes: u64) -> u64;
    /// Trims to capacity minus headroom; returns bytes freed.
    fn trim_to_low_watermark(&self) -> u64;
    /// Swaps the policy instance (warm handoff).
    fn set_policy(&self, policy: Box<dyn EvictionPolicy>);
    /// Removes up to `max` expired entries; returns how many.
    fn purge_expired(&self, max: usize) -> usize;
}

impl<K, V> CacheHandle for Cache<K, V>
where
    K: Hash + Eq + Send + Sync,
    V: Clone + Send + Sync,
{
    fn stats(&self) -> CacheStats {
        Cache::stats(self)
    }
    fn trim(&self, bytes: u64) -> u64 {
        Cache::trim(self, bytes)
    }
    fn trim_to_low_watermark(&self) -> u64 {
        Cache::trim_to_low_watermark(self)
    }
    fn set_policy(&self, policy: Box<dyn EvictionPolicy>) {
        Cache::set_policy(self, policy)
    }
    fn purge_expired(&self, max: usize) -> usize {
        Cache::purge_expired(self, max)
    }
}

/// One cache as listed by `GET /v1/caches`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheInfo {
    /// Name.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// `accounting` (keys and sizes from a remote app) or `typed` (in-process).
    pub mode: String,
    /// Counters.
    #[serde(flatten)]
    pub stats: CacheStats,
}

/// Per-cache bytes for `rmhost snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheBytes {
    /// Name.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// Bytes held.
    pub bytes: u64,
    /// Entries held.
    pub entries: u64,
    /// Capacity.
    pub capacity_bytes: u64,
}

/// A registry-managed cache: string keys with sizes, and optionally a value (the
/// daemon's `PUT /v1/caches/{name}/entries/{key}` may carry one; the original system's accounting
/// mode carries none).
pub type AccountingCache = Cache<String, Option<Arc<str>>>;

struct Registered {
    tenant: String,
    /// Fixed at registration; kept here so quota checks need no cache lock.
    capacity: u64,
    handle: Arc<dyn CacheHandle>,
    accounting: Option<Arc<AccountingCache>>,
}

/// The host's named caches. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct CacheRegistry {
    caches: RwLock<BTreeMap<String, Registered>>,
    events: Option<EventBus>,
}

impl std::fmt::Debug for CacheRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheRegistry")
            .field("caches", &self.caches.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn cache_info(name: String, tenant: String, accounting: bool, h: &dyn CacheHandle) -> CacheInfo {
    CacheInfo {
        mode: if accounting { "accounting" } else { "typed" }.to_string(),
        name,
        tenant,
        stats: h.stats(),
    }
}

fn cause_str(c: RemovalCause) -> &'static str {
    match c {
        RemovalCause::Evicted => "evicted",
        RemovalCause::Rejected => "rejected",
        RemovalCause::Expired => "expired",
        RemovalCause::Trimmed => "trimmed",
        RemovalCause::Explicit => "explicit",
        RemovalCause::Replaced => "replaced",
    }
}

impl crate::resources::HeldElsewhere for CacheRegistry {
    /// A tenant's caches hold up to their capacity: that is what it declared.
    fn bytes(&self, tenant: &str) -> u64 {
        self.caches
            .read()
            .values()
            .filter(|r| r.tenant == tenant)
            .fold(0u64, |s, r| s.saturating_add(r.capacity))
    }
    fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .caches
            .read()
            .values()
            .map(|r| r.tenant.clone())
            .collect();
        t.sort();
        t.dedup();
        t
    }
}

impl CacheRegistry {
    /// Reclaims expired entries of every cache (at most `per_cache` each, so one huge
    /// cache cannot hold the caller for long); each goes with a `CacheEvicted` event of
    /// reason `expired`. Returns how many went.
    pub fn purge_expired(&self, per_cache: usize) -> usize {
        let handles: Vec<Arc<dyn CacheHandle>> = self
            .caches
            .read()
            .values()
            .map(|r| r.handle.clone())
            .collect();
        handles.iter().map(|h| h.purge_expired(per_cache)).sum()
    }

    /// Caches `tenant` holds.
    pub fn count_for(&self, tenant: &str) -> usize {
        self.caches
            .read()
            .values()
            .filter(|r| r.tenant == tenant)
            .count()
    }

    /// A registry that publishes `CacheEvicted` events on `events` (when given).
    pub fn new(events: Option<EventBus>) -> Self {
        CacheRegistry {
            caches: RwLock::new(BTreeMap::new()),
            events,
        }
    }

    /// Registers an accounting cache of `capacity_bytes` decided by `policy`, with the
    /// default 1% headroom.
    pub fn register_cache(
        &self,
        name: &str,
        tenant: &str,
        capacity_bytes: u64,
        policy: Box<dyn EvictionPolicy>,
    ) -> Result<Arc<AccountingCache>, CacheError> {
        self.register_with_config(name, tenant, CacheConfig::new(capacity_bytes), policy)
    }

    /// Like [`CacheRegistry::register_cache`] with every knob.
    pub fn register_with_config(
        &self,
        name: &str,
        tenant: &str,
        cfg: CacheConfig,
        policy: Box<dyn EvictionPolicy>,
    ) -> Result<Arc<AccountingCache>, CacheError> {
        validate(name, cfg.capacity_bytes)?;
        let cfg_capacity = cfg.capacity_bytes;
        let mut caches = self.caches.write();
        if caches.contains_key(name) {
            return Err(CacheError::AlreadyExists(name.to_string()));
        }
        let mut cache = Cache::new(cfg, policy);
        if let Some(bus) = self.events.clone() {
            let owner = tenant.to_string();
            // The tenant's stream names the cache as the tenant does (see the server's
            // tenant-scoped names, `TENANT/NAME`).
            let display = name
                .strip_prefix(&format!("{tenant}/"))
                .unwrap_or(name)
                .to_string();
            cache = cache.on_removal(move |key: String, _value, cause| {
                // The caller of an explicit removal already knows; remote apps learn of
                // evictions, expiries and rejections through these events.
                if cause == RemovalCause::Explicit {
                    return;
                }
                bus.publish(Event::CacheEvicted {
                    cache: display.clone(),
                    tenant: owner.clone(),
                    key,
                    reason: cause_str(cause).to_string(),
                    cause: cause.as_cause().to_string(),
                })
            });
        }
        let cache = Arc::new(cache);
        caches.insert(
            name.to_string(),
            Registered {
                tenant: tenant.to_string(),
                capacity: cfg_capacity,
                handle: cache.clone(),
                accounting: Some(cache.clone()),
            },
        );
        Ok(cache)
    }

    /// Attaches an in-process typed cache so pressure, `gc` and stats see it.
    pub fn attach(
        &self,
        name: &str,
        tenant: &str,
        handle: Arc<dyn CacheHandle>,
    ) -> Result<(), CacheError> {
        let capacity = handle.stats().capacity_bytes;
        validate(name, capacity)?;
        let mut caches = self.caches.write();
        if caches.contains_key(name) {
            return Err(CacheError::AlreadyExists(name.to_string()));
        }
        caches.insert(
            name.to_string(),
            Registered {
                tenant: tenant.to_string(),
                capacity,
                handle,
                accounting: None,
            },
        );
        Ok(())
    }

    /// Forgets a cache (its entries go with it).
    pub fn unregister(&self, name: &str) -> Result<(), CacheError> {
        self.caches
            .write()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| CacheError::NotFound(name.to_string()))
    }

    fn accounting(&self, cache: &str) -> Result<Arc<AccountingCache>, CacheError> {
        let caches = self.caches.read();
        let r = caches
            .get(cache)
            .ok_or_else(|| CacheError::NotFound(cache.to_string()))?;
        r.accounting
            .clone()
            .ok_or_else(|| CacheError::NotAccounting(cache.to_string()))
    }

    fn handle(&self, cache: &str) -> Result<Arc<dyn CacheHandle>, CacheError> {
        self.caches
            .read()
            .get(cache)
            .map(|r| r.handle.clone())
            .ok_or_else(|| CacheError::NotFound(cache.to_string()))
    }

    /// Accounts an entry of `size` bytes (the original system's `addCacheEntry`). Returns whether it
    /// is held afterwards (false: larger than the cache or not admitted by the policy).
    pub fn add_cache_entry(
        &self,
        cache: &str,
        key: String,
        size: u64,
        priority: u8,
    ) -> Result<bool, CacheError> {
        self.add_cache_entry_with_ttl(cache, key, size, priority, None)
    }

    /// Like [`CacheRegistry::add_cache_entry`] with a time to live.
    pub fn add_cache_entry_with_ttl(
        &self,
        cache: &str,
        key: String,
        size: u64,
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        self.put_cache_entry(cache, key, None, size, priority, ttl)
    }

    /// Stores an entry with an optional value; returns whether it is held afterwards.
    pub fn put_cache_entry(
        &self,
        cache: &str,
        key: String,
        value: Option<Arc<str>>,
        size: u64,
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        use crate::limits::{MAX_KEY_LEN, MAX_VALUE_LEN, check_len};
        check_len("key", &key, MAX_KEY_LEN)?;
        if let Some(v) = &value {
            check_len("value", v, MAX_VALUE_LEN)?;
        }
        Ok(self
            .accounting(cache)?
            .insert_with(key, value, size, priority, ttl))
    }

    /// Looks an entry up and returns its value: `None` when absent, `Some(None)` when held
    /// without a value.
    pub fn read_cache_entry(
        &self,
        cache: &str,
        key: &str,
    ) -> Result<Option<Option<Arc<str>>>, CacheError> {
        Ok(self.accounting(cache)?.get(key))
    }

    /// Looks an entry up (counts a hit or a miss, and the access for the policy).
    pub fn get_cache_entry(&self, cache: &str, key: &str) -> Result<bool, CacheError> {
        Ok(self.accounting(cache)?.get(key).is_some())
    }

    /// Removes an entry; returns whether it was held.
    pub fn remove_cache_entry(&self, cache: &str, key: &str) -> Result<bool, CacheError> {
        Ok(self.accounting(cache)?.remove(key).is_some())
    }

    /// Frees at least `bytes` from `name` through its policy; returns bytes freed.
    pub fn trim(&self, name: &str, bytes: u64) -> Result<u64, CacheError> {
        Ok(self.handle(name)?.trim(bytes))
    }

    /// Trims every cache to its low watermark; returns bytes freed in all.
    pub fn trim_to_low_watermark(&self) -> u64 {
        self.handles()
            .iter()
            .map(|(_, _, h)| h.trim_to_low_watermark())
            .sum()
    }

    /// Swaps a cache's policy instance, replaying its live entries into the new one.
    pub fn set_policy(
        &self,
        name: &str,
        policy: Box<dyn EvictionPolicy>,
    ) -> Result<(), CacheError> {
        self.handle(name)?.set_policy(policy);
        Ok(())
    }

    fn handles(&self) -> Vec<(String, String, Arc<dyn CacheHandle>)> {
        // Cloned out so no cache lock is taken under the registry lock.
        self.caches
            .read()
            .iter()
            .map(|(n, r)| (n.clone(), r.tenant.clone(), r.handle.clone()))
            .collect()
    }

    /// The caches as pressure policies see them.
    pub fn stats(&self) -> Vec<CacheStat> {
        self.handles()
            .into_iter()
            .map(|(name, _, h)| {
                let s = h.stats();
                CacheStat {
                    name,
                    bytes: s.bytes,
                    entries: s.entries,
                    hit_ratio: s.hit_ratio as f32,
                }
            })
            .collect()
    }

    /// Every cache with its counters.
    pub fn list(&self) -> Vec<CacheInfo> {
        // Cloned out so no cache lock is taken under the registry lock.
        let entries: Vec<(String, String, bool, Arc<dyn CacheHandle>)> = self
            .caches
            .read()
            .iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    r.tenant.clone(),
                    r.accounting.is_some(),
                    r.handle.clone(),
                )
            })
            .collect();
        entries
            .into_iter()
            .map(|(name, tenant, accounting, h)| cache_info(name, tenant, accounting, &*h))
            .collect()
    }

    /// One cache, with its counters.
    pub fn info(&self, name: &str) -> Result<CacheInfo, CacheError> {
        let (tenant, accounting, h) = self
            .caches
            .read()
            .get(name)
            .map(|r| (r.tenant.clone(), r.accounting.is_some(), r.handle.clone()))
            .ok_or_else(|| CacheError::NotFound(name.to_string()))?;
        Ok(cache_info(name.to_string(), tenant, accounting, &*h))
    }

    /// The tenant a cache belongs to (no counters are read: cheap enough for every
    /// request's access check).
    pub fn tenant_of(&self, name: &str) -> Result<String, CacheError> {
        self.caches
            .read()
            .get(name)
            .map(|r| r.tenant.clone())
            .ok_or_else(|| CacheError::NotFound(name.to_string()))
    }

    /// One cache's counters.
    pub fn cache_stats(&self, name: &str) -> Result<CacheStats, CacheError> {
        Ok(self.handle(name)?.stats())
    }

    /// Per-cache bytes, for `rmhost snapshot`.
    pub fn snapshot(&self) -> Vec<CacheBytes> {
        self.handles()
            .into_iter()
            .map(|(name, tenant, h)| {
                let s = h.stats();
                CacheBytes {
                    name,
                    tenant,
                    bytes: s.bytes,
                    entries: s.entries,
                    capacity_bytes: s.capacity_bytes,
                }
            })
            .collect()
    }

    /// Bytes held by all caches (the pressure monitor's accounted memory).
    pub fn total_bytes(&self) -> u64 {
        self.snapshot().iter().map(|c| c.bytes).sum()
    }
}

fn validate(name: &str, capacity: u64) -> Result<(), CacheError> {
    let bad = |reason: &str| {
        Err(CacheError::Invalid {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    use crate::limits::{MAX_CAPACITY_BYTES, MAX_NAME_LEN};
    // Room for a tenant-scoped name, `TENANT/NAME` (the server scopes tenants' caches).
    let max = 2 * MAX_NAME_LEN + 1;
    if name.is_empty() || name.len() > max {
        return bad(&format!("the name must be 1-{max} bytes"));
    }
    if capacity == 0 {
        return bad("capacity must be above 0 bytes");
    }
    if capacity > MAX_CAPACITY_BYTES {
        return bad(&format!(
            "capacity {capacity} is above the largest allowed, {MAX_CAPACITY_BYTES} bytes"
        ));
    }
    Ok(())
}
