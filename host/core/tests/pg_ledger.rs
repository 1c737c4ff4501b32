//! The PostgreSQL ledger with three in-process hosts on one database: concurrent grants
//! never overshoot a quota, and random allocate / release / renew / expire steps keep the
//! counters equal to the sums of the live rows. Needs PostgreSQL on 127.0.0.1:5432 (trust
//! auth, user postgres; scripts/services starts it); each test makes its own database.
#![cfg(feature = "postgres")]

use proptest::prelude::*;
use rmhost_core::events::EventBus;
use rmhost_core::policy::ResourceKind;
use rmhost_core::resources::{
    AllocationFilter, AllocationRequest, GlobalLimits, ManagerOptions, ManagerParts, PgLedger,
    PgLedgerOptions, ResourceError, ResourceManager, SharedLedger,
};
use std::sync::Arc;
use std::time::Duration;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh database for one test, dropped first if a previous run left it.
fn fresh_database(name: &str) -> String {
    let db = format!("rmhost_test_{name}_{}", std::process::id());
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need PostgreSQL on 127.0.0.1:5432 with trust auth for user \
                     postgres (run scripts/services): {e}"
                )
            });
        tokio::spawn(conn);
        // Two statements: a multi-statement batch is one transaction, which DROP DATABASE
        // refuses.
        for sql in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("CREATE DATABASE {db}"),
        ] {
            client.batch_execute(&sql).await.unwrap();
        }
    });
    format!("postgres://postgres@127.0.0.1:5432/{db}")
}

fn limits() -> GlobalLimits {
    GlobalLimits {
        memory_bytes: 1 << 40,
        cpu_millicores: 1_000_000,
        connections: 1_000_000,
        requests_per_minute: 1_000_000,
        file_handles: 1_000_000,
    }
}

fn host(url: &str, id: &str) -> (ResourceManager, Arc<PgLedger>) {
    let events = EventBus::default();
    let ledger = PgLedger::connect(
        PgLedgerOptions {
            url: url.into(),
            host_id: id.into(),
            timeout: Duration::from_secs(5),
            host_lapse: Duration::from_secs(10),
            max_connections: 8,
        },
        events.clone(),
    )
    .expect("connect the shared ledger");
    let m = ResourceManager::with_parts(
        ManagerOptions {
            limits: limits(),
            requests_per_minute: 1000,
            tenant_defaults: Default::default(),
        },
        events,
        ManagerParts {
            shared_ledger: Some(ledger.clone() as Arc<dyn SharedLedger>),
            ..ManagerParts::default()
        },
    );
    (m, ledger)
}

fn req(tenant: &str, amount: u64) -> AllocationRequest {
    AllocationRequest {
        tenant: tenant.into(),
        kind: ResourceKind::Connections,
        amount,
        owner: String::new(),
        priority: 0,
        ttl_ms: None,
        pid: None,
    }
}

#[test]
fn three_hosts_granting_at_once_never_exceed_the_quota() {
    let url = fresh_database("concurrent");
    let hosts: Vec<_> = ["h1", "h2", "h3"].iter().map(|h| host(&url, h)).collect();
    hosts[0]
        .0
        .set_quota("acme", ResourceKind::Connections, Some(100))
        .unwrap();
    // 3 hosts x 4 threads x 50 grants of 1 against a quota of 100.
    let granted = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .flat_map(|(m, _)| (0..4).map(move |_| m))
            .map(|m| {
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..50 {
                        match m.allocate(req("acme", 1)) {
                            Ok(a) => ids.push(a.id),
                            Err(ResourceError::QuotaExceeded { limit, .. }) => {
                                assert_eq!(limit, 100)
                            }
                            Err(e) => panic!("unexpected refusal: {e}"),
                        }
                    }
                    ids
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<u64>>()
    });
    assert_eq!(granted.len(), 100, "exactly the quota is granted");
    let mut unique = granted.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 100, "ids are unique across hosts");
    for (m, _) in &hosts {
        let u = m.tenant_usage("acme").unwrap();
        let k = u
            .kinds
            .iter()
            .find(|k| k.kind == ResourceKind::Connections)
            .unwrap();
        assert_eq!(k.used, 100, "every host sees the same use");
        m.check_invariants().unwrap();
    }
    let stats: u64 = hosts.iter().map(|(m, _)| m.stats().conflicts).sum();
    println!("grants decided again after a version conflict: {stats}");
}

#[test]
fn ids_are_never_reused_after_a_restart() {
    let url = fresh_database("ids");
    let (m, ledger) = host(&url, "h1");
    let a = m.allocate(req("acme", 1)).unwrap();
    m.release(a.id).unwrap();
    drop(m);
    drop(ledger);
    let (m2, _l2) = host(&url, "h1");
    let b = m2.allocate(req("acme", 1)).unwrap();
    assert!(b.id > a.id, "id {} after {} was reused", b.id, a.id);
    assert!(matches!(
        m2.release(a.id),
        Err(ResourceError::UnknownAllocation { .. })
    ));
}

