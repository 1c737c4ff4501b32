//! `rmhost sim`: replays a trace through eviction policies with the production cache code
//! (one shard, headroom 0: exact per-insert eviction), plus Belady's OPT as the bound.
//!
//! Semantics chosen to equal libCacheSim's, so miss counts match it exactly for LRU and
//! FIFO: every request is a lookup; a miss inserts the object; an object larger than the
//! cache is never admitted (still a miss); cache size is in bytes (1 per object for plain
//! traces, so objects); a hit does not change an object's size.
//!
//! A sweep ([`run_sweep`]) replays every (cache size, policy) pair as its own job, spread
//! over threads: each job gets a fresh policy instance from its factory and its own cache,
//! so jobs share nothing but the trace and results do not depend on the thread count.

use super::cache::{Cache, CacheConfig};
use super::trace::Trace;
use crate::policy::EvictionPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// One policy's result (the `--json` output is an array of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    /// `builtin:NAME`, a Wasm file name, or `belady`.
    pub policy: String,
    /// The cache size replayed, bytes (objects for plain traces).
    #[serde(default)]
    pub cache_size: u64,
    /// Requests replayed.
    pub requests: u64,
    /// Requests that missed.
    pub misses: u64,
    /// misses / requests.
    pub miss_ratio: f64,
    /// Bytes of missed requests / bytes requested.
    pub byte_miss_ratio: f64,
    /// Nanoseconds inside the policy (`observe`) per request; for Belady, its whole
    /// simulation per request.
    pub ns_per_request: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Replays `trace` through each policy (and Belady when asked) at `cache_size` bytes.
pub fn run_sim(
    trace: &Trace,
    cache_size: u64,
    policies: Vec<(String, Box<dyn EvictionPolicy>)>,
    belady: bool,
) -> Vec<SimResult> {
    let mut out: Vec<SimResult> = policies
        .into_iter()
        .map(|(name, policy)| simulate(trace, cache_size, name, policy))
        .collect();
    if belady {
        out.push(simulate_belady(trace, cache_size));
    }
    out
}

/// One policy through the production `Cache` (exact configuration).
pub fn simulate(
    trace: &Trace,
    cache_size: u64,
    name: String,
    policy: Box<dyn EvictionPolicy>,
) -> SimResult {
    let clock = Arc::new(AtomicU64::new(0));
    let mut cfg = CacheConfig::exact(cache_size.max(1));
    cfg.expected_entries = u32::try_from(cache_size.min(1 << 24)).unwrap_or(0);
    let cache: Cache<u64, ()> =
        Cache::with_clock(cfg, policy, crate::clock::Clock::Manual(clock.clone()));
    let (mut misses, mut bytes, mut missed_bytes) = (0u64, 0u64, 0u64);
    for r in &trace.requests {
        clock.store(r.time, Ordering::Relaxed);
        bytes += r.size;
        if cache.get(&r.id).is_none() {
            misses += 1;
            missed_bytes += r.size;
            cache.insert(r.id, (), r.size);
        }
    }
    let n = trace.requests.len() as u64;
    SimResult {
        policy: name,
        cache_size,
        requests: n,
        misses,
        miss_ratio: ratio(misses, n),
        byte_miss_ratio: ratio(missed_bytes, bytes),
        ns_per_request: if n == 0 {
            0.0
        } else {
            cache.stats().policy_ns as f64 / n as f64
        },
    }
}

