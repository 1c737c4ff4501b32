//! What `/metrics` costs to render, before and after the move to `prometheus-client`, in
//! one run: a host with 64 caches over 8 tenants, the LRU Wasm policy loaded, ledger
//! tenants and some 40 HTTP series. Prints numbers, asserts nothing.
//!
//! - new, full: `Metrics::encode` (read the managers, then encode), both formats;
//! - reads only: the same manager reads the collectors make, so new encode ≈ full − reads;
//! - before: the hand-written writer `/metrics` used until now (kept here verbatim),
//!   formatting the very same samples (parsed back from the new 0.0.4 text).
//!
//! Run: `cargo bench -p rmhost-server --bench metrics`.

use axum::body::Body;
use axum::http::{Method, Request, header};
use rmhost_core::config::{Config, hash_token};
use rmhost_core::host::Host;
use rmhost_runtime::PolicyRuntime;
use rmhost_server::daemon::{Daemon, runtime_options};
use rmhost_server::metrics::{Format, Metrics};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

/// Calls per batch, and batches: each figure is its fastest batch's mean, the batches
/// of all four interleaved, so other load on the machine inflates none of them alone.
const ROUNDS: u32 = 20;
const BATCHES: u32 = 25;
const ADMIN: &str = "bench-admin";

/// The writer `/metrics` used before `prometheus-client` (host/server/src/api/metrics.rs
/// at the parent commit), unchanged but for taking names with their prefix.
mod legacy {
    use std::fmt::Write;

    #[derive(Debug, Default)]
    pub struct MetricsWriter {
        out: String,
    }

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    impl MetricsWriter {
        pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
            self
        }

        pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
            let _ = write!(self.out, "{name}");
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(self.out, "{{{}}}", parts.join(","));
            }
            let _ = writeln!(self.out, " {}", fmt_value(value));
            self
        }

        pub fn finish(self) -> String {
            self.out
        }
    }

    fn fmt_value(v: f64) -> String {
        if v.is_nan() {
            "NaN".into()
        } else if v.fract() == 0.0 && v.abs() < 9e15 {
            format!("{}", v as i64)
        } else {
            format!("{v}")
        }
    }
}

/// One sample: series name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One family as parsed back from 0.0.4 text.
struct Family {
    name: String,
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

/// Parses the exposition (our own output: no quotes or commas inside label values).
fn parse(text: &str) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push(Family {
                name: name.into(),
                kind: String::new(),
                help: help.into(),
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(f) = out.last_mut() {
                f.kind = rest.rsplit(' ').next().unwrap_or("").into();
            }
        } else if let Some(f) = out.last_mut() {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            let v = value.parse().unwrap_or(f64::NAN);
            f.samples.push((name.into(), labels, v));
        }
    }
    out
}

fn legacy_render(families: &[Family]) -> String {
    let mut w = legacy::MetricsWriter::default();
    for f in families {
        w.family(&f.name, &f.kind, &f.help);
        for (name, labels, v) in &f.samples {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            w.sample(name, &labels, *v);
        }
    }
    w.finish()
}

/// The manager reads the collectors make, without encoding.
fn reads_only(host: &Host, runtime: &PolicyRuntime) {
    black_box(rmhost_core::telemetry::process_stat());
    black_box(rmhost_core::telemetry::open_fds());
    black_box(rmhost_core::telemetry::fd_limit());
    black_box(host.telemetry.usage());
    black_box(host.resources.usage().ok());
    black_box(host.resources.stats());
    black_box(host.pools.metrics());
    black_box(host.caches.list());
    black_box(runtime.metrics());
}

/// Mean ns per call of `f` over one batch of `ROUNDS` calls.
fn batch<T>(f: &impl Fn() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}

