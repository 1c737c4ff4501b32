//! A load generator for a local rmhost daemon, so `rmhost monitor` shows a live system.
//!
//! ```sh
//! cargo run -p rmhost --example load -- --addr 127.0.0.1:7070 --tenants 3 --duration 30s
//! ```
//!
//! Per tenant (`load-1`, `load-2`, ...), one task: allocates and releases memory, CPU and
//! connections with random sizes (some as leases it renews, a few left to lapse so the
//! orphan reclaimer shows up), checks its rate limit, and drives an accounting cache
//! `demo-<tenant>`: reads on Zipf-distributed keys, and a write of a random size on every
//! miss. Bounded in time (`--duration`) and in requests (`--max-requests`); it releases
//! what it holds and prints a summary at the end.
//!
//! Only loopback targets are accepted: this is a tool for a daemon on your own machine.

use clap::Parser;
use reqwest::StatusCode;
use rmhost_server::wire::Allocation;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Load for a local rmhost daemon.
#[derive(Debug, Parser)]
struct Args {
    /// The daemon's address (a loopback address: 127.0.0.1:PORT, [::1]:PORT, localhost:PORT).
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: String,
    /// Bearer token (an admin token: the load spans tenants).
    #[arg(long, env = "RMHOST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Number of tenants, each driven by its own task (1-64).
    #[arg(long, default_value_t = 3)]
    tenants: usize,
    /// How long to run: `500ms`, `30s`, `2m` (at most 1h).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Operations per second per tenant (1-1000).
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = 200_000)]
    max_requests: u64,
    /// Keys per cache (drawn with a Zipf distribution).
    #[arg(long, default_value_t = 2000)]
    keys: usize,
    /// Zipf exponent of the key popularity.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Random seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

/// `500ms`, `30s`, `2m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (500ms, 30s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{s:?}: must be more than 0 and at most 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The base URL for `addr`, refusing anything that is not a loopback address. Names other
/// than `localhost` are refused rather than resolved, and the URL carries the IP, so what
/// is checked is what is contacted.
fn loopback_base(addr: &str) -> Result<String, String> {
    let hostport = addr
        .strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    if hostport.contains("://") || hostport.contains('/') {
        return Err(format!("--addr {addr:?}: give host:port (plain http)"));
    }
    let sock: SocketAddr = match hostport.parse() {
        Ok(s) => s,
        Err(_) => match hostport.rsplit_once(':') {
            Some(("localhost", port)) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port.parse()
                    .map_err(|_| format!("--addr {addr:?}: bad port"))?,
            ),
            _ => {
                return Err(format!(
                    "--addr {addr:?}: give an IP address and port (or localhost:PORT)"
                ));
            }
        },
    };
    if !sock.ip().is_loopback() {
        return Err(format!(
            "--addr {addr:?}: refusing a non-loopback target ({}); this tool only loads a daemon on this machine",
            sock.ip()
        ));
    }
    Ok(format!("http://{sock}"))
}

/// xorshift64*: small, seedable, good enough for load shapes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Zipf sampling by inverse CDF over `n` ranks.
#[derive(Debug)]
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, alpha: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(alpha);
            cdf.push(sum);
        }
        cdf.iter_mut().for_each(|c| *c /= sum);
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    granted: AtomicU64,
    denied: AtomicU64,
    released: AtomicU64,
    renewed: AtomicU64,
    lapsed: AtomicU64,
    rate_allowed: AtomicU64,
    too_many: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    puts: AtomicU64,
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What one tenant's task shares with the others.
#[derive(Debug)]
struct Ctx {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    stats: Stats,
    max_requests: u64,
    deadline: Instant,
    zipf: Zipf,
}

impl Ctx {
    /// Sends one request unless the budget or the time is spent; answers the status and
    /// body, or `None` when it did not send (or the transport failed).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        self.send(method, path, body, false).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        cleanup: bool,
    ) -> Option<(StatusCode, Value)> {
        if !cleanup
            && (Instant::now() >= self.deadline
                || self.stats.requests.load(Ordering::Relaxed) >= self.max_requests)
        {
            return None;
        }
        add(&self.stats.requests);
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        match r.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    add(&self.stats.too_many);
                }
                let v = resp.json::<Value>().await.unwrap_or(Value::Null);
                Some((status, v))
            }
            Err(_) => {
                add(&self.stats.errors);
                None
            }
        }
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline
            && self.stats.requests.load(Ordering::Relaxed) < self.max_requests
    }
}

