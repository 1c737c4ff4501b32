//! Envoy's rate-limit service (`[grpc] listen`) called directly with a tonic client: the
//! same limiter as `POST /v1/ratelimit/check` (in one daemon, and across daemons on one
//! Redis), auth by metadata, and the gRPC code of each kind of bad request or outage.
//! The test with a real Envoy in front is `rls_envoy`.

use crate::harness::Daemon;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use serde_json::json;
use tonic::Code as Grpc;

pub const ADMIN: &str = "rls-admin-token";
const ACME: &str = "rls-acme-token";
const BETA: &str = "rls-beta-token";

/// `[auth]` with an admin and two tenant tokens.
pub fn auth_config() -> String {
    let h = rmhost_core::config::hash_token;
    format!(
        "[auth]\nadmin_token_sha256 = \"{}\"\n[auth.tenants.acme]\ntoken_sha256 = \"{}\"\n\
         [auth.tenants.beta]\ntoken_sha256 = \"{}\"\n",
        h(ADMIN),
        h(ACME),
        h(BETA)
    )
}

/// A request for one descriptor naming `tenant`, with an optional descriptor-level cost.
pub fn request(tenant: &str, hits: Option<u64>) -> RateLimitRequest {
    RateLimitRequest {
        domain: "edge".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "tenant".into(),
                value: tenant.into(),
            }],
            hits_addend: hits.map(|value| UInt64Value { value }),
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

/// A client of `d`'s rate-limit service.
pub async fn client(d: &Daemon) -> RateLimitServiceClient<tonic::transport::Channel> {
    let addr = d.grpc_addr.as_deref().expect("the daemon serves gRPC");
    RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the rate-limit service")
}

/// `ShouldRateLimit(req)` with `token` as bearer metadata.
pub async fn call(
    c: &mut RateLimitServiceClient<tonic::transport::Channel>,
    token: Option<&str>,
    req: RateLimitRequest,
) -> Result<RateLimitResponse, tonic::Status> {
    let mut r = tonic::Request::new(req);
    if let Some(t) = token {
        let v = format!("Bearer {t}").parse().expect("metadata value");
        r.metadata_mut().insert("authorization", v);
    }
    c.should_rate_limit(r).await.map(|r| r.into_inner())
}

fn header<'a>(r: &'a RateLimitResponse, key: &str) -> Option<&'a str> {
    r.response_headers_to_add
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(key))
        .map(|h| h.value.as_str())
}

