//! FIFO eviction, victim for victim the same as the host's native FIFO
//! (`host/abi/src/fifo.rs`) and libCacheSim's FIFO: entries leave in insertion order;
//! hits and updates do not reorder (an update only changes the size). A re-inserted id
//! goes to the back.
//!
//! Per id the policy keeps the insertion sequence of its live entry (0 = not live) and its
//! size; the queue holds (sequence, id) pairs in insertion order, and a pair whose sequence
//! no longer matches its id's is a removed entry, skipped lazily. Dense ids mean no hashing.

use rmhost_policy::Eviction;
use std::collections::VecDeque;

/// First-in, first-out eviction over dense ids.
#[derive(Debug, Default)]
pub struct Fifo {
    seq: Vec<(u64, u64)>,
    queue: VecDeque<(u64, u32)>,
    next: u64,
}

impl Fifo {
    fn drop_stale_heads(&mut self) {
        while let Some(&(seq, id)) = self.queue.front() {
            if self.seq[id as usize].0 == seq {
                break;
            }
            self.queue.pop_front();
        }
    }
}

impl Eviction for Fifo {
    fn configure(&mut self, _capacity_bytes: u64, expected_entries: u32) {
        self.seq.reserve(expected_entries as usize);
        self.queue.reserve(expected_entries as usize);
    }

    fn on_insert(&mut self, id: u32, _fingerprint: u64, size: u64, _priority: u8, _at_ms: u64) {
        let i = id as usize;
        if self.seq.len() <= i {
            self.seq.resize(i + 1, (0, 0));
        }
        self.next += 1;
        self.seq[i] = (self.next, size);
        self.queue.push_back((self.next, id));
    }

    fn on_hit(&mut self, _id: u32, _at_ms: u64) {}

    fn on_update(&mut self, id: u32, size: u64, _priority: u8, _at_ms: u64) {
        if let Some(s) = self.seq.get_mut(id as usize).filter(|s| s.0 != 0) {
            s.1 = size;
        }
    }

    fn on_remove(&mut self, id: u32) {
        if let Some(s) = self.seq.get_mut(id as usize) {
            *s = (0, 0);
        }
        self.drop_stale_heads();
    }

    fn victims(&mut self, bytes_to_free: u64, max_count: u32, out: &mut Vec<u64>) {
        self.drop_stale_heads();
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
    }
}

// Its order is stable (new entries go behind every victim; a hit only moves its own
// entry), so it offers victim runs: one call serves many evictions (wit `eviction-run`).
impl rmhost_policy::StableOrder for Fifo {}

rmhost_policy::export_eviction_runs!(Fifo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_do_not_reorder_and_reinserts_go_last() {
        let mut f = Fifo::default();
        for id in 0..3 {
            f.on_insert(id, 0, 1, 0, 0);
        }
        f.on_hit(0, 0);
        let mut out = Vec::new();
        f.victims(1, 10, &mut out);
        assert_eq!(out, vec![0]);
        f.on_remove(0);
        f.on_insert(0, 0, 1, 0, 0);
        out.clear();
        f.victims(3, 10, &mut out);
        assert_eq!(out, vec![1, 2, 0]);
    }

    #[test]
    fn victims_are_byte_weighted_and_capped() {
        let mut f = Fifo::default();
        f.on_insert(0, 0, 10, 0, 0);
        f.on_insert(1, 0, 30, 0, 0);
        f.on_insert(2, 0, 5, 0, 0);
        f.on_update(0, 50, 0, 0);
        let mut out = Vec::new();
        f.victims(40, 10, &mut out);
        assert_eq!(out, vec![0], "the update grew id 0 to 50 bytes");
        out.clear();
        f.victims(1000, 2, &mut out);
        assert_eq!(out, vec![0, 1]);
    }
}
