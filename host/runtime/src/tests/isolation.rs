//! Faults count per (policy, tenant); a quarantine ends only with a new version or an
//! admin's lift; warm handoff never answers from a half-replayed instance.

use super::*;

/// Three traps (bytes-to-free 1003) from `tenant`'s cache, which quarantine `tricky` for
/// it when `max_faults` is 3 (the second call is a replay, tried twice; the third asks for
/// the replay again, so the next batch is the replay into the native LRU).
fn quarantine_for(
    rt: &PolicyRuntime,
    tenant: &str,
) -> Box<dyn rmhost_core::policy::EvictionPolicy> {
    let mut ev = rt.eviction_policy(tenant, None);
    for _ in 0..3 {
        assert!(ev.observe(&inserts(), 1003, 4).is_empty());
        assert!(ev.needs_replay());
    }
    ev
}

fn three_faults() -> (PolicyRuntime, EventBus) {
    let mut o = opts();
    o.max_faults = 3;
    let (rt, bus) = runtime_with(o);
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    rt.bind(None, PolicyKind::Eviction, Some("tricky")).unwrap();
    (rt, bus)
}

#[test]
fn one_tenants_faults_quarantine_the_policy_for_that_tenant_only() {
    let (rt, bus) = three_faults();
    let _a = quarantine_for(&rt, "a");
    let info = rt.get("tricky").unwrap();
    assert_eq!(info.faults, 3);
    assert_eq!(info.quarantined_tenants, ["a"]);
    assert!(!info.quarantined, "tenant-less calls are not affected");
    let q = wait_for(&bus, 0, |e| matches!(e, Event::PolicyQuarantined { .. }));
    let Event::PolicyQuarantined { reason, .. } = &q.event else {
        unreachable!()
    };
    assert!(reason.contains("tenant a"), "{reason}");
    // a's new caches get the native LRU; b's, through the same default binding, the policy.
    let mut a2 = rt.eviction_policy("a", None);
    assert_eq!(a2.name(), "builtin:lru");
    let mut b = rt.eviction_policy("b", None);
    assert_eq!(b.name(), "tricky");
    assert_eq!(b.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(a2.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(
        rt.get("tricky").unwrap().calls,
        4,
        "b's call reached the guest"
    );
    // b faulting once stays under the limit: still served.
    assert!(b.observe(&[], 1003, 4).is_empty());
    assert_eq!(rt.get("tricky").unwrap().quarantined_tenants, ["a"]);
    assert_eq!(b.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(b.name(), "tricky");
}

#[test]
fn quota_faults_are_counted_per_calling_tenant() {
    let mut o = opts();
    o.max_faults = 2;
    let (rt, _) = runtime_with(o);
    rt.load_bytes("preempt", wat::quota_preempt_unknown().as_bytes())
        .unwrap();
    rt.bind(None, PolicyKind::Quota, Some("preempt")).unwrap();
    let q = rt.quota_policy();
    let s = SystemUsage::default();
    // For a (amount 20) it answers a malformed preemption: two faults quarantine it.
    for _ in 0..2 {
        q.decide(&req("a", 20), &TS, &s, &holders());
    }
    assert_eq!(rt.get("preempt").unwrap().quarantined_tenants, ["a"]);
    assert_eq!(q.name_for("a"), "builtin:quota");
    // b's requests still reach the guest (its grant of 10 is the guest's answer).
    assert_eq!(q.name_for("b"), "preempt");
    let calls = rt.get("preempt").unwrap().calls;
    assert_eq!(q.decide(&req("b", 10), &TS, &s, &[]), QuotaDecision::Grant);
    assert_eq!(rt.get("preempt").unwrap().calls, calls + 1);
}

#[test]
fn only_a_new_version_or_an_admin_lifts_a_quarantine() {
    let (rt, _) = three_faults();
    let mut ev = quarantine_for(&rt, "a");
    // The same bytes again (a re-read file, `policy reload`) keep it quarantined.
    let g = rt.get("tricky").unwrap().generation;
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    let info = rt.get("tricky").unwrap();
    assert_eq!(
        (info.generation, info.quarantined_tenants),
        (g, vec!["a".into()])
    );
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(ev.name(), "builtin:lru");
    // The admin lifts it: the cache hands back to the policy with a replay.
    assert_eq!(rt.lift_quarantine("tricky").unwrap(), 1);
    assert!(rt.get("tricky").unwrap().quarantined_tenants.is_empty());
    assert!(ev.observe(&[], 100, 4).is_empty());
    assert!(ev.needs_replay());
    assert_eq!(ev.observe(&inserts(), 100, 4), vec![0]);
    assert_eq!(ev.name(), "tricky");
    let e = rt.lift_quarantine("nope").unwrap_err();
    assert!(e.to_string().contains("nope is not loaded"), "{e}");
}

/// The replay into a rebuilt instance faults too (twice: it is retried): the cache's own
/// LRU fallback decides, and the next ordinary batch is not fed to a fresh instance alone
/// (which would then know only the newest entries); the full replay is asked for again.
#[test]
fn a_faulting_replay_is_retried_and_never_leaves_a_half_fed_instance() {
    let (rt, bus) = runtime();
    rt.load_bytes("tricky", wat::eviction_tricky().as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("t", Some("tricky"));
    assert!(ev.observe(&inserts(), 1003, 4).is_empty());
    assert!(ev.needs_replay());
    // The replay (same bytes-to-free, so it traps again): two attempts, two faults.
    assert!(ev.observe(&inserts(), 1003, 4).is_empty());
    assert!(ev.needs_replay(), "no replay succeeded yet");
    assert_eq!(rt.get("tricky").unwrap().faults, 3);
    // An ordinary batch of a newer entry (id 9): dropped, the replay asked for again.
    assert!(ev.observe(&[9, 100, 0], 100, 4).is_empty());
    assert!(ev.needs_replay());
    // The full replay (the live entries, oldest first) reaches a fresh instance, which
    // answers from it: the oldest entry, not the newest one the old code would have fed.
    let live: Vec<u64> = [0u64, 1, 2, 9]
        .iter()
        .flat_map(|&id| [id, 100, 0])
        .collect();
    assert_eq!(ev.observe(&live, 100, 4), vec![0]);
    assert!(!ev.needs_replay());
    let faults = bus
        .recent(0)
        .iter()
        .filter(|e| matches!(e.event, Event::PolicyFault { .. }))
        .count();
    assert_eq!(faults, 3);
}
