//! The read-only views of a [`Cache`]: its counters and the check that storage and the
//! policy-side accounting agree. Kept apart from `cache.rs`, which owns the read and write
//! paths.

use super::cache::{Cache, CacheStats};
use crate::invariant::InvariantViolation;
use std::sync::atomic::Ordering;

impl<K, V> Cache<K, V> {
    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let (mut hits, mut misses, mut dropped) = (0, 0, 0);
        for s in self.shards.iter() {
            hits += s.hits.hits();
            misses += s.miss_count.load(Ordering::Relaxed);
            dropped += s.hits.dropped();
        }
        let core = self.core.lock();
        let c = core.counters;
        CacheStats {
            policy: core.policy_name().to_string(),
            capacity_bytes: core.capacity(),
            entries: core.live,
            bytes: core.bytes,
            hits,
            misses,
            hit_ratio: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            evictions: c.evictions,
            rejections: c.rejections,
            expirations: self.expirations.load(Ordering::Relaxed),
            fallback_fills: c.fallback_fills,
            ignored_victims: c.ignored_victims,
            dropped_hits: dropped + c.dropped_hits,
            replays: c.replays,
            observe_calls: c.observe_calls,
            run_victims: c.run_victims,
            policy_ns: c.policy_ns,
            removals: super::core::RemovalCounts {
                size: c.evictions - c.trimmed + c.rejections,
                expired: self.expirations.load(Ordering::Relaxed),
                trimmed: c.trimmed,
                removed: c.removed,
                replaced: c.replaced,
            },
        }
    }

    /// Checks storage against the policy-side accounting (tests, debugging): every entry's
    /// id is live with its hash, and entry count and bytes agree.
    pub fn check_consistency(&self) -> Result<(), InvariantViolation> {
        let core = self.core.lock();
        let mut n = 0u64;
        let mut bytes = 0u64;
        for s in self.shards.iter() {
            for e in s.map.read().iter() {
                let slot = core.slot(e.id).ok_or_else(|| {
                    InvariantViolation(format!("entry with id {} has no live slot", e.id))
                })?;
                if slot.hash != e.hash || slot.generation != e.generation {
                    return Err(InvariantViolation(format!(
                        "slot {} does not match its entry",
                        e.id
                    )));
                }
                n += 1;
                bytes += slot.size;
            }
        }
        if n != core.live || bytes != core.bytes {
            return Err(InvariantViolation(format!(
                "storage holds {n} entries / {bytes} bytes, accounting says {} / {}",
                core.live, core.bytes
            )));
        }
        if core.bytes > core.capacity() {
            return Err(InvariantViolation(format!(
                "{} bytes over capacity {}",
                core.bytes,
                core.capacity()
            )));
        }
        Ok(())
    }
}
