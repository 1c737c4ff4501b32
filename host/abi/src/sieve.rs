//! The native SIEVE policy (Zhang et al., NSDI'24), as libCacheSim's `Sieve`: new entries
//! go to the head of one FIFO list; a hit only sets a visited bit; to evict, a hand walks
//! from its last position (the tail at first) towards the head, clearing visited bits and
//! wrapping to the tail, and evicts the first unvisited entry. Dense ids index the list.
//!
//! As in `s3fifo`, a batch's inserts are placed after its victims are chosen, because
//! libCacheSim makes room before it inserts (else, with sized entries, the hand could reach
//! the new entry at the head and evict it).

use crate::{EventKind, EvictionPolicy, decode_event};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32, // towards the head (newer)
    next: u32, // towards the tail (older)
    size: u64,
    visited: bool,
    live: bool,
    /// Inserted in this batch, not yet linked.
    deferred: bool,
}

const EMPTY: Node = Node {
    prev: NIL,
    next: NIL,
    size: 0,
    visited: false,
    live: false,
    deferred: false,
};

/// SIEVE eviction over dense ids.
#[derive(Debug, Clone)]
pub struct NativeSieve {
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
    hand: u32,
    deferred: Vec<u32>,
}

impl Default for NativeSieve {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeSieve {
    /// An empty SIEVE.
    pub fn new() -> Self {
        NativeSieve {
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            hand: NIL,
            deferred: Vec::new(),
        }
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
        if self.hand == i {
            // The hand moves on towards the head, as after an eviction.
            self.hand = prev;
        }
    }

    fn insert(&mut self, i: u32, size: u64) {
        if self.nodes.len() <= i as usize {
            self.nodes.resize(i as usize + 1, EMPTY);
        }
        if self.nodes[i as usize].live {
            self.unlink(i);
        }
        self.nodes[i as usize] = Node {
            prev: NIL,
            next: self.head,
            size,
            visited: false,
            live: true,
            deferred: false,
        };
        if self.head == NIL {
            self.tail = i;
        } else {
            self.nodes[self.head as usize].prev = i;
        }
        self.head = i;
    }

    fn apply(&mut self, events: &[u64]) {
        for chunk in events.chunks_exact(crate::EVENT_WORDS) {
            let Some(ev) = decode_event(chunk) else {
                continue;
            };
            let Ok(i) = u32::try_from(ev.id) else {
                continue;
            };
            if i == NIL {
                continue;
            }
            if self.nodes.get(i as usize).is_some_and(|n| n.deferred) {
                self.place_deferred();
            }
            let live = self.nodes.get(i as usize).is_some_and(|n| n.live);
            match ev.kind {
                EventKind::Insert => {
                    if self.nodes.len() <= i as usize {
                        self.nodes.resize(i as usize + 1, EMPTY);
                    }
                    if live {
                        self.unlink(i);
                    }
                    self.nodes[i as usize] = Node {
                        size: ev.size,
                        deferred: true,
                        ..EMPTY
                    };
                    self.deferred.push(i);
                }
                EventKind::Hit if live => self.nodes[i as usize].visited = true,
                EventKind::Update if live => {
                    let n = &mut self.nodes[i as usize];
                    n.visited = true;
                    n.size = ev.size;
                }
                EventKind::Remove if live => {
                    self.unlink(i);
                    self.nodes[i as usize] = EMPTY;
                }
                _ => {}
            }
        }
    }

    fn place_deferred(&mut self) {
        for k in 0..self.deferred.len() {
            let i = self.deferred[k];
            if self.nodes[i as usize].deferred {
                let size = self.nodes[i as usize].size;
                self.insert(i, size);
            }
        }
        self.deferred.clear();
    }

    /// Runs the hand to the next victim without removing it: the cache sends the remove.
    /// The hand is left on the victim's newer neighbour, as in libCacheSim.
    fn next_victim(&mut self, taken: &[u64]) -> Option<u32> {
        let mut cur = if self.hand == NIL {
            self.tail
        } else {
            self.hand
        };
        // Bounded: two passes clear every visited bit.
        for _ in 0..self.nodes.len().saturating_mul(2) + 2 {
            if cur == NIL {
                cur = self.tail;
                if cur == NIL {
                    return None;
                }
            }
            let n = &mut self.nodes[cur as usize];
            if n.visited {
                n.visited = false;
                cur = n.prev;
            } else if taken.contains(&(cur as u64)) {
                cur = n.prev;
            } else {
                self.hand = n.prev;
                return Some(cur);
            }
        }
        None
    }
}

impl EvictionPolicy for NativeSieve {
    fn name(&self) -> &str {
        "builtin:sieve"
    }

    fn configure(&mut self, _capacity_bytes: u64, expected_entries: u32) {
        self.nodes.reserve(expected_entries as usize);
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        self.apply(events);
        let mut out = Vec::new();
        let mut freed = 0u64;
        while freed < bytes_to_free && out.len() < max_count as usize {
            let v = match self.next_victim(&out) {
                Some(v) => v,
                None if !self.deferred.is_empty() => {
                    self.place_deferred();
                    continue;
                }
                None => break,
            };
            freed = freed.saturating_add(self.nodes[v as usize].size);
            out.push(v as u64);
        }
        self.place_deferred();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(out: &mut Vec<u64>, kind: EventKind, id: u64) {
        crate::events::push_event(out, kind, id, 1);
    }

    #[test]
    fn visited_entries_survive_one_pass() {
        let mut s = NativeSieve::new();
        let mut b = Vec::new();
        for id in 0..3 {
            ev(&mut b, EventKind::Insert, id);
        }
        ev(&mut b, EventKind::Hit, 0);
        // 0 is oldest but visited: the hand clears it and evicts 1.
        assert_eq!(s.observe(&b, 1, 10), vec![1]);
        b.clear();
        ev(&mut b, EventKind::Remove, 1);
        assert_eq!(s.observe(&b, 1, 10), vec![2]);
    }
}
