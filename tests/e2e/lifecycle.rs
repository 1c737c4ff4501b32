//! Start-up, configuration errors and graceful shutdown of the binary.

use crate::harness::{Daemon, http, run_cli};
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn starts_with_no_config_and_answers_health() {
    let d = Daemon::spawn(None, &[], &[]);
    assert_eq!(d.get("/health").await.0, 200);
}

#[test]
fn config_print_shows_an_env_value_and_its_source() {
    let (code, out, err) = run_cli(
        &["config", "print", "--format", "json"],
        &[("MAX_MEMORY_MB", "1234")],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"]["limits"]["max_memory_mb"], 1234);
    assert_eq!(v["sources"]["limits.max_memory_mb"], "env:MAX_MEMORY_MB");
    assert_eq!(v["sources"]["limits.max_connections"], "default");
    let (code, out, _) = run_cli(&["config", "print"], &[("MAX_MEMORY_MB", "1234")]);
    assert_eq!(code, 0);
    assert!(out.contains("max_memory_mb = 1234"), "{out}");
}

#[test]
fn bad_config_exits_2_naming_the_key_or_variable_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[limits]\nmax_memroy_mb = 1\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let (code, _, err) = run_cli(&["run", "--config", cfg], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("limits.max_memroy_mb"), "{err}");

    let (code, _, err) = run_cli(&["config", "print"], &[("MAX_CONNECTIONS", "abc")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("MAX_CONNECTIONS") && err.contains("abc"),
        "{err}"
    );

    let (code, _, err) = run_cli(
        &["config", "print"],
        &[
            ("MEMORY_WARNING_THRESHOLD", "90"),
            ("MEMORY_CRITICAL_THRESHOLD", "80"),
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("90") && err.contains("80"), "{err}");

    let (code, _, err) = run_cli(
        &["config", "print"],
        &[("DB_POOL_MIN", "9"), ("DB_POOL_MAX", "3")],
    );
    assert_eq!(code, 2);
    assert!(err.contains('9') && err.contains('3'), "{err}");

    let (code, _, err) = run_cli(&["run", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("without auth"), "{err}");
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits_0() {
    let mut d = Daemon::start("shutdown_timeout_ms = 20000\n", &[], &[]);
    let c = http();
    // A profile request is naturally long-lived: it samples for 1.5 s before answering,
    // unless shutdown ends it first with the points taken so far (it must not hold the
    // drain for up to 10 minutes).
    let in_flight = tokio::spawn(
        c.get(d.url("/v1/profile?duration_ms=1500&interval_ms=100"))
            .send(),
    );
    // Give the request time to arrive before the signal (the assertion below does not
    // depend on this timing: if it had not arrived, it would fail to connect).
    tokio::time::sleep(Duration::from_millis(400)).await;
    d.signal(libc::SIGTERM);
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let points = body["points"].as_array().unwrap().len();
    assert!(
        (1..15).contains(&points),
        "answered early with the points so far: {body}"
    );
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("daemon exits after draining");
    assert_eq!(status.code(), Some(0));
    // Nothing listens any more.
    assert!(c.get(d.url("/health")).send().await.is_err());
}
