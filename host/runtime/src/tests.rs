//! Runtime tests with inline WAT policies: deadlines, memory bombs, traps, malformed
//! answers, quarantine, validation, the artifact cache, hot reload and bindings.

mod checking;
mod contract;
mod isolation;
mod wat;
mod watching;

use std::time::{Duration, Instant};

use super::*;
use rmhost_core::events::{Envelope, Event, EventBus};
use rmhost_core::policy::{
    FaultKind, Holder, NativeQuota, PolicyKind, QuotaDecision, QuotaPolicy, QuotaRequest,
    ResourceKind, SystemUsage, TenantState,
};

fn opts() -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: None,
        pool_slots: 16,
        ..RuntimeOptions::default()
    }
}

fn runtime_with(o: RuntimeOptions) -> (PolicyRuntime, EventBus) {
    let bus = EventBus::new();
    (PolicyRuntime::new(o, bus.clone()).unwrap(), bus)
}

fn runtime() -> (PolicyRuntime, EventBus) {
    runtime_with(opts())
}

fn names(bus: &EventBus) -> Vec<&'static str> {
    bus.recent(0).iter().map(|e| e.event.name()).collect()
}

/// Waits (up to 5 s) for an event matching `f` after sequence number `after`.
fn wait_for(bus: &EventBus, after: u64, f: impl Fn(&Event) -> bool) -> std::sync::Arc<Envelope> {
    let t0 = Instant::now();
    loop {
        if let Some(e) = bus.recent(after).into_iter().find(|e| f(&e.event)) {
            return e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no such event; saw {:?}",
            names(bus)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Three inserts of 100 bytes (ids 0-2), packed (the fingerprint is the id).
fn inserts() -> Vec<u64> {
    (0..3).flat_map(|id| [id, 100, 0, id]).collect()
}

fn req(tenant: &str, amount: u64) -> QuotaRequest {
    QuotaRequest {
        tenant: tenant.into(),
        owner: "o".into(),
        kind: ResourceKind::Memory,
        amount,
        priority: 5,
    }
}

const TS: TenantState = TenantState {
    used: 90,
    limit: Some(100),
    allocations: 1,
};

fn holders() -> Vec<Holder> {
    vec![Holder {
        allocation: 7,
        owner: "x".into(),
        amount: 50,
        priority: 1,
        age_ms: 3,
    }]
}

#[test]
fn wat_components_load_with_their_kinds() {
    let (rt, bus) = runtime();
    let info = rt
        .load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    assert_eq!(info.kinds, vec![PolicyKind::Eviction]);
    assert_eq!(info.hash.len(), 64);
    let info = rt
        .load_bytes("deny", wat::quota_deny_all().as_bytes())
        .unwrap();
    assert_eq!(info.kinds, vec![PolicyKind::Quota]);
    assert_eq!(names(&bus), ["PolicyLoaded", "PolicyLoaded"]);
    assert_eq!(rt.list().len(), 2);
}

/// A loop forever: the call returns no victims and asks for a replay, the fault is counted,
/// and the next call runs on a rebuilt instance.
#[test]
fn deadline_fault_rebuilds_the_eviction_instance() {
    let (rt, bus) = runtime();
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("default", Some("tricky"));
    ev.configure(1 << 20, 16);
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(ev.name(), "tricky");
    assert!(ev.observe(&[], 1001, 4).is_empty());
    assert!(ev.needs_replay());
    let info = rt.get("tricky").unwrap();
    assert_eq!(info.faults, 1);
    assert!(!info.quarantined);
    let fault = wait_for(&bus, 0, |e| matches!(e, Event::PolicyFault { .. }));
    let Event::PolicyFault {
        reason,
        kind,
        fault,
        faults_in_window,
        ..
    } = &fault.event
    else {
        unreachable!()
    };
    assert_eq!(*fault, FaultKind::Deadline, "{reason}");
    assert!(reason.contains("deadline"), "{reason}");
    assert_eq!((*kind, *faults_in_window), (PolicyKind::Eviction, 1));
    // The replay goes to a fresh instance, which answers again.
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert!(!ev.needs_replay());
}

#[test]
fn memory_bomb_past_the_cap_is_a_fault_and_the_host_is_fine() {
    let mut o = opts();
    o.per_policy.insert(
        "tricky".into(),
        PolicyOptions {
            memory_cap_bytes: Some(2 << 20),
            ..PolicyOptions::default()
        },
    );
    let (rt, bus) = runtime_with(o);
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("default", Some("tricky"));
    assert!(ev.observe(&inserts(), 1002, 4).is_empty());
    assert!(ev.needs_replay());
    let fault = wait_for(&bus, 0, |e| matches!(e, Event::PolicyFault { .. }));
    let Event::PolicyFault { reason, fault, .. } = &fault.event else {
        unreachable!()
    };
    assert_eq!(*fault, FaultKind::MemoryCap, "{reason}");
    assert!(reason.contains("memory cap"), "{reason}");
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
}

#[test]
fn trap_is_a_fault() {
    let (rt, bus) = runtime();
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("default", Some("tricky"));
    assert!(ev.observe(&inserts(), 1003, 4).is_empty());
    assert!(ev.needs_replay());
    let fault = wait_for(&bus, 0, |e| matches!(e, Event::PolicyFault { .. }));
    let Event::PolicyFault { reason, fault, .. } = &fault.event else {
        unreachable!()
    };
    assert_eq!(*fault, FaultKind::Trap, "{reason}");
    assert!(reason.contains("trapped"), "{reason}");
}

#[test]
fn more_victims_than_max_count_is_malformed() {
    let (rt, bus) = runtime();
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("default", Some("tricky"));
    assert!(ev.observe(&inserts(), 1004, 2).is_empty());
    assert!(ev.needs_replay());
    let fault = wait_for(&bus, 0, |e| matches!(e, Event::PolicyFault { .. }));
    let Event::PolicyFault { reason, fault, .. } = &fault.event else {
        unreachable!()
    };
    assert_eq!(*fault, FaultKind::MalformedAnswer, "{reason}");
    assert!(reason.contains("3 victims where at most 2"), "{reason}");
}

#[test]
fn preempt_of_an_unknown_id_falls_back_to_native_quota() {
    let (rt, bus) = runtime();
    rt.load_bytes("preempt", wat::quota_preempt_unknown().as_bytes())
        .unwrap();
    rt.bind(None, PolicyKind::Quota, Some("preempt")).unwrap();
    let q = rt.quota_policy();
    let r = req("t", 20);
    let s = SystemUsage::default();
    let native = NativeQuota.decide(&r, &TS, &s, &holders());
    assert_eq!(native, QuotaDecision::Preempt(vec![7]));
    assert_eq!(q.decide(&r, &TS, &s, &holders()), native);
    let fault = wait_for(&bus, 0, |e| matches!(e, Event::PolicyFault { .. }));
    let Event::PolicyFault {
        reason,
        kind,
        fault,
        ..
    } = &fault.event
    else {
        unreachable!()
    };
    assert_eq!(*kind, PolicyKind::Quota);
    assert_eq!(*fault, FaultKind::MalformedAnswer, "{reason}");
    assert!(reason.contains("999"), "{reason}");
}

#[test]
fn repeated_faults_quarantine_until_a_new_version() {
    let mut o = opts();
    o.max_faults = 3;
    let (rt, bus) = runtime_with(o);
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    rt.bind(None, PolicyKind::Eviction, Some("tricky")).unwrap();
    let mut ev = rt.eviction_policy("default", None);
    for _ in 0..3 {
        assert!(ev.observe(&inserts(), 1003, 4).is_empty());
    }
    let info = rt.get("tricky").unwrap();
    assert_eq!(info.quarantined_tenants, ["default"]);
    assert_eq!(info.faults, 3);
    wait_for(&bus, 0, |e| matches!(e, Event::PolicyQuarantined { .. }));
    wait_for(
        &bus,
        0,
        |e| matches!(e, Event::Alert { message } if message.contains("tricky")),
    );
    // Quarantined: the cache runs on the native LRU (fed by the replay).
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(ev.name(), "builtin:lru");
    assert_eq!(ev.observe(&[], 150, 4), vec![0, 1]);
    // The same bytes again do not lift it.
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    assert_eq!(rt.get("tricky").unwrap().quarantined_tenants, ["default"]);
    assert_eq!(ev.observe(&[], 100, 4), vec![0]);
    assert_eq!(ev.name(), "builtin:lru");
    // A new version lifts the quarantine; the cache hands over with a replay.
    let v2 = wat::eviction_tricky().replace("(component", "(component\n  ;; v2");
    rt.load_bytes("tricky", v2.as_bytes()).unwrap();
    assert!(rt.get("tricky").unwrap().quarantined_tenants.is_empty());
    assert!(ev.observe(&[], 100, 4).is_empty());
    assert!(ev.needs_replay());
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(ev.name(), "tricky");
}

#[test]
fn a_new_version_asks_existing_caches_for_a_warm_handoff() {
    let (rt, _) = runtime();
    rt.load_bytes("p", wat::eviction_tricky().as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("default", Some("p"));
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert!(!ev.needs_replay());
    // The same bytes are a no-op; different bytes are a new version.
    rt.load_bytes("p", wat::eviction_tricky().as_bytes())
        .unwrap();
    assert_eq!(ev.observe(&[], 0, 4), Vec::<u64>::new());
    assert!(!ev.needs_replay());
    let v2 = wat::eviction_tricky().replace("(component", "(component ;; v2\n");
    rt.load_bytes("p", v2.as_bytes()).unwrap();
    assert!(ev.observe(&[], 100, 4).is_empty());
    assert!(ev.needs_replay());
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(rt.get("p").unwrap().generation, 2);
}

#[test]
fn a_component_exporting_nothing_known_is_rejected_with_the_reason() {
    let (rt, bus) = runtime();
    let err = rt.load_bytes("empty", b"(component)").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("policy empty rejected") && msg.contains("exports none"),
        "{msg}"
    );
    let Event::PolicyReloadFailed { name, reason } = &bus.recent(0)[0].event else {
        panic!("expected PolicyReloadFailed, saw {:?}", names(&bus))
    };
    assert_eq!(name, "empty");
    assert!(reason.contains("exports none"));
    assert!(rt.list().is_empty());
}

#[test]
fn an_unknown_import_is_rejected_by_name() {
    let (rt, _) = runtime();
    let wat = r#"(component (import "acme:net/socket" (instance)))"#;
    let msg = rt
        .load_bytes("net", wat.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`acme:net/socket`"), "{msg}");
    let msg = rt
        .load_bytes("junk", b"\0asm garbage")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a valid WebAssembly component"), "{msg}");
}

#[test]
fn binding_checks_and_unload_falls_back_to_native() {
    let (rt, bus) = runtime();
    rt.load_bytes("deny", wat::quota_deny_all().as_bytes())
        .unwrap();
    let e = rt
        .bind(None, PolicyKind::Eviction, Some("deny"))
        .unwrap_err();
    assert!(e.to_string().contains("does not implement eviction"), "{e}");
    assert!(rt.bind(None, PolicyKind::Quota, Some("nope")).is_err());
    assert_eq!(
        rt.bind_defaults_for("deny").unwrap(),
        vec![PolicyKind::Quota]
    );
    assert_eq!(rt.bindings().len(), 1);
    let q = rt.quota_policy();
    let s = SystemUsage::default();
    assert_eq!(
        q.decide(&req("t", 1), &TS, &s, &[]),
        QuotaDecision::Deny("no".into())
    );
    rt.unload("deny").unwrap();
    assert!(rt.bindings().is_empty());
    assert_eq!(q.decide(&req("t", 1), &TS, &s, &[]), QuotaDecision::Grant);
    assert!(names(&bus).contains(&"PolicyUnloaded"));
    assert!(rt.unload("deny").is_err());
}

#[test]
fn per_tenant_binding_overrides_the_default() {
    let (rt, _) = runtime();
    rt.load_bytes("deny", wat::quota_deny_all().as_bytes())
        .unwrap();
    rt.load_bytes("grant", wat::quota_grant_all().as_bytes())
        .unwrap();
    rt.bind(Some("a"), PolicyKind::Quota, Some("deny")).unwrap();
    let q = rt.quota_policy();
    let s = SystemUsage::default();
    let within = TenantState { used: 0, ..TS };
    assert_eq!(
        q.decide(&req("a", 1), &within, &s, &[]),
        QuotaDecision::Deny("no".into())
    );
    // b has no binding and there is no default: the native quota decides.
    assert_eq!(
        q.decide(&req("b", 1), &within, &s, &[]),
        QuotaDecision::Grant
    );
    assert!(matches!(
        q.decide(&req("b", 500), &TS, &s, &[]),
        QuotaDecision::Deny(_)
    ));
    // With a default binding, b uses it; a keeps its own.
    rt.bind(None, PolicyKind::Quota, Some("grant")).unwrap();
    assert_eq!(q.decide(&req("b", 500), &TS, &s, &[]), QuotaDecision::Grant);
    assert!(matches!(
        q.decide(&req("a", 1), &within, &s, &[]),
        QuotaDecision::Deny(_)
    ));
    let info = rt.get("deny").unwrap();
    assert_eq!(info.calls, 2);
    assert!(info.mean_ns > 0 && info.p99_ns >= info.mean_ns / 2);
    assert_eq!(info.bindings.len(), 1);
    let json = serde_json::to_value(rt.list()).unwrap();
    assert_eq!(json[0]["name"], "deny");
}

#[test]
fn corrupt_artifact_cache_entries_are_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.cache_dir = Some(dir.path().join("cwasm"));
    let wat = wat::eviction_tricky();
    let (rt, _) = runtime_with(o.clone());
    assert!(!rt.load_bytes("p", wat.as_bytes()).unwrap().from_cache);
    let (rt, _) = runtime_with(o.clone());
    assert!(rt.load_bytes("p", wat.as_bytes()).unwrap().from_cache);
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("cwasm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    // Replace the entry (a new inode, as any writer but a truncating one would): the
    // runtimes above still have the old file mapped, and truncating a mapped file in
    // place would SIGBUS them.
    let tmp = dir.path().join("garbage");
    std::fs::write(&tmp, b"not an artifact").unwrap();
    std::fs::rename(&tmp, &entries[0]).unwrap();
    let (rt, _) = runtime_with(o.clone());
    let info = rt.load_bytes("p", wat.as_bytes()).unwrap();
    assert!(!info.from_cache);
    let mut ev = rt.eviction_policy("default", Some("p"));
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    let (rt, _) = runtime_with(o);
    assert!(rt.load_bytes("p", wat.as_bytes()).unwrap().from_cache);
}

#[test]
fn hot_reload_through_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, bus) = runtime();
    let path = dir.path().join("q.wasm");
    let handle = rt.watch_dir(dir.path()).unwrap();
    assert_eq!(handle.dir(), dir.path());

    std::fs::write(&path, wat::quota_deny_all()).unwrap();
    wait_for(
        &bus,
        0,
        |e| matches!(e, Event::PolicyLoaded { name, .. } if name == "q"),
    );
    rt.bind(None, PolicyKind::Quota, Some("q")).unwrap();
    let q = rt.quota_policy();
    let s = SystemUsage::default();
    let within = TenantState { used: 0, ..TS };
    assert_eq!(
        q.decide(&req("t", 1), &within, &s, &[]),
        QuotaDecision::Deny("no".into())
    );

    let seq = bus.recent(0).last().unwrap().seq;
    std::fs::write(&path, b"garbage").unwrap();
    wait_for(
        &bus,
        seq,
        |e| matches!(e, Event::PolicyReloadFailed { name, .. } if name == "q"),
    );
    assert_eq!(
        q.decide(&req("t", 1), &within, &s, &[]),
        QuotaDecision::Deny("no".into())
    );

    let seq = bus.recent(0).last().unwrap().seq;
    std::fs::write(&path, wat::quota_grant_all()).unwrap();
    wait_for(
        &bus,
        seq,
        |e| matches!(e, Event::PolicyLoaded { name, .. } if name == "q"),
    );
    assert_eq!(q.decide(&req("t", 500), &TS, &s, &[]), QuotaDecision::Grant);

    let seq = bus.recent(0).last().unwrap().seq;
    std::fs::remove_file(&path).unwrap();
    wait_for(
        &bus,
        seq,
        |e| matches!(e, Event::PolicyUnloaded { name } if name == "q"),
    );
    assert!(matches!(
        q.decide(&req("t", 500), &TS, &s, &[]),
        QuotaDecision::Deny(_)
    ));
    assert!(rt.list().is_empty());
    drop(handle);
}

#[test]
fn reload_dir_loads_and_unloads() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, _) = runtime();
    std::fs::write(dir.path().join("a.wasm"), wat::quota_grant_all()).unwrap();
    std::fs::write(dir.path().join("bad.wasm"), b"nope").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let out = rt.load_dir(dir.path()).unwrap();
    let actions: Vec<_> = out
        .iter()
        .map(|o| (o.name.as_str(), o.action.as_str()))
        .collect();
    assert_eq!(actions, [("a", "loaded"), ("bad", "failed")]);
    std::fs::remove_file(dir.path().join("a.wasm")).unwrap();
    let out = rt.reload_dir().unwrap();
    assert!(
        out.iter()
            .any(|o| o.name == "a" && o.action == ReloadAction::Unloaded),
        "{out:?}"
    );
    assert!(rt.list().is_empty());
}

