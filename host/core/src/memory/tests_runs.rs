//! Victim runs: a stable-order policy's runs give exactly the victims `observe` gives
//! (same misses, same evictions, same order), with far fewer calls; runs are dropped when
//! an event touches them; a policy that lies in its runs cannot break the cache.

use super::cache::{Cache, CacheConfig};
use super::sim::{PolicyFactory, run_sweep, simulate};
use super::trace::{Request, SplitMix64, Trace};
use crate::policy::{EvictionPolicy, NativeFifo, NativeLru};
use std::sync::{Arc, Mutex};

/// Hides a policy's runs: every eviction goes through `observe`, as before runs existed.
struct NoRuns<P>(P);

impl<P: EvictionPolicy> EvictionPolicy for NoRuns<P> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn configure(&mut self, c: u64, n: u32) {
        self.0.configure(c, n);
    }
    fn observe(&mut self, events: &[u64], bytes: u64, max: u32) -> Vec<u64> {
        self.0.observe(events, bytes, max)
    }
}

/// Records every victim the cache's listener reports, in order.
fn replay(trace: &Trace, cap: u64, policy: Box<dyn EvictionPolicy>) -> (u64, Vec<u64>, u64) {
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let log = evicted.clone();
    let cache: Cache<u64, ()> = Cache::new(CacheConfig::exact(cap), policy)
        .on_removal(move |k, _, _| log.lock().unwrap().push(k));
    let mut misses = 0;
    for r in &trace.requests {
        if cache.get(&r.id).is_none() {
            misses += 1;
            cache.insert(r.id, (), r.size);
        }
        assert!(cache.bytes() <= cap);
    }
    let calls = cache.stats().observe_calls;
    let v = evicted.lock().unwrap().clone();
    (misses, v, calls)
}

fn sized(seed: u64) -> Trace {
    let z = Trace::synthetic(&format!(
        "zipf:alpha=0.8,objects=3000,requests=40000,seed={seed}"
    ))
    .unwrap();
    let mut rng = SplitMix64(seed);
    let sizes: Vec<u64> = (0..=3000).map(|_| 1 + rng.next_u64() % 300).collect();
    super::tests_policies::with_sizes(&z, &sizes)
}

#[test]
fn runs_evict_exactly_what_observe_would_with_far_fewer_calls() {
    let unit = Trace::synthetic("zipf:alpha=1.0,objects=5000,requests=50000,seed=3").unwrap();
    for (trace, cap) in [(&unit, 500u64), (&sized(5), 20_000)] {
        let (m_runs, v_runs, c_runs) = replay(trace, cap, Box::new(NativeLru::new()));
        let (m_obs, v_obs, c_obs) = replay(trace, cap, Box::new(NoRuns(NativeLru::new())));
        assert_eq!(m_runs, m_obs, "LRU misses");
        assert_eq!(v_runs, v_obs, "LRU victims, in order");
        assert!(!v_runs.is_empty());
        // Deterministic counts, not time: one call per run instead of one per eviction.
        assert!(
            c_runs * 4 < c_obs,
            "LRU calls: runs {c_runs}, observe {c_obs}"
        );

        let (m_runs, v_runs, c_runs) = replay(trace, cap, Box::new(NativeFifo::new()));
        let (m_obs, v_obs, c_obs) = replay(trace, cap, Box::new(NoRuns(NativeFifo::new())));
        assert_eq!((m_runs, &v_runs), (m_obs, &v_obs), "FIFO");
        assert!(
            c_runs * 4 < c_obs,
            "FIFO calls: runs {c_runs}, observe {c_obs}"
        );
    }
}

#[test]
fn an_access_to_a_run_entry_drops_the_run() {
    let cache: Cache<u64, ()> = Cache::new(CacheConfig::exact(4), Box::new(NativeLru::new()));
    for k in 0..4 {
        cache.insert(k, (), 1);
    }
    cache.insert(4, (), 1); // evicts 0 from a run [0, 1, 2, 3, 4]
    assert!(!cache.contains(&0));
    // 1 is next in the run; a hit makes it the most recent, so the run must not be used.
    assert!(cache.get(&1).is_some());
    cache.insert(5, (), 1);
    assert!(
        cache.contains(&1),
        "a hit entry was evicted from a stale run"
    );
    assert!(!cache.contains(&2));
    assert!(cache.stats().run_victims >= 2);
}