async fn setup() -> (Arc<Daemon>, axum::Router, tokio::sync::watch::Sender<bool>) {
    let mut config = Config::default();
    config.auth.admin_token_sha256 = Some(hash_token(ADMIN));
    let events = rmhost_core::events::EventBus::new();
    let runtime = PolicyRuntime::new(runtime_options(&config), events.clone()).expect("runtime");
    let lru = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/lru.wasm");
    runtime.load_file(&lru).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the reference policies with `policies/build`",
            lru.display()
        )
    });
    let host = Host::builder(config)
        .events(events)
        .policies(Arc::new(runtime.clone()))
        .build()
        .expect("host");
    let daemon = Arc::new(Daemon { host, runtime });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let router = rmhost_server::api::router(daemon.clone(), rx);
    let call = |method: Method, path: String, body: Option<String>| {
        let router = router.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.map_or_else(Body::empty, Body::from))
                .expect("request");
            router.oneshot(req).await.expect("infallible").status()
        }
    };
    for t in 0..8 {
        let tenant = format!("tenant-{t}");
        let quota = r#"{"memory": 100000}"#.to_string();
        call(
            Method::PUT,
            format!("/v1/tenants/{tenant}/quotas"),
            Some(quota),
        )
        .await;
        for c in 0..8 {
            let cache = format!("{tenant}-cache-{c}");
            let body =
                format!(r#"{{"capacity_bytes": 1000, "tenant": "{tenant}", "policy": "lru"}}"#);
            call(Method::PUT, format!("/v1/caches/{cache}"), Some(body)).await;
            for k in 0..15 {
                let entry = format!("/v1/caches/{cache}/entries/k{k}");
                call(Method::GET, entry.clone(), None).await;
                call(Method::PUT, entry, Some(r#"{"size": 100}"#.into())).await;
            }
        }
        let alloc = format!(r#"{{"tenant": "{tenant}", "kind": "memory", "amount": 10}}"#);
        call(Method::POST, "/v1/allocations".into(), Some(alloc)).await;
        let check = format!(r#"{{"tenant": "{tenant}"}}"#);
        call(Method::POST, "/v1/ratelimit/check".into(), Some(check)).await;
    }
    for path in [
        "/v1/usage",
        "/v1/policies",
        "/v1/caches",
        "/health",
        "/nope",
    ] {
        call(Method::GET, path.into(), None).await;
    }
    (daemon, router, tx)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let _guard = rt.enter();
    let (daemon, router, _stop) = rt.block_on(setup());
    let metrics = Metrics::new(daemon.host.clone(), daemon.runtime.clone());
    drop(router);

    let prom = || metrics.encode(Format::Prometheus).expect("encode");
    let om = || metrics.encode(Format::OpenMetrics).expect("encode");
    let reads = || reads_only(&daemon.host, &daemon.runtime);
    let (text, om_text) = (prom(), om());
    let families = parse(&text);
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    let legacy = || legacy_render(&families);
    let old = legacy();
    let mut best = [f64::MAX; 4];
    for _ in 0..BATCHES {
        let times = [batch(&reads), batch(&prom), batch(&om), batch(&legacy)];
        for (b, t) in best.iter_mut().zip(times) {
            *b = b.min(t);
        }
    }
    let [reads, full_prom, full_om, legacy] = best;
    let om = om_text;

    println!(
        "/metrics: {} families, {samples} samples; fastest of {BATCHES} batches of {ROUNDS}",
        families.len()
    );
    println!(
        "  reads only (managers, /proc)         {:>9.1} µs",
        reads / 1e3
    );
    println!(
        "  new, Prometheus 0.0.4: full          {:>9.1} µs  {:>7} bytes  (encode ≈ {:.1} µs)",
        full_prom / 1e3,
        text.len(),
        (full_prom - reads) / 1e3
    );
    println!(
        "  new, OpenMetrics 1.0:  full          {:>9.1} µs  {:>7} bytes  (encode ≈ {:.1} µs)",
        full_om / 1e3,
        om.len(),
        (full_om - reads) / 1e3
    );
    println!(
        "  before: hand-written writer, encode  {:>9.1} µs  {:>7} bytes  (same samples)",
        legacy / 1e3,
        old.len()
    );
}
