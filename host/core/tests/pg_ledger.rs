//! The PostgreSQL ledger with three in-process hosts on one database: concurrent grants
//! never overshoot a quota, and random allocate / release / renew / expire steps keep the
//! counters equal to the sums of the live rows. Needs PostgreSQL on 127.0.0.1:5432 (trust
//! auth, user postgres; scripts/services starts it); each test makes its own database.
#![cfg(feature = "postgres")]

use proptest::prelude::*;
use rmhost_core::events::EventBus;
use rmhost_core::host::binding;
use rmhost_core::policy::PolicyKind;
use rmhost_core::policy::ResourceKind;
use rmhost_core::resources::{
    AllocationFilter, AllocationRequest, CacheDef, GlobalLimits, ManagerOptions, ManagerParts,
    PgLedger, PgLedgerOptions, RemoteChange, ResourceError, ResourceManager, SharedCatalog,
    SharedLedger,
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
        c.batch_execute(
            "UPDATE rm_usage SET used = used + 40; UPDATE rm_global SET used = used + 40 \
             WHERE used > 0",
        )
        .await
        .unwrap();
    });
    let err = m.check_invariants().unwrap_err().to_string();
    assert!(err.contains("differ"), "{err}");
    assert_eq!(
        m.repair().unwrap(),
        2,
        "the tenant row and its global stripe"
    );
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

#[test]
fn bindings_and_cache_definitions_are_stored_and_reach_the_other_hosts() {
    let url = fresh_database("catalog");
    let (_m1, one) = host(&url, "c1");
    let (_m2, two) = host(&url, "c2");
    let mut heard = two.take_changes().expect("the change stream");

    // Config and --policy bindings seed the ledger; a second seed does not overwrite.
    let lru = binding(None, PolicyKind::Eviction, Some("lru"));
    assert_eq!(one.set_binding(&lru, true).unwrap().as_deref(), Some("lru"));
    let other = binding(None, PolicyKind::Eviction, Some("s3fifo"));
    assert_eq!(
        two.set_binding(&other, true).unwrap().as_deref(),
        Some("lru")
    );
    // What the API sets overwrites and is announced.
    let acme = binding(Some("acme"), PolicyKind::Quota, Some("fair-quota"));
    assert_eq!(
        one.set_binding(&acme, false).unwrap().as_deref(),
        Some("fair-quota")
    );
    let def = CacheDef {
        name: "acme/sessions".into(),
        tenant: "acme".into(),
        capacity_bytes: 1 << 20,
        policy: Some("s3fifo".into()),
    };
    one.put_cache_def(&def).unwrap();
    one.remove_cache_def("acme/sessions").unwrap();
    one.set_binding(&binding(Some("acme"), PolicyKind::Quota, None), false)
        .unwrap();
    // Out-of-range capacities are refused with the field named; nothing is stored.
    let huge = CacheDef {
        capacity_bytes: u64::MAX,
        ..def.clone()
    };
    let err = one.put_cache_def(&huge).unwrap_err().to_string();
    assert!(err.contains("capacity_bytes"), "{err}");

    assert_eq!(two.bindings().unwrap(), vec![lru.clone()]);
    assert!(two.cache_defs().unwrap().is_empty());
    one.put_cache_def(&def).unwrap();
    assert_eq!(two.cache_defs().unwrap(), vec![def.clone()]);

    // The other host hears each change in commit order (the seed was not announced).
    let expected = vec![
        RemoteChange::Binding(acme),
        RemoteChange::Cache {
            name: def.name.clone(),
            def: Some(def.clone()),
        },
        RemoteChange::Cache {
            name: def.name.clone(),
            def: None,
        },
        RemoteChange::Binding(binding(Some("acme"), PolicyKind::Quota, None)),
        RemoteChange::Cache {
            name: def.name.clone(),
            def: Some(def.clone()),
        },
    ];
    let got = runtime().block_on(async {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            match tokio::time::timeout(Duration::from_secs(10), heard.recv()).await {
                Ok(Some(c)) => got.push(c),
                _ => break,
            }
        }
        got
    });
    assert_eq!(got, expected);
}

#[test]
fn time_in_which_no_host_reached_the_ledger_is_forgiven_before_anything_is_reaped() {
    let url = fresh_database("forgive");
    let (m, _l) = host(&url, "h1");
    let lease = |ttl_ms| AllocationRequest {
        ttl_ms: Some(ttl_ms),
        ..req("acme", 1)
    };
    let during = m.allocate(lease(60_000)).unwrap();
    let before = m.allocate(lease(60_000)).unwrap();
    // Another host's pid-bound allocation (this process, alive); then that host goes quiet.
    let (m2, l2) = host(&url, "h2");
    let bound = m2
        .allocate(AllocationRequest {
            pid: Some(std::process::id()),
            ..req("acme", 1)
        })
        .unwrap();
    drop(m2);
    drop(l2);
    // As if the database had been away for 30 s: `during` ran out in the outage, `before`
    // ten seconds before it began, and h2's heartbeat was current when it began.
    runtime().block_on(async {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!(
            "BEGIN; \
             UPDATE rm_clock SET last = now() - interval '30 s'; \
             UPDATE rm_allocations SET expires_at = now() - interval '5 s' WHERE id = {}; \
             UPDATE rm_allocations SET expires_at = now() - interval '40 s' WHERE id = {}; \
             UPDATE rm_hosts SET heartbeat = now() - interval '31 s' WHERE host_id = 'h2'; \
             COMMIT",
            during.id, before.id
        ))
        .await
        .unwrap();
    });
    let reaped: Vec<u64> = m.reclaim_orphans().iter().map(|a| a.id).collect();
    assert_eq!(
        reaped,
        vec![before.id],
        "only the lease that ran out before the gap"
    );
    let live: Vec<u64> = m
        .allocations(&AllocationFilter::default())
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert!(live.contains(&during.id), "{live:?}");
    assert!(
        live.contains(&bound.id),
        "h2's pid-bound allocation waits for h2's lapse counted without the gap: {live:?}"
    );
    m.check_invariants().unwrap();
}
