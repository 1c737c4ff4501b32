//! The Grafana dashboard against a real Prometheus: Debian's `prometheus` scrapes a live
//! daemon (OpenMetrics, as Prometheus asks for it) while a load like `examples/load.rs`
//! runs, and every expression in `examples/grafana/rmhost.json` is evaluated through
//! Prometheus' HTTP API: none errors, and the cache and policy ones return series.

use crate::harness::{Daemon, http};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A Prometheus server on a private port with a temporary config and storage; killed
/// when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` scraping `target` (`host:port`) every second.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: rmhost\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the Prometheus server is needed to evaluate the dashboard ({e}): install Debian's `prometheus` package (scripts/services does)"
                )
            });
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits (bounded) for `/-/ready`.
    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{}/-/ready", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /api/v1/query`: Ok(result array) or Err(the error Prometheus gave).
    async fn query(&self, client: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let resp = client
            .get(format!(
                "{}/api/v1/query?query={}",
                self.url,
                percent_encode(expr)
            ))
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        let body: Value = resp.json().await.map_err(|e| format!("body: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// A query-string value: everything but RFC 3986's unreserved bytes percent-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every PromQL expression in the dashboard: panel targets, and the metric inside each
/// `label_values(METRIC, LABEL)` variable query. Grafana's variables become "match all".
fn dashboard_expressions(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    walk(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["definition"].as_str()
            && let Some(inner) = q.strip_prefix("label_values(")
        {
            out.push(inner.split(',').next().unwrap_or("").trim().to_string());
        }
    }
    out.into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "30s")
                .replace("$__range", "30s")
                .replace("$instance", ".*")
                .replace("$tenant", ".*")
        })
        .collect()
}

/// Load in the spirit of `examples/load.rs`: per tenant a small cache (evictions), reads
/// over more keys than fit (hits and misses), a write on every miss, allocations and rate
/// checks; until `stop`.
async fn drive(d: Arc<Daemon>, stop: Arc<AtomicBool>) {
    let tenants = ["dash-a", "dash-b"];
    for t in tenants {
        let (s, b) = d
            .put(
                &format!("/v1/caches/{t}-sessions"),
                json!({"capacity_bytes": 2000, "tenant": t}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        d.put(&format!("/v1/tenants/{t}/quotas"), json!({"memory": 1000}))
            .await;
    }
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        for t in tenants {
            let key = (i * 7919) % 40;
            let entry = format!("/v1/caches/{t}-sessions/entries/k{key}");
            if d.get(&entry).await.0 == 404 {
                d.put(&entry, json!({"size": 100})).await;
            }
            d.post("/v1/ratelimit/check", json!({"tenant": t})).await;
            let (s, a) = d
                .post(
                    "/v1/allocations",
                    json!({"tenant": t, "kind": "memory", "amount": 100 + i % 1000}),
                )
                .await;
            if s.is_success()
                && let Some(id) = a["id"].as_u64()
            {
                d.delete(&format!("/v1/allocations/{id}")).await;
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn dashboard_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/grafana/rmhost.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_expression_evaluates_on_a_real_prometheus() {
    let exprs = dashboard_expressions(&dashboard_path());
    assert!(exprs.len() > 40, "{exprs:?}");
    let lru = crate::policies::built("lru");
    let d = Arc::new(Daemon::start("", &["--policy", lru.to_str().unwrap()], &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(drive(d.clone(), stop.clone()));
    let mut prom = Prometheus::start(&d.addr);
    let client = http();
    prom.wait_ready(&client).await;

    // Caches and policies must show data; the rest must only evaluate (a pool panel has
    // no series without pools). Rates need two scrapes in their window: poll, bounded.
    let must_have_data = |e: &str| e.contains("rmhost_cache_") || e.contains("rmhost_policy_");
    let deadline = Instant::now() + Duration::from_secs(90);
    let empty = loop {
        let mut empty = Vec::new();
        for e in &exprs {
            match prom.query(&client, e).await {
                Err(err) => panic!("`{e}` failed to evaluate: {err}"),
                Ok(r) if r.is_empty() && must_have_data(e) => empty.push(e.clone()),
                Ok(_) => {}
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break empty;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");
    let targets = prom.query(&client, "up").await.unwrap_or_default();
    assert!(
        empty.is_empty(),
        "cache/policy expressions with no series after 90 s: {empty:#?}\nup: {targets:?}\nprometheus log:\n{}",
        prom.log()
    );
    // The standard process names and the route-labelled HTTP series made it too.
    for e in [
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "rmhost_http_requests_total{route=\"/v1/caches/{name}/entries/{key}\",status=\"2xx\"}",
    ] {
        let r = prom.query(&client, e).await.expect(e);
        assert!(!r.is_empty(), "{e}: no series");
    }
}
