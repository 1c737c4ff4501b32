//! Cache throughput: get-or-insert on Zipf 1.0 over 100k keys, capacity 10k entries, at 1
//! and 2 threads: rmhost `Cache` (NativeLru, default config: 1% headroom, batches of 256)
//! next to quick_cache and moka (sync) in the same run. Prints ops/s, the ratio to
//! quick_cache, and hit ratios. Asserts nothing (docs/measurements.md: quote ratios, the machine is
//! noisy). With `policies/` built, also every reference Wasm eviction policy through the
//! same cache, and the targets: lru.wasm at >= 0.8x quick_cache's throughput on one
//! thread, and a Wasm policy whose hit ratio is >= quick_cache's. Each row's "exact hit
//! ratio" is its policy with every hit delivered and exact capacity (`rmhost sim`'s
//! configuration): the gap is what the lossy read buffer and the 1% headroom cost.
//! Run: `cargo bench --bench cache`.

use rmhost_core::memory::{Cache, CacheConfig, Trace};
use rmhost_core::policy::{EvictionPolicy, NativeLru};
use rmhost_runtime::{PolicyRuntime, RuntimeOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// A runtime with the built reference policies loaded, or `None` (printed) when
/// `policies/build` has not been run.
fn wasm_runtime() -> Option<PolicyRuntime> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let rt = PolicyRuntime::new(
        RuntimeOptions::default(),
        rmhost_core::events::EventBus::new(),
    )
    .ok()?;
    for name in WASM {
        if let Err(e) = rt.load_file(&dir.join(format!("{name}.wasm"))) {
            println!("(no Wasm rows: {e}; run policies/build)");
            return None;
        }
    }
    Some(rt)
}

/// The Wasm policies measured through the cache (all built by `policies/build`).
const WASM: [&str; 6] = ["lru", "fifo", "sieve", "s3fifo", "wtinylfu", "arc"];

const KEYS: u64 = 100_000;
const CAPACITY: u64 = 10_000;
const OPS_PER_THREAD: usize = 2_000_000;

fn keys(seed: u64) -> Vec<u64> {
    let spec = format!("zipf:alpha=1.0,objects={KEYS},requests={OPS_PER_THREAD},seed={seed}");
    Trace::synthetic(&spec)
        .expect("valid spec")
        .requests
        .iter()
        .map(|r| r.id)
        .collect()
}

/// Runs `op` over each thread's keys; returns (ops/s, hit ratio).
fn run<C: Send + Sync + 'static>(
    cache: Arc<C>,
    streams: &[Arc<Vec<u64>>],
    op: fn(&C, u64) -> bool,
) -> (f64, f64) {
    let start = Instant::now();
    let handles: Vec<_> = streams
        .iter()
        .map(|ks| {
            let (c, ks) = (cache.clone(), ks.clone());
            std::thread::spawn(move || ks.iter().filter(|&&k| op(&c, k)).count())
        })
        .collect();
    let hits: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let ops = streams.iter().map(|s| s.len()).sum::<usize>() as f64;
    (ops / start.elapsed().as_secs_f64(), hits as f64 / ops)
}

fn rmhost_cache(policy: Box<dyn EvictionPolicy>) -> Arc<Cache<u64, u64>> {
    Arc::new(Cache::new(CacheConfig::new(CAPACITY), policy))
}

fn rm_op(c: &Cache<u64, u64>, k: u64) -> bool {
    if c.get(&k).is_some() {
        return true;
    }
    c.insert(k, k, 1);
    false
}

fn qc_op(c: &quick_cache::sync::Cache<u64, u64>, k: u64) -> bool {
    if c.get(&k).is_some() {
        return true;
    }
    c.insert(k, k);
    false
}