/// An allocation this task holds.
#[derive(Debug)]
struct Held {
    id: u64,
    /// `(ttl, next renewal or lapse time, renew?)` for leases.
    lease: Option<(Duration, Instant, bool)>,
}

async fn tenant_task(ctx: Arc<Ctx>, tenant: String, seed: u64, period: Duration) {
    use reqwest::Method;
    let mut rng = Rng::new(seed);
    let cache = format!("demo-{tenant}");
    // 1 MiB: small enough that the Zipf tail causes evictions within seconds. A cache
    // left by an earlier run with another capacity answers 409; it is used as it is.
    let _ = ctx
        .call(
            Method::PUT,
            &format!("/v1/caches/{cache}"),
            Some(json!({"capacity_bytes": 1u64 << 20, "tenant": tenant})),
        )
        .await;
    let mut held: Vec<Held> = Vec::new();
    while ctx.running() {
        let now = Instant::now();
        // Leases: renew the ones we keep at half their ttl; forget the ones left to lapse
        // once the reclaimer has had them.
        let mut i = 0;
        while i < held.len() {
            match held[i].lease {
                Some((ttl, at, true)) if at <= now => {
                    let id = held[i].id;
                    match ctx
                        .call(Method::POST, &format!("/v1/allocations/{id}/renew"), None)
                        .await
                    {
                        Some((s, _)) if s.is_success() => {
                            add(&ctx.stats.renewed);
                            held[i].lease = Some((ttl, now + ttl / 2, true));
                            i += 1;
                        }
                        _ => {
                            held.swap_remove(i);
                        }
                    }
                }
                Some((_, at, false)) if at <= now => {
                    add(&ctx.stats.lapsed);
                    held.swap_remove(i);
                }
                _ => i += 1,
            }
        }
        let r = rng.unit();
        if r < 0.25 || held.len() > 24 {
            if held.len() > 24 {
                let h = held.remove(0);
                release(&ctx, &h).await;
            }
            let (kind, amount) = match rng.range(0, 2) {
                0 => ("memory", rng.range(64, 8192) * 1024),
                1 => ("cpu", rng.range(50, 500)),
                _ => ("connections", rng.range(1, 4)),
            };
            let ttl = (rng.unit() < 0.35).then(|| Duration::from_millis(rng.range(3000, 8000)));
            let mut body = json!({"tenant": tenant, "kind": kind, "amount": amount,
                "owner": "load", "priority": rng.range(0, 5)});
            if let Some(t) = ttl {
                body["ttl_ms"] = json!(t.as_millis() as u64);
            }
            match ctx.call(Method::POST, "/v1/allocations", Some(body)).await {
                Some((s, v)) if s.is_success() => {
                    add(&ctx.stats.granted);
                    if let Ok(Allocation { id, .. }) = Allocation::deserialize(&v) {
                        // One lease in five is left to lapse, so reclaims show up.
                        let lease = ttl.map(|t| {
                            if rng.unit() < 0.2 {
                                (t, now + t + Duration::from_millis(1500), false)
                            } else {
                                (t, now + t / 2, true)
                            }
                        });
                        held.push(Held { id, lease });
                    }
                }
                Some((StatusCode::CONFLICT, _)) => add(&ctx.stats.denied),
                Some((s, _)) if s != StatusCode::TOO_MANY_REQUESTS => add(&ctx.stats.errors),
                _ => {}
            }
        } else if r < 0.35 {
            if !held.is_empty() {
                let h = held.swap_remove(rng.range(0, held.len() as u64 - 1) as usize);
                release(&ctx, &h).await;
            }
        } else if r < 0.55 {
            match ctx
                .call(
                    Method::POST,
                    "/v1/ratelimit/check",
                    // Costs of 1-20 outrun the default limit (1000/min, burst 1000) within ~15 s,
                    // so 429s and RateLimited events show up.
                    Some(json!({"tenant": tenant, "cost": rng.range(1, 20)})),
                )
                .await
            {
                Some((s, _)) if s.is_success() => add(&ctx.stats.rate_allowed),
                Some((StatusCode::TOO_MANY_REQUESTS, _)) | None => {}
                Some(_) => add(&ctx.stats.errors),
            }
        } else {
            let key = format!("k{}", ctx.zipf.sample(&mut rng));
            let path = format!("/v1/caches/{cache}/entries/{key}");
            match ctx.call(Method::GET, &path, None).await {
                Some((s, _)) if s.is_success() => add(&ctx.stats.hits),
                Some((StatusCode::NOT_FOUND, _)) => {
                    add(&ctx.stats.misses);
                    let size = rng.range(512, 16 * 1024);
                    if let Some((s, _)) = ctx
                        .call(Method::PUT, &path, Some(json!({"size": size})))
                        .await
                    {
                        if s.is_success() {
                            add(&ctx.stats.puts);
                        } else {
                            add(&ctx.stats.errors);
                        }
                    }
                }
                Some((s, _)) if s != StatusCode::TOO_MANY_REQUESTS => add(&ctx.stats.errors),
                _ => {}
            }
        }
        // Jitter of +-50% around the period, so tenants do not march in step.
        let jitter = period.as_micros() as u64;
        tokio::time::sleep(Duration::from_micros(rng.range(jitter / 2, jitter * 3 / 2))).await;
    }
    // Hand back what is still held (leases left to lapse included).
    for h in &held {
        release(&ctx, h).await;
    }
}

