//! Tests of the manager: quotas, limits, preemption, leases, owner processes, alerts, and
//! a property test that the ledger never drifts under random operation sequences.

use super::*;
use crate::clock::ManualClock;
use crate::events::{Envelope, EventBus};
use proptest::prelude::*;

#[derive(Debug, Default)]
struct FakeProbe(Mutex<Vec<u32>>);

impl ProcessProbe for FakeProbe {
    fn is_alive(&self, pid: u32) -> bool {
        !self.0.lock().contains(&pid)
    }
}

fn limits() -> GlobalLimits {
    GlobalLimits {
        memory_bytes: 1000,
        cpu_millicores: 2000,
        connections: 10,
        requests_per_minute: 1000,
        file_handles: 100,
    }
}

fn manager() -> (ResourceManager, ManualClock, Arc<FakeProbe>, EventBus) {
    manager_with(Arc::new(NativeQuota))
}

fn manager_with(
    quota_policy: Arc<dyn QuotaPolicy>,
) -> (ResourceManager, ManualClock, Arc<FakeProbe>, EventBus) {
    let clock = ManualClock::new();
    let probe = Arc::new(FakeProbe::default());
    let bus = EventBus::new();
    let m = ResourceManager::with_parts(
        ManagerOptions {
            limits: limits(),
            requests_per_minute: 60,
            tenant_defaults: Default::default(),
        },
        bus.clone(),
        ManagerParts {
            clock: clock.clock(),
            probe: probe.clone(),
            quota_policy,
            ..ManagerParts::default()
        },
    );
    (m, clock, probe, bus)
}

fn req(tenant: &str, kind: ResourceKind, amount: u64, priority: u8) -> AllocationRequest {
    AllocationRequest {
        tenant: tenant.into(),
        kind,
        amount,
        owner: "svc".into(),
        priority,
        ttl_ms: None,
        pid: None,
    }
}

fn names(bus: &EventBus) -> Vec<&'static str> {
    bus.recent(0)
        .iter()
        .map(|e: &Arc<Envelope>| e.event.name())
        .collect()
}

#[test]
fn quota_exceeded_names_tenant_kind_and_numbers() {
    let (m, ..) = manager();
    m.set_quota("a", ResourceKind::Memory, Some(100)).unwrap();
    m.allocate(req("a", ResourceKind::Memory, 60, 1)).unwrap();
    let err = m
        .allocate(req("a", ResourceKind::Memory, 50, 1))
        .unwrap_err();
    assert_eq!(
        err,
        ResourceError::QuotaExceeded {
            tenant: "a".into(),
            kind: ResourceKind::Memory,
            used: 60,
            requested: 50,
            limit: 100
        }
    );
    assert_eq!(
        err.to_string(),
        "quota exceeded for tenant a: 60+50 > 100 bytes"
    );
    // Another tenant is not limited by a's quota.
    m.allocate(req("b", ResourceKind::Memory, 500, 1)).unwrap();
    assert_eq!(m.stats().denied.get("quota_exceeded"), Some(&1));
}

#[test]
fn global_limit_applies_across_tenants() {
    let (m, ..) = manager();
    m.allocate(req("a", ResourceKind::Connections, 6, 0))
        .unwrap();
    let err = m
        .allocate(req("b", ResourceKind::Connections, 5, 0))
        .unwrap_err();
    assert!(matches!(
        err,
        ResourceError::LimitExceeded {
            used: 6,
            requested: 5,
            limit: 10,
            ..
        }
    ));
    let err = m
        .allocate(req("b", ResourceKind::Connections, 11, 0))
        .unwrap_err();
    assert!(
        matches!(err, ResourceError::InvalidAmount { amount: 11, .. }),
        "{err}"
    );
}

#[test]
fn zero_amounts_and_bad_tenants_are_invalid() {
    let (m, ..) = manager();
    assert!(matches!(
        m.allocate(req("a", ResourceKind::Cpu, 0, 0)),
        Err(ResourceError::InvalidAmount { amount: 0, .. })
    ));
    assert!(matches!(
        m.allocate(req("", ResourceKind::Cpu, 1, 0)),
        Err(ResourceError::InvalidRequest { .. })
    ));
    assert!(matches!(
        m.allocate(req("a b", ResourceKind::Cpu, 1, 0)),
        Err(ResourceError::InvalidRequest { .. })
    ));
}

