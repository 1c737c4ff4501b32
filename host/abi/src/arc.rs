//! The native ARC policy (Megiddo & Modha, FAST'03), after libCacheSim's `ARC.c`, byte
//! weighted: `T1` (L1 data, seen once recently) and `T2` (L2 data, seen at least twice)
//! are LRU lists of live entries; `B1` and `B2` are their ghosts, which remember key
//! fingerprints of entries evicted from `T1` and `T2`. `p`, the target size of `T1` in
//! bytes, grows on a `B1` hit (by `max(|B2| / |B1|, 1)`) and shrinks on a `B2` hit.
//!
//! - A hit in `T1` moves the entry to `T2`'s head; a hit in `T2` moves it to the head.
//! - An insert whose fingerprint is in `B1` or `B2` (a ghost hit) adapts `p`, leaves the
//!   ghost, and is placed at `T2`'s head; other inserts go to `T1`'s head.
//! - REPLACE evicts `T1`'s tail into `B1` when `T1` is non-empty and over `p` (or equal to
//!   it on a `B2` hit) or `T2` is empty, else `T2`'s tail into `B2`.
//! - On a miss in all four lists (libCacheSim's case IV): when `T1 + B1` plus the incoming
//!   entry exceeds the capacity, drop `B1`'s tail and REPLACE (or, with `B1` empty, evict
//!   `T1`'s tail without a ghost); otherwise, when all four lists reach twice the
//!   capacity, drop `B2`'s tail, then REPLACE.
//!
//! As in `s3fifo`, inserts are deferred until the victims of the same `observe` are chosen,
//! because libCacheSim makes room before it inserts.

use crate::s3fifo::FingerprintMap;
use crate::{EVENT_WORDS, EventKind, EvictionPolicy, decode_event};
use std::collections::VecDeque;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    None,
    Deferred,
    T1,
    T2,
    Pending,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    size: u64,
    fingerprint: u64,
    at: Where,
    /// The insert hit a ghost: place it in T2.
    ghost_hit: bool,
}

const EMPTY: Node = Node {
    prev: NIL,
    next: NIL,
    size: 0,
    fingerprint: 0,
    at: Where::None,
    ghost_hit: false,
};

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    bytes: u64,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    bytes: 0,
};

/// A ghost list: fingerprints in insertion order (newest at the back), bounded by nothing
/// but ARC's rules; removal from the middle is lazy (a stamp per live entry).
#[derive(Debug, Clone, Default)]
struct GhostList {
    fifo: VecDeque<(u64, u64)>,
    map: FingerprintMap<(u64, u64)>,
    bytes: u64,
}

impl GhostList {
    fn push(&mut self, fp: u64, size: u64, stamp: u64) {
        if let Some((_, old)) = self.map.insert(fp, (stamp, size)) {
            self.bytes -= old;
        }
        self.fifo.push_back((fp, stamp));
        self.bytes += size;
        if self.fifo.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.fifo
                .retain(|(f, st)| map.get(f).is_some_and(|&(s, _)| s == *st));
        }
    }

    fn take(&mut self, fp: u64) -> bool {
        match self.map.remove(&fp) {
            Some((_, size)) => {
                self.bytes -= size;
                true
            }
            None => false,
        }
    }

    fn drop_oldest(&mut self) {
        while let Some((fp, stamp)) = self.fifo.pop_front() {
            if let Some(&(s, size)) = self.map.get(&fp)
                && s == stamp
            {
                self.map.remove(&fp);
                self.bytes -= size;
                return;
            }
        }
    }
}

/// ARC with fingerprint-keyed ghosts, over dense ids.
#[derive(Debug, Clone)]
pub struct NativeArc {
    nodes: Vec<Node>,
    t1: List,
    t2: List,
    b1: GhostList,
    b2: GhostList,
    p: f64,
    capacity: u64,
    stamp: u64,
    deferred: Vec<u32>,
    /// The latest insert hit a ghost: `Some(true)` for B2, `Some(false)` for B1.
    ghost_hit: Option<bool>,
}

