//! The native FIFO policy: evicts in insertion order; hits and updates do not reorder
//! (as libCacheSim's FIFO, whose `find` on a hit touches nothing). Dense ids index a ring
//! of insertion sequence numbers, so there is no hashing.

use crate::{EventKind, EvictionPolicy, decode_event};
use std::collections::VecDeque;

/// First-in, first-out eviction over dense ids.
#[derive(Debug, Clone, Default)]
pub struct NativeFifo {
    /// Per id: the insertion sequence of the live entry (0 = not live) and its size.
    seq: Vec<(u64, u64)>,
    /// (sequence, id) in insertion order; entries whose sequence no longer matches the
    /// id's are stale (removed) and skipped lazily.
    queue: VecDeque<(u64, u32)>,
    next: u64,
}

impl NativeFifo {
    /// An empty FIFO.
    pub fn new() -> Self {
        Self::default()
    }

    fn apply(&mut self, events: &[u64]) {
        for chunk in events.chunks_exact(crate::EVENT_WORDS) {
            let Some(ev) = decode_event(chunk) else {
                continue;
            };
            let Ok(id) = u32::try_from(ev.id) else {
                continue;
            };
            let i = id as usize;
            match ev.kind {
                EventKind::Insert => {
                    if self.seq.len() <= i {
                        self.seq.resize(i + 1, (0, 0));
                    }
                    self.next += 1;
                    self.seq[i] = (self.next, ev.size);
                    self.queue.push_back((self.next, id));
                }
                EventKind::Update => {
                    if let Some(s) = self.seq.get_mut(i).filter(|s| s.0 != 0) {
                        s.1 = ev.size;
                    }
                }
                EventKind::Hit => {}
                EventKind::Remove => {
                    if let Some(s) = self.seq.get_mut(i) {
                        *s = (0, 0);
                    }
                }
            }
        }
        // Keep the queue from filling with stale heads.
        while let Some(&(seq, id)) = self.queue.front() {
            if self.seq[id as usize].0 == seq {
                break;
            }
            self.queue.pop_front();
        }
    }
}

impl EvictionPolicy for NativeFifo {
    fn name(&self) -> &str {
        "builtin:fifo"
    }

    fn configure(&mut self, _capacity_bytes: u64, expected_entries: u32) {
        self.seq.reserve(expected_entries as usize);
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        self.apply(events);
        let mut out = Vec::new();
        let mut freed = 0u64;
        for &(seq, id) in &self.queue {
            if freed >= bytes_to_free || out.len() >= max_count as usize {
                break;
            }
            let (s, size) = self.seq[id as usize];
            if s == seq {
                out.push(id as u64);
                freed = freed.saturating_add(size);
            }
        }
        out
    }

    /// Stable: entries leave in insertion order, and accesses move nothing.
    fn next_victims(&mut self, events: &[u64], max_count: u32) -> Option<Vec<u64>> {
        Some(self.observe(events, u64::MAX, max_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(out: &mut Vec<u64>, kind: EventKind, id: u64) {
        crate::events::push_event(out, kind, id, 1);
    }

    #[test]
    fn hits_do_not_reorder_and_reinserts_go_last() {
        let mut f = NativeFifo::new();
        let mut b = Vec::new();
        for id in 0..3 {
            ev(&mut b, EventKind::Insert, id);
        }
        ev(&mut b, EventKind::Hit, 0);
        assert_eq!(f.observe(&b, 1, 10), vec![0]);
        b.clear();
        ev(&mut b, EventKind::Remove, 0);
        ev(&mut b, EventKind::Insert, 0);
        assert_eq!(f.observe(&b, 3, 10), vec![1, 2, 0]);
    }
}
