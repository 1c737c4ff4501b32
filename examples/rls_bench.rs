//! gRPC `ShouldRateLimit` checks per second next to `POST /v1/ratelimit/check`, against one
//! in-process daemon in the same run, printed as a ratio (no assertion: numbers on a
//! shared machine are noisy; the ratio is what to compare).
//!
//! ```sh
//! cargo run --release -p rmhost --example rls_bench -- --concurrency 16 --duration-secs 5
//! ```
//!
//! The daemon has auth off (loopback) and one tenant whose limit never binds, so both
//! protocols measure the whole path through the same limiter (`Host::rate_check`): HTTP/1.1
//! keep-alive JSON through axum, and HTTP/2 protobuf through tonic. Each of `concurrency`
//! tasks sends one check at a time; HTTP tasks share a reqwest pool, gRPC tasks one
//! multiplexed channel (what Envoy does).

use clap::Parser;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use rmhost_core::config::Config;
use rmhost_server::daemon::{Daemon, serve};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// gRPC vs HTTP rate-limit checks per second.
#[derive(Debug, Parser)]
struct Args {
    /// Checks in flight at once, per protocol (1-256).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds each protocol is driven (1-300).
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
}

const TENANT: &str = "bench";

/// Runs `concurrency` copies of `one` (a single check, true when allowed) for `secs`:
/// (checks done, refusals or errors, seconds taken).
async fn drive<F, Fut>(concurrency: usize, secs: u64, one: F) -> (u64, u64, f64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (one, done, failed) = (one.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    if !one().await {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        secs,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=256).contains(&args.concurrency),
        "--concurrency must be 1-256, not {}",
        args.concurrency
    );
    anyhow::ensure!(
        (1..=300).contains(&args.duration_secs),
        "--duration-secs must be 1-300, not {}",
        args.duration_secs
    );
    // A free port for gRPC, learnt first (the daemon prints it, but in-process we pick it).
    let grpc_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    config.limits.max_requests_per_minute = u32::MAX;
    config.policies.dir = "/nonexistent-rmhost-bench".into();
    config.grpc.listen = Some(format!("127.0.0.1:{grpc_port}").parse()?);
    let daemon = Daemon::new(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http_addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(daemon, listener, async move {
        let _ = stop_rx.await;
        "benchmark done".to_string()
    }));

    let http = reqwest::Client::new();
    let url = format!("http://{http_addr}/v1/ratelimit/check");
    // Wait until the API answers (serve binds gRPC before it starts HTTP).
    let mut up = false;
    for _ in 0..100 {
        if http
            .get(format!("http://{http_addr}/health"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(up, "the in-process daemon did not answer on {http_addr}");
    let grpc = RateLimitServiceClient::connect(format!("http://127.0.0.1:{grpc_port}")).await?;

    let body = serde_json::json!({"tenant": TENANT}).to_string();
    let http_one = move || {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    };
    let request = RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "tenant".into(),
                value: TENANT.into(),
            }],
            ..Default::default()
        }],
        hits_addend: 0,
    };
    let grpc_one = move || {
        let (mut grpc, request) = (grpc.clone(), request.clone());
        async move {
            match grpc.should_rate_limit(request).await {
                Ok(r) => r.into_inner().overall_code == 1, // OK
                Err(_) => false,
            }
        }
    };

    // A short warm-up of each, then the measured runs back to back.
    drive(args.concurrency, 1, http_one.clone()).await;
    drive(args.concurrency, 1, grpc_one.clone()).await;
    let (h_n, h_bad, h_s) = drive(args.concurrency, args.duration_secs, http_one).await;
    let (g_n, g_bad, g_s) = drive(args.concurrency, args.duration_secs, grpc_one).await;
    let (h_rate, g_rate) = (h_n as f64 / h_s, g_n as f64 / g_s);
    println!(
        "concurrency {} per protocol, {} s each",
        args.concurrency, args.duration_secs
    );
    println!(
        "http POST /v1/ratelimit/check: {h_n:>9} checks ({h_bad} failed) {h_rate:>10.0} checks/s"
    );
    println!(
        "grpc ShouldRateLimit:          {g_n:>9} checks ({g_bad} failed) {g_rate:>10.0} checks/s"
    );
    println!("grpc / http: {:.2}", g_rate / h_rate);

    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
