//! Cache protocol and invariant tests. Pressure, leak and trace tests are in `tests_more.rs`.

use super::*;
use crate::policy::{EventKind, EvictionPolicy, NativeLru, decode_event};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Wraps a policy and checks every batch against the contract: ids dense (smallest free),
/// no insert of a live id, no hit/update/remove of a non-live one.
struct Checked {
    inner: Box<dyn EvictionPolicy>,
    live: HashSet<u64>,
    violations: Arc<Mutex<Vec<String>>>,
    /// Answer override: returns these ids instead of asking `inner` once.
    script: VecDeque<Vec<u64>>,
    replay: bool,
}

impl Checked {
    fn new(inner: Box<dyn EvictionPolicy>) -> (Self, Arc<Mutex<Vec<String>>>) {
        let v = Arc::new(Mutex::new(Vec::new()));
        let c = Checked {
            inner,
            live: HashSet::new(),
            violations: v.clone(),
            script: VecDeque::new(),
            replay: false,
        };
        (c, v)
    }
}

impl EvictionPolicy for Checked {
    fn name(&self) -> &str {
        "checked"
    }
    fn configure(&mut self, c: u64, e: u32) {
        self.inner.configure(c, e);
    }
    fn observe(&mut self, events: &[u64], bytes: u64, max: u32) -> Vec<u64> {
        for ch in events.chunks_exact(crate::policy::EVENT_WORDS) {
            let ev = decode_event(ch).expect("valid kind");
            let err = |m: String| self.violations.lock().push(m);
            match ev.kind {
                EventKind::Insert => {
                    let smallest_free = (0..).find(|i| !self.live.contains(i)).unwrap_or(0);
                    if ev.id != smallest_free && !self.replay {
                        err(format!(
                            "insert id {} but smallest free is {smallest_free}",
                            ev.id
                        ));
                    }
                    if !self.live.insert(ev.id) {
                        err(format!("insert of live id {}", ev.id));
                    }
                }
                EventKind::Remove => {
                    if !self.live.remove(&ev.id) {
                        err(format!("remove of non-live id {}", ev.id));
                    }
                }
                _ => {
                    if !self.live.contains(&ev.id) {
                        err(format!("{:?} of non-live id {}", ev.kind, ev.id));
                    }
                }
            }
        }
        self.replay = false;
        let answer = self.inner.observe(events, bytes, max);
        if bytes > 0
            && let Some(s) = self.script.pop_front()
        {
            return s;
        }
        answer
    }
}

#[test]
fn lru_cache_evicts_least_recent_and_keeps_capacity() {
    let c: Cache<u32, u32> = Cache::new(CacheConfig::exact(3), Box::new(NativeLru::new()));
    for k in 0..3 {
        assert!(c.insert(k, k, 1));
    }
    assert_eq!(c.get(&0), Some(0));
    assert!(c.insert(3, 3, 1));
    assert_eq!(c.get(&1), None, "1 was least recent");
    assert_eq!(c.len(), 3);
    assert!(!c.insert(9, 9, 4), "larger than the cache: not admitted");
    let s = c.stats();
    assert_eq!((s.evictions, s.rejections, s.bytes), (1, 1, 3));
    c.check_consistency().unwrap();
}

#[test]
fn protocol_is_respected_under_random_ops() {
    let (policy, violations) = Checked::new(Box::new(NativeLru::new()));
    let mut cfg = CacheConfig::new(500);
    cfg.shards = 4;
    cfg.batch_events = 16;
    let c: Cache<u64, u64> = Cache::new(cfg, Box::new(policy));
    let mut rng = trace::SplitMix64(7);
    for _ in 0..20_000 {
        let k = rng.next_u64() % 200;
        match rng.next_u64() % 10 {
            0 => {
                c.remove(&k);
            }
            1..=4 => {
                c.insert(k, k, 1 + rng.next_u64() % 20);
            }
            _ => {
                c.get(&k);
            }
        }
        assert!(c.bytes() <= 500);
    }
    c.flush();
    c.check_consistency().unwrap();
    assert!(
        violations.lock().is_empty(),
        "{:?}",
        &violations.lock()[..5.min(violations.lock().len())]
    );
}