impl Default for NativeArc {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeArc {
    /// An empty ARC; sized by `configure`.
    pub fn new() -> Self {
        NativeArc {
            nodes: Vec::new(),
            t1: EMPTY_LIST,
            t2: EMPTY_LIST,
            b1: GhostList::default(),
            b2: GhostList::default(),
            p: 0.0,
            capacity: u64::MAX / 4,
            stamp: 0,
            deferred: Vec::new(),
            ghost_hit: None,
        }
    }

    fn list(&mut self, w: Where) -> &mut List {
        if w == Where::T1 {
            &mut self.t1
        } else {
            &mut self.t2
        }
    }

    fn unlink(&mut self, id: u32) {
        let n = self.nodes[id as usize];
        if !matches!(n.at, Where::T1 | Where::T2) {
            self.nodes[id as usize].at = Where::None;
            return;
        }
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        }
        let l = self.list(n.at);
        if l.head == id {
            l.head = n.next;
        }
        if l.tail == id {
            l.tail = n.prev;
        }
        l.bytes -= n.size;
        let m = &mut self.nodes[id as usize];
        m.prev = NIL;
        m.next = NIL;
        m.at = Where::None;
    }

    fn push_head(&mut self, id: u32, w: Where) {
        let size = self.nodes[id as usize].size;
        let l = self.list(w);
        let old = l.head;
        l.head = id;
        if l.tail == NIL {
            l.tail = id;
        }
        l.bytes += size;
        if old != NIL {
            self.nodes[old as usize].prev = id;
        }
        let n = &mut self.nodes[id as usize];
        n.prev = NIL;
        n.next = old;
        n.at = w;
    }

    fn place_deferred(&mut self) {
        for k in 0..self.deferred.len() {
            let id = self.deferred[k];
            let n = self.nodes[id as usize];
            if n.at != Where::Deferred {
                continue;
            }
            self.push_head(id, if n.ghost_hit { Where::T2 } else { Where::T1 });
        }
        self.deferred.clear();
        self.ghost_hit = None;
    }

    fn deferred_bytes(&self) -> u64 {
        self.deferred
            .iter()
            .map(|&id| self.nodes[id as usize])
            .filter(|n| n.at == Where::Deferred)
            .map(|n| n.size)
            .sum()
    }

    fn on_insert(&mut self, id: u32, fp: u64, size: u64) {
        let i = id as usize;
        if self.nodes.len() <= i {
            self.nodes.resize(i + 1, EMPTY);
        }
        if self.nodes[i].at == Where::Deferred {
            self.place_deferred();
        }
        self.unlink(id);
        // libCacheSim's find: a ghost hit adapts p and leaves the ghost.
        let (b1, b2) = (self.b1.bytes as f64, self.b2.bytes as f64);
        let hit = if self.b1.map.contains_key(&fp) {
            self.p = (self.p + (b2 / b1).max(1.0)).min(self.capacity as f64);
            self.b1.take(fp);
            Some(false)
        } else if self.b2.map.contains_key(&fp) {
            self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
            self.b2.take(fp);
            Some(true)
        } else {
            None
        };
        self.ghost_hit = hit;
        self.nodes[i] = Node {
            size,
            fingerprint: fp,
            at: Where::Deferred,
            ghost_hit: hit.is_some(),
            ..EMPTY
        };
        self.deferred.push(id);
    }

    fn on_access(&mut self, id: u32, size: Option<u64>) {
        let Some(n) = self.nodes.get(id as usize).copied() else {
            return;
        };
        if n.at == Where::Deferred {
            self.place_deferred();
        }
        let at = self.nodes[id as usize].at;
        if at == Where::None {
            return;
        }
        self.unlink(id);
        if let Some(s) = size {
            self.nodes[id as usize].size = s;
        }
        // T1 -> T2, T2 -> T2's head; a kept victim re-enters T2.
        self.push_head(id, Where::T2);
    }

    fn on_remove(&mut self, id: u32) {
        let Some(n) = self.nodes.get(id as usize).copied() else {
            return;
        };
        if n.at == Where::Deferred {
            self.place_deferred();
        }
        self.unlink(id);
    }

