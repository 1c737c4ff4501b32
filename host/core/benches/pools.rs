//! Pool costs against real servers. Prints numbers; asserts nothing.
//!
//! `cargo bench --bench pools` (needs Postgres at `RMHOST_TEST_PG` and Redis at
//! `RMHOST_TEST_REDIS`, loopback defaults).
//! 1. acquire + release through rmhost's pool vs raw deadpool-postgres in the same run
//!    (8 tasks, pool 8, both with the cheap `fast` recycle check): ns/op and the ratio.
//! 2. `SELECT 1` round trips per second at pool sizes 4 and 16 (32 tasks).
//! 3. Redis `PING` round trips per second at pool sizes 4 and 16 (32 tasks).

use rmhost_core::events::EventBus;
use rmhost_core::pools::{
    PoolManager, PoolsSettings, PostgresSettings, RecycleCheck, RedisSettings,
};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TASKS: usize = 8;
const OPS_PER_TASK: usize = 20_000;
const ROUNDS: usize = 5;
const THROUGHPUT_FOR: Duration = Duration::from_millis(1500);

fn pg_url() -> String {
    std::env::var("RMHOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn redis_url() -> String {
    std::env::var("RMHOST_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn manager(pg_max: u32, redis_max: u32, check: RecycleCheck) -> PoolManager {
    let mut s = PoolsSettings::default();
    s.postgres.insert(
        "bench".into(),
        PostgresSettings {
            url: pg_url(),
            min: pg_max,
            max: pg_max,
            recycle_check: check,
            application_name: Some("rmhost-bench".into()),
            ..Default::default()
        },
    );
    s.redis.insert(
        "bench".into(),
        RedisSettings {
            url: redis_url(),
            min: redis_max,
            max: redis_max,
            ..Default::default()
        },
    );
    PoolManager::new(&s, EventBus::new()).expect("valid settings")
}

/// Runs `TASKS` tasks doing `OPS_PER_TASK` calls of `op` each; ns per op overall.
async fn per_op<F, Fut>(op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                for _ in 0..OPS_PER_TASK {
                    op().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    start.elapsed().as_nanos() as f64 / (TASKS * OPS_PER_TASK) as f64
}

/// Runs 32 tasks repeating `op` for `THROUGHPUT_FOR`; operations per second.
async fn per_second<F, Fut>(op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < THROUGHPUT_FOR {
                    op().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn acquire_release() {
    let ours = manager(8, 1, RecycleCheck::Fast);
    ours.warm_up().await;
    let pool = ours.postgres("bench").expect("pool");
    let cfg = tokio_postgres::Config::from_str(&pg_url()).expect("url");
    let mgr = deadpool_postgres::Manager::from_config(
        cfg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let raw = deadpool_postgres::Pool::builder(mgr)
        .max_size(8)
        .build()
        .expect("raw pool");
    // Open all 8 connections of both pools before measuring.
    let held: Vec<_> = futures::future::join_all((0..8).map(|_| raw.get())).await;
    drop(held);
    let held: Vec<_> = futures::future::join_all((0..8).map(|_| pool.get())).await;
    drop(held);

    if std::env::var("POOLS_BENCH").is_ok() {
        println!(
            "future sizes: deadpool get {} B, rmhost get {} B",
            size_of_val(&raw.get()),
            size_of_val(&pool.get())
        );
    }
    let (mut r, mut o) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let p = raw.clone();
        r.push(
            per_op(move || {
                let p = p.clone();
                async move { drop(p.get().await.expect("raw get")) }
            })
            .await,
        );
        let p = pool.clone();
        o.push(
            per_op(move || {
                let p = p.clone();
                async move { drop(p.get().await.expect("rmhost get")) }
            })
            .await,
        );
    }
    let (r, o) = (median(r), median(o));
    println!(
        "acquire+release, postgres, {TASKS} tasks, pool 8 (median of {ROUNDS}): \
         deadpool {r:.0} ns/op, rmhost {o:.0} ns/op, ratio {:.2}x (target <= 1.2x)",
        o / r
    );
}

async fn round_trips() {
    for size in [4, 16] {
        let m = manager(size, size, RecycleCheck::Fast);
        m.warm_up().await;
        let pg = m.postgres("bench").expect("pool");
        let sel = per_second(move || {
            let p = pg.clone();
            async move {
                let c = p.get().await.expect("get");
                c.simple_query("SELECT 1").await.expect("SELECT 1");
            }
        })
        .await;
        let rd = m.redis("bench").expect("pool");
        let ping = per_second(move || {
            let p = rd.clone();
            async move {
                let mut c = p.get().await.expect("get");
                let _: String = redis::cmd("PING").query_async(&mut *c).await.expect("PING");
            }
        })
        .await;
        println!(
            "pool size {size:>2}, 32 tasks: postgres SELECT 1 {sel:>8.0}/s, redis PING {ping:>8.0}/s"
        );
        m.close();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // `POOLS_BENCH=acquire` runs only the first part (for profiling).
    let only_acquire = std::env::var("POOLS_BENCH").is_ok_and(|v| v == "acquire");
    rt.block_on(async {
        acquire_release().await;
        if !only_acquire {
            round_trips().await;
        }
    });
}
