//! Tests of fair shares: defaults, memory held outside the ledger, and shedding that spares
//! tenants within their share.

use super::*;
use crate::config::TenantQuota;
use parking_lot::Mutex as PlMutex;
use std::collections::BTreeMap;

#[derive(Default)]
struct Held(PlMutex<BTreeMap<String, u64>>);

impl HeldElsewhere for Held {
    fn bytes(&self, tenant: &str) -> u64 {
        self.0.lock().get(tenant).copied().unwrap_or(0)
    }
    fn tenants(&self) -> Vec<String> {
        self.0.lock().keys().cloned().collect()
    }
}

fn manager(defaults: TenantQuota, held: Arc<Held>) -> ResourceManager {
    ResourceManager::with_parts(
        ManagerOptions {
            limits: GlobalLimits {
                memory_bytes: 1000,
                cpu_millicores: 2000,
                connections: 10,
                requests_per_minute: 1000,
                file_handles: 100,
            },
            requests_per_minute: 60,
            tenant_defaults: defaults,
        },
        EventBus::new(),
        ManagerParts {
            held_elsewhere: held,
            ..ManagerParts::default()
        },
    )
}

fn mem(tenant: &str, amount: u64, priority: u8) -> AllocationRequest {
    AllocationRequest {
        tenant: tenant.into(),
        kind: ResourceKind::Memory,
        amount,
        owner: String::new(),
        priority,
        ttl_ms: None,
        pid: None,
    }
}

#[test]
fn tenant_defaults_apply_to_tenants_without_their_own_quota() {
    let defaults = TenantQuota {
        memory: Some(300),
        ..Default::default()
    };
    let m = manager(defaults, Arc::default());
    m.set_quota("big", ResourceKind::Memory, Some(800)).unwrap();
    assert_eq!(m.quota("anyone", ResourceKind::Memory), Some(300));
    assert_eq!(m.quota("big", ResourceKind::Memory), Some(800));
    assert!(matches!(
        m.allocate(mem("anyone", 301, 0)),
        Err(ResourceError::QuotaExceeded { limit: 300, .. })
    ));
    m.allocate(mem("big", 700, 0)).unwrap();
    let u = m.tenant_usage("anyone").unwrap();
    assert_eq!(u.kinds[0].limit, Some(300), "usage shows the default quota");
}

#[test]
fn cache_capacity_counts_against_the_memory_quota() {
    let held = Arc::new(Held::default());
    let m = manager(TenantQuota::default(), held.clone());
    m.set_quota("a", ResourceKind::Memory, Some(500)).unwrap();
    held.0.lock().insert("a".into(), 400);
    assert_eq!(m.accounted_memory("a"), 400);
    let err = m.allocate(mem("a", 101, 0)).unwrap_err();
    assert!(
        matches!(err, ResourceError::QuotaExceeded { used: 400, .. }),
        "{err}"
    );
    m.allocate(mem("a", 100, 0)).unwrap();
    assert_eq!(m.accounted_memory("a"), 500);
}

#[test]
fn shedding_spares_a_tenant_within_its_share_while_another_is_over() {
    let m = manager(TenantQuota::default(), Arc::default());
    // Two tenants hold memory: each one's share is half of the 1000-byte budget.
    m.allocate(mem("hog", 900, 5)).unwrap();
    m.allocate(mem("calm", 10, 5)).unwrap();
    assert_eq!(m.memory_share("calm"), 500);
    let shares = m.memory_shares();
    assert_eq!(shares[0].tenant, "hog", "the most over comes first");
    assert!(shares[0].over && !shares[1].over);
    m.shed_below(3);
    // The hog is shed; the tenant within its share is not, because of the hog.
    assert!(matches!(
        m.allocate(AllocationRequest {
            kind: ResourceKind::Cpu,
            ..mem("hog", 1, 0)
        }),
        Err(ResourceError::Shed { .. })
    ));
    m.allocate(AllocationRequest {
        kind: ResourceKind::Cpu,
        ..mem("calm", 1, 0)
    })
    .unwrap();
}

#[test]
fn when_no_tenant_is_over_its_share_shedding_applies_to_all() {
    let m = manager(TenantQuota::default(), Arc::default());
    m.allocate(mem("a", 100, 5)).unwrap();
    m.allocate(mem("b", 100, 5)).unwrap();
    m.shed_below(3);
    for t in ["a", "b"] {
        assert!(matches!(
            m.allocate(mem(t, 1, 0)),
            Err(ResourceError::Shed { .. })
        ));
    }
}
