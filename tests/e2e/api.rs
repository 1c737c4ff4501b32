//! The HTTP API of a running daemon.

use crate::harness::{Daemon, wait_for_event};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn quota_exceeded_is_409_with_a_json_error_and_release_twice_is_404() {
    let d = Daemon::start("", &[], &[]);
    let (status, body) = d
        .put("/v1/tenants/acme/quotas", json!({"memory": 1000}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["quotas"]["memory"]["limit"], 1000);

    let alloc = |amount: u64| {
        d.post(
            "/v1/allocations",
            json!({"tenant": "acme", "kind": "memory", "amount": amount, "owner": "api", "priority": 1}),
        )
    };
    let (status, a) = alloc(600).await;
    assert_eq!(status, 201);
    let id = a["id"].as_u64().expect("allocation id");

    let (status, e) = alloc(500).await;
    assert_eq!(status, 409);
    assert_eq!(e["error"], "quota_exceeded");
    assert_eq!(
        e["message"],
        "quota exceeded for tenant acme: 600+500 > 1000 bytes"
    );

    let path = format!("/v1/allocations/{id}");
    assert_eq!(d.delete(&path).await.0, 200);
    let (status, e) = d.delete(&path).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"], "not_found");

    // After the release, the quota has room again.
    assert_eq!(alloc(900).await.0, 201);
}

#[tokio::test]
async fn malformed_requests_name_the_bad_field() {
    let d = Daemon::start("", &[], &[]);
    let (status, e) = d
        .post(
            "/v1/allocations",
            json!({"tenant": "a", "kind": "gpu", "amount": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "invalid_request");
    assert!(e["message"].as_str().unwrap().contains("kind"), "{e}");

    let (status, e) = d
        .post(
            "/v1/allocations",
            json!({"tenant": "a", "kind": "cpu", "amount": 0}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().starts_with("amount"), "{e}");

    assert_eq!(d.delete("/v1/allocations/abc").await.0, 400);
    assert_eq!(d.get("/v1/nope").await.0, 404);
}

#[tokio::test]
async fn ttl_expiry_reclaims_and_emits_the_event() {
    let d = Daemon::start("[monitoring]\norphan_scan_interval_ms = 50\n", &[], &[]);
    let mut events = d.events().await;
    assert_eq!(events.status(), 200);
    let (status, a) = d
        .post(
            "/v1/allocations",
            json!({"tenant": "t1", "kind": "connections", "amount": 2, "ttl_ms": 100}),
        )
        .await;
    assert_eq!(status, 201);
    let id = a["id"].as_u64().unwrap();

    // Read the stream until the reclaim arrives (bounded by a generous timeout; the
    // reclaim itself is expected after ~100-150 ms).
    let mut buf = String::new();
    let found = wait_for_event(&mut events, &mut buf, "event: OrphanReclaimed").await;
    assert!(found, "no OrphanReclaimed event; stream so far:\n{buf}");
    let line = buf
        .lines()
        .skip_while(|l| *l != "event: OrphanReclaimed")
        .find(|l| l.starts_with("data: "))
        .unwrap();
    let ev: Value = serde_json::from_str(line.trim_start_matches("data: ")).unwrap();
    assert_eq!(ev["id"].as_u64(), Some(id));
    assert_eq!(ev["reason"], "lease_expired");
    assert_eq!(d.get(&format!("/v1/allocations/{id}")).await.0, 404);
}

const ADMIN: &str = "admin-secret";
const ACME: &str = "acme-secret";
const GLOBEX: &str = "globex-secret";

fn auth_config() -> String {
    let h = |t: &str| rmhost_core::config::hash_token(t);
    format!(
        "[auth]\nadmin_token_sha256 = \"{}\"\n[auth.tenants.acme]\ntoken_sha256 = \"{}\"\n[auth.tenants.globex]\ntoken_sha256 = \"{}\"\n",
        h(ADMIN),
        h(ACME),
        h(GLOBEX)
    )
}

#[tokio::test]
async fn a_tenant_token_sees_and_touches_only_its_own_tenant() {
    let d = Daemon::start(&auth_config(), &[], &[]);
    assert_eq!(d.get("/v1/allocations").await.0, 401);
    assert_eq!(d.with_token("wrong").get("/v1/allocations").await.0, 401);
    let (acme, globex, admin) = (
        d.with_token(ACME),
        d.with_token(GLOBEX),
        d.with_token(ADMIN),
    );

    let make = |token: &'static str, tenant: &'static str| {
        let body = json!({"tenant": tenant, "kind": "cpu", "amount": 10});
        let d = &d;
        async move { d.with_token(token).post("/v1/allocations", body).await }
    };
    let (status, a) = make(ACME, "acme").await;
    assert_eq!(status, 201);
    let acme_id = a["id"].as_u64().unwrap();
    assert_eq!(make(GLOBEX, "globex").await.0, 201);
    assert_eq!(make(ACME, "globex").await.0, 403);

    // The listing is filtered to the token's tenant.
    let (_, list) = globex.get("/v1/allocations").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["tenant"], "globex");
    assert_eq!(globex.get("/v1/allocations?tenant=acme").await.0, 403);
    // Another tenant's id looks like a missing one, and cannot be released.
    let path = format!("/v1/allocations/{acme_id}");
    assert_eq!(globex.get(&path).await.0, 404);
    assert_eq!(globex.delete(&path).await.0, 404);
    // Quotas are the admin's to set.
    let (status, _) = acme.put("/v1/tenants/acme/quotas", json!({"cpu": 1})).await;
    assert_eq!(status, 403);
    // The admin sees both.
    let (_, all) = admin.get("/v1/allocations").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(acme.delete(&path).await.0, 200);
}

#[tokio::test]
async fn rate_limit_check_answers_429_with_retry_after() {
    let d = Daemon::start("[tenants.slow]\nrequests_per_minute = 2\n", &[], &[]);
    let check = || d.post("/v1/ratelimit/check", json!({"tenant": "slow"}));
    let (_, first) = check().await;
    assert_eq!(first["allowed"], true);
    assert_eq!(first["remaining"], 1);
    assert_eq!(check().await.0, 200);
    let r = d
        .api()
        .request(
            Method::POST,
            "/v1/ratelimit/check",
            Some(json!({"tenant": "slow"})),
        )
        .await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    let e = r.body;
    assert_eq!(e["error"], "rate_limited");
    assert_eq!(e["allowed"], false);
    assert!(e["retry_after_ms"].as_u64().unwrap() > 0);
    // Another tenant has the default limit.
    let (status, _) = d
        .post("/v1/ratelimit/check", json!({"tenant": "fast"}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn usage_health_ready_and_metrics_answer() {
    let d = Daemon::start("", &[], &[]);
    let (_, u) = d.get("/v1/usage").await;
    assert!(u["memory"]["total"].as_u64().unwrap() > 0);
    assert!(u["cpu"]["percentage"].is_number());
    assert!(u["connections"]["active"].is_number());
    assert_eq!(u["allocations"]["global"].as_array().unwrap().len(), 5);
    let (_, h) = d.get("/health").await;
    assert!(["healthy", "degraded", "unhealthy"].contains(&h["status"].as_str().unwrap()));
    assert!(h["checks"].as_array().unwrap().len() >= 5);
    assert_eq!(d.get("/ready").await.0, 200);
    let (_, m) = d.text("/metrics").await;
    assert!(m.contains("# TYPE rmhost_memory_total_bytes gauge"));
    assert!(
        m.contains("rmhost_allocation_limit{kind=\"memory\"} 2147483648"),
        "{m}"
    );
}
