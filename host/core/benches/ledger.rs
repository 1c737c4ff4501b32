//! The shared ledger and the shared rate limiter against real servers. Prints numbers;
//! asserts nothing.
//!
//! `cargo bench -p rmhost-core --bench ledger` (needs PostgreSQL at `RMHOST_TEST_PG`'s
//! server, default 127.0.0.1:5432 with trust auth, and Redis at `RMHOST_TEST_REDIS`).
//! 1. allocate + release pairs per second and their p99, through one host and through
//!    three hosts on one database, PostgreSQL ledger vs the in-memory one, same run.
//! 2. rate-limit checks per second through Redis (GCRA script) vs the local `governor`.

use rmhost_core::events::EventBus;
use rmhost_core::policy::ResourceKind;
use rmhost_core::resources::{
    AllocationRequest, GlobalLimits, ManagerOptions, ManagerParts, PgLedger, PgLedgerOptions,
    ResourceManager, SharedLedger, SharedRateLimiter, SharedRateOptions,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN_FOR: Duration = Duration::from_secs(3);
const THREADS_PER_HOST: usize = 8;

fn admin_url() -> String {
    std::env::var("RMHOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn redis_url() -> String {
    std::env::var("RMHOST_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn fresh_database() -> String {
    let db = format!("rmhost_bench_{}", std::process::id());
    let admin = admin_url();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (c, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL for the bench (RMHOST_TEST_PG)");
            tokio::spawn(conn);
            for sql in [
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                format!("CREATE DATABASE {db}"),
            ] {
                c.batch_execute(&sql).await.unwrap();
            }
        });
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => admin,
    }
}

fn manager(shared: Option<Arc<dyn SharedLedger>>) -> ResourceManager {
    ResourceManager::with_parts(
        ManagerOptions {
            limits: GlobalLimits {
                memory_bytes: 1 << 50,
                cpu_millicores: 1 << 40,
                connections: 1 << 40,
                requests_per_minute: 1 << 40,
                file_handles: 1 << 40,
            },
            requests_per_minute: 1000,
            tenant_defaults: Default::default(),
        },
        EventBus::default(),
        ManagerParts {
            shared_ledger: shared,
            ..ManagerParts::default()
        },
    )
}

fn pg_host(url: &str, id: &str) -> ResourceManager {
    let l = PgLedger::connect(
        PgLedgerOptions {
            url: url.into(),
            host_id: id.into(),
            timeout: Duration::from_secs(5),
            host_lapse: Duration::from_secs(10),
            max_connections: THREADS_PER_HOST,
        },
        EventBus::default(),
    )
    .expect("connect the shared ledger");
    manager(Some(l as Arc<dyn SharedLedger>))
}

/// Runs allocate + release pairs on `THREADS_PER_HOST` threads per host for `RUN_FOR`;
/// answers (pairs per second, p99 of one pair in µs). Each thread uses its own tenant, as
/// sidecars of different services would (the global counters are still shared), unless
/// `one_tenant`: then every thread's grants meet on the same tenant's counter row.
fn pairs(hosts: &[ResourceManager], one_tenant: bool) -> (f64, f64) {
    let start = Instant::now();
    let mut lat: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .enumerate()
            .flat_map(|(h, m)| (0..THREADS_PER_HOST).map(move |t| (h, t, m)))
            .map(|(h, t, m)| {
                s.spawn(move || {
                    let tenant = if one_tenant {
                        "shared".to_string()
                    } else {
                        format!("t{h}-{t}")
                    };
                    let mut lat = Vec::new();
                    while start.elapsed() < RUN_FOR {
                        let t0 = Instant::now();
                        let a = m
                            .allocate(AllocationRequest {
                                tenant: tenant.clone(),
                                kind: ResourceKind::Connections,
                                amount: 1,
                                owner: String::new(),
                                priority: 0,
                                ttl_ms: None,
                                pid: None,
                            })
                            .expect("grant");
                        m.release(a.id).expect("release");
                        lat.push(t0.elapsed().as_micros() as u64);
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or(0) as f64;
    (lat.len() as f64 / secs, p99)
}

/// The database's own ceiling for the same work: each of `THREADS_PER_HOST` threads with its
/// own connection calls `rm_grant` and `rm_release` directly (no manager, pool, events or
/// JSON decoding), so the ledger's figure reads as a share of what the server does here.
fn raw_pairs(url: &str) -> f64 {
    let start = Instant::now();
    let n: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS_PER_HOST)
            .map(|t| {
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                            .await
                            .expect("connect");
                        tokio::spawn(conn);
                        let grant = c
                            .prepare(
                                "SELECT (rm_grant($1, 'connections', 1, -1, $2, 0, -1, '{}', '', \
                                 0::smallint, NULL, NULL, 'raw', false) \
                                 -> 'allocation' ->> 'id')::bigint",
                            )
                            .await
                            .unwrap();
                        let release = c
                            .prepare("SELECT rm_release($1, 'raw', 'released')::text")
                            .await
                            .unwrap();
                        let tenant = format!("raw-{t}");
                        let limit: i64 = 1 << 40;
                        let mut n = 0u64;
                        while start.elapsed() < RUN_FOR {
                            let id: Option<i64> = c
                                .query_one(&grant, &[&tenant, &limit])
                                .await
                                .unwrap()
                                .get(0);
                            if let Some(id) = id {
                                c.query_one(&release, &[&id]).await.unwrap();
                                n += 1;
                            }
                        }
                        n
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    println!("# allocate + release pairs ({THREADS_PER_HOST} threads per host, {RUN_FOR:?} each)");
    let (mem1, mem1_p99) = pairs(&[manager(None)], false);
    println!("memory ledger, 1 host:      {mem1:>10.0} pairs/s   p99 {mem1_p99:>7.0} µs");
    let url = fresh_database();
    let one = [pg_host(&url, "bench-1")];
    let (pg1, pg1_p99) = pairs(&one, false);
    println!("postgres ledger, 1 host:    {pg1:>10.0} pairs/s   p99 {pg1_p99:>7.0} µs");
    let raw = raw_pairs(&url);
    println!(
        "  rm_grant + rm_release called directly: {raw:>10.0} pairs/s (the server's ceiling here)"
    );
    let (pg1t, pg1t_p99) = pairs(&one, true);
    println!("  same, all on one tenant:  {pg1t:>10.0} pairs/s   p99 {pg1t_p99:>7.0} µs");
    let three = [
        pg_host(&url, "bench-a"),
        pg_host(&url, "bench-b"),
        pg_host(&url, "bench-c"),
    ];
    let (pg3, pg3_p99) = pairs(&three, false);
    println!("postgres ledger, 3 hosts:   {pg3:>10.0} pairs/s   p99 {pg3_p99:>7.0} µs");
    println!(
        "ratios: postgres/memory {:.4}x; 3 hosts/1 host {:.2}x (target >= 1.0); \
         1 host {pg1:.0}/s vs target 2000/s; 1 host / direct calls {:.2}x",
        pg1 / mem1,
        pg3 / pg1,
        pg1 / raw
    );
    for m in one.iter().chain(three.iter()) {
        m.check_invariants()
            .expect("counters equal the rows after the run");
    }

    println!("\n# rate-limit checks (32 tasks, {RUN_FOR:?} each)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let local = rmhost_core::resources::RateLimits::new(u32::MAX);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN_FOR {
        for i in 0..1000 {
            std::hint::black_box(local.check(if i % 2 == 0 { "a" } else { "b" }, 1));
        }
        n += 1000;
    }
    let gov = n as f64 / start.elapsed().as_secs_f64();
    println!("local governor:   {gov:>12.0} checks/s (one thread)");
    let shared = Arc::new(
        SharedRateLimiter::new(
            SharedRateOptions {
                url: redis_url(),
                prefix: format!("rmhost-bench-{}", std::process::id()),
                host_id: "bench".into(),
                timeout: Duration::from_secs(2),
                fail_open: false,
            },
            EventBus::default(),
        )
        .expect("Redis for the bench (RMHOST_TEST_REDIS)"),
    );
    let redis = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let s = shared.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while start.elapsed() < RUN_FOR {
                        s.check(&format!("t{}", t % 8), 1, u32::MAX)
                            .await
                            .expect("redis check");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total as f64 / start.elapsed().as_secs_f64()
    });
    println!("redis GCRA:       {redis:>12.0} checks/s (32 tasks)");
    println!("ratio: redis/governor {:.5}x", redis / gov);
}
