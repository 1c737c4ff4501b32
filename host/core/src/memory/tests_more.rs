//! Pressure levels and hysteresis (with the telemetry's `FakeSource`), leak heuristics on
//! synthetic series, trace formats and Belady.

use super::leaks::trend;
use super::purge::InstanceMemory;
use super::*;
use crate::policy::{NativePressure, PressureAction, PressureLevel};
use crate::telemetry::{FakeSource, Psi, PsiLine, Telemetry};
use std::sync::Arc;

/// A manager with a 1000-byte memory budget, counting `caches` as held memory if given.
fn resources(
    bus: &crate::events::EventBus,
    caches: Option<Arc<CacheRegistry>>,
) -> crate::resources::ResourceManager {
    let mut parts = crate::resources::ManagerParts::default();
    if let Some(c) = caches {
        parts.held_elsewhere = c;
    }
    crate::resources::ResourceManager::with_parts(
        crate::resources::ManagerOptions {
            limits: crate::resources::GlobalLimits {
                memory_bytes: 1000,
                cpu_millicores: 1000,
                connections: 10,
                requests_per_minute: 60,
                file_handles: 10,
            },
            requests_per_minute: 60,
            tenant_defaults: Default::default(),
        },
        bus.clone(),
        parts,
    )
}

fn monitor(
    fake: &FakeSource,
    reg: Arc<CacheRegistry>,
    bus: crate::events::EventBus,
) -> MemoryMonitor {
    let telemetry = Telemetry::new(Box::new(fake.clone()));
    let sink = Arc::new(crate::host::HostSink::new(
        reg.clone(),
        resources(&bus, None),
        crate::pools::PoolManager::new(&Default::default(), bus.clone()).unwrap(),
        bus.clone(),
    ));
    MemoryMonitor::new(
        PressureConfig {
            max_memory_bytes: Some(1000),
            ..PressureConfig::default()
        },
        MonitorParts {
            telemetry,
            caches: reg,
            allocation_bytes: Box::new(|| 0),
            policy: Arc::new(NativePressure),
            sink,
            events: Some(bus),
            gauge: PressureGauge::new(),
        },
    )
}

#[test]
fn levels_follow_rss_with_hysteresis() {
    let fake = FakeSource::new().with_memory(0, 10_000).with_rss(100);
    let bus = crate::events::EventBus::new();
    let m = monitor(&fake, Arc::new(CacheRegistry::default()), bus.clone());
    let changes = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = changes.clone();
    m.on_memory_pressure(move |l, _| seen.lock().push(l));
    let step = |rss: u64| {
        fake.update(|s| s.process_rss = rss);
        m.telemetry_sample();
        m.tick().status
    };
    assert_eq!(step(100), PressureLevel::Normal);
    assert_eq!(step(700), PressureLevel::Warning);
    assert_eq!(step(680), PressureLevel::Warning, "within 5 points: stays");
    assert_eq!(step(860), PressureLevel::Critical);
    assert_eq!(
        step(820),
        PressureLevel::Critical,
        "84% is within 5 points of 85"
    );
    assert_eq!(step(790), PressureLevel::Warning);
    assert_eq!(step(640), PressureLevel::Normal);
    assert_eq!(
        *changes.lock(),
        vec![
            PressureLevel::Warning,
            PressureLevel::Critical,
            PressureLevel::Warning,
            PressureLevel::Normal
        ]
    );
    let names: Vec<&str> = bus.recent(0).iter().map(|e| e.event.name()).collect();
    assert!(names.contains(&"MemoryPressure") && names.contains(&"PressureAction"));
}

#[test]
fn psi_and_accounted_bytes_raise_the_level() {
    let fake = FakeSource::new().with_memory(0, 10_000).with_rss(10);
    let reg = Arc::new(CacheRegistry::default());
    let m = monitor(&fake, reg.clone(), crate::events::EventBus::new());
    let line = |avg10| PsiLine {
        avg10,
        ..Default::default()
    };
    fake.set_pressure(
        None,
        Some(Psi {
            some: line(12.0),
            full: Some(line(1.0)),
        }),
        None,
    );
    m.telemetry_sample();
    assert_eq!(m.tick().status, PressureLevel::Warning);
    fake.set_pressure(
        None,
        Some(Psi {
            some: line(30.0),
            full: Some(line(6.0)),
        }),
        None,
    );
    m.telemetry_sample();
    let st = m.tick();
    assert_eq!(st.status, PressureLevel::Critical);
    assert!(st.details.reasons.iter().any(|r| r.contains("full")));
    fake.set_pressure(None, None, None);
    m.telemetry_sample();
    assert_eq!(m.tick().status, PressureLevel::Normal);
    // Accounted: a cache holding 900 of a 1000-byte budget is critical, and the
    // policy's trim goes through the registry.
    reg.register_with_config(
        "c",
        "t",
        CacheConfig::exact(1000),
        Box::new(crate::policy::NativeLru::new()),
    )
    .unwrap();
    for i in 0..9 {
        reg.add_cache_entry("c", format!("k{i}"), 100, 0).unwrap();
    }
    let st = m.check_memory_usage();
    assert_eq!(st.status, PressureLevel::Critical);
    let done = m.respond(PressureLevel::Critical);
    assert!(
        done.iter()
            .any(|(a, r)| matches!(a, PressureAction::TrimCache { .. }) && r.is_ok())
    );
    assert!(reg.total_bytes() < 900);
}

