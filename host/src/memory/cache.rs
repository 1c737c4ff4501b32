//! `Cache<K, V>`: a sharded, size-weighted in-process cache whose evictions are decided by a
//! pluggable [`EvictionPolicy`] (native or Wasm) through the WIT eviction protocol.
//!
//! # Concurrency design
//! - Storage is split into `shards` (a power of two, at most 64), each a `RwLock` over a
//!   `hashbrown::HashTable`, so readers of different keys rarely touch the same lock.
//! - The policy is one per cache, behind one mutex (`core`). Every write (insert, update,
//!   remove, expiry, trim) takes it, so inserts and removes reach the policy exactly once,
//!   in the order they happened, and capacity is checked and restored before the write
//!   returns.
//! - Reads never take the policy lock to record a hit. A hit is pushed as `(id,
//!   generation)` into its shard's small buffer (Caffeine's read buffer); the next writer,
//!   or the reader that fills a buffer, drains all buffers into the batch under the policy
//!   lock. Hits are lossy on purpose, as in Caffeine: when a buffer's lock is contended or
//!   the buffer is over its bound, the hit is dropped and counted (`dropped_hits`). Stale
//!   hits (the entry was removed, or its id reused, since) are recognised by the
//!   generation and dropped too, so a policy never sees a hit for a non-live id.
//! - With one shard and one thread the event order is exact (what `rmhost sim` relies on);
//!   with several shards, hits recorded in different shards between two writes reach the
//!   policy grouped by shard, an approximation of recency that Caffeine also makes.
//!
//! Lock order: `core` -> shard map -> shard hit buffer. Readers hold at most one of these
//! at a time, so there is no cycle.

use super::core::{CoreConfig, PolicyCore, RemovalCause, Victim};
use crate::policy::EvictionPolicy;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard, RwLock};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Hits buffered per shard before the reader drains them itself.
const READ_BUFFER: usize = 64;
/// Past this many buffered hits (the drainer is busy), new hits are dropped.
const READ_BUFFER_MAX: usize = READ_BUFFER * 4;

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
        }
    }

    /// The exact per-insert configuration `rmhost sim` uses: one shard (exact event
    /// order), no headroom.
    pub fn exact(capacity_bytes: u64) -> Self {
        CacheConfig {
            headroom_bytes: Some(0),
            shards: 1,
            ..CacheConfig::new(capacity_bytes)
        }
    }
}

/// The clock events are stamped with: real (ms since the cache was built) or manual
/// (a trace's clock in `sim`, or a test's).
#[derive(Debug, Clone)]
pub enum CacheClock {
    /// Milliseconds since this instant.
    Real(Instant),
    /// A value someone else advances.
    Manual(Arc<AtomicU64>),
}

impl CacheClock {
    fn now_ms(&self) -> u64 {
        match self {
            CacheClock::Real(start) => start.elapsed().as_millis() as u64,
            CacheClock::Manual(v) => v.load(Ordering::Relaxed),
        }
    }
}

/// A cache's counters, as `GET /v1/caches` and `rmhost report` show them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// `observe` calls made.
    pub observe_calls: u64,
    /// Nanoseconds spent inside the policy's `observe`.
    pub policy_ns: u64,
}

struct Entry<K, V> {
    key: K,
    value: V,
    hash: u64,
    id: u32,
    generation: u32,
    /// Deadline on the cache clock, ms; `u64::MAX` for none.
    expires_at: u64,
}

#[repr(align(128))] // one shard per cache-line pair: no false sharing between shards
struct Shard<K, V> {
    map: RwLock<HashTable<Entry<K, V>>>,
    hits: Mutex<Vec<u64>>,
    hit_count: AtomicU64,
    miss_count: AtomicU64,
    dropped: AtomicU64,
}

type Listener<K, V> = Arc<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// A size-weighted cache whose evictions a [`EvictionPolicy`] decides. Share it with an
/// `Arc`; every method takes `&self`.
pub struct Cache<K, V> {
    shards: Box<[Shard<K, V>]>,
    mask: u64,
    hasher: DefaultHashBuilder,
    core: Mutex<PolicyCore>,
    /// Bit i set: shard i's hit buffer may hold hits.
    dirty: AtomicU64,
    expirations: AtomicU64,
    clock: CacheClock,
    default_ttl: Option<Duration>,
    listener: Option<Listener<K, V>>,
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.shards.len())
            .field("core", &*self.core.lock())
            .finish_non_exhaustive()
    }
}

