//! LRU eviction, victim for victim the same as the host's native LRU
//! (`host/abi/src/lru.rs`), so the host can check one against the other.
//!
//! Entries are a doubly-linked list kept in one array of nodes indexed by the host's dense
//! ids (head = most recently used). Insert, hit and update move an entry to the head
//! (inserting a live id counts as an update); remove unlinks it; victims are read from the
//! tail towards the head until enough bytes are freed or `max_count` ids are chosen, and
//! stay linked until the host's remove events arrive.
//!
//! Why it looks the way it does (docs/measurements.md): in Wasm the guest's own work is what keeps
//! the policy from the native LRU's throughput, so the hot path touches one array of
//! 24-byte nodes (no hashing, no parallel arrays), the per-event helpers are inlined, and
//! growing the array is a cold out-of-line path.

use rmhost_policy::Eviction;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    size: u64,
    live: bool,
}

const EMPTY: Node = Node {
    prev: NIL,
    next: NIL,
    size: 0,
    live: false,
};

/// Least-recently-used eviction over dense ids.
#[derive(Debug)]
pub struct Lru {
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
    live: usize,
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            live: 0,
        }
    }
}

impl Lru {
    /// Live entries tracked.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Live ids from least to most recent.
    pub fn ids_oldest_first(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.live);
        let mut cur = self.tail;
        while cur != NIL {
            out.push(cur as u64);
            cur = self.nodes[cur as usize].prev;
        }
        out
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: u32) {
        // At least double, so a run of inserts of increasing ids grows O(log n) times.
        let want = (i as usize + 1).max(self.nodes.len() * 2).max(64);
        self.nodes.resize(want, EMPTY);
    }

    /// The node of a linked id, without a bounds check.
    ///
    /// Every id that is linked (head, tail, any prev/next) was bounds-checked when it was
    /// inserted, and the array never shrinks; skipping the re-checks on the 3-4 neighbour
    /// accesses per event is measurable in Wasm, where this loop is the whole cost.
    #[inline(always)]
    fn at(&mut self, i: u32) -> &mut Node {
        debug_assert!((i as usize) < self.nodes.len());
        // SAFETY: see above; `i` is a linked id, so it is in bounds.
        unsafe { self.nodes.get_unchecked_mut(i as usize) }
    }

    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = *self.at(i);
        if prev == NIL {
            self.head = next;
        } else {
            self.at(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.at(next).prev = prev;
        }
    }

    #[inline(always)]
    fn push_front(&mut self, i: u32) {
        let old = self.head;
        let n = self.at(i);
        n.prev = NIL;
        n.next = old;
        if old == NIL {
            self.tail = i;
        } else {
            self.at(old).prev = i;
        }
        self.head = i;
    }

    /// An access: moves a live `i` to the head, with a new size for an update.
    #[inline(always)]
    fn touch(&mut self, i: u32, size: Option<u64>) {
        let Some(n) = self.nodes.get_mut(i as usize) else {
            return;
        };
        if !n.live {
            return;
        }
        if let Some(s) = size {
            n.size = s;
        }
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }
}

impl Eviction for Lru {
    fn configure(&mut self, _capacity_bytes: u64, expected_entries: u32) {
        // Ids are dense, so the expected entry count bounds the array; reserving it keeps
        // growth (and its copy) out of the first batches.
        let want = expected_entries as usize;
        if want > self.nodes.len() {
            self.nodes.resize(want, EMPTY);
        }
    }

    #[inline(always)]
    fn on_insert(&mut self, id: u32, _fingerprint: u64, size: u64, _priority: u8, _at_ms: u64) {
        if id as usize >= self.nodes.len() {
            self.grow(id);
        }
        if self.nodes[id as usize].live {
            // The host never re-inserts a live id; like the native LRU, treat it as an update.
            self.touch(id, Some(size));
            return;
        }
        self.nodes[id as usize] = Node {
            size,
            live: true,
            ..EMPTY
        };
        self.push_front(id);
        self.live += 1;
    }

    #[inline(always)]
    fn on_hit(&mut self, id: u32, _at_ms: u64) {
        self.touch(id, None);
    }

    #[inline(always)]
    fn on_update(&mut self, id: u32, size: u64, _priority: u8, _at_ms: u64) {
        self.touch(id, Some(size));
    }

    #[inline(always)]
    fn on_remove(&mut self, id: u32) {
        match self.nodes.get(id as usize) {
            Some(n) if n.live => {}
            _ => return,
        }
        self.unlink(id);
        self.nodes[id as usize] = EMPTY;
        self.live -= 1;
    }

    fn victims(&mut self, bytes_to_free: u64, max_count: u32, out: &mut Vec<u64>) {
        let mut freed = 0u64;
        let mut cur = self.tail;
        while cur != NIL && freed < bytes_to_free && out.len() < max_count as usize {
            let n = &self.nodes[cur as usize];
            out.push(cur as u64);
            freed = freed.saturating_add(n.size);
            cur = n.prev;
        }
    }
}

// Its order is stable (new entries go behind every victim; a hit only moves its own
// entry), so it offers victim runs: one call serves many evictions (wit `eviction-run`).
impl rmhost_policy::StableOrder for Lru {}

rmhost_policy::export_eviction_runs!(Lru);

#[cfg(test)]
mod tests;
