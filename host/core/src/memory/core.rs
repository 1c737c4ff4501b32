//! The policy side of a cache: dense ids, the packed event batch, byte accounting, victim
//! validation and the LRU fallback. Storage (keys and values) lives in `cache.rs`; this
//! half is not generic, so the one piece of code that speaks the WIT eviction protocol is
//! shared by every `Cache<K, V>`, the accounting caches and `rmhost sim`.
//!
//! Everything here runs under the cache's policy lock. Readers never take that lock to
//! record a hit: they push `(id, generation)` into a per-shard buffer, and the next writer
//! drains the buffers here, dropping hits whose slot was freed or reused since (the
//! generation says so), so a policy never sees a hit for an id that is not live.

use super::ids::FreeIds;
use super::victim_run::{RUN_MAX, VictimRun};
use crate::policy::{EVENT_WORDS, EventKind, EvictionPolicy, PackedEvent, encode_event};
use std::time::Instant;

/// One dense id's bookkeeping.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub live: bool,
    /// Bumped on every insert into this slot (never 0: a packed hit is never 0), so stale
    /// buffered hits are recognised.
    pub generation: u32,
    pub size: u64,
    pub priority: u8,
    /// The storage key's hash: with the id it finds the entry in its shard.
    pub hash: u64,
    /// Logical time of the last insert/hit/update delivered, for the fallback and replay.
    pub last_access: u64,
    /// In the current victim run (`victim_run.rs`): an event on it drops the run.
    pub in_run: bool,
}

/// Why an entry left, as reported to eviction listeners and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalCause {
    /// Chosen by the policy (or the fallback) to make room.
    Evicted,
    /// Returned by the policy in the batch that inserted it: not admitted.
    Rejected,
    /// Its time to live passed.
    Expired,
    /// Chosen by the policy when the cache was trimmed (memory pressure, `gc`, a trim
    /// request), not to make room for an insert.
    Trimmed,
    /// Removed by the caller.
    Explicit,
    /// Replaced by a value larger than the whole cache, so the key is gone. (A value
    /// replaced in place is counted as `replaced` in [`RemovalCounts`] but reported to no
    /// listener: its key stays.)
    Replaced,
}

impl RemovalCause {
    /// The cause as `CacheEvicted` events and `/metrics` name it: `size` (evicted or not
    /// admitted, to respect the size bound), `expired`, `trimmed`, `removed` or `replaced`.
    pub fn as_cause(self) -> &'static str {
        match self {
            RemovalCause::Evicted | RemovalCause::Rejected => "size",
            RemovalCause::Expired => "expired",
            RemovalCause::Trimmed => "trimmed",
            RemovalCause::Explicit => "removed",
            RemovalCause::Replaced => "replaced",
        }
    }
}

/// Entries that left a cache (or, for `replaced`, whose value was replaced), by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemovalCounts {
    /// Evicted or not admitted, to respect the size bound.
    pub size: u64,
    /// Their time to live passed.
    pub expired: u64,
    /// Evicted by a trim (pressure, `gc`, a trim request).
    pub trimmed: u64,
    /// Removed by the caller.
    pub removed: u64,
    /// Values replaced by an insert of the same key.
    pub replaced: u64,
}

impl RemovalCounts {
    /// `(cause, count)` pairs in a fixed order, named as [`RemovalCause::as_cause`] does.
    pub fn by_cause(&self) -> [(&'static str, u64); 5] {
        [
            ("size", self.size),
            ("expired", self.expired),
            ("trimmed", self.trimmed),
            ("removed", self.removed),
            ("replaced", self.replaced),
        ]
    }
}

/// A victim the storage side must drop (its slot is already freed here).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Victim {
    pub id: u32,
    pub hash: u64,
    pub cause: RemovalCause,
}

/// Counters kept under the policy lock (hits and misses are atomics in the cache).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CoreCounters {
    pub evictions: u64,
    pub rejections: u64,
    pub fallback_fills: u64,
    pub ignored_victims: u64,
    pub replays: u64,
    pub observe_calls: u64,
    pub policy_ns: u64,
    pub dropped_hits: u64,
    /// Victims taken from a victim run (no call of their own); also in `evictions`.
    pub run_victims: u64,
    /// Victims of trims (also counted in `evictions`).
    pub trimmed: u64,
    /// Entries removed by the caller.
    pub removed: u64,
    /// Values replaced by an insert of the same key.
    pub replaced: u64,
}

