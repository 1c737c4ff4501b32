use crate::S3Fifo;
use rmhost_policy::Eviction;
use rmhost_policy::events::{EventKind, encode, observe};

fn ins(b: &mut Vec<u64>, id: u64, size: u64) {
    encode(b, EventKind::Insert, id, size, 0, 0);
}
fn hit(b: &mut Vec<u64>, id: u64) {
    encode(b, EventKind::Hit, id, 0, 0, 0);
}
fn rm(b: &mut Vec<u64>, ids: &[u64]) {
    for &id in ids {
        encode(b, EventKind::Remove, id, 0, 0, 0);
    }
}

#[test]
fn one_hit_wonders_leave_from_small_first() {
    let mut p = S3Fifo::new(1, 10, true);
    p.configure(100, 0);
    let mut b = Vec::new();
    for id in 0..10 {
        ins(&mut b, id, 10);
    }
    hit(&mut b, 0); // accessed once in small: moves to main when it reaches small's tail
    let v = observe(&mut p, &b, 10, 10);
    assert_eq!(
        v,
        vec![1],
        "0 was accessed, so 1 is the first one-hit wonder"
    );
    let (small, main, ghost) = p.queue_bytes();
    assert_eq!((small, main, ghost), (80, 10, 10));
}

#[test]
fn libcachesim_threshold_needs_two_accesses() {
    let mut p = S3Fifo::new(2, 10, true);
    p.configure(100, 0);
    let mut b = Vec::new();
    for id in 0..10 {
        ins(&mut b, id, 10);
    }
    hit(&mut b, 0);
    assert_eq!(observe(&mut p, &b, 10, 10), vec![0]);
}

#[test]
fn main_reinserts_while_frequency_lasts() {
    let mut p = S3Fifo::new(1, 10, false);
    p.configure(100, 0);
    let mut b = Vec::new();
    for id in 0..4 {
        ins(&mut b, id, 10);
        hit(&mut b, id);
    }
    // Small holds 40 >= 10: evicting from small moves every accessed entry to main (freq
    // reset to 0), then small is empty and main's tail (0) is the victim.
    assert_eq!(observe(&mut p, &b, 10, 1), vec![0]);
    b.clear();
    rm(&mut b, &[0]);
    hit(&mut b, 1);
    hit(&mut b, 1);
    // Main is 1,2,3 (tail first); 1 has freq 2 and is reinserted, 2 goes.
    assert_eq!(observe(&mut p, &b, 10, 1), vec![2]);
    b.clear();
    rm(&mut b, &[2]);
    // 3 goes (freq 0), then 1 has freq 1 -> reinserted with 0, then 1 goes.
    assert_eq!(observe(&mut p, &b, 20, 5), vec![3, 1]);
}

#[test]
fn ghost_hit_needs_same_id_and_size() {
    let mut p = S3Fifo::new(1, 10, true);
    p.configure(100, 0);
    let mut b = Vec::new();
    for id in 0..10 {
        ins(&mut b, id, 10);
    }
    assert_eq!(observe(&mut p, &b, 20, 10), vec![0, 1]);
    b.clear();
    rm(&mut b, &[0, 1]);
    ins(&mut b, 0, 10); // same id and size as a ghost entry: straight to main
    ins(&mut b, 1, 7); // same id, other size: a new key, to small; the ghost entry is dropped
    observe(&mut p, &b, 0, 0);
    let (small, main, ghost) = p.queue_bytes();
    assert_eq!((small, main, ghost), (87, 10, 0));
}

#[test]
fn victims_are_pending_until_removed_and_never_repeated() {
    let mut p = S3Fifo::new(1, 10, true);
    p.configure(50, 0);
    let mut b = Vec::new();
    for id in 0..5 {
        ins(&mut b, id, 10);
    }
    let first = observe(&mut p, &b, 20, 10);
    assert_eq!(first, vec![0, 1]);
    // Asked again before the removes arrive: other ids.
    assert_eq!(observe(&mut p, &[], 10, 10), vec![2]);
    // The host kept 0 after all (a hit): it is readmitted to main.
    b.clear();
    hit(&mut b, 0);
    rm(&mut b, &[1, 2]);
    observe(&mut p, &b, 0, 0);
    assert_eq!(p.queue_bytes().1, 10);
}

/// Random traces driven like the host drives a cache: every answer is valid (live,
/// distinct, within `max_count`, frees enough when it can) and byte accounting holds.
#[test]
fn random_traces_keep_the_invariants() {
    for seed in 1..=20u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let cap = 500;
        let mut p = S3Fifo::new(1 + (seed % 3) as u8, 10, seed % 2 == 0);
        p.configure(if seed % 4 == 0 { 0 } else { cap }, 0);
        let mut live: Vec<Option<u64>> = Vec::new();
        let mut used = 0u64;
        let mut pending = Vec::new();
        for _ in 0..400 {
            let mut b = Vec::new();
            for id in std::mem::take(&mut pending) {
                let sz: u64 = live[id as usize].take().expect("victim was live");
                used -= sz;
                rm(&mut b, &[id]);
            }
            for _ in 0..1 + rnd(40) {
                let ids: Vec<u64> = (0..live.len() as u64)
                    .filter(|&i| live[i as usize].is_some())
                    .collect();
                let r = rnd(100);
                if r < 40 || ids.is_empty() {
                    let id = live.iter().position(|s| s.is_none()).unwrap_or(live.len());
                    if id == live.len() {
                        live.push(None);
                    }
                    let sz = 1 + rnd(30);
                    live[id] = Some(sz);
                    used += sz;
                    ins(&mut b, id as u64, sz);
                } else if r < 90 {
                    hit(&mut b, ids[rnd(ids.len() as u64) as usize]);
                } else if r < 95 {
                    let id = ids[rnd(ids.len() as u64) as usize];
                    let sz = 1 + rnd(30);
                    used = used - live[id as usize].unwrap() + sz;
                    live[id as usize] = Some(sz);
                    encode(&mut b, EventKind::Update, id, sz, 0, 0);
                } else {
                    let id = ids[rnd(ids.len() as u64) as usize];
                    used -= live[id as usize].take().unwrap();
                    rm(&mut b, &[id]);
                }
            }
            let need = used.saturating_sub(cap);
            let max = 1 + rnd(30) as u32;
            let v = observe(&mut p, &b, need, max);
            assert!(v.len() <= max as usize);
            let mut seen = std::collections::HashSet::new();
            let mut freed = 0;
            for &id in &v {
                assert!(seen.insert(id), "seed {seed}: {id} answered twice");
                freed += live[id as usize].expect("victims are live");
            }
            assert!(
                freed >= need || v.len() == max as usize,
                "seed {seed}: short answer"
            );
            let (small, main, _) = p.queue_bytes();
            assert_eq!(small + main + freed, used, "seed {seed}: byte accounting");
            pending = v;
        }
    }
}
