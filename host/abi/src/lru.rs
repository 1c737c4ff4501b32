//! The native LRU: the default eviction policy and the fallback that fills any shortfall of
//! a Wasm policy. Entries live in arrays indexed by the dense ids the host hands out, kept
//! as a doubly-linked list (head = most recent), so no hashing happens on the hot path.
//! A Wasm LRU following the same rules gives the same victims (checked by conformance).

use crate::{EventKind, EvictionPolicy, decode_event};

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
#[derive(Debug, Clone)]
pub struct NativeLru {
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
    live: usize,
}

impl Default for NativeLru {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeLru {
    /// An empty LRU.
    pub fn new() -> Self {
        NativeLru {
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            live: 0,
        }
    }

    /// Live entries tracked.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = self.nodes[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        self.nodes[i as usize].prev = NIL;
        self.nodes[i as usize].next = old;
        if old == NIL {
            self.tail = i;
        } else {
            self.nodes[old as usize].prev = i;
        }
        self.head = i;
    }

    /// Records an insert of `id`.
    pub fn insert(&mut self, id: u64, size: u64) {
        let Ok(i) = u32::try_from(id) else { return };
        if i == NIL {
            return;
        }
        if self.nodes.len() <= i as usize {
            self.nodes.resize(i as usize + 1, EMPTY);
        }
        if self.nodes[i as usize].live {
            // The host never re-inserts a live id; treat it as an update to stay consistent.
            self.touch(id, Some(size));
            return;
        }
        self.nodes[i as usize] = Node {
            size,
            live: true,
            ..EMPTY
        };
        self.push_front(i);
        self.live += 1;
    }

    /// Records an access of `id` (a hit or an update), with a new size for an update.
    pub fn touch(&mut self, id: u64, size: Option<u64>) {
        let i = id as usize;
        if i >= self.nodes.len() || !self.nodes[i].live {
            return;
        }
        if let Some(s) = size {
            self.nodes[i].size = s;
        }
        if self.head != i as u32 {
            self.unlink(i as u32);
            self.push_front(i as u32);
        }
    }

    /// Records the removal of `id`.
    pub fn remove(&mut self, id: u64) {
        let i = id as usize;
        if i >= self.nodes.len() || !self.nodes[i].live {
            return;
        }
        self.unlink(i as u32);
        self.nodes[i] = EMPTY;
        self.live -= 1;
    }

    /// Whether `id` is tracked as live.
    pub fn contains(&self, id: u64) -> bool {
        self.nodes.get(id as usize).is_some_and(|n| n.live)
    }

    /// Victims from the least-recent end, skipping `exclude`d ids, until `bytes` are freed or
    /// `max_count` ids are chosen. Does not remove them: the host sends remove events.
    pub fn victims(&self, bytes: u64, max_count: u32, exclude: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut out = Vec::new();
        let mut freed = 0u64;
        let mut cur = self.tail;
        while cur != NIL && freed < bytes && out.len() < max_count as usize {
            let n = &self.nodes[cur as usize];
            if !exclude(cur as u64) {
                out.push(cur as u64);
                freed = freed.saturating_add(n.size);
            }
            cur = n.prev;
        }
        out
    }

    /// Live ids from least to most recent (for warm handoff and snapshots).
    pub fn ids_oldest_first(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.live);
        let mut cur = self.tail;
        while cur != NIL {
            out.push(cur as u64);
            cur = self.nodes[cur as usize].prev;
        }
        out
    }

    /// Applies a packed event batch (the `observe` protocol without the answer).
    pub fn apply(&mut self, events: &[u64]) {
        for chunk in events.chunks_exact(crate::EVENT_WORDS) {
            let Some(ev) = decode_event(chunk) else {
                continue;
            };
            match ev.kind {
                EventKind::Insert => self.insert(ev.id, ev.size),
                EventKind::Hit => self.touch(ev.id, None),
                EventKind::Update => self.touch(ev.id, Some(ev.size)),
                EventKind::Remove => self.remove(ev.id),
            }
        }
    }
}

impl EvictionPolicy for NativeLru {
    fn name(&self) -> &str {
        "builtin:lru"
    }

    fn configure(&mut self, _capacity_bytes: u64, expected_entries: u32) {
        self.nodes.reserve(expected_entries as usize);
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        self.apply(events);
        if bytes_to_free == 0 {
            return Vec::new();
        }
        self.victims(bytes_to_free, max_count, |_| false)
    }

    /// Stable: inserts go to the head, an access moves only its own entry, and victims are
    /// read off the tail without moving anything.
    fn next_victims(&mut self, events: &[u64], max_count: u32) -> Option<Vec<u64>> {
        self.apply(events);
        Some(self.victims(u64::MAX, max_count, |_| false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PackedEvent, encode_event};

    fn ev(out: &mut Vec<u64>, kind: EventKind, id: u64, size: u64) {
        encode_event(
            out,
            &PackedEvent {
                id,
                size,
                at_ms: 0,
                kind,
                priority: 0,
                fingerprint: id,
            },
        );
    }

    #[test]
    fn evicts_least_recent_first_and_respects_hits() {
        let mut lru = NativeLru::new();
        let mut b = Vec::new();
        for id in 0..4 {
            ev(&mut b, EventKind::Insert, id, 10);
        }
        ev(&mut b, EventKind::Hit, 0, 0);
        assert_eq!(lru.observe(&b, 15, 10), vec![1, 2]);
        b.clear();
        ev(&mut b, EventKind::Remove, 1, 0);
        ev(&mut b, EventKind::Update, 2, 30);
        assert_eq!(lru.observe(&b, 1, 10), vec![3]);
        assert_eq!(lru.ids_oldest_first(), vec![3, 0, 2]);
        assert_eq!(lru.observe(&[], 100, 2), vec![3, 0]);
    }

    #[test]
    fn ignores_events_for_unknown_ids() {
        let mut lru = NativeLru::new();
        let mut b = Vec::new();
        ev(&mut b, EventKind::Hit, 7, 0);
        ev(&mut b, EventKind::Remove, 9, 0);
        assert!(lru.observe(&b, 10, 10).is_empty());
        assert!(lru.is_empty());
    }
}