/// Tunables for the protocol side.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreConfig {
    pub capacity: u64,
    /// Extra bytes freed beyond the overflow (the low watermark).
    pub headroom: u64,
    /// Events per batch before a flush without eviction need.
    pub batch_events: usize,
}

pub(crate) struct PolicyCore {
    policy: Box<dyn EvictionPolicy>,
    cfg: CoreConfig,
    slots: Vec<Slot>,
    free: FreeIds,
    pending: Vec<u64>,
    /// Logical clock for `last_access` (one tick per access).
    tick: u64,
    pub bytes: u64,
    pub live: u64,
    pub counters: CoreCounters,
    /// The policy's next victims, when it offers runs.
    run: VictimRun,
}

impl std::fmt::Debug for PolicyCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCore")
            .field("policy", &self.policy.name())
            .field("bytes", &self.bytes)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl PolicyCore {
    pub fn new(mut policy: Box<dyn EvictionPolicy>, cfg: CoreConfig, expected: u32) -> Self {
        policy.configure(cfg.capacity, expected);
        PolicyCore {
            policy,
            cfg,
            // A hint, not a promise: never preallocate more than a million slots for it.
            slots: Vec::with_capacity(expected.min(1 << 20) as usize),
            free: FreeIds::default(),
            pending: Vec::with_capacity((cfg.batch_events + 1) * EVENT_WORDS),
            tick: 0,
            bytes: 0,
            live: 0,
            counters: CoreCounters::default(),
            run: VictimRun::default(),
        }
    }

    pub fn policy_name(&self) -> &str {
        self.policy.name()
    }

    pub fn capacity(&self) -> u64 {
        self.cfg.capacity
    }

    pub fn headroom(&self) -> u64 {
        self.cfg.headroom
    }

    pub fn slot(&self, id: u32) -> Option<&Slot> {
        self.slots.get(id as usize).filter(|s| s.live)
    }

    fn push(&mut self, id: u32, kind: EventKind, now_ms: u64) {
        let s = &self.slots[id as usize];
        encode_event(
            &mut self.pending,
            &PackedEvent {
                id: id as u64,
                size: s.size,
                at_ms: now_ms,
                kind,
                priority: s.priority,
                // The storage hash is a keyed hash of the key, seeded per cache
                // (`CacheConfig::hash_seed`): exactly what 0.2's fingerprint promises.
                fingerprint: s.hash,
            },
        );
    }

    /// Allocates the smallest free id, records the insert and accounts its bytes. The
    /// caller must then call [`PolicyCore::make_room`] before releasing the policy lock.
    pub fn insert(&mut self, hash: u64, size: u64, priority: u8, now_ms: u64) -> (u32, u32) {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        self.tick += 1;
        let s = &mut self.slots[id as usize];
        s.live = true;
        s.generation = s.generation.wrapping_add(1).max(1);
        s.size = size;
        s.priority = priority;
        s.hash = hash;
        s.last_access = self.tick;
        let generation = s.generation;
        // Sizes are at most the capacity (<= MAX_CAPACITY_BYTES), so this cannot wrap;
        // saturate anyway so a bug shows as a full cache, never as an empty one.
        self.bytes = self.bytes.saturating_add(size);
        self.live += 1;
        self.push(id, EventKind::Insert, now_ms);
        (id, generation)
    }

    /// A live entry's size or priority changed (counts as an access).
    pub fn update(&mut self, id: u32, size: u64, priority: u8, now_ms: u64) {
        self.tick += 1;
        self.touch_run(id);
        let s = &mut self.slots[id as usize];
        self.bytes = self.bytes.saturating_sub(s.size).saturating_add(size);
        s.size = size;
        s.priority = priority;
        s.last_access = self.tick;
        self.push(id, EventKind::Update, now_ms);
    }

    /// A buffered hit; dropped when the slot was freed or reused since it was recorded.
    pub fn hit(&mut self, id: u32, generation: u32, now_ms: u64) {
        match self.slots.get(id as usize) {
            Some(s) if s.live && s.generation == generation => {
                self.touch_run(id);
                self.tick += 1;
                self.slots[id as usize].last_access = self.tick;
                self.push(id, EventKind::Hit, now_ms);
            }
            _ => self.counters.dropped_hits += 1,
        }
    }

    /// Frees a live id (explicit remove or expiry) and records the remove event.
    pub fn remove(&mut self, id: u32, now_ms: u64) -> u64 {
        let size = self.slots[id as usize].size;
        self.push(id, EventKind::Remove, now_ms);
        self.free_slot(id);
        size
    }

    fn free_slot(&mut self, id: u32) {
        self.touch_run(id);
        let s = &mut self.slots[id as usize];
        debug_assert!(s.live);
        s.live = false;
        self.bytes = self.bytes.saturating_sub(s.size);
        self.live -= 1;
        self.free.push(id);
    }

    /// Delivers the batch without asking for victims once it is full.
    pub fn maybe_flush(&mut self) {
        if self.pending.len() >= self.cfg.batch_events * EVENT_WORDS {
            self.flush();
        }
    }

    /// Delivers every pending event now (no victims asked).
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // No bytes asked, so any answer is meaningless and dropped.
        let _ = self.call(0, 0);
        if self.policy.needs_replay() {
            self.replay(0, 0);
        }
    }

    fn call(&mut self, bytes: u64, max_count: u32) -> Vec<u64> {
        let start = Instant::now();
        let answer = self.policy.observe(&self.pending, bytes, max_count);
        self.counters.policy_ns += start.elapsed().as_nanos() as u64;
        self.counters.observe_calls += 1;
        self.pending.clear();
        answer
    }

    /// Rebuilt or swapped instance: replay the live entries as inserts, oldest access
    /// first, and ask again.
    fn replay(&mut self, bytes: u64, max_count: u32) -> Vec<u64> {
        self.counters.replays += 1;
        self.run.clear(&mut self.slots);
        let mut ids: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].live)
            .collect();
        ids.sort_unstable_by_key(|&i| self.slots[i as usize].last_access);
        // `call` just cleared the batch, and the live set already reflects every event the
        // lost instance missed, so the replay alone rebuilds its state.
        for id in ids {
            self.push(id, EventKind::Insert, 0);
        }
        self.call(bytes, max_count)
    }

    /// Frees at least `need` bytes through the policy: delivers the pending events in the
    /// same call, validates the answer, and fills any shortfall from the least recently
    /// accessed live entries. Returns the entries the storage must drop.
    ///
    /// `inserting` is the id of the insert in progress, if any: naming it is a rejection
    /// (counted as such). Other ids of the batch were inserts that already returned, so
    /// dropping them is an eviction in the caller's eyes even though the contract allows
    /// it as a rejection.
    pub fn evict(
        &mut self,
        need: u64,
        now_ms: u64,
        inserting: Option<u32>,
        cause: RemovalCause,
    ) -> Vec<Victim> {
        let mut victims = Vec::new();
        let from_run = self.evict_from_runs(need, now_ms, inserting, cause, &mut victims);
        if from_run >= need {
            return victims;
        }
        let need = need - from_run;
        let max_count = u32::try_from(self.live).unwrap_or(u32::MAX);
        // A run ask may have left the policy wanting a replay: that comes first.
        let mut answer = if self.policy.needs_replay() {
            self.replay(need, max_count)
        } else {
            self.call(need, max_count)
        };
        if self.policy.needs_replay() {
            answer = self.replay(need, max_count);
            if self.policy.needs_replay() {
                answer.clear(); // still broken: the fallback decides
            }
        }
        victims.reserve(answer.len());
        let mut freed = 0u64;
        for &raw in answer.iter().take(max_count as usize) {
            let Ok(id) = u32::try_from(raw) else {
                self.counters.ignored_victims += 1;
                continue;
            };
            let Some(s) = self.slot(id).copied() else {
                self.counters.ignored_victims += 1; // unknown, or named twice
                continue;
            };
            freed += s.size;
            self.take_victim(id, s.hash, inserting, cause, now_ms, &mut victims);
        }
        if freed < need {
            self.fallback(need - freed, now_ms, cause, &mut victims);
        }
        victims
    }

    /// An event on `id`: if it is in the victim run, the run is no longer the policy's.
    #[inline]
    fn touch_run(&mut self, id: u32) {
        if self.slots[id as usize].in_run {
            self.run.clear(&mut self.slots);
        }
    }

    /// Takes victims from the run (asking the policy for a new one when it is used up)
    /// until `need` bytes are freed. Returns the bytes freed; less than `need` when the
    /// policy offers no runs, answered nothing usable, or wants a replay: the ordinary path
    /// then frees the rest.
    fn evict_from_runs(
        &mut self,
        need: u64,
        now_ms: u64,
        inserting: Option<u32>,
        cause: RemovalCause,
        victims: &mut Vec<Victim>,
    ) -> u64 {
        let mut freed = 0u64;
        loop {
            while freed < need {
                let Some(id) = self.run.pop(&mut self.slots) else {
                    break;
                };
                // Live: any event that freed a run entry dropped the run.
                let s = self.slots[id as usize];
                freed = freed.saturating_add(s.size);
                self.counters.run_victims += 1;
                self.take_victim(id, s.hash, inserting, cause, now_ms, victims);
            }
            if freed >= need || self.live == 0 {
                return freed;
            }
            // At least what the rest of this eviction likely needs (at the average entry
            // size), so a headroom-sized eviction is one call, not several.
            let likely = (need - freed).div_ceil((self.bytes / self.live).max(1)) + 1;
            let max = u32::try_from(likely)
                .unwrap_or(u32::MAX)
                .max(RUN_MAX)
                .min(u32::try_from(self.live).unwrap_or(u32::MAX));
            let start = Instant::now();
            let Some(answer) = self.policy.next_victims(&self.pending, max) else {
                return freed; // no runs here: `pending` was not delivered
            };
            self.counters.policy_ns += start.elapsed().as_nanos() as u64;
            self.counters.observe_calls += 1;
            self.pending.clear();
            if self.policy.needs_replay() {
                return freed;
            }
            let mut added = 0usize;
            for &raw in answer.iter().take(max as usize) {
                match u32::try_from(raw) {
                    Ok(id) if self.run.push(&mut self.slots, id) => added += 1,
                    _ => self.counters.ignored_victims += 1, // unknown, freed or named twice
                }
            }
            if added == 0 {
                return freed;
            }
        }
    }

    /// Frees victim `id` (live) and records it: a rejection when it is the entry being
    /// inserted, else an eviction for `cause`.
    fn take_victim(
        &mut self,
        id: u32,
        hash: u64,
        inserting: Option<u32>,
        cause: RemovalCause,
        now_ms: u64,
        victims: &mut Vec<Victim>,
    ) {
        let cause = if Some(id) == inserting {
            self.counters.rejections += 1;
            RemovalCause::Rejected
        } else {
            self.counters.evictions += 1;
            self.counters.trimmed += u64::from(cause == RemovalCause::Trimmed);
            cause
        };
        self.push(id, EventKind::Remove, now_ms);
        self.free_slot(id);
        victims.push(Victim { id, hash, cause });
    }

    /// The native LRU fallback: the least recently accessed live entries, by the logical
    /// clock the core keeps anyway. A scan plus a partial sort, O(live); it only runs when a
    /// policy answers short (a fault or a buggy policy), so the hot path pays nothing for it
    /// beyond one u64 store per event.
    fn fallback(
        &mut self,
        mut need: u64,
        now_ms: u64,
        cause: RemovalCause,
        victims: &mut Vec<Victim>,
    ) {
        let mut cand: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (s.last_access, i as u32))
            .collect();
        cand.sort_unstable();
        for (_, id) in cand {
            if need == 0 {
                break;
            }
            let s = self.slots[id as usize];
            need = need.saturating_sub(s.size);
            self.counters.fallback_fills += 1;
            self.counters.evictions += 1;
            self.counters.trimmed += u64::from(cause == RemovalCause::Trimmed);
            self.push(id, EventKind::Remove, now_ms);
            self.free_slot(id);
            victims.push(Victim {
                id,
                hash: s.hash,
                cause,
            });
        }
    }

    /// Bytes to ask for when `bytes` exceed capacity: the overflow plus headroom, capped at
    /// what is held. `extra` lets trims ask for more.
    pub fn overflow(&self) -> u64 {
        if self.bytes <= self.cfg.capacity {
            0
        } else {
            (self.bytes - self.cfg.capacity + self.cfg.headroom).min(self.bytes)
        }
    }

    /// Warm handoff: the new instance gets the live entries as inserts, oldest access
    /// first, in its first batch. Events pending for the old instance are dropped: the
    /// replay already reflects them.
    pub fn swap_policy(&mut self, mut policy: Box<dyn EvictionPolicy>) {
        policy.configure(
            self.cfg.capacity,
            u32::try_from(self.live).unwrap_or(u32::MAX),
        );
        self.policy = policy;
        self.run.clear(&mut self.slots);
        self.pending.clear();
        for id in self.ids_oldest_first() {
            self.push(id, EventKind::Insert, 0);
        }
        self.counters.replays += 1;
    }

    /// Live ids, least recently accessed first (snapshots, tests).
    pub fn ids_oldest_first(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].live)
            .collect();
        ids.sort_unstable_by_key(|&i| self.slots[i as usize].last_access);
        ids
    }
}