fn moka_op(c: &moka::sync::Cache<u64, u64>, k: u64) -> bool {
    if c.get(&k).is_some() {
        return true;
    }
    c.insert(k, k);
    false
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    println!(
        "get-or-insert, Zipf 1.0 over {KEYS} keys, capacity {CAPACITY} entries, {OPS_PER_THREAD} ops/thread"
    );
    let runtime = wasm_runtime();
    for threads in [1usize, 2] {
        let streams: Vec<Arc<Vec<u64>>> = (0..threads as u64)
            .map(|t| Arc::new(keys(42 + t)))
            .collect();
        let mut rows: Vec<(String, f64, f64)> = Vec::new();
        let qc = run(
            Arc::new(quick_cache::sync::Cache::new(CAPACITY as usize)),
            &streams,
            qc_op,
        );
        rows.push(("quick_cache 0.6".into(), qc.0, qc.1));
        if wanted("rmhost Cache + NativeLru") {
            let rm = run(rmhost_cache(Box::new(NativeLru::new())), &streams, rm_op);
            rows.push(("rmhost Cache + NativeLru".into(), rm.0, rm.1));
        }
        if let Some(rt) = &runtime {
            for name in WASM {
                let label = format!("rmhost Cache + {name}.wasm");
                if wanted(&label) {
                    let r = run(
                        rmhost_cache(rt.eviction_policy("bench", Some(name))),
                        &streams,
                        rm_op,
                    );
                    rows.push((label, r.0, r.1));
                }
            }
        }
        if wanted("moka 0.12 sync") {
            let mk = run(
                Arc::new(moka::sync::Cache::new(CAPACITY)),
                &streams,
                moka_op,
            );
            rows.push(("moka 0.12 sync".into(), mk.0, mk.1));
        }
        println!("\n{threads} thread(s):");
        println!(
            "  {:28} {:>12} {:>9} {:>9} {:>15}",
            "cache", "M ops/s", "vs qc", "hit ratio", "exact hit ratio"
        );
        for (name, ops, hit) in &rows {
            // What the same policy gets with every hit delivered and exact capacity, on the
            // first stream: the difference is what the lossy read buffer and headroom cost.
            let exact = if threads == 1 {
                exact_hit_ratio(name, runtime.as_ref(), &streams[0])
                    .map_or("-".to_string(), |h| format!("{h:.3}"))
            } else {
                "-".to_string()
            };
            println!(
                "  {name:28} {:>12.2} {:>8.2}x {:>9.3} {:>15}",
                ops / 1e6,
                ops / qc.0,
                hit,
                exact
            );
        }
        if let Some(best) = rows
            .iter()
            .filter(|r| r.0.ends_with(".wasm"))
            .max_by(|a, b| a.2.total_cmp(&b.2))
        {
            println!(
                "  best Wasm hit ratio: {} {:.3} vs quick_cache {:.3} ({:+.3}; target >= 0)",
                best.0,
                best.2,
                qc.1,
                best.2 - qc.1
            );
        }
        if let Some(lru) = rows.iter().find(|r| r.0 == "rmhost Cache + lru.wasm") {
            println!(
                "  lru.wasm / quick_cache throughput: {:.2}x (target 0.8x)",
                lru.1 / qc.0
            );
        }
        let find = |n: &str| rows.iter().find(|r| r.0 == n).map(|r| r.1);
        if let (Some(native), Some(wasm)) = (
            find("rmhost Cache + NativeLru"),
            find("rmhost Cache + lru.wasm"),
        ) {
            println!(
                "  Wasm LRU / native LRU through the cache: {:.2}x (target 0.8x)",
                wasm / native
            );
        }
    }
}

/// The hit ratio of the row's policy on `keys` with exact capacity and every hit delivered
/// (one shard, no headroom, drained before each write: `rmhost sim`'s configuration).
fn exact_hit_ratio(row: &str, rt: Option<&PolicyRuntime>, keys: &[u64]) -> Option<f64> {
    let policy: Box<dyn EvictionPolicy> = if row == "rmhost Cache + NativeLru" {
        Box::new(NativeLru::new())
    } else {
        let name = row.strip_prefix("rmhost Cache + ")?.strip_suffix(".wasm")?;
        rt?.eviction_policy("bench-exact", Some(name))
    };
    let mut cfg = CacheConfig::exact(CAPACITY);
    cfg.expected_entries = CAPACITY as u32;
    let cache = Cache::new(cfg, policy);
    let hits = keys.iter().filter(|&&k| rm_op(&cache, k)).count();
    Some(hits as f64 / keys.len() as f64)
}