#[test]
fn bad_answers_are_ignored_and_shortfalls_filled() {
    let (mut policy, violations) = Checked::new(Box::new(NativeLru::new()));
    // First ask: unknown ids only. Second: one valid id but too few bytes.
    policy.script.push_back(vec![999, 1000]);
    policy.script.push_back(vec![1]);
    let c: Cache<u32, ()> = Cache::new(CacheConfig::exact(4), Box::new(policy));
    for k in 0..4 {
        c.insert(k, (), 1);
    }
    c.insert(4, (), 1);
    c.insert(5, (), 2);
    let s = c.stats();
    assert_eq!(s.ignored_victims, 2);
    assert!(s.fallback_fills >= 2, "{s:?}");
    assert!(s.bytes <= 4);
    c.flush();
    c.check_consistency().unwrap();
    assert!(violations.lock().is_empty(), "{:?}", violations.lock());
}

/// An admission filter that rejects every insert in the batch that asks for room.
struct RejectNew(NativeLru, Vec<u64>);
impl EvictionPolicy for RejectNew {
    fn name(&self) -> &str {
        "reject-new"
    }
    fn configure(&mut self, _: u64, _: u32) {}
    fn observe(&mut self, events: &[u64], bytes: u64, max: u32) -> Vec<u64> {
        self.1 = events
            .chunks_exact(crate::policy::EVENT_WORDS)
            .filter_map(decode_event)
            .filter(|e| e.kind == EventKind::Insert)
            .map(|e| e.id)
            .collect();
        self.0.apply(events);
        if bytes == 0 {
            return Vec::new();
        }
        // Say no to the newest insert (the one asking for room).
        self.1
            .last()
            .map(|&id| vec![id])
            .unwrap_or_default()
            .into_iter()
            .take(max as usize)
            .collect()
    }
}

#[test]
fn returning_a_new_id_rejects_it() {
    let c: Cache<u32, ()> = Cache::new(
        CacheConfig::exact(2),
        Box::new(RejectNew(NativeLru::new(), vec![])),
    );
    assert!(c.insert(1, (), 1));
    assert!(c.insert(2, (), 1));
    assert!(!c.insert(3, (), 1), "the policy rejected it");
    assert!(c.contains(&1) && c.contains(&2) && !c.contains(&3));
    let s = c.stats();
    assert_eq!((s.rejections, s.evictions), (1, 0));
}

/// Loses its state after the first `observe` that asks for victims, like a rebuilt instance.
struct Amnesiac {
    lru: NativeLru,
    lost: bool,
    replays_seen: usize,
}
impl EvictionPolicy for Amnesiac {
    fn name(&self) -> &str {
        "amnesiac"
    }
    fn configure(&mut self, _: u64, _: u32) {}
    fn observe(&mut self, events: &[u64], bytes: u64, max: u32) -> Vec<u64> {
        if self.lost {
            self.lost = false;
            self.replays_seen += 1;
            self.lru = NativeLru::new();
        }
        self.lru.apply(events);
        if bytes > 0 && self.replays_seen == 0 {
            self.lost = true;
            return vec![12345];
        }
        self.lru.victims(bytes, max, |_| false)
    }
    fn needs_replay(&self) -> bool {
        self.lost
    }
}

#[test]
fn needs_replay_replays_live_entries_oldest_first_and_asks_again() {
    let p = Amnesiac {
        lru: NativeLru::new(),
        lost: false,
        replays_seen: 0,
    };
    let c: Cache<u32, ()> = Cache::new(CacheConfig::exact(3), Box::new(p));
    for k in 0..3 {
        c.insert(k, (), 1);
    }
    c.get(&0);
    c.insert(3, (), 1);
    // The replay put 0 as most recent, so 1 is the victim (not the bogus 12345).
    assert!(!c.contains(&1));
    assert!(c.contains(&0));
    let s = c.stats();
    assert_eq!((s.replays, s.ignored_victims, s.fallback_fills), (1, 0, 0));
}

#[test]
fn warm_handoff_keeps_recency() {
    let c: Cache<u32, ()> = Cache::new(
        CacheConfig::exact(3),
        Box::new(crate::policy::NativeFifo::new()),
    );
    for k in 0..3 {
        c.insert(k, (), 1);
    }
    c.get(&0);
    c.set_policy(Box::new(NativeLru::new()));
    c.insert(3, (), 1);
    assert!(c.contains(&0) && !c.contains(&1));
}

