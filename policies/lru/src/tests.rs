//! The Wasm LRU must answer exactly like the host's native LRU on any event sequence.

use crate::Lru;
use rmhost_abi::{EvictionPolicy, NativeLru};
use rmhost_policy::Eviction;
use rmhost_policy::events::{EventKind, encode, observe};

/// A small deterministic generator (no dependencies in policy crates).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn matches_the_host_example() {
    let mut lru = Lru::default();
    let mut b = Vec::new();
    for id in 0..4 {
        encode(&mut b, EventKind::Insert, id, 10, 0, 0);
    }
    encode(&mut b, EventKind::Hit, 0, 0, 0, 0);
    assert_eq!(observe(&mut lru, &b, 15, 10), vec![1, 2]);
    b.clear();
    encode(&mut b, EventKind::Remove, 1, 0, 0, 0);
    encode(&mut b, EventKind::Update, 2, 30, 0, 0);
    assert_eq!(observe(&mut lru, &b, 1, 10), vec![3]);
    assert_eq!(lru.ids_oldest_first(), vec![3, 0, 2]);
    assert_eq!(observe(&mut lru, &[], 100, 2), vec![3, 0]);
}

/// Random batches driven like a cache: dense smallest-free ids, evicting what the policy
/// answers, plus some deliberately invalid events (hits/removes of dead ids, re-inserts of
/// live ids, unknown kinds, huge ids) that both sides must treat the same way.
#[test]
fn agrees_with_native_lru_on_random_traces() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut wasm = Lru::default();
        let mut native = NativeLru::new();
        let cap = 40 + rng.below(200);
        wasm.configure(cap * 8, 0);
        native.configure(cap * 8, 0);
        let mut live: Vec<Option<u64>> = Vec::new(); // id -> size
        let mut used = 0u64;
        let mut pending: Vec<u64> = Vec::new(); // victims to send as removes
        for _round in 0..300 {
            let mut b = Vec::new();
            for id in pending.drain(..) {
                if let Some(Some(sz)) = live.get(id as usize).copied() {
                    encode(&mut b, EventKind::Remove, id, 0, 0, 0);
                    live[id as usize] = None;
                    used -= sz;
                }
            }
            let n = 1 + rng.below(64);
            for _ in 0..n {
                let r = rng.below(100);
                let ids: Vec<u64> = (0..live.len() as u64)
                    .filter(|&i| live[i as usize].is_some())
                    .collect();
                if r < 35 || ids.is_empty() {
                    let id = live.iter().position(|s| s.is_none()).unwrap_or(live.len()) as u64;
                    let sz = 1 + rng.below(16);
                    if id as usize == live.len() {
                        live.push(None);
                    }
                    live[id as usize] = Some(sz);
                    used += sz;
                    encode(&mut b, EventKind::Insert, id, sz, rng.below(4) as u8, 0);
                } else if r < 80 {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    encode(&mut b, EventKind::Hit, id, 0, 0, 0);
                } else if r < 90 {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    let sz = 1 + rng.below(16);
                    used = used - live[id as usize].unwrap() + sz;
                    live[id as usize] = Some(sz);
                    encode(&mut b, EventKind::Update, id, sz, 1, 0);
                } else if r < 95 {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    used -= live[id as usize].take().unwrap();
                    encode(&mut b, EventKind::Remove, id, 0, 0, 0);
                } else {
                    // Invalid on purpose: both implementations must ignore or absorb it.
                    match rng.below(5) {
                        0 => encode(&mut b, EventKind::Hit, 5000 + rng.below(10), 0, 0, 0),
                        1 => encode(&mut b, EventKind::Remove, 7000, 0, 0, 0),
                        2 => b.extend([1, 1, 0x4200]),
                        3 => encode(&mut b, EventKind::Hit, u32::MAX as u64, 0, 0, 0),
                        _ => {
                            // Insert of a live id: counts as an update on both sides.
                            let id = ids[rng.below(ids.len() as u64) as usize];
                            let sz = 1 + rng.below(16);
                            used = used - live[id as usize].unwrap() + sz;
                            live[id as usize] = Some(sz);
                            encode(&mut b, EventKind::Insert, id, sz, 0, 0);
                        }
                    }
                }
            }
            let need = used.saturating_sub(cap);
            let max = 1 + rng.below(20) as u32;
            let a = observe(&mut wasm, &b, need, max);
            let e = native.observe(&b, need, max);
            assert_eq!(a, e, "seed {seed}: victims differ");
            assert_eq!(
                wasm.ids_oldest_first(),
                native.ids_oldest_first(),
                "seed {seed}"
            );
            assert_eq!(wasm.len(), native.len());
            pending = a;
        }
    }
}