    /// Moves a data tail to its ghost; the victim.
    fn evict_tail(&mut self, from: Where) -> Option<u32> {
        let id = self.list(from).tail;
        if id == NIL {
            return None;
        }
        self.unlink(id);
        let n = self.nodes[id as usize];
        self.stamp += 1;
        if from == Where::T1 {
            self.b1.push(n.fingerprint, n.size, self.stamp);
        } else {
            self.b2.push(n.fingerprint, n.size, self.stamp);
        }
        Some(id)
    }

    fn replace(&mut self) -> Option<u32> {
        let t1 = self.t1.bytes as f64;
        let in_b2 = self.ghost_hit == Some(true);
        let take_t1 =
            (self.t1.bytes > 0 && (t1 > self.p || (t1 == self.p && in_b2))) || self.t2.bytes == 0;
        if take_t1 {
            self.evict_tail(Where::T1)
        } else {
            self.evict_tail(Where::T2)
        }
    }

    fn evict_one(&mut self) -> Option<u32> {
        if self.ghost_hit.is_some() {
            return self.replace();
        }
        let incoming = self.deferred_bytes();
        if self.t1.bytes + self.b1.bytes + incoming > self.capacity {
            if self.b1.bytes > 0 {
                self.b1.drop_oldest();
                self.replace()
            } else {
                let id = self.t1.tail;
                if id == NIL {
                    return self.replace();
                }
                self.unlink(id);
                Some(id)
            }
        } else {
            if self.t1.bytes + self.b1.bytes + self.t2.bytes + self.b2.bytes
                >= self.capacity.saturating_mul(2)
                && self.b2.bytes > 0
            {
                self.b2.drop_oldest();
            }
            self.replace()
        }
    }
}

impl EvictionPolicy for NativeArc {
    fn name(&self) -> &str {
        "builtin:arc"
    }

    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        self.capacity = if capacity_bytes == 0 {
            u64::MAX / 4
        } else {
            capacity_bytes
        };
        self.nodes.reserve(expected_entries as usize);
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        for chunk in events.chunks_exact(EVENT_WORDS) {
            let Some(ev) = decode_event(chunk) else {
                continue;
            };
            let Ok(id) = u32::try_from(ev.id) else {
                continue;
            };
            if id == NIL {
                continue;
            }
            match ev.kind {
                EventKind::Insert => self.on_insert(id, ev.fingerprint, ev.size),
                EventKind::Hit => self.on_access(id, None),
                EventKind::Update => self.on_access(id, Some(ev.size)),
                EventKind::Remove => self.on_remove(id),
            }
        }
        let mut out = Vec::new();
        let mut freed = 0u64;
        while freed < bytes_to_free && out.len() < max_count as usize {
            let id = match self.evict_one() {
                Some(id) => id,
                None if !self.deferred.is_empty() => {
                    self.place_deferred();
                    continue;
                }
                None => break,
            };
            self.nodes[id as usize].at = Where::Pending;
            freed = freed.saturating_add(self.nodes[id as usize].size);
            out.push(u64::from(id));
        }
        self.place_deferred();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::push_event;

    #[test]
    fn a_scan_does_not_flush_frequent_entries() {
        let mut a = NativeArc::new();
        a.configure(10, 0);
        let mut b = Vec::new();
        for id in 0..10 {
            push_event(&mut b, EventKind::Insert, id, 1);
        }
        for id in 0..5 {
            push_event(&mut b, EventKind::Hit, id, 1);
        }
        assert!(a.observe(&b, 0, 10).is_empty());
        // A scan of new keys (ids 10..30) evicts the once-seen entries first.
        let mut next_free: Vec<u64> = Vec::new();
        for k in 10..30u64 {
            b.clear();
            for id in next_free.drain(..) {
                push_event(&mut b, EventKind::Remove, id, 1);
            }
            push_event(&mut b, EventKind::Insert, 100 + k, 1);
            let v = a.observe(&b, 1, 10);
            assert_eq!(v.len(), 1);
            assert!(v[0] >= 5, "frequent id {} evicted", v[0]);
            next_free = v;
        }
    }
}
