//! The API in process: `api::router` driven with `tower::ServiceExt::oneshot`, no socket and
//! no Wasm (the host decides with its native policies). Covers auth, the mapping of bad
//! input to HTTP errors, and readiness; the end-to-end tests cover the same routes over
//! real HTTP with the binary.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use rmhost_core::config::{Config, TenantToken, hash_token};
use rmhost_core::host::Host;
use rmhost_runtime::PolicyRuntime;
use rmhost_server::api;
use rmhost_server::daemon::{Daemon, runtime_options};
use rmhost_server::wire::{Allocation, ErrorBody, Quotas, RateDecision, Ready};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::watch;
use tower::ServiceExt;

const ADMIN: &str = "admin-secret";
const ACME: &str = "acme-secret";
const BETA: &str = "beta-secret";

/// A router over a host built with the native policies, with an admin token and two
/// tenant tokens configured.
struct Api {
    daemon: Arc<Daemon>,
    router: Router,
    _stopping: watch::Sender<bool>,
}

/// One answer: status, headers and the raw body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// The body as `T`; panics with the body text when it is not one.
    fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not a {}: {e}: {}",
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error body, after checking the status.
    fn error(&self, status: StatusCode) -> ErrorBody {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }
}

impl Api {
    fn new() -> Api {
        let mut config = Config::default();
        config.auth.admin_token_sha256 = Some(hash_token(ADMIN));
        for (tenant, token) in [("acme", ACME), ("beta", BETA)] {
            config.auth.tenants.insert(
                tenant.to_string(),
                TenantToken {
                    token_sha256: hash_token(token),
                },
            );
        }
        let events = rmhost_core::events::EventBus::new();
        let runtime =
            PolicyRuntime::new(runtime_options(&config), events.clone()).expect("policy runtime");
        // No `.policies(..)`: the host decides with NativePolicies; the runtime only backs
        // the policy routes (and has nothing loaded).
        let host = Host::builder(config).events(events).build().expect("host");
        let daemon = Arc::new(Daemon { host, runtime });
        let (tx, rx) = watch::channel(false);
        Api {
            router: api::router(daemon.clone(), rx),
            daemon,
            _stopping: tx,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn put(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.call(Method::PUT, path, token, Some(body)).await
    }
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let api = Api::new();
    let e = api
        .get("/v1/usage", None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert_eq!(e.error, "unauthorized");
    assert!(e.message.contains("missing Authorization"), "{e:?}");

    let e = api
        .get("/v1/usage", Some("not-a-token"))
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert_eq!(e.message, "unknown token");

    let req = Request::get("/v1/usage")
        .header(header::AUTHORIZATION, format!("Token {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The right tokens get in.
    assert_eq!(
        api.get("/v1/usage", Some(ADMIN)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/v1/usage", Some(ACME)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_tenant_token_on_an_admin_route_is_403() {
    let api = Api::new();
    for (method, path, body) in [
        (Method::POST, "/v1/gc", None),
        (Method::GET, "/v1/snapshot", None),
        (Method::GET, "/v1/leaks", None),
        (Method::POST, "/v1/policies/reload", None),
        (Method::POST, "/v1/ledger/repair", None),
        (
            Method::PUT,
            "/v1/tenants/acme/quotas",
            Some(r#"{"memory": 10}"#),
        ),
        (
            Method::PUT,
            "/v1/policies/default/eviction",
            Some(r#"{"policy": "lru"}"#),
        ),
    ] {
        let e = api
            .call(method.clone(), path, Some(ACME), body)
            .await
            .error(StatusCode::FORBIDDEN);
        assert_eq!(e.error, "forbidden", "{method} {path}");
        assert!(e.message.contains("admin token"), "{method} {path}: {e:?}");
    }
    // The admin may.
    let r = api.post("/v1/gc", Some(ADMIN), "null").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.post("/v1/ledger/repair", Some(ADMIN), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let repaired: rmhost_server::wire::RepairReport = r.json();
    assert_eq!(repaired.ledger, "memory");
    assert_eq!(
        repaired.fixed, 0,
        "the in-memory ledger has nothing to repair"
    );
}

#[tokio::test]
async fn a_tenant_cannot_read_another_tenants_quotas_or_allocations() {
    let api = Api::new();
    let r = api
        .put(
            "/v1/tenants/beta/quotas",
            Some(ADMIN),
            r#"{"memory": 5000}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json::<Quotas>().quotas["memory"].limit, Some(5000));

    let r = api
        .post(
            "/v1/allocations",
            Some(BETA),
            r#"{"tenant": "beta", "kind": "memory", "amount": 100}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json::<Allocation>().id;

    // Quotas: beta sees its own, acme is refused.
    let r = api.get("/v1/tenants/beta/quotas", Some(BETA)).await;
    assert_eq!(r.json::<Quotas>().quotas["memory"].used, 100);
    let e = api
        .get("/v1/tenants/beta/quotas", Some(ACME))
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(e.message.contains("\"beta\""), "{e:?}");

    // Allocations: another tenant's id answers like a missing one, so ids leak nothing.
    let path = format!("/v1/allocations/{id}");
    assert_eq!(api.get(&path, Some(BETA)).await.status, StatusCode::OK);
    let e = api
        .get(&path, Some(ACME))
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(e.message, format!("no live allocation with id {id}"));
    let e = api
        .call(Method::DELETE, &path, Some(ACME), None)
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(e.error, "not_found");
    // ... and it is still there.
    assert_eq!(api.get(&path, Some(ADMIN)).await.status, StatusCode::OK);

    // Listing: acme sees none of beta's, and may not ask for them.
    let r = api.get("/v1/allocations", Some(ACME)).await;
    assert_eq!(r.json::<Vec<Allocation>>(), vec![]);
    api.get("/v1/allocations?tenant=beta", Some(ACME))
        .await
        .error(StatusCode::FORBIDDEN);
    // Nor allocate in beta's name.
    api.post(
        "/v1/allocations",
        Some(ACME),
        r#"{"tenant": "beta", "kind": "memory", "amount": 1}"#,
    )
    .await
    .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_bodies_are_400_naming_what_is_wrong() {
    let api = Api::new();
    let alloc = |body: &'static str| api.post("/v1/allocations", Some(ADMIN), body);

    let e = alloc("{not json").await.error(StatusCode::BAD_REQUEST);
    assert_eq!(e.error, "invalid_request");
    assert!(e.message.starts_with("request body:"), "{e:?}");

    // Bodies that deny unknown fields name the stray one (a typo here).
    let e = api
        .put("/v1/tenants/acme/quotas", Some(ADMIN), r#"{"memroy": 5}"#)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(e.message.contains("unknown field `memroy`"), "{e:?}");

    // A field of the wrong type is named with what was expected.
    let e = alloc(r#"{"tenant": "a", "kind": "memory", "amount": "ten"}"#)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(
        e.message.contains("amount") && e.message.contains("invalid type"),
        "{e:?}"
    );
    let e = alloc(r#"{"tenant": "a", "kind": "gpu", "amount": 1}"#)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(e.message.contains("unknown variant `gpu`"), "{e:?}");
    // A body that is JSON but not an object at all.
    let e = alloc("[1, 2]").await.error(StatusCode::BAD_REQUEST);
    assert!(e.message.starts_with("request body:"), "{e:?}");

    // A body sent without a JSON content type is 415, naming the content type.
    let req = Request::post("/v1/allocations")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::from(
            r#"{"tenant": "a", "kind": "memory", "amount": 1}"#,
        ))
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Path and query parameters too.
    let e = api
        .get("/v1/allocations/abc", Some(ADMIN))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(e.message.starts_with("id: \"abc\""), "{e:?}");
    let e = api
        .get("/v1/allocations?color=red", Some(ADMIN))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(e.message.starts_with("query string:"), "{e:?}");
}

#[tokio::test]
async fn an_unknown_route_is_404_with_the_error_body() {
    let api = Api::new();
    let e = api
        .get("/v1/nope", Some(ADMIN))
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(
        (e.error.as_str(), e.message.as_str()),
        ("not_found", "no such route")
    );
    assert!(e.details.is_empty(), "{e:?}");
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after_and_the_decision() {
    let api = Api::new();
    let r = api
        .put(
            "/v1/tenants/acme/quotas",
            Some(ADMIN),
            r#"{"requests_per_minute": 1}"#,
        )
        .await;
    assert_eq!(r.json::<Quotas>().requests_per_minute, 1);
    let check = || api.post("/v1/ratelimit/check", Some(ACME), r#"{"tenant": "acme"}"#);

    let r = check().await;
    assert_eq!(r.status, StatusCode::OK);
    let d: RateDecision = r.json();
    assert!(d.allowed);
    assert_eq!(d.limit_per_minute, 1);

    // One request per minute: the second, right after, has to wait most of a minute.
    let r = check().await;
    let e = r.error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.error, "rate_limited");
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    // The body carries the decision next to the error fields.
    let d: RateDecision = r.json();
    assert!(!d.allowed);
    assert_eq!(d.limit_per_minute, 1);
    assert_eq!(d.retry_after_ms.div_ceil(1000).max(1), retry);
}

#[tokio::test]
async fn a_cost_of_u32_max_is_refused_not_a_panic() {
    // governor multiplied the emission interval by the cost in u64 nanoseconds: below 14
    // requests per minute a cost near u32::MAX overflowed (a panic in debug builds).
    let api = Api::new();
    let r = api
        .put(
            "/v1/tenants/acme/quotas",
            Some(ADMIN),
            r#"{"requests_per_minute": 1}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = format!(r#"{{"tenant": "acme", "cost": {}}}"#, u32::MAX);
    let r = api.post("/v1/ratelimit/check", Some(ACME), &body).await;
    let e = r.error(StatusCode::TOO_MANY_REQUESTS);
    assert!(e.message.contains("can never be allowed"), "{e:?}");
    assert!(e.message.contains(&u32::MAX.to_string()), "{e:?}");
    // Nothing was taken: a normal check still passes.
    let r = api
        .post("/v1/ratelimit/check", Some(ACME), r#"{"tenant": "acme"}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // One past u32 is not a cost at all.
    let body = format!(
        r#"{{"tenant": "acme", "cost": {}}}"#,
        u64::from(u32::MAX) + 1
    );
    let e = api
        .post("/v1/ratelimit/check", Some(ACME), &body)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(e.error, "invalid_request");
}

#[tokio::test]
async fn ready_is_503_until_the_host_is_ready() {
    let api = Api::new();
    // /ready needs no token: probes carry none.
    let r = api.get("/ready", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json::<Ready>(), Ready { ready: false });
    api.daemon.host.set_ready(true);
    let r = api.get("/ready", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json::<Ready>(), Ready { ready: true });
    api.daemon.host.set_ready(false);
    assert_eq!(
        api.get("/ready", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// `GET /metrics` as the admin, with `accept` as the Accept header: (content type, body).
async fn scrape(api: &Api, accept: Option<&str>) -> (String, String) {
    let mut req = Request::get("/metrics").header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = api
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (ct, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn http_metrics_use_route_templates_and_bounded_labels() {
    let api = Api::new();
    // A tenant's own names, a scanner's paths and a made-up method must not add series.
    api.get("/v1/caches/acme-secret-name", Some(ACME)).await;
    api.get("/v1/caches/another-name", Some(ACME)).await;
    api.get("/wp-admin/setup.php", None).await;
    let brew = Method::from_bytes(b"BREW").unwrap();
    api.call(brew, "/health", None, None).await;
    api.get("/health", None).await;

    let (ct, text) = scrape(&api, None).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains(
            "rmhost_http_requests_total{method=\"GET\",route=\"/v1/caches/{name}\",status=\"4xx\"} 2\n"
        ),
        "{text}"
    );
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(
        text.contains("rmhost_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",status=\"2xx\",le=\"+Inf\"} 1\n"),
        "{text}"
    );
    for leaked in ["acme-secret-name", "another-name", "wp-admin", "BREW"] {
        assert!(!text.contains(leaked), "{leaked} in:\n{text}");
    }
    // Prometheus 0.0.4 names counters with `_total` in HELP and TYPE; the standard
    // process names come unprefixed.
    for line in [
        "# TYPE rmhost_allocation_denials_total counter",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE rmhost_process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(!text.contains("# EOF"));
}

#[tokio::test]
async fn metrics_speak_openmetrics_when_asked() {
    let api = Api::new();
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (ct, text) = scrape(&api, Some(accept)).await;
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE rmhost_allocation_denials counter\n"),
        "{text}"
    );
    assert!(
        text.contains("rmhost_allocation_denials_total{reason=\"shed\"} 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn livez_is_200_and_readyz_follows_ready_with_kubernetes_verbose_lines() {
    let api = Api::new();
    let text = |a: &Answer| String::from_utf8_lossy(&a.body).into_owned();
    // Probes carry no token; the process is live before it is ready.
    let r = api.get("/livez", None).await;
    assert_eq!((r.status, text(&r).as_str()), (StatusCode::OK, "ok"));
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    let r = api.get("/livez?verbose", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(text(&r), "[+]ping ok\nlivez check passed\n");

    // Not started: 503, and the failing check says why even without ?verbose.
    let r = api.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        text(&r),
        "[-]serving failed: not serving yet, or draining\n[+]state ok\nreadyz check failed\n"
    );
    api.daemon.host.set_ready(true);
    let r = api.get("/readyz", None).await;
    assert_eq!((r.status, text(&r).as_str()), (StatusCode::OK, "ok"));
    let r = api.get("/readyz?verbose=1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        text(&r),
        "[+]serving ok\n[+]state ok\nreadyz check passed\n"
    );
    // Draining: not ready again, while still live.
    api.daemon.host.set_ready(false);
    assert_eq!(
        api.get("/readyz", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(api.get("/livez", None).await.status, StatusCode::OK);
}