#[test]
fn release_twice_is_an_error_not_a_double_count() {
    let (m, ..) = manager();
    let a = m.allocate(req("a", ResourceKind::Memory, 10, 0)).unwrap();
    m.release(a.id).unwrap();
    assert_eq!(
        m.release(a.id),
        Err(ResourceError::UnknownAllocation { id: a.id })
    );
    assert_eq!(m.usage().unwrap().global[0].used, 0);
    m.check_invariants().unwrap();
}

#[test]
fn higher_priority_preempts_lower_priority_of_the_same_tenant() {
    let (m, _, _, bus) = manager();
    m.set_quota("a", ResourceKind::Memory, Some(100)).unwrap();
    let low1 = m.allocate(req("a", ResourceKind::Memory, 40, 1)).unwrap();
    let low2 = m.allocate(req("a", ResourceKind::Memory, 40, 2)).unwrap();
    let high = m.allocate(req("a", ResourceKind::Memory, 50, 9)).unwrap();
    assert!(
        m.get(low1.id).unwrap().is_none(),
        "lowest priority goes first"
    );
    assert!(m.get(low2.id).unwrap().is_some());
    assert_eq!(m.get(high.id).unwrap().unwrap().amount, 50);
    assert!(names(&bus).contains(&"ResourceReleased"));
    // Equal priority cannot preempt.
    let err = m
        .allocate(req("a", ResourceKind::Memory, 20, 2))
        .unwrap_err();
    assert!(matches!(err, ResourceError::QuotaExceeded { .. }));
    assert_eq!(m.stats().preempted, 1);
    m.check_invariants().unwrap();
}

#[derive(Debug)]
struct BadPreempt;
impl QuotaPolicy for BadPreempt {
    fn name(&self) -> &str {
        "bad"
    }
    fn decide(
        &self,
        r: &QuotaRequest,
        _: &TenantState,
        _: &SystemUsage,
        _: &[crate::policy::Holder],
    ) -> QuotaDecision {
        // Grants tenant a's setup request; for tenant b, names a's allocation.
        if r.tenant == "b" {
            QuotaDecision::Preempt(vec![1])
        } else {
            QuotaDecision::Grant
        }
    }
}

#[test]
fn a_policy_cannot_preempt_what_was_not_offered() {
    let (m, ..) = manager_with(Arc::new(BadPreempt));
    m.set_quota("b", ResourceKind::Memory, Some(10)).unwrap();
    let other = m.allocate(req("a", ResourceKind::Memory, 5, 0)).unwrap();
    let err = m
        .allocate(req("b", ResourceKind::Memory, 20, 9))
        .unwrap_err();
    assert!(matches!(err, ResourceError::QuotaExceeded { .. }));
    assert!(
        m.get(other.id).unwrap().is_some(),
        "tenant a's allocation must survive"
    );
}

#[derive(Debug)]
struct DenyAll;
impl QuotaPolicy for DenyAll {
    fn name(&self) -> &str {
        "deny-all"
    }
    fn decide(
        &self,
        _: &QuotaRequest,
        _: &TenantState,
        _: &SystemUsage,
        _: &[crate::policy::Holder],
    ) -> QuotaDecision {
        QuotaDecision::Deny("closed for maintenance".into())
    }
}

#[test]
fn policy_denials_carry_the_policy_and_reason() {
    let (m, ..) = manager_with(Arc::new(DenyAll));
    let err = m.allocate(req("a", ResourceKind::Cpu, 1, 0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy deny-all denied cpu for tenant a: closed for maintenance"
    );
}

#[test]
fn leases_expire_unless_renewed() {
    let (m, clock, _, bus) = manager();
    let mut r = req("a", ResourceKind::FileHandles, 3, 0);
    r.ttl_ms = Some(100);
    let kept = m.allocate(r.clone()).unwrap();
    let lost = m.allocate(r).unwrap();
    clock.advance(60);
    m.renew(kept.id).unwrap();
    clock.advance(60);
    let reclaimed = m.reclaim_orphans();
    assert_eq!(
        reclaimed.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![lost.id]
    );
    assert!(m.get(kept.id).unwrap().is_some());
    assert!(names(&bus).contains(&"OrphanReclaimed"));
    assert_eq!(
        m.renew(lost.id),
        Err(ResourceError::UnknownAllocation { id: lost.id })
    );
    assert_eq!(m.stats().reclaimed, 1);
}

#[test]
fn allocations_of_a_dead_owner_are_reclaimed() {
    let (m, _, probe, _) = manager();
    let mut r = req("a", ResourceKind::Memory, 10, 0);
    r.pid = Some(4242);
    let a = m.allocate(r).unwrap();
    assert!(m.reclaim_orphans().is_empty());
    probe.0.lock().push(4242);
    assert_eq!(m.reclaim_orphans()[0].id, a.id);
}

#[test]
fn the_real_probe_sees_a_child_exit() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(ProcfsProbe.is_alive(pid));
    child.kill().unwrap();
    // Unreaped, the child is a zombie: exited all the same.
    assert!(
        !ProcfsProbe.is_alive(pid) || {
            child.wait().unwrap();
            !ProcfsProbe.is_alive(pid)
        }
    );
    child.wait().ok();
    assert!(!ProcfsProbe.is_alive(pid));
}

