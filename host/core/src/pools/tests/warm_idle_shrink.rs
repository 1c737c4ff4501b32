//! Real server: `min` is kept warm, idle connections above `min` close after
//! `idle_timeout`, `shrink` closes idle connections only, and the health check, the
//! pressure stats and the metrics events report the pool.

use super::support::*;
use crate::events::Event;
use crate::health::HealthStatus;
use std::time::Duration;

#[tokio::test]
async fn min_warm_idle_timeout_shrink_and_reporting() {
    pg_admin().await;
    let mut s = pg_settings(&unique("warm"), 4);
    s.min = 2;
    s.idle_timeout_ms = 200;
    let (pools, bus) = pg_manager(s);
    let pool = pools.postgres("t").unwrap();

    pools.warm_up().await;
    let m = pool.metrics();
    assert_eq!((m.size, m.idle), (2, 2), "{m:?}");
    assert!(m.health_checks >= 1 && m.last_ping_ms.is_some(), "{m:?}");
    let hc = pools.health_checks().remove(0);
    assert_eq!(
        (hc.name.as_str(), hc.status),
        ("pool.postgres/t", HealthStatus::Healthy)
    );

    // Four at once, then idle past the timeout: back down to min.
    let held: Vec<_> = futures::future::join_all((0..4).map(|_| pool.get())).await;
    assert_eq!(pool.metrics().size, 4);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pools.warm_up().await;
    let m = pool.metrics();
    assert_eq!((m.size, m.idle_closed), (2, 2), "{m:?}");

    // Shrink closes idle connections only.
    let in_use = pool.get().await.unwrap();
    assert_eq!(pools.shrink("postgres/t", 10).unwrap(), 1);
    assert_eq!(pool.metrics().size, 1);
    in_use
        .simple_query("SELECT 1")
        .await
        .expect("the one in use was untouched");
    drop(in_use);
    assert!(pools.shrink("nope", 1).is_err());
    let stat = pools.stats().remove(0);
    assert_eq!(
        (stat.name.as_str(), stat.size, stat.idle, stat.waiting),
        ("postgres/t", 1, 1, 0)
    );
    pools.warm_up().await;
    assert_eq!(pool.metrics().size, 2, "maintenance reopened min");

    let task = pools.spawn_metrics(Duration::from_millis(50));
    wait_until("a PoolMetrics event", Duration::from_secs(10), || async {
        bus.recent(0)
            .iter()
            .any(|e| matches!(&e.event, Event::PoolMetrics { pool, .. } if pool == "postgres/t"))
    })
    .await;
    task.abort();
    let json = serde_json::to_value(pools.metrics()).unwrap();
    assert_eq!(json[0]["pool"], "postgres/t");
    assert_eq!(json[0]["circuit"], "closed");
    assert!(json[0]["acquire_latency"]["count"].as_u64().unwrap() >= 5);
}
