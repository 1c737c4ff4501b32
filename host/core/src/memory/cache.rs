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
//!   generation)` into its shard's lock-free ring (`hitbuf.rs`, Caffeine's read buffer: one
//!   CAS per hit). The rings marked dirty are drained into the batch, under the policy
//!   lock, before every eviction and every flush/trim/policy swap, by a reader that sees 64
//!   hits pending, and, in a one-shard cache, before every write. Hits are lossy on
//!   purpose, as in Caffeine: when a ring is full or its CAS is contended, the hit is
//!   dropped and counted (`dropped_hits`). Stale hits (the entry was removed, or its id
//!   reused, since) are recognised by the generation and dropped too, so a policy never
//!   sees a hit for a non-live id.
//! - Event order: with one shard and one thread it is exact (what `rmhost sim` relies on).
//!   With several shards, writes reach the policy in their exact order, and hits in their
//!   order per shard, but hits may arrive after writes that followed them (at the latest
//!   with the next eviction, so victims are always chosen with every hit known): the
//!   approximation of recency Caffeine's read buffer makes too. Writes no longer pay a
//!   drain of every shard's buffer (it was most of a miss's cost with 8+ shards).
//! - Event stamps come from the coarse monotonic clock (`crate::clock`, a few ms of
//!   resolution, also for TTLs), not `Instant::now`; victims are removed from storage with
//!   one write lock per shard, not per victim; free ids come from a bitmap (`ids.rs`).
//!
//! Lock order: `core` -> shard map. Readers hold at most one of these at a time (the rings
//! take no lock), so there is no cycle.

pub use super::cache_config::{CacheConfig, CacheStats};
use super::core::{CoreConfig, PolicyCore, RemovalCause, Victim};
use super::hitbuf::{DRAIN_AT, HitRing};
use crate::clock::Clock;
use crate::policy::EvictionPolicy;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard, RwLock};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(super) struct Entry<K, V> {
    key: K,
    value: V,
    pub(super) hash: u64,
    pub(super) id: u32,
    pub(super) generation: u32,
    /// Deadline on the cache clock, ms; `u64::MAX` for none.
    expires_at: u64,
}

#[repr(align(128))] // one shard per cache-line pair: no false sharing between shards
pub(super) struct Shard<K, V> {
    pub(super) map: RwLock<HashTable<Entry<K, V>>>,
    /// Buffered hits; its counters are the shard's hit count.
    pub(super) hits: HitRing,
    pub(super) miss_count: AtomicU64,
}