#[test]
fn alerts_fire_once_per_threshold_crossing() {
    let (m, _, _, bus) = manager();
    let a = m
        .allocate(req("a", ResourceKind::Connections, 8, 0))
        .unwrap();
    m.allocate(req("a", ResourceKind::Connections, 1, 0))
        .unwrap();
    m.allocate(req("a", ResourceKind::Connections, 1, 0))
        .unwrap();
    let alerts: Vec<u32> = bus
        .recent(0)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ResourceAlerts {
                threshold_percent,
                tenant: None,
                ..
            } => Some(*threshold_percent),
            _ => None,
        })
        .collect();
    assert_eq!(alerts, vec![80, 100]);
    m.release(a.id).unwrap();
    m.allocate(req("a", ResourceKind::Connections, 8, 0))
        .unwrap();
    let count = bus
        .recent(0)
        .iter()
        .filter(|e| matches!(e.event, Event::ResourceAlerts { tenant: None, .. }))
        .count();
    // 20% -> 100% in one step is one alert, at the highest threshold crossed.
    assert_eq!(
        count, 3,
        "after falling below 80% the crossings are announced again"
    );
    // Measured use has its own alert state and scope.
    m.observe_system(ResourceKind::Connections, 90, 100);
    m.observe_system(ResourceKind::Connections, 95, 100);
    let system: Vec<u32> = bus
        .recent(0)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ResourceAlerts {
                scope,
                threshold_percent,
                ..
            } if scope == "system" => Some(*threshold_percent),
            _ => None,
        })
        .collect();
    assert_eq!(system, vec![80]);
}

#[test]
fn shedding_refuses_low_priority_work() {
    let (m, ..) = manager();
    m.shed_below(2);
    assert!(matches!(
        m.allocate(req("a", ResourceKind::Cpu, 1, 1)),
        Err(ResourceError::Shed {
            priority: 1,
            threshold: 2
        })
    ));
    m.allocate(req("a", ResourceKind::Cpu, 1, 2)).unwrap();
    m.shed_below(0);
    m.allocate(req("a", ResourceKind::Cpu, 1, 0)).unwrap();
}

