//! The native W-TinyLFU policy: [`tinylfu::WTinyLfu`](super::tinylfu) behind the
//! [`EvictionPolicy`] protocol. The guest `policies/wtinylfu` compiles the same algorithm
//! file, so the two answer alike.
//!
//! The sketch is keyed by the events' key fingerprints (`rmhost:policy@0.2.0`), so its
//! miss ratios follow libCacheSim's W-TinyLFU (tests/libcachesim/check.py).

use crate::tinylfu::WTinyLfu;
use crate::{EventKind, EvictionPolicy, decode_event};

/// W-TinyLFU (1% window LRU, SLRU main 20/80, count-min admission) over dense ids.
#[derive(Debug, Clone, Default)]
pub struct NativeWTinyLfu {
    inner: WTinyLfu,
}

impl NativeWTinyLfu {
    /// An empty W-TinyLFU; sized by `configure`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes in (window, probation, protected).
    pub fn queue_bytes(&self) -> (u64, u64, u64) {
        self.inner.queue_bytes()
    }
}

impl EvictionPolicy for NativeWTinyLfu {
    fn name(&self) -> &str {
        "builtin:wtinylfu"
    }

    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        self.inner.configure(capacity_bytes, expected_entries);
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        for chunk in events.chunks_exact(crate::EVENT_WORDS) {
            let Some(ev) = decode_event(chunk) else {
                continue;
            };
            let Ok(id) = u32::try_from(ev.id) else {
                continue;
            };
            match ev.kind {
                EventKind::Insert => self.inner.on_insert(id, ev.fingerprint, ev.size),
                EventKind::Hit => self.inner.on_access(id, None),
                EventKind::Update => self.inner.on_access(id, Some(ev.size)),
                EventKind::Remove => self.inner.on_remove(id),
            }
        }
        let mut out = Vec::new();
        if bytes_to_free > 0 {
            self.inner.victims(bytes_to_free, max_count, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PackedEvent, encode_event};

    fn ev(out: &mut Vec<u64>, kind: EventKind, id: u64, size: u64) {
        let e = PackedEvent {
            id,
            size,
            at_ms: 0,
            kind,
            priority: 0,
            fingerprint: id,
        };
        encode_event(out, &e);
    }

    #[test]
    fn frequent_entries_survive_a_scan() {
        let mut p = NativeWTinyLfu::new();
        p.configure(100, 100);
        let mut b = Vec::new();
        for id in 0..100 {
            ev(&mut b, EventKind::Insert, id, 1);
        }
        for _ in 0..3 {
            for id in 0..10 {
                ev(&mut b, EventKind::Hit, id, 0);
            }
        }
        assert!(p.observe(&b, 0, 0).is_empty());
        // A scan of new ids: each one is a candidate with one access; the hot ten stay.
        for next in 100..400u64 {
            b.clear();
            ev(&mut b, EventKind::Insert, next, 1);
            let v = p.observe(&b, 1, 10);
            assert_eq!(v.len(), 1);
            assert!(v[0] >= 10, "hot id {} evicted", v[0]);
            b.clear();
            ev(&mut b, EventKind::Remove, v[0], 0);
            p.observe(&b, 0, 0);
        }
    }

    #[test]
    fn byte_weighted_victims_free_enough() {
        let mut p = NativeWTinyLfu::new();
        p.configure(100_000, 0); // a window of 1000 bytes holds every entry
        let mut b = Vec::new();
        for id in 0..10 {
            ev(&mut b, EventKind::Insert, id, 100);
        }
        ev(&mut b, EventKind::Insert, 10, 250);
        let v = p.observe(&b, 250, 100);
        let size = |id: u64| if id == 10 { 250 } else { 100 };
        let freed: u64 = v.iter().map(|&id| size(id)).sum();
        assert!(freed >= 250, "{v:?} frees {freed}");
        let (w, pr, pt) = p.queue_bytes();
        assert_eq!(w + pr + pt, 1250 - freed);
        let mut seen = v.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), v.len(), "no id answered twice");
    }

    #[test]
    fn entries_larger_than_the_window_are_not_admitted() {
        let mut p = NativeWTinyLfu::new();
        p.configure(1000, 0); // window: 10 bytes
        let mut b = Vec::new();
        for id in 0..99 {
            ev(&mut b, EventKind::Insert, id, 10);
        }
        assert!(p.observe(&b, 0, 10).is_empty());
        b.clear();
        ev(&mut b, EventKind::Insert, 99, 50);
        assert_eq!(
            p.observe(&b, 40, 10),
            vec![99],
            "refused, as libCacheSim does"
        );
    }
}