type Listener<K, V> = Arc<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// A size-weighted cache whose evictions a [`EvictionPolicy`] decides. Share it with an
/// `Arc`; every method takes `&self`.
pub struct Cache<K, V> {
    pub(super) shards: Box<[Shard<K, V>]>,
    mask: u64,
    /// Seeded per cache (or fixed by the config): its hash of a key is also the key's
    /// fingerprint in the policy's events.
    hasher: SeedableRandomState,
    pub(super) core: Mutex<PolicyCore>,
    /// Bit i set: shard i's hit buffer may hold hits.
    dirty: AtomicU64,
    pub(super) expirations: AtomicU64,
    clock: Clock,
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
        Self::with_clock(cfg, policy, Clock::real())
    }

    /// Like [`Cache::new`] with the event clock given.
    pub fn with_clock(cfg: CacheConfig, policy: Box<dyn EvictionPolicy>, clock: Clock) -> Self {
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
                hits: HitRing::default(),
                miss_count: AtomicU64::new(0),
            })
            .collect();
        Cache {
            shards,
            mask: n as u64 - 1,
            hasher: match cfg.hash_seed {
                Some(seed) => {
                    SeedableRandomState::with_seed(seed, foldhash::SharedSeed::global_fixed())
                }
                None => SeedableRandomState::random(),
            },
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

    #[inline]
    fn record_hit(&self, i: usize, shard: &Shard<K, V>, id: u32, generation: u32) {
        let Some(pending) = shard.hits.record((id as u64) << 32 | generation as u64) else {
            return; // dropped (full or contended) and counted
        };
        let bit = 1u64 << i;
        // SeqCst pairs with the drainer's: either it sees this hit, or we see its cleared
        // bit and set it again (see `drain_hits`).
        if self.dirty.load(Ordering::SeqCst) & bit == 0 {
            self.dirty.fetch_or(bit, Ordering::SeqCst);
        }
        if pending >= DRAIN_AT {
            // Whoever holds the policy lock drains soon anyway; never wait on it in a read.
            if let Some(mut core) = self.core.try_lock() {
                let now = self.clock.now_ms();
                self.drain_hits(&mut core, now);
                core.maybe_flush();
            }
        }
    }

    /// Moves buffered hits into the batch (under the policy lock). A ring whose last
    /// writer has not finished its slot keeps its dirty bit for the next drain; SeqCst on
    /// both sides means a reader either sees its bit cleared (and sets it) or its hit is
    /// seen here.
    fn drain_hits(&self, core: &mut PolicyCore, now: u64) {
        if self.dirty.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut dirty = self.dirty.swap(0, Ordering::SeqCst);
        while dirty != 0 {
            let i = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            let more = self.shards[i]
                .hits
                .drain(|h| core.hit((h >> 32) as u32, h as u32, now));
            if more {
                self.dirty.fetch_or(1 << i, Ordering::SeqCst);
            }
        }
    }

    /// Before a write: with one shard, drain every time, so the policy sees accesses in
    /// their exact order (`rmhost sim`); with several, hits are ordered per shard only
    /// anyway, so they wait for a full ring or the next eviction, as Caffeine's read
    /// buffer waits for its maintenance (and writes stop paying for the drain).
    #[inline]
    fn drain_before_write(&self, core: &mut PolicyCore, now: u64) {
        if self.mask == 0 {
            self.drain_hits(core, now);
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
            core.counters.replaced += u64::from(old.is_some());
            drop(core);
            if let (Some(f), Some((k, v))) = (&self.listener, old) {
                f(k, v, RemovalCause::Replaced);
            }
            return false;
        }
        self.drain_before_write(&mut core, now);
        let expires_at = ttl
            .or(self.default_ttl)
            .map_or(u64::MAX, |t| now.saturating_add(t.as_millis() as u64));
        let mut replaced = None;
        let id = {
            let mut map = shard.map.write();
            match map.find_mut(hash, |e| e.key == key) {
                Some(e) => {
                    core.update(e.id, size, priority, now);
                    core.counters.replaced += 1;
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
        self.drain_before_write(&mut core, now);
        let old = self.remove_locked(&mut core, hash, |e| e.key.borrow() == key, now);
        core.counters.removed += u64::from(old.is_some());
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

    /// Removes up to `max` entries whose time to live has passed (each with an `Expired`
    /// removal), so expired entries free their bytes without being read again. Returns
    /// how many went. Scans the shards under read locks; the host calls it periodically.
    pub fn purge_expired(&self, max: usize) -> usize {
        let now = self.clock.now_ms();
        let mut due = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.map.read();
            for e in map.iter() {
                if due.len() >= max {
                    break;
                }
                if e.expires_at != u64::MAX && now >= e.expires_at {
                    due.push((e.hash, e.id, e.generation));
                }
            }
        }
        let before = self.expirations.load(Ordering::Relaxed);
        for (hash, id, generation) in due {
            self.expire(hash, id, generation);
        }
        (self.expirations.load(Ordering::Relaxed) - before) as usize
    }

    fn expire(&self, hash: u64, id: u32, generation: u32) {
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        self.drain_before_write(&mut core, now);
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
        // The policy chooses with every buffered hit delivered.
        self.drain_hits(core, now);
        let victims = core.evict(need, now, inserting, RemovalCause::Evicted);
        self.drop_victims(&victims)
    }

    /// Drops the victims from storage, taking each shard's write lock once.
    fn drop_victims(&self, victims: &[Victim]) -> Vec<(K, V, RemovalCause)> {
        let mut out = Vec::with_capacity(victims.len());
        let shard_of: Vec<u8> = victims.iter().map(|v| self.shard(v.hash).0 as u8).collect();
        let mut todo = shard_of.iter().fold(0u64, |m, &i| m | 1 << i);
        while todo != 0 {
            let i = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            let mut map = self.shards[i].map.write();
            for (v, _) in victims
                .iter()
                .zip(&shard_of)
                .filter(|(_, s)| **s as usize == i)
            {
                if let Ok(e) = map.find_entry(v.hash, |e| e.id == v.id) {
                    let e = e.remove().0;
                    out.push((e.key, e.value, v.cause));
                }
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
        self.drain_hits(&mut core, now);
        let want = bytes.min(core.bytes);
        if want == 0 {
            return 0;
        }
        let before = core.bytes;
        let victims = core.evict(want, now, None, RemovalCause::Trimmed);
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
        let now = self.clock.now_ms();
        self.drain_hits(&mut core, now);
        core.flush();
    }

    /// Swaps in a new policy instance, replaying the live entries into it (oldest access
    /// first) so it starts warm.
    pub fn set_policy(&self, policy: Box<dyn EvictionPolicy>) {
        let mut core = self.core.lock();
        let now = self.clock.now_ms();
        self.drain_hits(&mut core, now);
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
}