async fn release(ctx: &Ctx, h: &Held) {
    if let Some((s, _)) = ctx
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/allocations/{}", h.id),
            None,
            true,
        )
        .await
        && s.is_success()
    {
        add(&ctx.stats.released);
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let base = match loopback_base(&args.addr) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    if !(1..=64).contains(&args.tenants) || !(1..=1000).contains(&args.rate) || args.keys == 0 {
        eprintln!("load: --tenants must be 1-64, --rate 1-1000 and --keys at least 1");
        std::process::exit(2);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42)
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    // Fail fast, with a clear message, when nothing listens.
    if let Err(e) = http.get(format!("{base}/health")).send().await {
        eprintln!("load: cannot reach the daemon at {base}: {e} (is `rmhost run` running?)");
        std::process::exit(3);
    }
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        http,
        base: base.clone(),
        token: args.token.clone(),
        stats: Stats::default(),
        max_requests: args.max_requests,
        deadline: start + args.duration,
        zipf: Zipf::new(args.keys, args.zipf),
    });
    eprintln!(
        "load: {} tenants for {:.1} s against {base} (seed {seed})",
        args.tenants,
        args.duration.as_secs_f64()
    );
    let period = Duration::from_micros(1_000_000 / args.rate);
    let tasks: Vec<_> = (1..=args.tenants)
        .map(|i| {
            tokio::spawn(tenant_task(
                ctx.clone(),
                format!("load-{i}"),
                seed.wrapping_add(i as u64 * 0x9e37_79b9),
                period,
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let s = &ctx.stats;
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let lookups = g(&s.hits) + g(&s.misses);
    println!(
        "requests      {} in {secs:.1} s ({:.1}/s), {} errors",
        g(&s.requests),
        g(&s.requests) as f64 / secs,
        g(&s.errors)
    );
    println!(
        "allocations   {} granted, {} denied, {} released, {} renewals, {} leases left to lapse",
        g(&s.granted),
        g(&s.denied),
        g(&s.released),
        g(&s.renewed),
        g(&s.lapsed)
    );
    println!(
        "rate limits   {} allowed, {} answered 429",
        g(&s.rate_allowed),
        g(&s.too_many)
    );
    println!(
        "cache         {} hits, {} misses, hit ratio {:.1}%, {} puts",
        g(&s.hits),
        g(&s.misses),
        if lookups == 0 {
            0.0
        } else {
            g(&s.hits) as f64 * 100.0 / lookups as f64
        },
        g(&s.puts)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_targets() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("2d").is_err() && parse_duration("0s").is_err());
        assert_eq!(
            loopback_base("127.0.0.1:7070").unwrap(),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            loopback_base("localhost:7071").unwrap(),
            "http://127.0.0.1:7071"
        );
        assert_eq!(loopback_base("[::1]:7070").unwrap(), "http://[::1]:7070");
        assert!(loopback_base("10.0.0.1:7070").is_err());
        assert!(loopback_base("example.com:80").is_err());
        assert!(loopback_base("https://127.0.0.1:7070").is_err());
    }
}
