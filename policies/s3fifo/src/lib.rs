//! S3-FIFO eviction (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP'23), byte-based, over the host's dense ids.
//!
//! - A **small** FIFO (10% of the capacity in bytes) takes new entries; a **main** FIFO the
//!   rest; a **ghost** FIFO remembers entries recently evicted from small (as many bytes
//!   as main holds).
//! - Each entry has a 2-bit frequency: a hit or update adds one, capped at 3.
//! - Eviction takes from small while small holds at least its share (or main is empty),
//!   else from main (the paper's Algorithm 1). From small's tail: an entry with
//!   `freq >= move_to_main_threshold` moves to main's head with its frequency reset (as in
//!   libCacheSim); otherwise it is the victim and goes to the ghost. From main's tail: an
//!   entry with `freq > 0` is reinserted at the head with `freq - 1`; otherwise it is the
//!   victim. An insert that hits the ghost goes straight to main.
//!
//! **Move threshold.** The paper's text moves an entry that was "accessed at least once"
//! while in small (`freq >= 1`); libCacheSim's current `S3FIFO.c` defaults to
//! `move-to-main-threshold=2` (`freq >= 2`). This crate uses the paper's `1` by default;
//! the setting `move_to_main_threshold` (1-3) selects libCacheSim's behaviour.
//!
//! **Victims and removes.** The host asks for victims, evicts them, and only then sends
//! their remove events (next batch). A victim therefore leaves its queue when chosen (and
//! enters the ghost if it came from small) and is kept as *pending* until its remove
//! arrives, so it is never answered twice. Should the host keep one after all (it is hit
//! or updated again), it is readmitted at main's head.
//!
//! **Limitation: the ghost has no stable key.** The contract gives entries only dense ids,
//! which the host reuses (smallest free first) for unrelated keys, and no key hash. The
//! ghost therefore remembers `(id, size)` pairs: an insert counts as a ghost hit only when
//! its id *and* size match a ghost entry, and any insert of a ghosted id drops that entry
//! (the id now names a new key). Because freed ids are reused at once, such a match is
//! often a different key of the same size (always so in unit-size simulations), which
//! sends a new entry to main instead of small. Set `ghost = "off"` to disable the ghost;
//! a key hash in the event encoding would be needed for a faithful one.
//!
//! Settings (`[policies.NAME.settings]`): `move_to_main_threshold` (default 1),
//! `small_percent` (default 10), `ghost` (`on`/`off`, default on). When `configure` gives
//! no capacity, the peak of live bytes seen stands in for it.

use rmhost_policy::{Eviction, LogLevel, log, setting};
use std::collections::VecDeque;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// Not live.
    None,
    Small,
    Main,
    /// Answered as a victim; waiting for its remove event.
    Pending,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    size: u64,
    freq: u8,
    queue: Queue,
    /// Stamp of this id's ghost entry (0: not in the ghost) and the size it had.
    ghost_stamp: u64,
    ghost_size: u64,
}

const EMPTY: Node = Node {
    prev: NIL,
    next: NIL,
    size: 0,
    freq: 0,
    queue: Queue::None,
    ghost_stamp: 0,
    ghost_size: 0,
};

/// A FIFO threaded through the node array: push at head, evict from tail.
#[derive(Debug, Clone, Copy)]
struct Fifo {
    head: u32,
    tail: u32,
    bytes: u64,
}

const EMPTY_FIFO: Fifo = Fifo {
    head: NIL,
    tail: NIL,
    bytes: 0,
};

#[derive(Debug, Clone, Copy)]
struct GhostEntry {
    id: u32,
    stamp: u64,
}

/// S3-FIFO state. See the crate docs for the rules.
#[derive(Debug)]
pub struct S3Fifo {
    nodes: Vec<Node>,
    small: Fifo,
    main: Fifo,
    /// Ghost FIFO, oldest at the front. Entries whose stamp no longer matches their node's
    /// were dropped early (re-insert) and are skipped lazily.
    ghost: VecDeque<GhostEntry>,
    ghost_bytes: u64,
    ghost_live: usize,
    next_stamp: u64,
    capacity: u64,
    live_bytes: u64,
    peak_bytes: u64,
    move_threshold: u8,
    small_percent: u64,
    ghost_enabled: bool,
}

