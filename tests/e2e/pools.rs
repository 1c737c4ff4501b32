//! The seed's pools named `main`, defined by DATABASE_URL and REDIS_URL, through the daemon.

use crate::harness::{Daemon, run_cli};
use serde_json::Value;
use std::time::Duration;

fn pg_url() -> String {
    std::env::var("RMHOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("RMHOST_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn database_and_redis_urls_give_pools_in_connections_and_metrics() {
    let (pg, redis) = (pg_url(), redis_url());
    let d = Daemon::start(
        "[monitoring]\nhealth_check_interval_ms = 200\n",
        &[],
        &[
            ("DATABASE_URL", pg.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("DB_POOL_MIN", "2"),
            ("REDIS_POOL_MIN", "1"),
        ],
    );
    // Maintenance keeps `min` connections warm; wait for both pools to open theirs.
    let mut last = Value::Null;
    let mut warm = false;
    for _ in 0..150 {
        last = d.get("/v1/pools").await.1;
        let size = |kind: &str| {
            last["pools"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["kind"] == kind && p["pool"] == format!("{kind}/main"))
                .and_then(|p| p["size"].as_u64())
                .unwrap_or(0)
        };
        if size("postgres") >= 2 && size("redis") >= 1 {
            warm = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        warm,
        "the main pools did not open their minimum connections; is PostgreSQL at {pg} and Redis at {redis} up? \
         Start them with scripts/services or set RMHOST_TEST_PG / RMHOST_TEST_REDIS. Last /v1/pools: {last}"
    );
    let (code, out, err) = run_cli(&["connections", "--addr", &d.addr], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("postgres/main") && out.contains("redis/main"),
        "{out}"
    );
    let (code, out, _) = run_cli(&["connections", "--json", "--addr", &d.addr], &[]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pools"].as_array().unwrap().len(), 2);
    let (_, m) = d.text("/metrics").await;
    assert!(
        m.contains("rmhost_pool_connections{pool=\"postgres/main\",backend=\"postgres\"}"),
        "{m}"
    );
    assert!(
        m.contains("rmhost_pool_connections{pool=\"redis/main\",backend=\"redis\"}"),
        "{m}"
    );
    assert!(
        m.contains("rmhost_pool_acquire_duration_seconds_bucket"),
        "{m}"
    );
    let (_, h) = d.get("/v1/health").await;
    let names: Vec<&str> = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("pool.postgres")),
        "{names:?}"
    );
    // The URL's password never shows in config print.
    let (code, out, _) = run_cli(
        &["config", "print", "--format", "json"],
        &[("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/x")],
    );
    assert_eq!(code, 0);
    assert!(
        !out.contains("hunter2") && out.contains("db.internal"),
        "{out}"
    );
}