#[test]
fn check_file_reports_kinds_times_and_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, _) = runtime();
    let path = dir.path().join("tricky.wasm");
    std::fs::write(&path, wat::eviction_tricky()).unwrap();
    let r = rt.check_file(&path, true).unwrap();
    assert!(
        r.smoke == "ok" && r.kinds == [PolicyKind::Eviction],
        "{r:?}"
    );
    // It evicts the first event of each batch, which frees too little and is not an LRU.
    let c = r.conformance.unwrap();
    assert!(!c.passed && !r.ok);
    assert!(c.first_divergence.is_some());
    let r = rt.check_file_with(&path, false, true).unwrap();
    assert!(r.ok && r.conformance.is_none());
    std::fs::write(&path, b"(component)").unwrap();
    let r = rt.check_file(&path, false).unwrap();
    assert!(!r.ok && r.error.unwrap().contains("exports none"));
    assert!(rt.list().is_empty(), "check must not load");
}

#[test]
fn check_times_calls_under_the_real_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, _) = runtime();
    // Correct answers, but tens of ms on the miss path: the smoke call (relaxed setup
    // deadline, 4 victims) passes; the timing phase, under the policy's 10 ms deadline,
    // does not.
    let path = dir.path().join("slow.wasm");
    std::fs::write(&path, wat::eviction_slow()).unwrap();
    let r = rt.check_file(&path, false).unwrap();
    assert_eq!(r.smoke, "ok", "{r:?}");
    assert!(!r.ok, "{r:?}");
    let e = r.error.unwrap();
    assert!(
        e.starts_with("timing: eviction: call 3 missed its deadline"),
        "{e}"
    );
    assert_eq!(r.timing[0].missed, MAX_MISSED);
    // A quick policy reports its times and passes.
    let path = dir.path().join("quick.wasm");
    std::fs::write(&path, wat::quota_grant_all()).unwrap();
    let r = rt.check_file(&path, false).unwrap();
    assert!(r.ok, "{r:?}");
    let t = &r.timing[0];
    assert_eq!((t.kind, t.calls), (PolicyKind::Quota, TIMED_CALLS));
    assert!(
        t.p50_us > 0.0 && t.p50_us <= t.p99_us && t.p99_us <= t.max_us,
        "{t:?}"
    );
}

