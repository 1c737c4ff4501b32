//! OTLP traces: a real OTLP/gRPC receiver (opentelemetry-proto's `TraceService` on tonic)
//! inside the test, the daemon pointed at it by `OTEL_EXPORTER_OTLP_ENDPOINT`, and API
//! requests that call a Wasm quota policy. The receiver must get the request's span (the
//! route template, never the raw path) and the policy call's span beneath it, under the
//! service name; without an endpoint the daemon must not connect to the default one; and
//! a bad `OTEL_*` value must stop it at startup.

use crate::harness::{Daemon, bin};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver got: (the resource's `service.name`, the spans), per export call.
type Received = Arc<Mutex<Vec<(Option<String>, Vec<Span>)>>>;

#[derive(Debug, Clone, Default)]
struct Receiver {
    got: Received,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.got.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string(&r.attributes, "service.name"));
            let spans = rs.scope_spans.into_iter().flat_map(|s| s.spans).collect();
            got.push((service, spans));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the receiver on an ephemeral port: its address and what it receives.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let r = Receiver::default();
    let got = r.got.clone();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(r))
            .serve_with_incoming(incoming),
    );
    (addr, got)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(Any::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(Any::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Stops `d` with SIGTERM (the daemon flushes its spans on the way out) and checks it
/// exited cleanly.
fn stop(mut d: Daemon) {
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "the daemon did not exit cleanly on SIGTERM: {status:?}"
    );
}

// Multi-threaded: the receiver must keep serving while the test blocks on the daemon's
// exit (its flush).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_policy_calls_reach_an_otlp_receiver() {
    let (addr, got) = receiver().await;
    let quota = crate::policies::built("fair-quota");
    let endpoint = format!("http://{addr}");
    let d = Daemon::start(
        "",
        &["--policy", quota.to_str().unwrap()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "rmhost-e2e"),
        ],
    );
    // Each allocation asks the bound Wasm quota policy.
    let (status, body) = d
        .post(
            "/v1/allocations",
            json!({"tenant": "acme", "kind": "memory", "amount": 10}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_u64().expect("an allocation id");
    // A path with a tenant-chosen part: only its template may leave the host.
    let raw = format!("/v1/allocations/{id}");
    assert_eq!(d.get(&raw).await.0, 200);
    assert_eq!(d.get("/v1/no/such/route/secret-name").await.0, 404);
    stop(d);

    let got = got.lock().unwrap().clone();
    assert!(!got.is_empty(), "the receiver got no export at all");
    for (service, _) in &got {
        assert_eq!(service.as_deref(), Some("rmhost-e2e"), "service.name");
    }
    let spans: Vec<&Span> = got.iter().flat_map(|(_, s)| s).collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();

    let route = |s: &Span| string(&s.attributes, "http.route");
    let post = spans
        .iter()
        .find(|s| route(s).as_deref() == Some("/v1/allocations"))
        .unwrap_or_else(|| panic!("no span of POST /v1/allocations among {names:?}"));
    assert_eq!(post.name, "POST /v1/allocations");
    assert_eq!(post.kind, SpanKind::Server as i32);
    assert_eq!(
        string(&post.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        int(&post.attributes, "http.response.status_code"),
        Some(201),
        "{:?}",
        post.attributes
    );
    assert!(
        spans
            .iter()
            .any(|s| route(s).as_deref() == Some("/v1/allocations/{id}")
                && int(&s.attributes, "http.response.status_code") == Some(200)),
        "no span of GET /v1/allocations/{{id}} among {names:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| route(s).as_deref() == Some("unmatched")
                && int(&s.attributes, "http.response.status_code") == Some(404)),
        "no span of the unrouted request among {names:?}"
    );
    // No raw path anywhere: not the id, not the unrouted path's name.
    for s in &spans {
        let text = format!("{} {:?}", s.name, s.attributes);
        assert!(
            !text.contains(&raw) && !text.contains("secret-name"),
            "a raw path leaked into a span: {text}"
        );
    }

    let call = spans
        .iter()
        .find(|s| string(&s.attributes, "policy.name").as_deref() == Some("fair-quota"))
        .unwrap_or_else(|| panic!("no policy-call span of fair-quota among {names:?}"));
    assert_eq!(call.name, "policy quota.decide");
    assert_eq!(
        string(&call.attributes, "policy.kind").as_deref(),
        Some("quota")
    );
    assert_eq!(
        string(&call.attributes, "policy.call").as_deref(),
        Some("decide")
    );
    assert_eq!(
        string(&call.attributes, "policy.outcome").as_deref(),
        Some("ok")
    );
    // The call is part of the request's trace, beneath the request's span.
    assert_eq!(call.trace_id, post.trace_id, "the policy call's trace");
    assert_eq!(
        call.parent_span_id, post.span_id,
        "the policy call's parent"
    );
}

#[tokio::test]
async fn without_an_endpoint_nothing_connects_to_the_default_one() {
    // The exporter's default endpoint is localhost:4317: hold it (both families) and
    // check that nothing connected once the daemon has served requests and exited.
    let v4 = std::net::TcpListener::bind("127.0.0.1:4317").unwrap_or_else(|e| {
        panic!(
            "this test needs 127.0.0.1:4317 free (the OTLP default, held to see that \
             nothing connects): {e}; stop the collector listening there"
        )
    });
    let v6 = match std::net::TcpListener::bind("[::1]:4317") {
        Ok(l) => Some(l),
        // No IPv6 loopback here: then nothing can connect to [::1] either.
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => None,
        Err(e) => panic!("[::1]:4317 is taken ({e}); stop the collector listening there"),
    };
    let quota = crate::policies::built("fair-quota");
    // Every variable but an endpoint: traces stay off.
    let d = Daemon::start(
        "",
        &["--policy", quota.to_str().unwrap()],
        &[
            ("OTEL_SERVICE_NAME", "rmhost-e2e-off"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ],
    );
    for _ in 0..3 {
        let alloc = json!({"tenant": "acme", "kind": "memory", "amount": 1});
        assert_eq!(d.post("/v1/allocations", alloc).await.0, 201);
    }
    stop(d);
    // A connection the daemon made would wait in the accept queue (the kernel completes
    // the handshake), even though the daemon has exited.
    for l in std::iter::once(&v4).chain(v6.as_ref()) {
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("{peer} connected to the default OTLP endpoint"),
            Err(e) => panic!("accept on {:?}: {e}", l.local_addr()),
        }
    }
}

#[test]
fn a_bad_otel_value_stops_the_daemon_at_startup() {
    for (var, value, want) in [
        (
            "OTEL_TRACES_SAMPLER",
            "sometimes",
            "OTEL_TRACES_SAMPLER=\"sometimes\"",
        ),
        ("OTEL_SDK_DISABLED", "yes", "expected true or false"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
            "expected an http:// URL",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .args(["run", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("RMHOST_CONFIG")
            .env(var, value)
            .env("RMHOST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rmhost");
        // A daemon that accepted the value would serve: bound the wait and say so.
        let mut status = None;
        for _ in 0..600 {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{var}={value:?} was accepted: the daemon started");
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value:?}: {stderr}");
        assert!(stderr.contains(want), "{var}={value:?}: {stderr}");
    }
}
