//! Real servers: 200 concurrent tasks never get more than `max` connections open,
//! counted client-side and, for Postgres, server-side in pg_stat_activity.

use super::support::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_never_exceeds_max_under_200_tasks() {
    let admin = Arc::new(pg_admin().await);
    let app = unique("limits");
    let (pools, _bus) = pg_manager(pg_settings(&app, 5));
    let pool = pools.postgres("t").unwrap();
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let server_peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let (pool, holding, peak) = (pool.clone(), holding.clone(), peak.clone());
        let (admin, server_peak, app) = (admin.clone(), server_peak.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            let conn = pool.get_with("t", (i % 4) as u8).await.unwrap();
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            conn.simple_query("SELECT pg_sleep(0.002)").await.unwrap();
            if i % 20 == 0 {
                let row = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&app],
                    )
                    .await
                    .unwrap();
                let n: i64 = row.get(0);
                server_peak.fetch_max(n as usize, Ordering::SeqCst);
            }
            holding.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = pools.metrics().remove(0);
    assert!(
        peak.load(Ordering::SeqCst) <= 5,
        "{} held at once",
        peak.load(Ordering::SeqCst)
    );
    assert!(server_peak.load(Ordering::SeqCst) <= 5);
    assert!(
        server_peak.load(Ordering::SeqCst) >= 1,
        "the server saw our sessions"
    );
    assert!(m.size <= 5 && m.created <= 5, "{m:?}");
    assert_eq!((m.acquires, m.in_use, m.waiting), (200, 0, 0));
    assert!(m.waits > 0, "tasks had to queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_exceeds_max_under_200_tasks() {
    let url = redis_url();
    let mut admin = redis_admin(&url).await;
    let (pools, _bus) = redis_manager(redis_settings(&url, 4));
    let pool = pools.redis("t").unwrap();
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let key = unique("limits-counter");
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    for _ in 0..200 {
        let (pool, holding, peak, key) = (pool.clone(), holding.clone(), peak.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let _: i64 = redis::cmd("INCR")
                .arg(&key)
                .query_async(&mut *conn)
                .await
                .unwrap();
            holding.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n: i64 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, 200);
    let m = pools.metrics().remove(0);
    assert!(peak.load(Ordering::SeqCst) <= 4);
    assert!(m.size <= 4 && m.created <= 4, "{m:?}");
    assert_eq!((m.acquires, m.in_use), (200, 0));
}