impl Default for S3Fifo {
    fn default() -> Self {
        let threshold = setting("move_to_main_threshold")
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|t| (1..=3).contains(t))
            .unwrap_or(1);
        let small_percent = setting("small_percent")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|p| (1..=90).contains(p))
            .unwrap_or(10);
        let ghost_enabled =
            setting("ghost").is_none_or(|s| !matches!(s.trim(), "off" | "false" | "0"));
        S3Fifo::new(threshold, small_percent, ghost_enabled)
    }
}

impl S3Fifo {
    /// A policy with explicit parameters (the settings' defaults are `1, 10, true`).
    pub fn new(move_threshold: u8, small_percent: u64, ghost_enabled: bool) -> Self {
        S3Fifo {
            nodes: Vec::new(),
            small: EMPTY_FIFO,
            main: EMPTY_FIFO,
            ghost: VecDeque::new(),
            ghost_bytes: 0,
            ghost_live: 0,
            next_stamp: 1,
            capacity: 0,
            live_bytes: 0,
            peak_bytes: 0,
            move_threshold: move_threshold.clamp(1, 3),
            small_percent: small_percent.clamp(1, 90),
            ghost_enabled,
        }
    }

    fn cap(&self) -> u64 {
        if self.capacity > 0 {
            self.capacity
        } else {
            self.peak_bytes
        }
    }

    fn small_target(&self) -> u64 {
        ((self.cap() as u128 * self.small_percent as u128 / 100) as u64).max(1)
    }

    fn fifo(&mut self, q: Queue) -> &mut Fifo {
        match q {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
            Queue::None | Queue::Pending => unreachable!("not a queue"),
        }
    }

    fn unlink(&mut self, i: u32) {
        let Node {
            prev,
            next,
            size,
            queue,
            ..
        } = self.nodes[i as usize];
        let f = self.fifo(queue);
        if prev == NIL {
            f.head = next;
        }
        if next == NIL {
            f.tail = prev;
        }
        f.bytes -= size;
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
        n.queue = Queue::None;
    }

    fn push_head(&mut self, i: u32, q: Queue) {
        let size = self.nodes[i as usize].size;
        let f = self.fifo(q);
        let old = f.head;
        f.head = i;
        if old == NIL {
            f.tail = i;
        }
        f.bytes += size;
        if old != NIL {
            self.nodes[old as usize].prev = i;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = old;
        n.queue = q;
    }

    fn forget_ghost(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        if n.ghost_stamp != 0 {
            n.ghost_stamp = 0;
            self.ghost_bytes -= n.ghost_size;
            self.ghost_live -= 1;
        }
    }

    fn add_ghost(&mut self, i: u32) {
        if !self.ghost_enabled {
            return;
        }
        self.forget_ghost(i);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let n = &mut self.nodes[i as usize];
        n.ghost_stamp = stamp;
        n.ghost_size = n.size;
        self.ghost_bytes += n.size;
        self.ghost_live += 1;
        self.ghost.push_back(GhostEntry { id: i, stamp });
        // The ghost holds as many bytes as main may.
        let limit = self.cap().saturating_sub(self.small_target());
        while self.ghost_bytes > limit {
            let Some(g) = self.ghost.pop_front() else {
                break;
            };
            if self.nodes[g.id as usize].ghost_stamp == g.stamp {
                self.forget_ghost(g.id);
            }
        }
        // Entries dropped early stay in the deque until popped; compact when they dominate.
        if self.ghost.len() > 2 * self.ghost_live + 64 {
            let nodes = &self.nodes;
            self.ghost
                .retain(|g| nodes[g.id as usize].ghost_stamp == g.stamp);
        }
    }

    /// An access (hit or update) of a live entry.
    fn access(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        match n.queue {
            Queue::Small | Queue::Main => n.freq = (n.freq + 1).min(3),
            Queue::Pending => {
                // The host kept an entry it was told to evict: take it back, as recently used.
                n.queue = Queue::None;
                n.freq = 1;
                self.push_head(i, Queue::Main);
            }
            Queue::None => {}
        }
    }

    fn is_live(&self, i: u32) -> bool {
        self.nodes
            .get(i as usize)
            .is_some_and(|n| n.queue != Queue::None)
    }

    fn set_size(&mut self, i: u32, size: u64) {
        let n = &mut self.nodes[i as usize];
        let old = n.size;
        n.size = size;
        let q = n.queue;
        self.live_bytes = self.live_bytes - old + size;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        if matches!(q, Queue::Small | Queue::Main) {
            let f = self.fifo(q);
            f.bytes = f.bytes - old + size;
        }
    }

    fn choose(&mut self, i: u32) -> u64 {
        self.unlink(i);
        self.nodes[i as usize].queue = Queue::Pending;
        self.nodes[i as usize].size
    }

    /// One victim from small, moving accessed entries to main on the way; falls back to
    /// main when small runs dry.
    fn evict_small(&mut self) -> Option<(u32, u64)> {
        while self.small.tail != NIL {
            let t = self.small.tail;
            if self.nodes[t as usize].freq >= self.move_threshold {
                self.unlink(t);
                self.nodes[t as usize].freq = 0;
                self.push_head(t, Queue::Main);
            } else {
                let size = self.choose(t);
                self.add_ghost(t);
                return Some((t, size));
            }
        }
        self.evict_main()
    }

    /// One victim from main: CLOCK-like reinsertion while the 2-bit frequency is positive.
    fn evict_main(&mut self) -> Option<(u32, u64)> {
        while self.main.tail != NIL {
            let t = self.main.tail;
            let f = self.nodes[t as usize].freq;
            if f > 0 {
                self.unlink(t);
                self.nodes[t as usize].freq = f.min(3) - 1;
                self.push_head(t, Queue::Main);
            } else {
                return Some((t, self.choose(t)));
            }
        }
        None
    }

    /// Bytes in (small, main, ghost), for tests and logs.
    pub fn queue_bytes(&self) -> (u64, u64, u64) {
        (self.small.bytes, self.main.bytes, self.ghost_bytes)
    }
}

impl Eviction for S3Fifo {
    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        self.capacity = capacity_bytes;
        if expected_entries as usize > self.nodes.len() {
            self.nodes.resize(expected_entries as usize, EMPTY);
        }
        if !self.ghost_enabled {
            log(LogLevel::Debug, "s3fifo: ghost disabled by setting");
        }
    }