fn series(mut f: impl FnMut(u64) -> f64) -> Vec<(u64, f64)> {
    (0..30).map(|i| (i * 60_000, f(i))).collect()
}

#[test]
fn leak_trends_flat_noisy_linear_step() {
    let d = LeakDetector::new(LeakConfig::default(), None);
    let mib = 1024.0 * 1024.0;
    let flat = series(|_| 500.0 * mib);
    assert!(d.judge_trend("flat", &flat).is_none());
    let mut rng = trace::SplitMix64(3);
    // +-50 MiB of noise around a flat level: no false positive.
    let noisy = series(|_| 500.0 * mib + (rng_f(&mut rng) - 0.5) * 100.0 * mib);
    assert!(
        d.judge_trend("noisy", &noisy).is_none(),
        "{:?}",
        trend(&noisy)
    );
    let linear = series(|i| 100.0 * mib + i as f64 * 4.0 * mib + (i % 3) as f64 * mib);
    let l = d
        .judge_trend("rss", &linear)
        .expect("linear growth is a leak");
    assert!((l.bytes_per_minute / mib - 4.0).abs() < 0.5 && l.confidence > 0.9);
    // One step, wherever it is in the window, is not a leak (tau <= n / (2(n-1)) ~ 0.52) ...
    for at in [3, 15, 27] {
        let step = series(|i| if i < at { 100.0 * mib } else { 400.0 * mib });
        assert!(d.judge_trend("step", &step).is_none(), "step at {at}");
    }
    // ... but a staircase (a step every few samples) is.
    let stairs = series(|i| 100.0 * mib + (i / 5) as f64 * 30.0 * mib);
    assert!(d.judge_trend("stairs", &stairs).is_some());
}

fn rng_f(r: &mut trace::SplitMix64) -> f64 {
    r.next_f64()
}

#[test]
fn stale_allocations_and_growing_instances() {
    let bus = crate::events::EventBus::new();
    let d = LeakDetector::new(LeakConfig::default(), Some(bus.clone()));
    let allocs = vec![(1, "a".to_string(), 10), (2, "b".to_string(), 4_000_000)];
    let grow = [
        (
            "lru.wasm".to_string(),
            vec![1 << 20, 4 << 20, 8 << 20, 12 << 20, 16 << 20],
        ),
        ("ok.wasm".to_string(), vec![1 << 20; 5]),
    ];
    for i in 0..12 {
        d.record("rss", i * 60_000, (100 + i * 8) << 20);
    }
    for i in 0..5 {
        let live: Vec<InstanceMemory> = grow
            .iter()
            .map(|(name, sizes)| InstanceMemory {
                name: name.clone(),
                bytes: sizes[i],
            })
            .collect();
        d.record_instances(&live);
    }
    let found = d.scan(&allocs);
    let subjects: Vec<&str> = found.iter().map(|l| l.subject.as_str()).collect();
    assert_eq!(subjects, vec!["rss", "allocation:2", "policy:lru.wasm"]);
    assert_eq!(d.leaks().len(), 3);
    d.scan(&allocs); // same findings: no new events
    let n = bus
        .recent(0)
        .iter()
        .filter(|e| e.event.name() == "LeakDetected")
        .count();
    assert_eq!(n, 3);
}

#[test]
fn oracle_general_round_trip_and_formats() {
    let t = Trace::synthetic("zipf:alpha=0.9,objects=50,requests=500,seed=1").unwrap();
    let mut buf = Vec::new();
    t.write_oracle_general(&mut buf).unwrap();
    assert_eq!(buf.len(), 500 * 24);
    assert_eq!(Trace::from_oracle_general(&buf).unwrap(), t);
    // The next-access field: index of the next request for the same id, else -1.
    let next = i64::from_le_bytes(buf[16..24].try_into().unwrap());
    let first = t.requests[0].id;
    let expect = t
        .requests
        .iter()
        .skip(1)
        .position(|r| r.id == first)
        .map_or(-1, |p| p as i64 + 1);
    assert_eq!(next, expect);
    assert!(matches!(
        Trace::from_oracle_general(&buf[..30]),
        Err(TraceError::Truncated(30))
    ));
    let csv = Trace::parse_csv("id,size,time\n5,10,1\nabc,2\n").unwrap();
    assert_eq!(
        csv.requests[0],
        Request {
            time: 1,
            id: 5,
            size: 10
        }
    );
    assert_eq!(csv.requests[1].size, 2);
    let plain = Trace::parse_plain("1\n\n2\n1\n").unwrap();
    assert_eq!(plain.requests.len(), 3);
    assert!(Trace::synthetic("zipf:alpha=1,bogus=3").is_err());
    assert_eq!(
        Trace::synthetic("zipf:objects=10,requests=5,seed=9").unwrap(),
        Trace::synthetic("zipf:objects=10,requests=5,seed=9").unwrap()
    );
}