#[tokio::test]
async fn grpc_and_http_checks_draw_on_one_limit() {
    let config = format!(
        "[grpc]\nlisten = \"127.0.0.1:0\"\n[tenants.acme]\nrequests_per_minute = 3\n{}",
        auth_config()
    );
    let d = Daemon::start(&config, &[], &[]);
    let mut c = client(&d).await;

    let r = call(&mut c, Some(ACME), request("acme", None))
        .await
        .unwrap();
    assert_eq!(r.overall_code, Code::Ok as i32);
    let s = &r.statuses[0];
    assert_eq!(s.limit_remaining, 2);
    let limit = s.current_limit.as_ref().unwrap();
    assert_eq!(limit.requests_per_unit, 3);
    assert!(s.duration_until_reset.is_some());
    assert_eq!(header(&r, "RateLimit-Limit"), Some("3"));
    assert_eq!(header(&r, "RateLimit-Remaining"), Some("2"));

    // The admin token may check any tenant; the HTTP check takes from the same budget.
    let r = call(&mut c, Some(ADMIN), request("acme", None))
        .await
        .unwrap();
    assert_eq!(r.statuses[0].limit_remaining, 1);
    let (status, body) = d
        .with_token(ACME)
        .post("/v1/ratelimit/check", json!({"tenant": "acme"}))
        .await;
    assert_eq!((status.as_u16(), &body["remaining"]), (200, &json!(0)));

    let r = call(&mut c, Some(ACME), request("acme", None))
        .await
        .unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    let retry: u64 = header(&r, "Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // And the refusal shows over HTTP too.
    let (status, _) = d
        .with_token(ACME)
        .post("/v1/ratelimit/check", json!({"tenant": "acme"}))
        .await;
    assert_eq!(status.as_u16(), 429);
}

#[tokio::test]
async fn bad_calls_get_the_grpc_code_envoy_acts_on() {
    // A low limit: governor overflowed on a cost near u32::MAX below 14 per minute.
    let config = format!(
        "[grpc]\nlisten = \"127.0.0.1:0\"\n[tenants.acme]\nrequests_per_minute = 2\n{}",
        auth_config()
    );
    let d = Daemon::start(&config, &[], &[]);
    let mut c = client(&d).await;
    let code = |r: Result<RateLimitResponse, tonic::Status>| r.unwrap_err().code();

    assert_eq!(
        code(call(&mut c, None, request("acme", None)).await),
        Grpc::Unauthenticated
    );
    assert_eq!(
        code(call(&mut c, Some("wrong"), request("acme", None)).await),
        Grpc::Unauthenticated
    );
    let e = call(&mut c, Some(BETA), request("acme", None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Grpc::PermissionDenied, "{e:?}");
    assert!(e.message().contains("acme"), "{e:?}");

    // No tenant entry: the message names the key looked for.
    let mut req = request("acme", None);
    req.descriptors[0].entries[0].key = "path".into();
    let e = call(&mut c, Some(ADMIN), req).await.unwrap_err();
    assert_eq!(e.code(), Grpc::InvalidArgument, "{e:?}");
    assert!(e.message().contains("\"tenant\""), "{e:?}");

    // A bad tenant name is the limiter's own validation.
    let e = call(&mut c, Some(ADMIN), request("", None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Grpc::InvalidArgument, "{e:?}");

    // u32::MAX is refused as over any limit (no panic; nothing taken); beyond is invalid.
    let r = call(&mut c, Some(ACME), request("acme", Some(u32::MAX.into())))
        .await
        .unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    let r = call(&mut c, Some(ACME), request("acme", None))
        .await
        .unwrap();
    assert_eq!(r.overall_code, Code::Ok as i32);
    let e = call(
        &mut c,
        Some(ACME),
        request("acme", Some(u64::from(u32::MAX) + 1)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Grpc::InvalidArgument, "{e:?}");
    assert!(e.message().contains("hits_addend"), "{e:?}");
}

#[tokio::test]
async fn a_shared_backend_that_is_down_is_unavailable() {
    // Nothing listens on port 1; "closed" refuses instead of falling back to local limits.
    let config = "[grpc]\nlisten = \"127.0.0.1:0\"\n[state]\nratelimit = \"redis://127.0.0.1:1/\"\n\
                  ratelimit_failure = \"closed\"\nbackend_timeout_ms = 200\n";
    let d = Daemon::start(config, &[], &[]);
    let mut c = client(&d).await;
    let e = call(&mut c, None, request("acme", None)).await.unwrap_err();
    assert_eq!(e.code(), Grpc::Unavailable, "{e:?}");
    assert!(e.message().contains("redis"), "{e:?}");
}

#[tokio::test]
async fn grpc_on_one_host_and_http_on_another_share_one_redis_limit() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        panic!(
            "this test needs Redis on 127.0.0.1:6379: run scripts/services (or apt-get install redis-server)"
        );
    }
    let prefix = format!("rmhost-test-rls-{}", std::process::id());
    let config = format!(
        "[grpc]\nlisten = \"127.0.0.1:0\"\n[tenants.acme]\nrequests_per_minute = 4\n\
         [state]\nratelimit = \"redis://127.0.0.1:6379/\"\nkey_prefix = \"{prefix}\"\n\
         ratelimit_failure = \"closed\"\n"
    );
    let a = Daemon::start(&config, &[], &[]);
    let b = Daemon::start(&config, &[], &[]);
    let mut c = client(&a).await;
    let mut allowed = 0;
    for i in 0..6 {
        let ok = if i % 2 == 0 {
            let r = call(&mut c, None, request("acme", None)).await.unwrap();
            r.overall_code == Code::Ok as i32
        } else {
            let (s, _) = b
                .post("/v1/ratelimit/check", json!({"tenant": "acme"}))
                .await;
            s.as_u16() == 200
        };
        allowed += u32::from(ok);
    }
    assert_eq!(allowed, 4, "one limit of 4 across gRPC on a and HTTP on b");
}

#[tokio::test]
async fn connections_over_the_grpc_cap_are_closed_at_accept_and_counted() {
    let d = Daemon::start(
        "[grpc]\nlisten = \"127.0.0.1:0\"\nmax_connections = 2\n",
        &[],
        &[],
    );
    let url = format!("http://{}", d.grpc_addr.as_deref().unwrap());
    // Two connections, each proven open by a call: the cap is reached.
    let mut a = client(&d).await;
    let mut b = client(&d).await;
    for c in [&mut a, &mut b] {
        call(c, None, request("acme", None))
            .await
            .expect("a call within the cap");
    }
    // A third is closed at accept: its connect or its call fails.
    let third = match RateLimitServiceClient::connect(url.clone()).await {
        Err(e) => Err(e.to_string()),
        Ok(mut c) => call(&mut c, None, request("acme", None))
            .await
            .map_err(|s| s.to_string()),
    };
    assert!(third.is_err(), "a third connection was served: {third:?}");
    // The two open ones are still served.
    for c in [&mut a, &mut b] {
        call(c, None, request("acme", None))
            .await
            .expect("an open connection after the refusal");
    }
    let (_, metrics) = d.text("/metrics").await;
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rmhost_grpc_connections_refused_total "))
        .unwrap_or_else(|| panic!("no rmhost_grpc_connections_refused_total in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(refused >= 1, "refusals counted: {refused}");
    let (_, usage) = d.get("/v1/usage").await;
    let in_usage = usage["connections"]["grpc_refused"].as_u64();
    assert!(in_usage >= Some(refused), "/v1/usage: {in_usage:?}");

    // Closing one frees its place; the server learns of the close asynchronously, so
    // a new connection is tried until one is served (bounded: only a hang fails here).
    drop(a);
    let mut served = false;
    for _ in 0..200 {
        if let Ok(mut c) = RateLimitServiceClient::connect(url.clone()).await
            && call(&mut c, None, request("acme", None)).await.is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "no connection was served after one of the two closed"
    );
}
