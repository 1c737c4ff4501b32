//! Policy call costs, native vs Wasm. Prints numbers; asserts nothing.
//!
//! `cargo bench --bench policy_calls`. Uses `policies/*.wasm` when they are built
//! (`policies/build`), else small inline WAT policies (which measure the boundary, not a
//! real policy's work); each line says which.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rmhost_core::events::EventBus;
use rmhost_core::policy::{
    CacheStat, EVENT_WORDS, EventKind, EvictionPolicy, NativeLru, NativePressure, NativePriority,
    NativeQuota, PackedEvent, PolicyKind, PoolStat, PressureLevel, PressurePolicy, PriorityPolicy,
    QuotaPolicy, QuotaRequest, ResourceKind, SystemUsage, TenantState, Waiter, encode_event,
};
use rmhost_runtime::{PolicyRuntime, RuntimeOptions};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// The bytes and label of `policies/NAME.wasm`. The numbers only mean something for the
/// real reference policies, so a missing one stops the bench with the command to build it.
fn policy_bytes(name: &str) -> (Vec<u8>, String) {
    let p = policies_dir().join(format!("{name}.wasm"));
    match std::fs::read(&p) {
        Ok(b) => (b, format!("policies/{name}.wasm")),
        Err(e) => {
            eprintln!(
                "{}: {e}; build the reference policies first: policies/build",
                p.display()
            );
            std::process::exit(2);
        }
    }
}

fn per_call(iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed() / iters
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn opts(cache: Option<PathBuf>) -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: cache,
        deadline: Duration::from_millis(100),
        ..RuntimeOptions::default()
    }
}

/// 75% hits over `ids` live entries, the rest removes + re-inserts; packed.
fn event_stream(n: usize, ids: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(n * EVENT_WORDS);
    let mut s = 0x1234_5678_u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for id in 0..ids {
        let ev = PackedEvent {
            id,
            size: 100,
            at_ms: 0,
            kind: EventKind::Insert,
            priority: 0,
            fingerprint: id,
        };
        encode_event(&mut out, &ev);
    }
    for i in 0..n as u64 {
        let id = rnd() % ids;
        let r = rnd() % 100;
        let kinds: &[EventKind] = if r < 75 {
            &[EventKind::Hit]
        } else {
            &[EventKind::Remove, EventKind::Insert]
        };
        for k in kinds {
            let ev = PackedEvent {
                id,
                size: 64 + i % 512,
                at_ms: i / 100,
                kind: *k,
                priority: 0,
                fingerprint: id,
            };
            encode_event(&mut out, &ev);
        }
    }
    out
}

