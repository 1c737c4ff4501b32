//! The Wasm W-TinyLFU must answer exactly like the host's native one, and behave like
//! W-TinyLFU: frequent entries survive scans, victims free enough bytes.

use crate::Policy;
use rmhost_abi::{EvictionPolicy, NativeWTinyLfu};
use rmhost_policy::Eviction;
use rmhost_policy::events::{EventKind, encode, observe};

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

/// Random batches driven like a cache (smallest free ids, answered victims removed in the
/// next batch), sizes 1-64 bytes, both implementations side by side.
#[test]
fn agrees_with_native_wtinylfu_on_random_traces() {
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut wasm = Policy::default();
        let mut native = NativeWTinyLfu::new();
        let cap = 200 + rng.below(2000);
        wasm.configure(cap, 0);
        native.configure(cap, 0);
        let mut live: Vec<Option<u64>> = Vec::new();
        let mut used = 0u64;
        let mut pending: Vec<u64> = Vec::new();
        for _round in 0..300 {
            let mut b = Vec::new();
            for id in pending.drain(..) {
                if let Some(Some(sz)) = live.get(id as usize).copied() {
                    encode(&mut b, EventKind::Remove, id, 0, 0, 0);
                    live[id as usize] = None;
                    used -= sz;
                }
            }
            for _ in 0..1 + rng.below(64) {
                let ids: Vec<u64> = (0..live.len() as u64)
                    .filter(|&i| live[i as usize].is_some())
                    .collect();
                let r = rng.below(100);
                if r < 40 || ids.is_empty() {
                    let id = live.iter().position(|s| s.is_none()).unwrap_or(live.len()) as u64;
                    if id as usize == live.len() {
                        live.push(None);
                    }
                    let sz = 1 + rng.below(64);
                    live[id as usize] = Some(sz);
                    used += sz;
                    encode(&mut b, EventKind::Insert, id, sz, 0, 0);
                } else if r < 90 {
                    // Skewed hits: low ids more often.
                    let k = rng.below(ids.len() as u64).min(rng.below(ids.len() as u64));
                    encode(&mut b, EventKind::Hit, ids[k as usize], 0, 0, 0);
                } else if r < 95 {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    let sz = 1 + rng.below(64);
                    used = used - live[id as usize].unwrap() + sz;
                    live[id as usize] = Some(sz);
                    encode(&mut b, EventKind::Update, id, sz, 0, 0);
                } else {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    used -= live[id as usize].take().unwrap();
                    encode(&mut b, EventKind::Remove, id, 0, 0, 0);
                }
            }
            let need = used.saturating_sub(cap);
            let max = 1 + rng.below(40) as u32;
            let a = observe(&mut wasm, &b, need, max);
            let e = native.observe(&b, need, max);
            assert_eq!(a, e, "seed {seed}: victims differ");
            assert_eq!(wasm.0.queue_bytes(), native.queue_bytes(), "seed {seed}");
            let freed: u64 = a.iter().map(|&id| live[id as usize].unwrap()).sum();
            assert!(
                freed >= need || a.len() == max as usize,
                "seed {seed}: short answer"
            );
            pending = a;
        }
    }
}

#[test]
fn hot_entries_survive_a_scan() {
    let mut p = Policy::default();
    p.configure(100, 100);
    let mut b = Vec::new();
    for id in 0..100 {
        encode(&mut b, EventKind::Insert, id, 1, 0, 0);
    }
    for _ in 0..3 {
        for id in 0..10 {
            encode(&mut b, EventKind::Hit, id, 0, 0, 0);
        }
    }
    assert!(observe(&mut p, &b, 0, 0).is_empty());
    for next in 100..400u64 {
        b.clear();
        encode(&mut b, EventKind::Insert, next, 1, 0, 0);
        let v = observe(&mut p, &b, 1, 10);
        assert_eq!(v.len(), 1);
        assert!(v[0] >= 10, "hot id {} evicted", v[0]);
        b.clear();
        encode(&mut b, EventKind::Remove, v[0], 0, 0, 0);
        observe(&mut p, &b, 0, 0);
    }
}
