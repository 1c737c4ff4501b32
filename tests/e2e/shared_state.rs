//! Rate limits shared by several daemons on one Redis (`[state] ratelimit`), and what a
//! daemon does when that Redis is gone. Needs Redis on 127.0.0.1:6379 (scripts/services
//! starts it); each test uses its own key prefix.

use crate::harness::Daemon;
use serde_json::{Value, json};

fn require_redis() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        panic!(
            "these tests need Redis on 127.0.0.1:6379: run scripts/services (or apt-get install redis-server)"
        );
    }
}

fn prefix(test: &str) -> String {
    format!("rmhost-test-{test}-{}", std::process::id())
}

fn config(url: &str, prefix: &str, failure: &str) -> String {
    format!(
        "[limits]\nmax_requests_per_minute = 60\n[state]\nratelimit = \"{url}\"\nkey_prefix = \"{prefix}\"\n\
         ratelimit_failure = \"{failure}\"\nbackend_timeout_ms = 300\n"
    )
}

async fn check(d: &Daemon, tenant: &str) -> (u16, Value) {
    let (s, v) = d
        .post("/v1/ratelimit/check", json!({"tenant": tenant}))
        .await;
    (s.as_u16(), v)
}

#[tokio::test]
async fn two_daemons_on_one_redis_enforce_one_limit() {
    require_redis();
    let p = prefix("shared");
    let a = Daemon::start(&config("redis://127.0.0.1:6379/", &p, "closed"), &[], &[]);
    let b = Daemon::start(&config("redis://127.0.0.1:6379/", &p, "closed"), &[], &[]);
    let mut allowed = 0;
    for i in 0..100 {
        let d = if i % 2 == 0 { &a } else { &b };
        let (s, v) = check(d, "acme").await;
        match s {
            200 => allowed += 1,
            429 => assert_eq!(v["error"], "rate_limited", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    // One minute's burst of 60 across both hosts (two local limiters would admit 100),
    // plus what refills while the test runs (one a second).
    assert!(
        (60..=63).contains(&allowed),
        "admitted {allowed} of 100 across two hosts"
    );
    let (_, u) = a.get("/v1/usage").await;
    assert!(u["host_id"].as_str().is_some_and(|h| !h.is_empty()), "{u}");
    let (_, h) = a.get("/health").await;
    let state = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "state")
        .unwrap();
    assert_eq!(state["status"], "healthy", "{state}");
    assert!(
        state["message"].as_str().unwrap().contains("2 live host"),
        "{state}"
    );
}

#[tokio::test]
async fn with_redis_gone_checks_fail_closed_or_open_as_configured() {
    // Nothing listens on port 1: every connection is refused at once.
    let closed = Daemon::start(
        &config("redis://127.0.0.1:1/", &prefix("closed"), "closed"),
        &[],
        &[],
    );
    let (s, v) = check(&closed, "acme").await;
    assert_eq!(s, 503, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("redis"),
        "names the backend: {v}"
    );
    let (ready, _) = closed.get("/ready").await;
    assert_eq!(
        ready.as_u16(),
        503,
        "a host that cannot enforce shared limits is not ready"
    );

    let open = Daemon::start(
        &config("redis://127.0.0.1:1/", &prefix("open"), "open"),
        &[],
        &[],
    );
    let mut allowed = 0;
    for _ in 0..70 {
        if check(&open, "acme").await.0 == 200 {
            allowed += 1;
        }
    }
    // Fails open to the local limiter at the whole limit (one live host known).
    assert!((60..=62).contains(&allowed), "admitted {allowed}");
}
