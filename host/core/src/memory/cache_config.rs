//! A cache's configuration and counters (the plain types of `cache.rs`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The hash seed of [`CacheConfig::exact`] (any fixed value would do).
pub const SIM_HASH_SEED: u64 = 0x5eed_0fc0_ffee;

/// How a cache is sized and batched.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The most bytes the cache holds once an insert returns.
    pub capacity_bytes: u64,
    /// Extra bytes freed past the overflow when evicting (the low watermark); `None` gives
    /// the default, 1% of capacity. `Some(0)` evicts exactly per insert (`rmhost sim`).
    pub headroom_bytes: Option<u64>,
    /// Storage shards; rounded up to a power of two, at most 64. `0` picks 4 per core.
    pub shards: usize,
    /// Events per batch before the batch is delivered even without eviction need.
    pub batch_events: usize,
    /// Time to live for entries inserted without one; `None` keeps them until evicted.
    pub default_ttl: Option<Duration>,
    /// A rough entry count for `configure` (0 when unknown).
    pub expected_entries: u32,
    /// Seed of the key hash, which is also the key fingerprint the eviction policy sees
    /// (`rmhost:policy@0.2.0`). `None` (the default) draws a random seed per cache, so a
    /// policy learns nothing about keys across caches; `rmhost sim` fixes it, so its runs
    /// are reproducible.
    pub hash_seed: Option<u64>,
}

impl CacheConfig {
    /// A config with defaults around `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        CacheConfig {
            capacity_bytes,
            headroom_bytes: None,
            shards: 0,
            batch_events: 256,
            default_ttl: None,
            expected_entries: 0,
            hash_seed: None,
        }
    }

    /// The exact per-insert configuration `rmhost sim` uses: one shard (exact event
    /// order), no headroom, a fixed hash seed (reproducible fingerprints).
    pub fn exact(capacity_bytes: u64) -> Self {
        CacheConfig {
            headroom_bytes: Some(0),
            shards: 1,
            hash_seed: Some(SIM_HASH_SEED),
            ..CacheConfig::new(capacity_bytes)
        }
    }
}

/// A cache's counters, as `GET /v1/caches` and `rmhost report` show them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheStats {
    /// The deciding policy's name.
    pub policy: String,
    /// Capacity, bytes.
    pub capacity_bytes: u64,
    /// Live entries.
    pub entries: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// hits / (hits + misses), 0 when unused.
    pub hit_ratio: f64,
    /// Entries evicted to make room (including fallback fills).
    pub evictions: u64,
    /// Entries the policy refused to admit (victim in the batch that inserted them).
    pub rejections: u64,
    /// Entries dropped because their TTL passed.
    pub expirations: u64,
    /// Victims the native LRU fallback had to supply because the policy answered short.
    pub fallback_fills: u64,
    /// Victim ids the policy named that were unknown, not live or repeated.
    pub ignored_victims: u64,
    /// Hit events dropped (contended or over-full read buffers, or stale).
    pub dropped_hits: u64,
    /// Times the live entries were replayed to a rebuilt or new policy instance.
    pub replays: u64,
    /// Calls into the policy (`observe`, and `next-victims` for victim runs).
    pub observe_calls: u64,
    /// Victims taken from a victim run, without a call of their own (also in `evictions`).
    #[serde(default)]
    pub run_victims: u64,
    /// Nanoseconds spent inside the policy's `observe`.
    pub policy_ns: u64,
    /// Entries that left, by cause (`/metrics` shows them per cache and cause).
    #[serde(default)]
    pub removals: super::core::RemovalCounts,
}