#[test]
fn ttl_expires_entries() {
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c: Cache<&str, u8> = Cache::with_clock(
        CacheConfig::exact(10),
        Box::new(NativeLru::new()),
        crate::clock::Clock::Manual(clock.clone()),
    );
    c.insert_with("a", 1, 1, 0, Some(std::time::Duration::from_millis(100)));
    assert_eq!(c.get("a"), Some(1));
    clock.store(100, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(c.get("a"), None);
    assert_eq!(c.stats().expirations, 1);
    assert_eq!(c.bytes(), 0);
}

#[test]
fn expired_entries_are_purged_without_being_read() {
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let removed = Arc::new(Mutex::new(Vec::new()));
    let log = removed.clone();
    let c: Cache<u32, u8> = Cache::with_clock(
        CacheConfig::exact(100),
        Box::new(NativeLru::new()),
        crate::clock::Clock::Manual(clock.clone()),
    )
    .on_removal(move |k, _, cause| log.lock().push((k, cause)));
    let ttl = Some(std::time::Duration::from_millis(50));
    for k in 0..10 {
        c.insert_with(k, 0, 2, 0, if k < 6 { ttl } else { None });
    }
    assert_eq!(c.purge_expired(100), 0, "nothing is due yet");
    clock.store(50, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(c.purge_expired(4), 4, "at most the bound per call");
    assert_eq!(c.purge_expired(100), 2);
    assert_eq!(c.len(), 4);
    assert_eq!(c.bytes(), 8);
    let r = removed.lock();
    assert_eq!(r.len(), 6);
    assert!(
        r.iter()
            .all(|(k, cause)| *k < 6 && *cause == RemovalCause::Expired)
    );
}

#[test]
fn a_huge_capacity_cannot_wrap_its_byte_count() {
    let c: Cache<u8, u8> = Cache::new(
        CacheConfig::exact(crate::limits::MAX_CAPACITY_BYTES),
        Box::new(NativeLru::new()),
    );
    assert!(c.insert_with(1, 0, crate::limits::MAX_CAPACITY_BYTES, 0, None));
    c.insert_with(2, 0, 1, 0, None);
    let s = c.stats();
    assert!(s.bytes <= s.capacity_bytes, "{s:?}");
    assert!(s.bytes >= 1, "never wraps to empty: {s:?}");
}

#[test]
fn concurrent_access_loses_nothing_and_never_exceeds_capacity() {
    const CAP: u64 = 2_000;
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(
        CacheConfig {
            shards: 8,
            batch_events: 32,
            ..CacheConfig::new(CAP)
        },
        Box::new(NativeLru::new()),
    ));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = cache.clone();
            std::thread::spawn(move || {
                let mut rng = trace::SplitMix64(t);
                for _ in 0..30_000 {
                    let k = rng.next_u64() % 1_000;
                    match rng.next_u64() % 8 {
                        0 => {
                            c.remove(&k);
                        }
                        1..=3 => {
                            if c.insert(k, k * 2, 1 + rng.next_u64() % 30) {
                                assert!(c.bytes() <= CAP);
                            }
                        }
                        4 => {
                            c.trim(50);
                        }
                        _ => {
                            if let Some(v) = c.get(&k) {
                                assert_eq!(v, k * 2);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    cache.check_consistency().unwrap();
    assert!(cache.bytes() <= CAP);
}

#[test]
fn registry_accounts_entries_and_publishes_evictions() {
    let bus = crate::events::EventBus::new();
    let reg = CacheRegistry::new(Some(bus.clone()));
    reg.register_with_config(
        "s",
        "acme",
        CacheConfig::exact(100),
        Box::new(NativeLru::new()),
    )
    .unwrap();
    assert_eq!(
        reg.register_cache("s", "x", 1, Box::new(NativeLru::new()))
            .unwrap_err(),
        CacheError::AlreadyExists("s".into())
    );
    assert!(reg.add_cache_entry("s", "a".into(), 60, 0).unwrap());
    assert!(reg.add_cache_entry("s", "b".into(), 60, 0).unwrap());
    assert!(!reg.get_cache_entry("s", "a").unwrap());
    assert!(reg.get_cache_entry("s", "b").unwrap());
    assert_eq!(reg.trim("s", 1).unwrap(), 60);
    assert!(!reg.remove_cache_entry("s", "b").unwrap());
    assert!(matches!(
        reg.add_cache_entry("nope", "k".into(), 1, 0),
        Err(CacheError::NotFound(_))
    ));
    let evicted: Vec<String> = bus
        .recent(0)
        .iter()
        .filter_map(|e| match &e.event {
            crate::events::Event::CacheEvicted { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, vec!["a", "b"]);
    let stats = reg.stats();
    assert_eq!(stats[0].name, "s");
    assert_eq!(reg.snapshot()[0].tenant, "acme");
}

/// A straightforward LRU over a VecDeque: the reference the sim must equal.
fn reference_lru(trace: &Trace, cap: u64) -> u64 {
    let mut order: VecDeque<u64> = VecDeque::new();
    let mut sizes: HashMap<u64, u64> = HashMap::new();
    let (mut used, mut misses) = (0u64, 0u64);
    for r in &trace.requests {
        if sizes.contains_key(&r.id) {
            let pos = order.iter().position(|&x| x == r.id).unwrap();
            order.remove(pos);
            order.push_back(r.id);
            continue;
        }
        misses += 1;
        if r.size > cap {
            continue;
        }
        while used + r.size > cap {
            let v = order.pop_front().unwrap();
            used -= sizes.remove(&v).unwrap();
        }
        order.push_back(r.id);
        sizes.insert(r.id, r.size);
        used += r.size;
    }
    misses
}

#[test]
fn sim_lru_equals_reference_lru_on_random_traces() {
    for seed in 0..6u64 {
        let mut rng = trace::SplitMix64(seed);
        let sized = seed % 2 == 1;
        let requests = (0..5_000)
            .map(|i| {
                let id = rng.next_u64() % 300;
                let size = if sized { 1 + id % 17 } else { 1 };
                Request { time: i, id, size }
            })
            .collect();
        let t = Trace { requests };
        for cap in [1u64, 10, 50, 400] {
            let ours = sim::simulate(&t, cap, "lru".into(), Box::new(NativeLru::new()));
            assert_eq!(ours.misses, reference_lru(&t, cap), "seed {seed} cap {cap}");
        }
    }
}

#[test]
fn trims_are_told_apart_from_evictions_for_room() {
    let removed = Arc::new(Mutex::new(Vec::new()));
    let log = removed.clone();
    let c: Cache<u32, u8> = Cache::new(CacheConfig::exact(30), Box::new(NativeLru::new()))
        .on_removal(move |k, _, cause| log.lock().push((k, cause)));
    for k in 0..4 {
        c.insert_with(k, 0, 10, 0, None); // the fourth needs room: one eviction
    }
    c.trim(10);
    let r = removed.lock();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].1, RemovalCause::Evicted);
    assert_eq!(r[1].1, RemovalCause::Trimmed);
}

#[test]
fn removals_are_counted_per_cause() {
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c: Cache<u32, u8> = Cache::with_clock(
        CacheConfig::exact(30),
        Box::new(NativeLru::new()),
        crate::clock::Clock::Manual(clock.clone()),
    );
    for k in 0..4 {
        c.insert_with(k, 0, 10, 0, None); // the fourth needs room: one eviction (size)
    }
    c.insert(1, 1, 10); // replaced in place
    // Replaced by a value larger than the cache: the old value is replaced, the new one is
    // not admitted (size), and the key is gone.
    c.insert(2, 2, 100);
    c.remove(&3); // removed
    c.insert_with(5, 0, 10, 0, Some(std::time::Duration::from_millis(5)));
    clock.store(10, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(c.purge_expired(10), 1); // expired
    c.insert(6, 0, 10);
    c.trim(10); // trimmed
    let r = c.stats().removals;
    assert_eq!(
        r.by_cause(),
        [
            ("size", 2),
            ("expired", 1),
            ("trimmed", 1),
            ("removed", 1),
            ("replaced", 2)
        ],
        "{r:?}"
    );
    assert_eq!(RemovalCause::Rejected.as_cause(), "size");
    assert_eq!(RemovalCause::Replaced.as_cause(), "replaced");
}
