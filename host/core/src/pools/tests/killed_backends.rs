//! Real servers: backends killed server-side (`pg_terminate_backend`, `CLIENT KILL`) are
//! replaced, surfacing at most the one error of a connection in use at the time.

use super::support::*;
use std::collections::HashSet;

async fn our_pids(admin: &tokio_postgres::Client, app: &str) -> HashSet<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn terminated_postgres_backends_are_replaced() {
    let admin = pg_admin().await;
    let app = unique("killed-pg");
    let mut s = pg_settings(&app, 3);
    s.min = 3;
    let (pools, _bus) = pg_manager(s);
    let pool = pools.postgres("t").unwrap();
    pools.warm_up().await;
    let before = our_pids(&admin, &app).await;
    assert_eq!(before.len(), 3, "min connections are warm");

    // One connection in use when its backend dies: its query is the one error.
    let in_use = pool.get().await.unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let mut errors = usize::from(in_use.simple_query("SELECT 1").await.is_err());
    drop(in_use);

    for _ in 0..20 {
        let conn = pool.get().await.unwrap();
        if conn.simple_query("SELECT 1").await.is_err() {
            errors += 1;
        }
    }
    assert!(errors <= 1, "{errors} errors surfaced");
    let after = our_pids(&admin, &app).await;
    assert!(
        !after.is_empty() && after.is_disjoint(&before),
        "{before:?} -> {after:?}"
    );
    let m = pool.metrics();
    assert!(m.discarded + m.recycle_failures >= 3, "{m:?}");
    assert!(m.size <= 3);
}

#[tokio::test]
async fn killed_redis_clients_are_replaced() {
    let url = redis_url();
    let mut admin = redis_admin(&url).await;
    let (pools, _bus) = redis_manager(redis_settings(&url, 2));
    let pool = pools.redis("t").unwrap();
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let ida: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut *a)
        .await
        .unwrap();
    let idb: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut *b)
        .await
        .unwrap();
    drop(b);
    for id in [ida, idb] {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    // `a` was in use: at most its one command fails; the idle one fails its recycle
    // check and is replaced without anyone seeing an error.
    let in_flight: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut *a).await;
    let mut errors = usize::from(in_flight.is_err());
    if in_flight.is_err() {
        a.discard();
    } else {
        drop(a);
    }
    for _ in 0..20 {
        let mut c = pool.get().await.unwrap();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut *c).await;
        if r.is_err() {
            errors += 1;
            c.discard();
        }
    }
    assert!(errors <= 1, "{errors} errors surfaced");
    // `query` retries on a fresh connection, so it never surfaces one.
    for _ in 0..5 {
        let pong: String = pool.query(&redis::cmd("PING")).await.unwrap();
        assert_eq!(pong, "PONG");
    }
    assert!(pool.metrics().size <= 2);
}