#[test]
fn usage_reports_global_and_tenant_views() {
    let (m, ..) = manager();
    m.set_quota("a", ResourceKind::Memory, Some(200)).unwrap();
    m.allocate(req("a", ResourceKind::Memory, 50, 0)).unwrap();
    let u = m.usage().unwrap();
    assert_eq!(u.allocations, 1);
    let mem = &u.global[0];
    assert_eq!(
        (mem.used, mem.limit, mem.percentage),
        (50, Some(1000), Some(5.0))
    );
    let t = &u.tenants[0];
    assert_eq!(t.tenant, "a");
    assert_eq!(
        (t.kinds[0].used, t.kinds[0].limit, t.kinds[0].percentage),
        (50, Some(200), Some(25.0))
    );
    assert_eq!(t.requests_per_minute_limit, 60);
}

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        tenant: u8,
        kind: u8,
        amount: u64,
        priority: u8,
        ttl: Option<u64>,
    },
    Release(u8),
    Renew(u8),
    Advance(u64),
    Quota {
        tenant: u8,
        limit: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..5, 0u64..400, any::<u8>(), proptest::option::of(1u64..50))
            .prop_map(|(tenant, kind, amount, priority, ttl)| Op::Alloc { tenant, kind, amount, priority: priority % 4, ttl }),
        3 => any::<u8>().prop_map(Op::Release),
        1 => any::<u8>().prop_map(Op::Renew),
        1 => (0u64..40).prop_map(Op::Advance),
        1 => (0u8..3, proptest::option::of(0u64..600)).prop_map(|(tenant, limit)| Op::Quota { tenant, limit }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, .. ProptestConfig::default() })]

    /// The ledger never goes negative, never double-counts, and its totals always equal
    /// the sum of what is live, under random allocate / release / renew / expire sequences.
    #[test]
    fn ledger_never_drifts(ops in proptest::collection::vec(op(), 1..40)) {
        let (m, clock, ..) = manager();
        let mut ids: Vec<u64> = Vec::new();
        let mut released = std::collections::HashSet::new();
        for op in ops {
            match op {
                Op::Alloc { tenant, kind, amount, priority, ttl } => {
                    let mut r = req(&format!("t{tenant}"), ResourceKind::ALL[kind as usize], amount, priority);
                    r.ttl_ms = ttl;
                    if let Ok(a) = m.allocate(r) {
                        ids.push(a.id);
                    }
                }
                Op::Release(i) if !ids.is_empty() => {
                    let id = ids[i as usize % ids.len()];
                    let first = released.insert(id);
                    let res = m.release(id);
                    // A release succeeds at most once per id.
                    if !first { prop_assert!(res.is_err()); }
                    if res.is_err() { released.insert(id); }
                }
                Op::Renew(i) if !ids.is_empty() => { let _ = m.renew(ids[i as usize % ids.len()]); }
                Op::Advance(ms) => { clock.advance(ms); for a in m.reclaim_orphans() { released.insert(a.id); } }
                Op::Quota { tenant, limit } => { m.set_quota(&format!("t{tenant}"), ResourceKind::Memory, limit).unwrap(); }
                _ => {}
            }
            m.check_invariants()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let u = m.usage().unwrap();
            for k in &u.global {
                prop_assert!(k.used <= k.limit.unwrap(), "global {} over its limit", k.kind);
                let live: u64 = m.allocations(&AllocationFilter { kind: Some(k.kind), ..Default::default() }).unwrap().iter().map(|a| a.amount).sum();
                prop_assert_eq!(live, k.used);
            }
        }
    }
}

#[derive(Debug)]
struct PreemptTooLittle;
impl QuotaPolicy for PreemptTooLittle {
    fn name(&self) -> &str {
        "too-little"
    }
    fn decide(
        &self,
        _: &QuotaRequest,
        _: &TenantState,
        _: &SystemUsage,
        offered: &[crate::policy::Holder],
    ) -> QuotaDecision {
        // Names only the first offered holder, whatever the request needs.
        match offered.first() {
            Some(h) => QuotaDecision::Preempt(vec![h.allocation]),
            None => QuotaDecision::Grant,
        }
    }
}

#[test]
fn a_preemption_that_frees_too_little_releases_nothing() {
    let (m, _, _, bus) = manager_with(Arc::new(PreemptTooLittle));
    m.set_quota("a", ResourceKind::Memory, Some(100)).unwrap();
    let small = m.allocate(req("a", ResourceKind::Memory, 10, 1)).unwrap();
    let big = m.allocate(req("a", ResourceKind::Memory, 80, 1)).unwrap();
    // 95 more needs 85 freed; the policy offers up the 10-byte one only.
    let err = m
        .allocate(req("a", ResourceKind::Memory, 95, 9))
        .unwrap_err();
    assert!(matches!(err, ResourceError::QuotaExceeded { .. }), "{err}");
    assert!(
        m.get(small.id).unwrap().is_some(),
        "the victim must not be released"
    );
    assert!(m.get(big.id).unwrap().is_some());
    assert_eq!(m.stats().preempted, 0);
    assert!(!names(&bus).contains(&"ResourceReleased"));
    assert_eq!(m.tenant_usage("a").unwrap().kinds[0].used, 90);
    m.check_invariants().unwrap();
    // A request the same victim does cover goes through, victim and grant together.
    let ok = m.allocate(req("a", ResourceKind::Memory, 15, 9)).unwrap();
    assert!(m.get(small.id).unwrap().is_none());
    assert!(m.get(ok.id).unwrap().is_some());
    m.check_invariants().unwrap();
}