#[test]
fn conformance_names_the_first_divergence() {
    // The tricky policy evicts the first event of each batch: sometimes a removed id,
    // always too few bytes. The report says which check failed first.
    let (rt, _) = runtime();
    let v = rt
        .shared
        .build("t", wat::eviction_tricky().as_bytes(), None)
        .unwrap();
    let rep = check::eviction_conformance(&v, false, 1, 500);
    assert!(!rep.passed);
    let d = rep.first_divergence.unwrap();
    assert!(d.contains("not a live id") || d.contains("free"), "{d}");
}

#[test]
fn dropping_the_runtime_stops_the_epoch_thread() {
    let (rt, _) = runtime();
    let q = rt.quota_policy();
    drop(rt);
    // The resolver keeps the runtime alive; dropping it too must not hang.
    drop(q);
}

#[test]
fn priority_resolves_by_the_waiters_tenant() {
    use rmhost_core::policy::{NativePriority, PriorityPolicy, Waiter};
    let (rt, _) = runtime();
    rt.load_bytes("double", wat::priority_double().as_bytes())
        .unwrap();
    rt.bind(Some("a"), PolicyKind::Priority, Some("double"))
        .unwrap();
    let p = rt.priority_policy();
    let w = |tenant: &str| Waiter {
        tenant: tenant.into(),
        priority: 3,
        enqueued_ms: 500,
        queue: "pg".into(),
    };
    assert_eq!(p.rank(&w("a")), 1000);
    assert_eq!(p.rank(&w("b")), NativePriority::default().rank(&w("b")));
}