/// Belady's OPT, as libCacheSim's `Belady` does it: on a miss, evict the cached objects
/// whose next access is furthest away until the new object fits, then always admit it
/// (unless it is larger than the cache). For unit sizes this is the exact optimum. For
/// variable sizes no polynomial exact optimum is known; evicting by furthest next access
/// is the usual bound-like heuristic (libCacheSim's too), so the numbers stay comparable.
/// Ties (several objects never accessed again) do not change the miss count.
pub fn simulate_belady(trace: &Trace, cache_size: u64) -> SimResult {
    let start = Instant::now();
    let next = trace.next_access();
    // id -> (next access, size); the ordered set finds the furthest next access.
    let mut cached: hashbrown::HashMap<u64, (u64, u64)> = hashbrown::HashMap::new();
    let mut order: BTreeSet<(u64, u64)> = BTreeSet::new();
    let (mut used, mut misses, mut bytes, mut missed_bytes) = (0u64, 0u64, 0u64, 0u64);
    for (r, &n) in trace.requests.iter().zip(&next) {
        bytes += r.size;
        if let Some(slot) = cached.get_mut(&r.id) {
            order.remove(&(slot.0, r.id));
            slot.0 = n;
            order.insert((n, r.id));
            continue;
        }
        misses += 1;
        missed_bytes += r.size;
        if r.size > cache_size {
            continue;
        }
        while used + r.size > cache_size {
            let Some((_, victim)) = order.pop_last() else {
                break;
            };
            if let Some((_, size)) = cached.remove(&victim) {
                used -= size;
            }
        }
        cached.insert(r.id, (n, r.size));
        order.insert((n, r.id));
        used += r.size;
    }
    let n = trace.requests.len() as u64;
    SimResult {
        policy: "belady".into(),
        cache_size,
        requests: n,
        misses,
        miss_ratio: ratio(misses, n),
        byte_miss_ratio: ratio(missed_bytes, bytes),
        ns_per_request: if n == 0 {
            0.0
        } else {
            start.elapsed().as_nanos() as f64 / n as f64
        },
    }
}

/// A `--cache-size` item: bytes (objects, for plain traces), or a percentage of the
/// trace's footprint (`5%`, `0.5%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CacheSize {
    /// An absolute size.
    Bytes(u64),
    /// A share of the footprint, in percent (0 < p <= 100).
    Percent(f64),
}

impl FromStr for CacheSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage (e.g. 5% or 0.5%)"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!(
                    "{s:?}: a percentage must be above 0 and at most 100"
                ));
            }
            return Ok(CacheSize::Percent(v));
        }
        match s.parse::<u64>() {
            Ok(0) => Err("a cache size must be at least 1".into()),
            Ok(v) => Ok(CacheSize::Bytes(v)),
            Err(_) => Err(format!(
                "{s:?} is neither a size in bytes nor a percentage of the footprint (e.g. 5%)"
            )),
        }
    }
}

impl CacheSize {
    /// The size in bytes for a trace whose footprint is `footprint` bytes (at least 1).
    pub fn resolve(self, footprint: u64) -> u64 {
        match self {
            CacheSize::Bytes(b) => b,
            CacheSize::Percent(p) => ((footprint as f64 * p / 100.0) as u64).max(1),
        }
    }
}

/// Makes a fresh policy instance for one sweep job.
pub type PolicyFactory = Box<dyn Fn() -> Box<dyn EvictionPolicy> + Send + Sync>;

/// Replays `trace` at every size in `sizes` through every policy (and Belady when asked),
/// on `threads` threads (at least 1). Results come in job order: for each size, the
/// policies in order, then Belady.
pub fn run_sweep(
    trace: &Trace,
    sizes: &[u64],
    policies: &[(String, PolicyFactory)],
    belady: bool,
    threads: usize,
) -> Vec<SimResult> {
    let jobs: Vec<(u64, Option<usize>)> = sizes
        .iter()
        .flat_map(|&size| {
            (0..policies.len())
                .map(move |i| (size, Some(i)))
                .chain(belady.then_some((size, None)))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results: Vec<parking_lot::Mutex<Option<SimResult>>> =
        jobs.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    let work = || {
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(size, policy)) = jobs.get(j) else {
                return;
            };
            let r = match policy {
                Some(i) => simulate(trace, size, policies[i].0.clone(), (policies[i].1)()),
                None => simulate_belady(trace, size),
            };
            *results[j].lock() = Some(r);
        }
    };
    let threads = threads.clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    results.into_iter().filter_map(|m| m.into_inner()).collect()
}