#[test]
fn a_newer_schema_is_refused_with_its_version() {
    let url = fresh_database("schema");
    let (_m, _l) = host(&url, "h1");
    runtime().block_on(async {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute("UPDATE rm_schema SET version = 99")
            .await
            .unwrap();
    });
    let err = PgLedger::connect(
        PgLedgerOptions {
            url: url.clone(),
            host_id: "h2".into(),
            timeout: Duration::from_secs(5),
            host_lapse: Duration::from_secs(10),
            max_connections: 2,
        },
        EventBus::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn drift_is_repaired_from_the_live_rows() {
    let url = fresh_database("drift");
    let (m, _l) = host(&url, "h1");
    for _ in 0..3 {
        m.allocate(req("acme", 2)).unwrap();
    }
    runtime().block_on(async {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute("UPDATE rm_usage SET used = used + 40")
            .await
            .unwrap();
    });
    let err = m.check_invariants().unwrap_err().to_string();
    assert!(err.contains("differ"), "{err}");
    assert_eq!(m.repair().unwrap(), 2, "the tenant row and the global row");
    m.check_invariants().unwrap();
    let u = m.tenant_usage("acme").unwrap();
    assert_eq!(
        u.kinds
            .iter()
            .find(|k| k.kind == ResourceKind::Connections)
            .unwrap()
            .used,
        6
    );
}

#[derive(Debug, Clone)]
enum Step {
    Allocate {
        host: usize,
        tenant: usize,
        amount: u64,
        lease: bool,
    },
    Release {
        host: usize,
        pick: usize,
    },
    Renew {
        host: usize,
        pick: usize,
    },
    Expire {
        host: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..3usize, 1..50u64, any::<bool>()).prop_map(|(host, tenant, amount, lease)| Step::Allocate { host, tenant, amount, lease }),
        2 => (0..3usize, any::<usize>()).prop_map(|(host, pick)| Step::Release { host, pick }),
        1 => (0..3usize, any::<usize>()).prop_map(|(host, pick)| Step::Renew { host, pick }),
        1 => (0..3usize).prop_map(|host| Step::Expire { host }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn counters_equal_the_live_rows_across_three_hosts(steps in proptest::collection::vec(step(), 1..40)) {
        let url = fresh_database("prop");
        let hosts: Vec<_> = ["h1", "h2", "h3"].iter().map(|h| host(&url, h)).collect();
        for t in ["t0", "t1", "t2"] {
            hosts[0].0.set_quota(t, ResourceKind::Connections, Some(200)).unwrap();
        }
        let mut live: Vec<u64> = Vec::new();
        for s in steps {
            match s {
                Step::Allocate { host, tenant, amount, lease } => {
                    let mut r = req(&format!("t{tenant}"), amount);
                    // A 1 ms lease is expired by the time an Expire step reaps.
                    r.ttl_ms = lease.then_some(1);
                    match hosts[host].0.allocate(r) {
                        Ok(a) => live.push(a.id),
                        Err(ResourceError::QuotaExceeded { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                Step::Release { host, pick } if !live.is_empty() => {
                    let id = live.remove(pick % live.len());
                    // Already reaped is fine; anything else is not.
                    match hosts[host].0.release(id) {
                        Ok(_) | Err(ResourceError::UnknownAllocation { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                Step::Renew { host, pick } if !live.is_empty() => {
                    let id = live[pick % live.len()];
                    match hosts[host].0.renew(id) {
                        Ok(_) | Err(ResourceError::UnknownAllocation { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                Step::Expire { host } => {
                    std::thread::sleep(Duration::from_millis(3));
                    hosts[host].0.reclaim_orphans();
                }
                _ => {}
            }
            hosts[0].0.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        // Every host lists the same live allocations, whose sum is the counter.
        let lists: Vec<Vec<u64>> = hosts.iter().map(|(m, _)| {
            m.allocations(&AllocationFilter::default()).unwrap().iter().map(|a| a.id).collect()
        }).collect();
        prop_assert_eq!(&lists[0], &lists[1]);
        prop_assert_eq!(&lists[1], &lists[2]);
        let usage = hosts[2].0.usage().unwrap();
        let sum: u64 = hosts[2].0.allocations(&AllocationFilter::default()).unwrap().iter().map(|a| a.amount).sum();
        let counted = usage.global.iter().find(|k| k.kind == ResourceKind::Connections).unwrap().used;
        prop_assert_eq!(sum, counted);
    }
}
