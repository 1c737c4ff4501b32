//! Hostile tenants against a daemon with `[auth]` and two tenant tokens: each test mounts
//! one attack from issue 10 and checks that the other tenant is unaffected and nothing is
//! lost.

use crate::harness::{Daemon, http, wait_for_event};
use serde_json::{Value, json};

const ADMIN: &str = "admin-secret";
const HOG: &str = "hog-secret";
const CALM: &str = "calm-secret";

fn config(extra: &str) -> String {
    let h = rmhost_core::config::hash_token;
    format!(
        "[auth]\nadmin_token_sha256 = \"{}\"\n[auth.tenants.hog]\ntoken_sha256 = \"{}\"\n\
         [auth.tenants.calm]\ntoken_sha256 = \"{}\"\n{extra}",
        h(ADMIN),
        h(HOG),
        h(CALM)
    )
}

/// One request as `token`: (status, JSON body or Null).
async fn call(
    d: &Daemon,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = d.with_token(token).request(m, path, body).await;
    (r.status.as_u16(), r.body)
}

fn alloc(tenant: &str, amount: u64, priority: u8) -> Value {
    json!({"tenant": tenant, "kind": "memory", "amount": amount, "priority": priority})
}

#[tokio::test]
async fn a_huge_cache_or_allocation_of_one_tenant_does_not_shed_the_other() {
    let d = Daemon::start(&config(""), &[], &[]);
    // 10^14-byte cache: refused, it is far over the tenant's share of the 2 GiB budget.
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/big",
        HOG,
        Some(json!({"capacity_bytes": 100_000_000_000_000u64})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "over_share", "{v}");
    // A cache within the budget, then an entry larger than it: not held, nothing wraps.
    let (s, _) = call(
        &d,
        "PUT",
        "/v1/caches/mine",
        HOG,
        Some(json!({"capacity_bytes": 1_000_000})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/mine/entries/k",
        HOG,
        Some(json!({"size": 100_000_000_000_000u64})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["held"], false);
    // A 1.9 GB allocation (it fits the global limit while the hog is alone)...
    let (s, v) = call(
        &d,
        "POST",
        "/v1/allocations",
        HOG,
        Some(alloc("hog", 1_900_000_000, 5)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // ...puts the host under pressure (88% of the budget is accounted: critical)...
    let mut level = Value::Null;
    for _ in 0..100 {
        let (_, m) = call(&d, "GET", "/v1/memory", ADMIN, None).await;
        level = m["status"].clone();
        if level == "critical" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(level, "critical");
    // ...and the pressure response sheds low-priority work: the hog's is refused (the
    // native response sheds below priority 2 once the level is critical)...
    let mut shed = false;
    for _ in 0..100 {
        let (s, _) = call(&d, "POST", "/v1/allocations", HOG, Some(alloc("hog", 1, 0))).await;
        if s == 503 {
            shed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shed, "the tenant over its share is shed");
    // ...while the calm tenant, within its share, is not shed because of the hog.
    let (s, v) = call(
        &d,
        "POST",
        "/v1/allocations",
        CALM,
        Some(alloc("calm", 1_000_000, 0)),
    )
    .await;
    assert_eq!(
        s, 201,
        "the tenant within its share must not be refused: {v}"
    );
    let (_, m) = call(&d, "GET", "/v1/memory", ADMIN, None).await;
    let pct = m["details"]["accounted_percent"].as_f64().unwrap();
    assert!(
        pct < 200.0,
        "accounted stays a sane share of the budget: {m}"
    );
}

#[tokio::test]
async fn u64_max_sizes_are_refused_or_bounded_never_wrapped() {
    let d = Daemon::start(&config(""), &[], &[]);
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/max",
        ADMIN,
        Some(json!({"capacity_bytes": u64::MAX, "tenant": "hog"})),
    )
    .await;
    assert!(s == 400 || s == 409, "{s} {v}");
    let (s, v) = call(
        &d,
        "POST",
        "/v1/allocations",
        HOG,
        Some(alloc("hog", u64::MAX, 0)),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = call(
        &d,
        "PUT",
        "/v1/caches/c",
        HOG,
        Some(json!({"capacity_bytes": 1000})),
    )
    .await;
    assert_eq!(s, 201);
    // Above the document's int64 range: refused, naming the field.
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/c/entries/z",
        HOG,
        Some(json!({"size": u64::MAX})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("size"), "{v}");
    for (k, size) in [("a", i64::MAX as u64), ("b", 1), ("c", 999)] {
        let (s, v) = call(
            &d,
            "PUT",
            &format!("/v1/caches/c/entries/{k}"),
            HOG,
            Some(json!({"size": size})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = call(&d, "GET", "/v1/caches/c", HOG, None).await;
    let bytes = v["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes <= 1000, "{v}");
}

#[tokio::test]
async fn oversized_strings_are_refused_naming_the_field() {
    let d = Daemon::start(&config(""), &[], &[]);
    let mut body = alloc("hog", 10, 0);
    body["owner"] = json!("x".repeat(1_900_000));
    let (s, v) = call(&d, "POST", "/v1/allocations", HOG, Some(body)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("owner"), "{v}");
    // Over the body limit: 413.
    let mut body = alloc("hog", 10, 0);
    body["owner"] = json!("x".repeat(3 * 1024 * 1024));
    let (s, v) = call(&d, "POST", "/v1/allocations", HOG, Some(body)).await;
    assert_eq!(s, 413, "{v}");
    let (s, _) = call(
        &d,
        "PUT",
        "/v1/caches/c",
        HOG,
        Some(json!({"capacity_bytes": 1_000_000})),
    )
    .await;
    assert_eq!(s, 201);
    let long_key = "k".repeat(5000);
    let (s, v) = call(
        &d,
        "PUT",
        &format!("/v1/caches/c/entries/{long_key}"),
        HOG,
        Some(json!({"size": 1})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("key"), "{v}");
    // Nothing of it stayed: no allocation, and the events carry no megabyte owner.
    let (_, list) = call(&d, "GET", "/v1/allocations", HOG, None).await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn unknown_fields_are_refused() {
    let d = Daemon::start(&config(""), &[], &[]);
    let mut body = alloc("hog", 10, 0);
    body["ttl"] = json!(1000);
    let (s, v) = call(&d, "POST", "/v1/allocations", HOG, Some(body)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("ttl"), "{v}");
}

#[tokio::test]
async fn one_tenants_eviction_flood_reaches_only_its_own_stream() {
    let d = Daemon::start(&config(""), &[], &[]);
    let c = http();
    let mut calm = c
        .get(d.url("/v1/events"))
        .bearer_auth(CALM)
        .send()
        .await
        .unwrap();
    let mut hog = c
        .get(d.url("/v1/events"))
        .bearer_auth(HOG)
        .send()
        .await
        .unwrap();
    let (s, _) = call(
        &d,
        "PUT",
        "/v1/caches/tiny",
        HOG,
        Some(json!({"capacity_bytes": 10})),
    )
    .await;
    assert_eq!(s, 201);
    for i in 0..30 {
        call(
            &d,
            "PUT",
            &format!("/v1/caches/tiny/entries/k{i}"),
            HOG,
            Some(json!({"size": 5})),
        )
        .await;
    }
    let mut buf = String::new();
    assert!(
        wait_for_event(&mut hog, &mut buf, "event: CacheEvicted").await,
        "the owning tenant's stream carries CacheEvicted: {buf}"
    );
    // The calm tenant sees its own event next, with none of the hog's before it.
    call(
        &d,
        "POST",
        "/v1/allocations",
        CALM,
        Some(alloc("calm", 1, 0)),
    )
    .await;
    let mut buf = String::new();
    assert!(
        wait_for_event(&mut calm, &mut buf, "event: ResourceAllocated").await,
        "{buf}"
    );
    assert!(
        !buf.contains("CacheEvicted") && !buf.contains("Lagged"),
        "{buf}"
    );
}

#[tokio::test]
async fn metrics_need_the_admin_token_unless_public() {
    let d = Daemon::start(&config(""), &[], &[]);
    assert_eq!(d.text("/metrics").await.0, 401);
    assert_eq!(call(&d, "GET", "/metrics", HOG, None).await.0, 403);
    assert_eq!(call(&d, "GET", "/metrics", ADMIN, None).await.0, 200);
    drop(d);
    let d = Daemon::start(
        &config("").replace("[auth]\n", "[auth]\nmetrics_public = true\n"),
        &[],
        &[],
    );
    assert_eq!(d.text("/metrics").await.0, 200);
}

#[tokio::test]
async fn without_auth_foreign_hosts_and_origins_are_refused() {
    let d = Daemon::start("", &[], &[]);
    let c = http();
    let r = c
        .post(d.url("/v1/gc"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "DNS rebinding: a foreign Host");
    let r = c
        .post(d.url("/v1/gc"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a cross-site POST");
    let r = c
        .get(d.url("/v1/usage"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a loopback origin is fine");
    assert_eq!(
        c.get(d.url("/v1/usage")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_connection_over_the_cap_is_closed_and_slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = Daemon::start(
        "[http]\nmax_connections = 4\nheader_read_timeout_ms = 300\n",
        &[],
        &[],
    );
    // Four idle connections take every slot...
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(&d.addr).await.unwrap();
        s.write_all(b"GET /v1/usage HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // ...their headers never finish: each is cut off after the header read timeout.
    for s in &mut held {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut buf))
            .await
            .expect("a slowloris connection must be closed");
        assert!(n.is_ok());
    }
    drop(held);
    // Slots are free again: a normal request goes through.
    assert_eq!(d.get("/v1/usage").await.0, 200);
}

#[tokio::test]
async fn a_tenant_cannot_see_another_tenants_policy_bindings() {
    let lru = crate::policies::built("lru");
    let d = Daemon::start(&config(""), &["--policy", lru.to_str().unwrap()], &[]);
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/tenants/hog/policies/eviction",
        ADMIN,
        Some(json!({"policy": "lru"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, mine) = call(&d, "GET", "/v1/policies/lru", HOG, None).await;
    assert!(
        mine.to_string().contains("\"hog\""),
        "the owner sees its binding: {mine}"
    );
    for path in ["/v1/policies/lru", "/v1/policies"] {
        let (s, v) = call(&d, "GET", path, CALM, None).await;
        assert_eq!(s, 200);
        assert!(!v.to_string().contains("\"hog\""), "{path}: {v}");
    }
    // Lifting a quarantine is the admin's: a tenant cannot lift one another tenant's
    // faults caused.
    let (s, _) = call(&d, "POST", "/v1/policies/lru/lift-quarantine", HOG, None).await;
    assert_eq!(s, 403);
    let (s, v) = call(&d, "POST", "/v1/policies/lru/lift-quarantine", ADMIN, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["quarantined"], false, "{v}");
}

#[tokio::test]
async fn cache_names_are_scoped_per_tenant_so_nothing_reveals_another_tenants() {
    let d = Daemon::start(&config(""), &[], &[]);
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/secret",
        HOG,
        Some(json!({"capacity_bytes": 1000})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "secret", "a tenant sees its own name: {v}");
    // The other tenant gets the same answers as if no cache of that name existed: GET 404,
    // PUT 201 (its own cache, not a 409 "already exists").
    let (s, _) = call(&d, "GET", "/v1/caches/secret", CALM, None).await;
    assert_eq!(s, 404);
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/secret",
        CALM,
        Some(json!({"capacity_bytes": 2000})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/secret/entries/k",
        CALM,
        Some(json!({"size": 10})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, hogs) = call(&d, "GET", "/v1/caches/secret", HOG, None).await;
    assert_eq!(hogs["capacity_bytes"], 1000, "untouched: {hogs}");
    assert_eq!(hogs["entries"], 0, "{hogs}");
    let (_, mine) = call(&d, "GET", "/v1/caches", CALM, None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["name"], "secret");
    assert_eq!(mine[0]["capacity_bytes"], 2000);
    let (s, _) = call(&d, "DELETE", "/v1/caches/secret", CALM, None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&d, "GET", "/v1/caches/secret", HOG, None).await;
    assert_eq!(s, 200, "deleting one's own never touches the other's");
    let (s, v) = call(
        &d,
        "PUT",
        "/v1/caches/x%2Fy",
        CALM,
        Some(json!({"capacity_bytes": 10})),
    )
    .await;
    assert_eq!(s, 400, "a tenant cannot name into another scope: {v}");
    // The admin sees every cache under its registry name.
    let (_, all) = call(&d, "GET", "/v1/caches", ADMIN, None).await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["hog/secret"], "{all}");
}