/// Answers runs that break every rule: unknown ids, duplicates, huge values, the whole
/// live set in random order, and sometimes nothing.
struct Liar {
    inner: NativeLru,
    rng: SplitMix64,
}

impl EvictionPolicy for Liar {
    fn name(&self) -> &str {
        "liar"
    }
    fn configure(&mut self, _: u64, _: u32) {}
    fn observe(&mut self, events: &[u64], bytes: u64, max: u32) -> Vec<u64> {
        self.inner.observe(events, bytes, max)
    }
    fn next_victims(&mut self, events: &[u64], max: u32) -> Option<Vec<u64>> {
        self.inner.apply(events);
        let r = self.rng.next_u64();
        Some(match r % 4 {
            0 => Vec::new(),
            1 => vec![u64::MAX, 1 << 40, 7, 7, 7],
            2 => (0..max as u64 * 3)
                .map(|_| self.rng.next_u64() % 64)
                .collect(),
            _ => self.inner.ids_oldest_first().into_iter().rev().collect(),
        })
    }
}

#[test]
fn a_lying_run_cannot_overfill_or_break_the_cache() {
    let trace = sized(9);
    let cap = 10_000;
    let liar = Liar {
        inner: NativeLru::new(),
        rng: SplitMix64(1),
    };
    let cache: Cache<u64, ()> = Cache::new(CacheConfig::exact(cap), Box::new(liar));
    for r in &trace.requests {
        if cache.get(&r.id).is_none() {
            cache.insert(r.id, (), r.size);
        }
        assert!(cache.bytes() <= cap);
    }
    let s = cache.stats();
    assert!(s.ignored_victims > 0, "{s:?}");
    assert!(s.evictions > 0 && s.entries > 0, "{s:?}");
    cache.check_consistency().unwrap();
}

#[test]
fn a_sweep_gives_each_job_what_a_single_run_gives_whatever_the_threads() {
    let trace = sized(4);
    let sizes = [2_000u64, 20_000, 60_000];
    let policies: Vec<(String, PolicyFactory)> = ["lru", "s3fifo", "wtinylfu"]
        .into_iter()
        .map(|n| {
            let f: PolicyFactory =
                Box::new(move || crate::policy::builtin_eviction(n).expect("builtin"));
            (format!("builtin:{n}"), f)
        })
        .collect();
    let two = run_sweep(&trace, &sizes, &policies, true, 2);
    let one = run_sweep(&trace, &sizes, &policies, true, 1);
    assert_eq!(two.len(), 12);
    for (i, (a, b)) in two.iter().zip(&one).enumerate() {
        assert_eq!(
            (&a.policy, a.cache_size, a.misses),
            (&b.policy, b.cache_size, b.misses)
        );
        assert_eq!(a.cache_size, sizes[i / 4]);
        if let Some((_, make)) = policies.iter().find(|(n, _)| *n == a.policy) {
            let single = simulate(&trace, a.cache_size, a.policy.clone(), make());
            assert_eq!(single.misses, a.misses, "{} at {}", a.policy, a.cache_size);
        }
    }
    // Bigger caches miss less; Belady is the bound at every size.
    for i in 0..4 {
        assert!(two[i].misses >= two[4 + i].misses && two[4 + i].misses >= two[8 + i].misses);
    }
    for chunk in two.chunks(4) {
        assert!(chunk[..3].iter().all(|r| r.misses >= chunk[3].misses));
    }
}

#[test]
fn footprint_and_percent_sizes() {
    use super::sim::CacheSize;
    let t = Trace {
        requests: [(1, 10), (2, 5), (1, 10), (3, 1)]
            .iter()
            .enumerate()
            .map(|(i, &(id, size))| Request {
                time: i as u64,
                id,
                size,
            })
            .collect(),
    };
    assert_eq!(t.footprint(), 16);
    assert_eq!("50%".parse::<CacheSize>().unwrap().resolve(16), 8);
    assert_eq!("0.1%".parse::<CacheSize>().unwrap().resolve(16), 1);
    assert_eq!("123".parse::<CacheSize>().unwrap().resolve(16), 123);
    for bad in ["0", "0%", "100.5%", "-1%", "x", "", "5 %%", "NaN%"] {
        assert!(bad.parse::<CacheSize>().is_err(), "{bad:?}");
    }
}