#[test]
fn belady_is_a_lower_bound_and_exact_on_a_known_trace() {
    // 1 2 3 1 2 4 1 2 with 2 slots, always admitting as libCacheSim does: misses on
    // 1, 2, 3 (evicts 2), 2 (evicts 3), 4 (evicts 2), 2 = 6.
    let ids = [1u64, 2, 3, 1, 2, 4, 1, 2];
    let t = Trace {
        requests: ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Request {
                time: i as u64,
                id,
                size: 1,
            })
            .collect(),
    };
    assert_eq!(sim::simulate_belady(&t, 2).misses, 6);
    let z = Trace::synthetic("zipf:alpha=1.0,objects=1000,requests=20000,seed=5").unwrap();
    let res = run_sim(
        &z,
        100,
        crate::policy::BUILTIN_EVICTION
            .iter()
            .map(|n| (n.to_string(), crate::policy::builtin_eviction(n).unwrap()))
            .collect(),
        true,
    );
    let opt = res.last().unwrap().misses;
    assert!(res.iter().all(|r| r.misses >= opt && r.requests == 20_000));
}

#[test]
fn gc_and_snapshot_report() {
    let reg = CacheRegistry::default();
    let c = reg
        .register_cache("c", "t", 1000, Box::new(crate::policy::NativeLru::new()))
        .unwrap();
    for i in 0..10 {
        c.insert(format!("{i}"), None, 100);
    }
    let r = gc(&reg);
    // Down to capacity minus 1% headroom (990): one whole 100-byte entry goes.
    assert_eq!(r.cache_bytes_freed, 100);
    assert!(r.rss_before > 0);
    let s = snapshot(
        &reg,
        &[("t".to_string(), 5u64)].into_iter().collect(),
        vec![],
    );
    assert_eq!(s.tenants["t"], 5 + 900);
    assert!(serde_json::to_string(&s).is_ok());
}

struct Silent;
impl crate::policy::PressurePolicy for Silent {
    fn name(&self) -> &str {
        "silent"
    }
    fn respond(
        &self,
        _: PressureLevel,
        _: &crate::policy::SystemUsage,
        _: &[crate::policy::CacheStat],
        _: &[crate::policy::PoolStat],
    ) -> Vec<PressureAction> {
        Vec::new()
    }
}

#[test]
fn under_pressure_the_tenant_over_its_share_is_trimmed_first() {
    let bus = crate::events::EventBus::new();
    let reg = Arc::new(CacheRegistry::new(Some(bus.clone())));
    let resources = resources(&bus, Some(reg.clone()));
    let lru = || Box::new(crate::policy::NativeLru::new());
    let hog = reg.register_cache("big", "hog", 800, lru()).unwrap();
    let calm = reg.register_cache("small", "calm", 100, lru()).unwrap();
    for i in 0..80 {
        hog.insert_with(format!("h{i}"), None, 10, 0, None);
    }
    for i in 0..10 {
        calm.insert_with(format!("c{i}"), None, 10, 0, None);
    }
    let fake = FakeSource::new().with_memory(0, 10_000).with_rss(100);
    let m = MemoryMonitor::new(
        PressureConfig {
            max_memory_bytes: Some(1000),
            ..PressureConfig::default()
        },
        MonitorParts {
            telemetry: Telemetry::new(Box::new(fake)),
            caches: reg.clone(),
            allocation_bytes: Box::new(|| 0),
            policy: Arc::new(Silent),
            sink: Arc::new(crate::host::HostSink::new(
                reg.clone(),
                resources,
                crate::pools::PoolManager::new(&Default::default(), bus.clone()).unwrap(),
                bus.clone(),
            )),
            events: Some(bus),
            gauge: PressureGauge::new(),
        },
    );
    // Two holders: 500 bytes each. The hog declared 800, so it is 300 over.
    let done = m.respond(PressureLevel::Warning);
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(
        done[0].0,
        PressureAction::Throttle {
            tenant: "hog".into(),
            requests_per_minute: 30
        },
        "half its 60/min"
    );
    assert_eq!(
        done[1].0,
        PressureAction::TrimCache {
            cache: "big".into(),
            bytes: 300
        }
    );
    // Back within its share by what it holds: the next response leaves its cache alone.
    assert!(m.respond(PressureLevel::Warning).is_empty());
    assert_eq!(hog.bytes(), 500);
    assert_eq!(hog.bytes(), 500);
    assert_eq!(
        calm.bytes(),
        100,
        "the tenant within its share keeps its cache"
    );
    assert!(m.respond(PressureLevel::Normal).is_empty());
}