    fn on_insert(&mut self, id: u32, size: u64, _priority: u8, _at_ms: u64) {
        if id as usize >= self.nodes.len() {
            let want = (id as usize + 1).max(self.nodes.len() * 2).max(64);
            self.nodes.resize(want, EMPTY);
        }
        if self.is_live(id) {
            // Never sent by the host; treat an insert of a live id as an update.
            self.on_update(id, size, 0, 0);
            return;
        }
        let n = self.nodes[id as usize];
        let ghost_hit = n.ghost_stamp != 0 && n.ghost_size == size;
        self.forget_ghost(id);
        let node = &mut self.nodes[id as usize];
        node.size = size;
        node.freq = 0;
        self.live_bytes += size;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        self.push_head(id, if ghost_hit { Queue::Main } else { Queue::Small });
    }

    fn on_hit(&mut self, id: u32, _at_ms: u64) {
        if self.is_live(id) {
            self.access(id);
        }
    }

    fn on_update(&mut self, id: u32, size: u64, _priority: u8, _at_ms: u64) {
        if self.is_live(id) {
            self.set_size(id, size);
            self.access(id);
        }
    }

    fn on_remove(&mut self, id: u32) {
        if !self.is_live(id) {
            return;
        }
        if self.nodes[id as usize].queue != Queue::Pending {
            self.unlink(id);
        }
        let n = &mut self.nodes[id as usize];
        self.live_bytes -= n.size;
        n.queue = Queue::None;
        n.prev = NIL;
        n.next = NIL;
    }

    fn victims(&mut self, bytes_to_free: u64, max_count: u32, out: &mut Vec<u64>) {
        let mut freed = 0u64;
        while freed < bytes_to_free && out.len() < max_count as usize {
            let from_small = self.main.tail == NIL
                || (self.small.tail != NIL && self.small.bytes >= self.small_target());
            let v = if from_small {
                self.evict_small()
            } else {
                self.evict_main()
            };
            let Some((id, size)) = v else { break };
            out.push(id as u64);
            freed = freed.saturating_add(size);
        }
    }
}

rmhost_policy::export_eviction!(S3Fifo);

#[cfg(test)]
mod tests;
