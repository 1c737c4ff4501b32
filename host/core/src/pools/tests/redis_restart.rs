//! A private redis-server, stopped and restarted: the breaker opens (callers fail fast),
//! then closes once the server is back; nothing panics and no acquire or query hangs
//! past its bounds.

use super::support::*;
use crate::events::{Event, EventBus};
use crate::health::HealthStatus;
use crate::pools::{
    BreakerSettings, CircuitState, PoolError, PoolManager, PoolsSettings, RetrySettings,
};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_while_redis_is_down_and_closes_after() {
    let mut server = OwnRedis::start();
    let mut s = redis_settings(&server.url(), 3);
    s.acquire_timeout_ms = 1_500;
    s.connect_timeout_ms = 300;
    s.command_timeout_ms = 300;
    s.retry = RetrySettings {
        attempts: 2,
        base_ms: 10,
        max_ms: 50,
    };
    s.breaker = BreakerSettings {
        failure_threshold: 3,
        timeout_threshold: 0,
        open_ms: 300,
    };
    let mut settings = PoolsSettings {
        health_check_interval_ms: 100,
        ..Default::default()
    };
    settings.redis.insert("t".into(), s);
    let bus = EventBus::new();
    let pools = PoolManager::new(&settings, bus.clone()).unwrap();
    let pool = pools.redis("t").unwrap();
    // Health pings run throughout, racing the callers: nothing may panic or hang.
    let maintenance = pools.spawn_maintenance();
    let pong: String = pool.query(&redis::cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");

    server.stop();
    // Generous: a query makes at most 2 attempts, each bounded by acquire (1.5 s) plus
    // a 300 ms command timeout.
    let bound = Duration::from_secs(10);
    let start = Instant::now();
    let mut failures = 0;
    loop {
        let r = tokio::time::timeout(bound, pool.query::<String>(&redis::cmd("PING")))
            .await
            .expect("a query hung while Redis was down");
        match r {
            Err(PoolError::CircuitOpen { pool: name, .. }) => {
                assert_eq!(name, "redis/t");
                break;
            }
            Err(_) => failures += 1,
            Ok(v) => panic!("PING answered {v} with the server stopped"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the breaker never opened"
        );
    }
    assert!(failures >= 1);
    let opened = bus
        .recent(0)
        .iter()
        .any(|e| matches!(&e.event, Event::CircuitOpened { pool, .. } if pool == "redis/t"));
    assert!(opened, "CircuitOpened was published");
    let health = pools.health_checks().remove(0);
    assert_ne!(health.status, HealthStatus::Healthy, "{health:?}");

    server.restart();
    let start = Instant::now();
    loop {
        let r = tokio::time::timeout(bound, pool.query::<String>(&redis::cmd("PING")))
            .await
            .expect("a query hung after Redis came back");
        if r.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never recovered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("the breaker to close", Duration::from_secs(10), || async {
        pool.metrics().circuit == CircuitState::Closed
    })
    .await;
    let closed = bus
        .recent(0)
        .iter()
        .any(|e| matches!(&e.event, Event::CircuitClosed { pool } if pool == "redis/t"));
    assert!(closed, "CircuitClosed was published");
    let m = pool.metrics();
    assert!(m.circuit_rejections >= 1 && m.in_use == 0, "{m:?}");
    maintenance.abort();
}
