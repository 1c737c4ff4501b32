//! Real server: acquires cancelled at any point (dropped futures, `timeout`, aborted
//! tasks, mid-connect) lose no permit and leak no connection.

use super::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_lose_no_permit() {
    let admin = pg_admin().await;
    let app = unique("cancel");
    let (pools, _bus) = pg_manager(pg_settings(&app, 2));
    let pool = pools.postgres("t").unwrap();

    // Cancelled while connecting: the first acquires of an empty pool open connections.
    for _ in 0..20 {
        let _ = tokio::time::timeout(Duration::from_micros(200), pool.get()).await;
    }

    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    // Cancelled while queued, by timeout ...
    for _ in 0..10 {
        let r = tokio::time::timeout(Duration::from_millis(20), pool.get()).await;
        assert!(r.is_err(), "the pool is exhausted");
    }
    // ... and by aborting the task.
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.get().await.map(drop) })
        })
        .collect();
    wait_until("5 waiters", Duration::from_secs(10), || async {
        pool.metrics().waiting == 5
    })
    .await;
    waiters.iter().for_each(|w| w.abort());
    wait_until(
        "the aborted waiters to leave",
        Duration::from_secs(10),
        || async { pool.metrics().waiting == 0 },
    )
    .await;

    // Handed a permit while nobody polls it, then dropped: the permit moves on.
    let mut fut = Box::pin(pool.get());
    assert!(futures::poll!(fut.as_mut()).is_pending());
    wait_until("the waiter to queue", Duration::from_secs(10), || async {
        pool.metrics().waiting == 1
    })
    .await;
    drop(a);
    drop(fut);
    drop(b);

    // Every permit is back: both connections can be held at once, without waiting.
    let (x, y) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let m = pool.metrics();
    assert_eq!((m.in_use, m.waiting), (2, 0), "{m:?}");
    assert_eq!(pool.inner.shared.admission.available(), 0);
    drop((x, y));
    assert_eq!(pool.inner.shared.admission.available(), 2);
    let m = pool.metrics();
    assert!(m.size <= 2 && m.in_use == 0, "{m:?}");
    // And the server agrees: no leaked sessions beyond max.
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n <= 2, "{n} sessions open");
}
