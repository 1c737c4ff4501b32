//! A shard's lossy read buffer (Caffeine's `BoundedBuffer`): a fixed ring of packed hits,
//! many producers (readers, one CAS each, no lock), one consumer (whoever holds the cache's
//! policy lock). A hit is dropped when the ring is full or the CAS loses a race, as in
//! Caffeine: hits are a recency hint, never needed for correctness.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots per ring (a power of two).
pub(crate) const RING: u64 = 256;
/// A reader that sees this many hits pending drains them itself (if the lock is free).
pub(crate) const DRAIN_AT: u64 = 64;

/// The ring. Slot value 0 means "not written yet": hits are `id << 32 | generation` and
/// generations are never 0.
#[derive(Debug)]
pub(crate) struct HitRing {
    /// Next position to write; also the number of hits ever recorded.
    tail: AtomicU64,
    /// Next position to read; written only by the consumer.
    head: AtomicU64,
    /// Hits dropped (full, or lost the race for a slot).
    dropped: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Default for HitRing {
    fn default() -> Self {
        HitRing {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slots: (0..RING).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl HitRing {
    /// Records `hit` (non-zero); returns the hits pending after it, or `None` if dropped.
    #[inline]
    pub fn record(&self, hit: u64) -> Option<u64> {
        debug_assert_ne!(hit, 0);
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.wrapping_sub(head) >= RING
            || self
                .tail
                .compare_exchange(tail, tail + 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.slots[(tail & (RING - 1)) as usize].store(hit, Ordering::Release);
        Some(tail + 1 - head)
    }

    /// Hands every written hit to `f`, oldest first, stopping at a slot whose writer has
    /// not finished (it is drained next time). Returns whether hits remain. Only one
    /// consumer at a time (the caller holds the policy lock).
    pub fn drain(&self, mut f: impl FnMut(u64)) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let mut i = head;
        while i != tail {
            let slot = &self.slots[(i & (RING - 1)) as usize];
            let v = slot.load(Ordering::Acquire);
            if v == 0 {
                break;
            }
            slot.store(0, Ordering::Relaxed);
            f(v);
            i += 1;
        }
        if i != head {
            self.head.store(i, Ordering::Release);
        }
        self.tail.load(Ordering::SeqCst) != i
    }

    /// Hits recorded plus hits dropped: every lookup that found a live entry.
    pub fn hits(&self) -> u64 {
        self.tail.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }

    /// Hits dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn single_thread_keeps_order_and_bounds() {
        let r = HitRing::default();
        for i in 1..=RING + 10 {
            let _ = r.record(i);
        }
        assert_eq!(r.dropped(), 10);
        let mut got = Vec::new();
        assert!(!r.drain(|v| got.push(v)));
        assert_eq!(got, (1..=RING).collect::<Vec<_>>());
        assert_eq!(r.record(7), Some(1));
        assert_eq!(r.hits(), RING + 11);
    }

    #[test]
    fn concurrent_producers_lose_nothing_they_report_kept() {
        let r = Arc::new(HitRing::default());
        let kept = Arc::new(AtomicU64::new(0));
        let drained = Arc::new(parking_lot::Mutex::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let (r, kept, drained) = (r.clone(), kept.clone(), drained.clone());
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        if r.record((t << 32) | (i + 1)).is_some() {
                            kept.fetch_add(1, Ordering::Relaxed);
                        }
                        if i % 50 == 0 {
                            let mut d = drained.lock();
                            r.drain(|_| *d += 1);
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let mut d = drained.lock();
        while r.drain(|_| *d += 1) {}
        assert_eq!(*d, kept.load(Ordering::Relaxed));
        assert_eq!(r.hits(), 80_000);
    }
}