fn shard_count(requested: usize) -> usize {
    let n = if requested == 0 {
        std::thread::available_parallelism().map_or(4, |n| n.get()) * 4
    } else {
        requested
    };
    n.clamp(1, 64).next_power_of_two().min(64)
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync,
    V: Clone + Send + Sync,
{
    /// A cache with `policy` deciding evictions.
    pub fn new(cfg: CacheConfig, policy: Box<dyn EvictionPolicy>) -> Self {
        Self::with_clock(cfg, policy, CacheClock::Real(Instant::now()))
    }

    /// Like [`Cache::new`] with the event clock given.
    pub fn with_clock(
        cfg: CacheConfig,
        policy: Box<dyn EvictionPolicy>,
        clock: CacheClock,
    ) -> Self {
        let n = shard_count(cfg.shards);
        let headroom = cfg.headroom_bytes.unwrap_or(cfg.capacity_bytes / 100);
        let core = PolicyCore::new(
            policy,
            CoreConfig {
                capacity: cfg.capacity_bytes,
                headroom,
                batch_events: cfg.batch_events.max(1),
            },
            cfg.expected_entries,
        );
        let shards = (0..n)
            .map(|_| Shard {
                map: RwLock::new(HashTable::new()),
                hits: Mutex::new(Vec::with_capacity(READ_BUFFER)),
                hit_count: AtomicU64::new(0),
                miss_count: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            })
            .collect();
        Cache {
            shards,
            mask: n as u64 - 1,
            hasher: DefaultHashBuilder::default(),
            core: Mutex::new(core),
            dirty: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            clock,
            default_ttl: cfg.default_ttl,
            listener: None,
        }
    }

    /// Calls `f(key, value, cause)` for every entry that leaves other than by
    /// [`Cache::remove`] (evicted, rejected, expired, or replaced by a value that does not
    /// fit). Called after the cache's locks are released.
    pub fn on_removal(mut self, f: impl Fn(K, V, RemovalCause) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> (usize, &Shard<K, V>) {
        // The table uses the low bits; shards take the high ones so the two stay independent.
        let i = ((hash >> 58) & self.mask) as usize;
        (i, &self.shards[i])
    }

    /// The value for `key`, if live. Records a hit or a miss.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let (i, shard) = self.shard(hash);
        let found = {
            let map = shard.map.read();
            map.find(hash, |e| e.key.borrow() == key).map(|e| {
                let expired = e.expires_at != u64::MAX && self.clock.now_ms() >= e.expires_at;
                (e.id, e.generation, expired, e.value.clone())
            })
        };
        match found {
            Some((id, generation, false, value)) => {
                shard.hit_count.fetch_add(1, Ordering::Relaxed);
                self.record_hit(i, shard, id, generation);
                Some(value)
            }
            Some((id, generation, true, _)) => {
                shard.miss_count.fetch_add(1, Ordering::Relaxed);
                self.expire(hash, id, generation);
                None
            }
            None => {
                shard.miss_count.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether `key` is live, without counting a lookup or an access.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let now = self.clock.now_ms();
        self.shard(hash)
            .1
            .map
            .read()
            .find(hash, |e| e.key.borrow() == key)
            .is_some_and(|e| e.expires_at > now)
    }

    fn record_hit(&self, i: usize, shard: &Shard<K, V>, id: u32, generation: u32) {
        let Some(mut buf) = shard.hits.try_lock() else {
            shard.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if buf.len() >= READ_BUFFER_MAX {
            shard.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buf.push((id as u64) << 32 | generation as u64);
        let full = buf.len() >= READ_BUFFER;
        drop(buf);
        let bit = 1u64 << i;
        if self.dirty.load(Ordering::Relaxed) & bit == 0 {
            self.dirty.fetch_or(bit, Ordering::AcqRel);
        }
        if full {
            // Whoever holds the policy lock drains soon anyway; never wait on it in a read.
            if let Some(mut core) = self.core.try_lock() {
                self.drain_hits(&mut core);
                core.maybe_flush();
            }
        }
    }

    /// Moves buffered hits into the batch. Called under the policy lock before every write,
    /// so with one shard the policy sees accesses in their exact order.
    fn drain_hits(&self, core: &mut PolicyCore) {
        let mut dirty = self.dirty.swap(0, Ordering::AcqRel);
        if dirty == 0 {
            return;
        }
        let now = self.clock.now_ms();
        while dirty != 0 {
            let i = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            let mut buf = self.shards[i].hits.lock();
            for h in buf.drain(..) {
                core.hit((h >> 32) as u32, h as u32, now);
            }
        }
    }

    /// Inserts or replaces `key` with weight `size` bytes and priority 0. Returns whether
    /// the entry is in the cache afterwards (false: larger than the cache, or rejected by
    /// the policy's admission).
    pub fn insert(&self, key: K, value: V, size: u64) -> bool {
        self.insert_with(key, value, size, 0, None)
    }

    /// Inserts or replaces `key` with a size, a priority (0-255, higher is more important)
    /// and an optional time to live (else the config's default).
    pub fn insert_with(
        &self,
        key: K,
        value: V,
        size: u64,
        priority: u8,
        ttl: Option<Duration>,
    ) -> bool {
        let hash = self.hash(&key);
        let (_, shard) = self.shard(hash);
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        if size > core.capacity() {
            // Never admitted, as in libCacheSim; a stale smaller value must not survive.
            core.counters.rejections += 1;
            let old = self.remove_locked(&mut core, hash, |e| e.key == key, now);
            drop(core);
            if let (Some(f), Some((k, v))) = (&self.listener, old) {
                f(k, v, RemovalCause::Explicit);
            }
            return false;
        }
        self.drain_hits(&mut core);
        let expires_at = ttl
            .or(self.default_ttl)
            .map_or(u64::MAX, |t| now.saturating_add(t.as_millis() as u64));
        let mut replaced = None;
        let id = {
            let mut map = shard.map.write();
            match map.find_mut(hash, |e| e.key == key) {
                Some(e) => {
                    core.update(e.id, size, priority, now);
                    replaced = Some(std::mem::replace(&mut e.value, value));
                    e.expires_at = expires_at;
                    e.id
                }
                None => {
                    let (id, generation) = core.insert(hash, size, priority, now);
                    let entry = Entry {
                        key,
                        value,
                        hash,
                        id,
                        generation,
                        expires_at,
                    };
                    map.insert_unique(hash, entry, |e| e.hash);
                    id
                }
            }
        };
        let removed = self.settle(&mut core, now, Some(id));
        let admitted = core.slot(id).is_some_and(|s| s.hash == hash);
        drop(core);
        drop(replaced); // the old value is dropped outside every lock
        self.notify(removed);
        admitted
    }

    /// Returns the value for `key`, inserting `make()` (value, size) on a miss.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> (V, u64)) -> V {
        if let Some(v) = self.get(&key) {
            return v;
        }
        let (value, size) = make();
        self.insert(key, value.clone(), size);
        value
    }

    /// Removes `key`; returns its value if it was live.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        self.drain_hits(&mut core);
        let old = self.remove_locked(&mut core, hash, |e| e.key.borrow() == key, now);
        core.maybe_flush();
        drop(core);
        old.map(|(_, v)| v)
    }

    fn remove_locked(
        &self,
        core: &mut PolicyCore,
        hash: u64,
        eq: impl Fn(&Entry<K, V>) -> bool,
        now: u64,
    ) -> Option<(K, V)> {
        let mut map = self.shard(hash).1.map.write();
        let entry = map.find_entry(hash, eq).ok()?.remove().0;
        core.remove(entry.id, now);
        Some((entry.key, entry.value))
    }

    fn expire(&self, hash: u64, id: u32, generation: u32) {
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        self.drain_hits(&mut core);
        // Only the very entry seen expired: it may have been replaced meanwhile.
        let old = self.remove_locked(
            &mut core,
            hash,
            |e| e.id == id && e.generation == generation && e.expires_at <= now,
            now,
        );
        drop(core);
        if let Some((k, v)) = old {
            self.expirations.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = &self.listener {
                f(k, v, RemovalCause::Expired);
            }
        }
    }

    /// Restores `bytes <= capacity` after a write (asking for the overflow plus headroom),
    /// or delivers a full batch.
    fn settle(
        &self,
        core: &mut MutexGuard<'_, PolicyCore>,
        now: u64,
        inserting: Option<u32>,
    ) -> Vec<(K, V, RemovalCause)> {
        let need = core.overflow();
        if need == 0 {
            core.maybe_flush();
            return Vec::new();
        }
        let victims = core.evict(need, now, inserting);
        self.drop_victims(&victims)
    }

    fn drop_victims(&self, victims: &[Victim]) -> Vec<(K, V, RemovalCause)> {
        let mut out = Vec::with_capacity(victims.len());
        for v in victims {
            let mut map = self.shard(v.hash).1.map.write();
            if let Ok(e) = map.find_entry(v.hash, |e| e.id == v.id) {
                let e = e.remove().0;
                out.push((e.key, e.value, v.cause));
            }
        }
        out
    }

    fn notify(&self, removed: Vec<(K, V, RemovalCause)>) {
        match &self.listener {
            Some(f) => removed.into_iter().for_each(|(k, v, c)| f(k, v, c)),
            None => drop(removed),
        }
    }

    /// Frees at least `bytes` (or everything) through the policy, as a pressure
    /// `trim-cache` does: `observe(pending, bytes, max)`. Returns the bytes freed.
    pub fn trim(&self, bytes: u64) -> u64 {
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        self.drain_hits(&mut core);
        let want = bytes.min(core.bytes);
        if want == 0 {
            return 0;
        }
        let before = core.bytes;
        let victims = core.evict(want, now, None);
        let freed = before - core.bytes;
        let removed = self.drop_victims(&victims);
        drop(core);
        self.notify(removed);
        freed
    }

    /// Trims down to capacity minus headroom (the low watermark); for `gc`.
    pub fn trim_to_low_watermark(&self) -> u64 {
        let over = {
            let core = self.core.lock();
            let low = core.capacity().saturating_sub(core.headroom());
            core.bytes.saturating_sub(low)
        };
        if over == 0 { 0 } else { self.trim(over) }
    }

    /// Delivers buffered hits and pending events to the policy now.
    pub fn flush(&self) {
        let mut core = self.core.lock();
        self.drain_hits(&mut core);
        core.flush();
    }

    /// Swaps in a new policy instance, replaying the live entries into it (oldest access
    /// first) so it starts warm.
    pub fn set_policy(&self, policy: Box<dyn EvictionPolicy>) {
        let mut core = self.core.lock();
        self.drain_hits(&mut core);
        core.swap_policy(policy);
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.core.lock().bytes
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.core.lock().live
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let (mut hits, mut misses, mut dropped) = (0, 0, 0);
        for s in self.shards.iter() {
            hits += s.hit_count.load(Ordering::Relaxed);
            misses += s.miss_count.load(Ordering::Relaxed);
            dropped += s.dropped.load(Ordering::Relaxed);
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
            policy_ns: c.policy_ns,
        }
    }

    /// Checks storage against the policy-side accounting (tests, debugging): every entry's
    /// id is live with its hash, and entry count and bytes agree.
    pub fn check_consistency(&self) -> Result<(), String> {
        let core = self.core.lock();
        let mut n = 0u64;
        let mut bytes = 0u64;
        for s in self.shards.iter() {
            for e in s.map.read().iter() {
                let slot = core
                    .slot(e.id)
                    .ok_or_else(|| format!("entry with id {} has no live slot", e.id))?;
                if slot.hash != e.hash || slot.generation != e.generation {
                    return Err(format!("slot {} does not match its entry", e.id));
                }
                n += 1;
                bytes += slot.size;
            }
        }
        if n != core.live || bytes != core.bytes {
            return Err(format!(
                "storage holds {n} entries / {bytes} bytes, accounting says {} / {}",
                core.live, core.bytes
            ));
        }
        if core.bytes > core.capacity() {
            return Err(format!(
                "{} bytes over capacity {}",
                core.bytes,
                core.capacity()
            ));
        }
        Ok(())
    }
}
