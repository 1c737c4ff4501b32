//! The HTTP API of a running daemon.

use crate::harness::{Daemon, http, wait_for_event};
use serde_json::{Value, json};

#[tokio::test]
async fn quota_exceeded_is_409_with_a_json_error_and_release_twice_is_404() {
    let d = Daemon::start("", &[], &[]);
    let c = http();
    let r = c
        .put(d.url("/v1/tenants/acme/quotas"))
        .json(&json!({"memory": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["quotas"]["memory"]["limit"], 1000);

    let alloc = |amount: u64| {
        c.post(d.url("/v1/allocations"))
            .json(&json!({"tenant": "acme", "kind": "memory", "amount": amount, "owner": "api", "priority": 1}))
            .send()
    };
    let r = alloc(600).await.unwrap();
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.unwrap();
    let id = a["id"].as_u64().expect("allocation id");

    let r = alloc(500).await.unwrap();
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "quota_exceeded");
    assert_eq!(
        e["message"],
        "quota exceeded for tenant acme: 600+500 > 1000 bytes"
    );

    let r = c
        .delete(d.url(&format!("/v1/allocations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .delete(d.url(&format!("/v1/allocations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "not_found");

    // After the release, the quota has room again.
    assert_eq!(alloc(900).await.unwrap().status(), 201);
}

#[tokio::test]
async fn malformed_requests_name_the_bad_field() {
    let d = Daemon::start("", &[], &[]);
    let c = http();
    let r = c
        .post(d.url("/v1/allocations"))
        .json(&json!({"tenant": "a", "kind": "gpu", "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_request");
    assert!(e["message"].as_str().unwrap().contains("kind"), "{e}");

    let r = c
        .post(d.url("/v1/allocations"))
        .json(&json!({"tenant": "a", "kind": "cpu", "amount": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().starts_with("amount"), "{e}");

    let r = c.delete(d.url("/v1/allocations/abc")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(d.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn ttl_expiry_reclaims_and_emits_the_event() {
    let d = Daemon::start("[monitoring]\norphan_scan_interval_ms = 50\n", &[], &[]);
    let c = http();
    let mut events = c.get(d.url("/v1/events")).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let r = c
        .post(d.url("/v1/allocations"))
        .json(&json!({"tenant": "t1", "kind": "connections", "amount": 2, "ttl_ms": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

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
    let r = c
        .get(d.url(&format!("/v1/allocations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
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
    let c = http();
    let r = c.get(d.url("/v1/allocations")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(d.url("/v1/allocations"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let make = |token: &'static str, tenant: &'static str| {
        c.post(d.url("/v1/allocations"))
            .bearer_auth(token)
            .json(&json!({"tenant": tenant, "kind": "cpu", "amount": 10}))
            .send()
    };
    let a = make(ACME, "acme").await.unwrap();
    assert_eq!(a.status(), 201);
    let acme_id = a.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_eq!(make(GLOBEX, "globex").await.unwrap().status(), 201);
    assert_eq!(make(ACME, "globex").await.unwrap().status(), 403);

    // The listing is filtered to the token's tenant.
    let list: Vec<Value> = c
        .get(d.url("/v1/allocations"))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["tenant"], "globex");
    let r = c
        .get(d.url("/v1/allocations?tenant=acme"))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Another tenant's id looks like a missing one, and cannot be released.
    let r = c
        .get(d.url(&format!("/v1/allocations/{acme_id}")))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .delete(d.url(&format!("/v1/allocations/{acme_id}")))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Quotas are the admin's to set.
    let r = c
        .put(d.url("/v1/tenants/acme/quotas"))
        .bearer_auth(ACME)
        .json(&json!({"cpu": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The admin sees both.
    let all: Vec<Value> = c
        .get(d.url("/v1/allocations"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let r = c
        .delete(d.url(&format!("/v1/allocations/{acme_id}")))
        .bearer_auth(ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rate_limit_check_answers_429_with_retry_after() {
    let d = Daemon::start("[tenants.slow]\nrequests_per_minute = 2\n", &[], &[]);
    let c = http();
    let check = || {
        c.post(d.url("/v1/ratelimit/check"))
            .json(&json!({"tenant": "slow"}))
            .send()
    };
    let first: Value = check().await.unwrap().json().await.unwrap();
    assert_eq!(first["allowed"], true);
    assert_eq!(first["remaining"], 1);
    assert_eq!(check().await.unwrap().status(), 200);
    let r = check().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "rate_limited");
    assert_eq!(e["allowed"], false);
    assert!(e["retry_after_ms"].as_u64().unwrap() > 0);
    // Another tenant has the default limit.
    let r = c
        .post(d.url("/v1/ratelimit/check"))
        .json(&json!({"tenant": "fast"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn usage_health_ready_and_metrics_answer() {
    let d = Daemon::start("", &[], &[]);
    let c = http();
    let u: Value = c
        .get(d.url("/v1/usage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(u["memory"]["total"].as_u64().unwrap() > 0);
    assert!(u["cpu"]["percentage"].is_number());
    assert!(u["connections"]["active"].is_number());
    assert_eq!(u["allocations"]["global"].as_array().unwrap().len(), 5);
    let h: Value = c
        .get(d.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(["healthy", "degraded", "unhealthy"].contains(&h["status"].as_str().unwrap()));
    assert!(h["checks"].as_array().unwrap().len() >= 5);
    assert_eq!(c.get(d.url("/ready")).send().await.unwrap().status(), 200);
    let m = c
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("# TYPE rmhost_memory_total_bytes gauge"));
    assert!(
        m.contains("rmhost_allocation_limit{kind=\"memory\"} 2147483648"),
        "{m}"
    );
}