fn main() {
    let bus = EventBus::new();
    let (ev_bytes, ev_label) = policy_bytes("lru");
    let (q_bytes, q_label) = policy_bytes("fair-quota");
    let (p_bytes, p_label) = policy_bytes("aging-priority");

    // ---- compile, with and without the artifact cache --------------------------------
    let cache = std::env::temp_dir().join(format!("rmhost-bench-cwasm-{}", std::process::id()));
    let rt = PolicyRuntime::new(opts(None), bus.clone()).expect("runtime");
    println!("pooling allocator: {}", rt.pooling());
    let info = rt
        .load_bytes("lru", &ev_bytes)
        .expect("load eviction policy");
    println!(
        "compile {ev_label}: no cache {:.2} ms",
        info.compile_us as f64 / 1e3
    );
    let warm = PolicyRuntime::new(opts(Some(cache.clone())), bus.clone()).expect("runtime");
    let first = warm.load_bytes("lru", &ev_bytes).expect("load");
    let again = PolicyRuntime::new(opts(Some(cache.clone())), bus.clone()).expect("runtime");
    let second = again.load_bytes("lru", &ev_bytes).expect("load");
    println!(
        "compile {ev_label}: cache miss {:.2} ms, cache hit {:.3} ms (from cache: {})",
        first.compile_us as f64 / 1e3,
        second.compile_us as f64 / 1e3,
        second.from_cache
    );
    drop((warm, again));
    let _ = std::fs::remove_dir_all(&cache);

    // ---- instantiate -----------------------------------------------------------------
    let t = Instant::now();
    let n = 200;
    for _ in 0..n {
        let mut e = rt.eviction_policy("default", Some("lru"));
        black_box(e.observe(&[], 0, 0)); // the first observe instantiates
    }
    println!(
        "instantiate + first observe {ev_label}: {:.1} µs",
        ns(t.elapsed() / n) / 1e3
    );

    // ---- per-call, each kind ---------------------------------------------------------
    let sys = SystemUsage::default();
    let req = QuotaRequest {
        tenant: "t".into(),
        owner: "o".into(),
        kind: ResourceKind::Memory,
        amount: 10,
        priority: 1,
    };
    let ts = TenantState {
        used: 0,
        limit: Some(100),
        allocations: 0,
    };
    let native_q = per_call(100_000, || {
        black_box(NativeQuota.decide(&req, &ts, &sys, &[]));
    });
    let w = Waiter {
        tenant: "t".into(),
        priority: 2,
        enqueued_ms: 7,
        queue: "pg".into(),
    };
    let native_p = per_call(100_000, || {
        black_box(NativePriority::default().rank(&w));
    });
    let bind = |name: &str, bytes: &[u8], kind: PolicyKind| match rt.load_bytes(name, bytes) {
        Ok(info) if info.kinds.contains(&kind) => rt.bind(None, kind, Some(name)).is_ok(),
        Ok(_) => false,
        Err(e) => {
            println!("{kind} wasm: not measured ({e})");
            false
        }
    };
    if bind("q", &q_bytes, PolicyKind::Quota) {
        let q = rt.quota_policy();
        let wasm = per_call(50_000, || {
            black_box(q.decide(&req, &ts, &sys, &[]));
        });
        println!(
            "quota decide: native {:.0} ns, wasm {:.0} ns ({q_label})",
            ns(native_q),
            ns(wasm)
        );
    }
    if bind("p", &p_bytes, PolicyKind::Priority) {
        let p = rt.priority_policy();
        let wasm = per_call(50_000, || {
            black_box(p.rank(&w));
        });
        println!(
            "priority rank: native {:.0} ns, wasm {:.0} ns ({p_label})",
            ns(native_p),
            ns(wasm)
        );
    }
    let caches = [CacheStat {
        name: "c".into(),
        bytes: 1000,
        entries: 10,
        hit_ratio: 0.5,
    }];
    let pools = [PoolStat {
        name: "p".into(),
        size: 4,
        idle: 2,
        waiting: 0,
    }];
    let native_pr = per_call(100_000, || {
        black_box(NativePressure.respond(PressureLevel::Warning, &sys, &caches, &pools));
    });
    for name in ["pressure-default", "pressure-py"] {
        let path = policies_dir().join(format!("{name}.wasm"));
        if rt.load_file(&path).is_err() {
            println!(
                "pressure respond: native {:.0} ns, wasm not measured (no policies/{name}.wasm)",
                ns(native_pr)
            );
            continue;
        }
        rt.bind(None, PolicyKind::Pressure, Some(name))
            .expect("bind");
        let pp = rt.pressure_policy();
        let wasm = per_call(20_000, || {
            black_box(pp.respond(PressureLevel::Warning, &sys, &caches, &pools));
        });
        println!(
            "pressure respond: native {:.0} ns, wasm {:.0} ns (policies/{name}.wasm)",
            ns(native_pr),
            ns(wasm)
        );
    }

    // ---- eviction observe per event, by batch size -------------------------------------
    let c_lru_loaded = rt.load_file(&policies_dir().join("lru-c.wasm")).is_ok();
    if !c_lru_loaded {
        println!("(no C LRU rows: policies/lru-c.wasm not built; run policies/build)");
    }
    let events = event_stream(300_000, 10_000);
    let warmup = 10_000 * EVENT_WORDS;
    for batch in [1usize, 64, 1024] {
        let chunk = batch * EVENT_WORDS;
        let mut native = NativeLru::new();
        native.observe(&events[..warmup], 0, 0);
        let t = Instant::now();
        for c in events[warmup..].chunks(chunk) {
            black_box(native.observe(c, 0, 0));
        }
        let n_events = (events.len() - warmup) / 3;
        let native_t = ns(t.elapsed()) / n_events as f64;
        let time_wasm = |name: &str| {
            let mut wasm = rt.eviction_policy("default", Some(name));
            wasm.configure(1 << 30, 10_000);
            wasm.observe(&events[..warmup], 0, 0);
            let t = Instant::now();
            for c in events[warmup..].chunks(chunk) {
                black_box(wasm.observe(c, 0, 0));
            }
            ns(t.elapsed()) / n_events as f64
        };
        let wasm_t = time_wasm("lru");
        println!(
            "eviction observe, batch {batch:>4}: native LRU {native_t:.1} ns/event, wasm \
             {wasm_t:.1} ns/event ({ev_label}); native/wasm throughput ratio {:.2}",
            native_t / wasm_t
        );
        // The same LRU in C (no libc, no WASI), when built.
        if c_lru_loaded {
            let c_t = time_wasm("lru-c");
            println!(
                "eviction observe, batch {batch:>4}: native LRU {native_t:.1} ns/event, C wasm \
                 {c_t:.1} ns/event (policies/lru-c.wasm); native/wasm throughput ratio {:.2}",
                native_t / c_t
            );
        }
    }
    let info = rt.get("lru").expect("loaded");
    println!(
        "lru stats: {} calls, {} faults, mean {} ns, p99 {} ns, memory {} KiB",
        info.calls,
        info.faults,
        info.mean_ns,
        info.p99_ns,
        info.memory_bytes / 1024
    );
}
