//! `GET /metrics`: the Prometheus text format (version 0.0.4), every name prefixed
//! `rmhost_`, base units in names (bytes, seconds, ratios), HELP and TYPE for each family.

use super::{ApiError, AppState, Caller};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;

/// Builds one exposition, a family at a time.
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
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP rmhost_{name} {help}");
        let _ = writeln!(self.out, "# TYPE rmhost_{name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = write!(self.out, "rmhost_{name}");
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

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The text.
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

/// The handler. With tokens configured it needs the admin token (the figures name every
/// tenant and cache), unless `[auth] metrics_public = true`.
pub async fn metrics(
    State(s): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    if !s.host.config.auth.metrics_public {
        caller?.admin()?;
    }
    let host = s.host.clone();
    let text = tokio::task::spawn_blocking(move || render(&host))
        .await
        .unwrap_or_default();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

fn render(host: &rmhost_core::host::Host) -> String {
    let u = host.telemetry.usage();
    let mut w = MetricsWriter::default();
    w.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the host started.",
        host.uptime().as_secs_f64(),
    )
    .single(
        "cpu_usage_ratio",
        "gauge",
        "System-wide CPU use, 0-1.",
        u.cpu.percentage / 100.0,
    )
    .single(
        "process_cpu_usage_ratio",
        "gauge",
        "CPU use of the rmhost process, in cores.",
        u.cpu.process_percentage / 100.0,
    )
    .single(
        "load_average_1m",
        "gauge",
        "One-minute load average.",
        u.cpu.load_average[0],
    )
    .single(
        "memory_used_bytes",
        "gauge",
        "System memory in use.",
        u.memory.used as f64,
    )
    .single(
        "memory_total_bytes",
        "gauge",
        "System memory in all.",
        u.memory.total as f64,
    )
    .single(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size of the rmhost process.",
        u.memory.process_rss as f64,
    )
    .single(
        "connections_active",
        "gauge",
        "Connections counted as active.",
        u.connections.active as f64,
    )
    .single(
        "requests_per_minute",
        "gauge",
        "Requests over the last sliding minute.",
        u.requests.per_minute as f64,
    )
    .single(
        "http_requests_total",
        "counter",
        "HTTP requests served.",
        u.requests.total as f64,
    )
    .single(
        "http_connections_refused_total",
        "counter",
        "Connections closed at accept because [http] max_connections were open.",
        u.connections.refused as f64,
    )
    .single(
        "open_file_handles",
        "gauge",
        "File handles the process holds open.",
        u.file_handles.open as f64,
    )
    .single(
        "file_handle_limit",
        "gauge",
        "The process's file-handle limit.",
        u.file_handles.limit.map_or(f64::NAN, |l| l as f64),
    );
    if let Some(limit) = u.memory.cgroup_limit {
        w.single(
            "cgroup_memory_limit_bytes",
            "gauge",
            "The cgroup's memory limit.",
            limit as f64,
        );
    }
    w.family(
        "pressure_avg10_ratio",
        "gauge",
        "Pressure stall information, share of the last 10 s stalled (0-1).",
    );
    for (resource, psi) in [
        ("cpu", &u.pressure.cpu),
        ("memory", &u.pressure.memory),
        ("io", &u.pressure.io),
    ] {
        if let Some(p) = psi {
            w.sample(
                "pressure_avg10_ratio",
                &[("resource", resource), ("scope", "some")],
                p.some.avg10 / 100.0,
            );
            if let Some(full) = &p.full {
                w.sample(
                    "pressure_avg10_ratio",
                    &[("resource", resource), ("scope", "full")],
                    full.avg10 / 100.0,
                );
            }
        }
    }

    // A shared ledger that cannot answer shows as BackendDown, not as a scrape error.
    let ledger = host.resources.usage().unwrap_or_default();
    w.family(
        "allocation_used",
        "gauge",
        "Allocated amount per kind (bytes, millicores, connections, requests/min, file handles).",
    );
    for k in &ledger.global {
        w.sample(
            "allocation_used",
            &[("kind", k.kind.as_str())],
            k.used as f64,
        );
    }
    w.family(
        "allocation_limit",
        "gauge",
        "Global limit per kind, in the kind's unit.",
    );
    for k in &ledger.global {
        w.sample(
            "allocation_limit",
            &[("kind", k.kind.as_str())],
            k.limit.unwrap_or(0) as f64,
        );
    }
    w.family("allocations", "gauge", "Live allocations per kind.");
    for k in &ledger.global {
        w.sample(
            "allocations",
            &[("kind", k.kind.as_str())],
            k.allocations as f64,
        );
    }
    w.family(
        "tenant_allocation_used",
        "gauge",
        "Allocated amount per tenant and kind.",
    );
    for t in &ledger.tenants {
        for k in t.kinds.iter().filter(|k| k.allocations > 0) {
            w.sample(
                "tenant_allocation_used",
                &[("tenant", &t.tenant), ("kind", k.kind.as_str())],
                k.used as f64,
            );
        }
    }
    w.family("tenant_quota_limit", "gauge", "Quota per tenant and kind.");
    for t in &ledger.tenants {
        for k in &t.kinds {
            if let Some(l) = k.limit {
                w.sample(
                    "tenant_quota_limit",
                    &[("tenant", &t.tenant), ("kind", k.kind.as_str())],
                    l as f64,
                );
            }
        }
    }
    let st = host.resources.stats();
    w.single(
        "allocations_granted_total",
        "counter",
        "Allocations granted.",
        st.allocated as f64,
    );
    w.family(
        "allocations_ended_total",
        "counter",
        "Allocations ended, by reason.",
    );
    for (reason, n) in [
        ("released", st.released),
        ("preempted", st.preempted),
        ("reclaimed", st.reclaimed),
    ] {
        w.sample("allocations_ended_total", &[("reason", reason)], n as f64);
    }
    w.family(
        "allocation_denials_total",
        "counter",
        "Allocation requests refused, by reason.",
    );
    for reason in [
        "quota_exceeded",
        "limit_exceeded",
        "shed",
        "invalid_request",
    ] {
        let n = st.denied.get(reason).copied().unwrap_or(0);
        w.sample("allocation_denials_total", &[("reason", reason)], n as f64);
    }
    w.family(
        "ratelimit_checks_total",
        "counter",
        "Rate-limit checks, by result.",
    );
    w.sample(
        "ratelimit_checks_total",
        &[("result", "allowed")],
        st.rate_allowed as f64,
    );
    w.sample(
        "ratelimit_checks_total",
        &[("result", "limited")],
        st.rate_limited as f64,
    );
    pool_metrics(&mut w, &host.pools.metrics());
    cache_removals(&mut w, &host.caches.list());
    w.finish()
}

/// Entries that left each cache, by cause (`size`, `expired`, `trimmed`, `removed`,
/// `replaced`: the `cause` of `CacheEvicted` events).
fn cache_removals(w: &mut MetricsWriter, caches: &[rmhost_core::memory::CacheInfo]) {
    w.family(
        "cache_removals_total",
        "counter",
        "Cache entries that left (or whose value was replaced), by cache and cause.",
    );
    for c in caches {
        for (cause, n) in c.stats.removals.by_cause() {
            w.sample(
                "cache_removals_total",
                &[("cache", &c.name), ("tenant", &c.tenant), ("cause", cause)],
                n as f64,
            );
        }
    }
}

/// A metric family read off each pool: name, help, getter.
type Family<T> = (
    &'static str,
    &'static str,
    fn(&rmhost_core::pools::PoolMetrics) -> T,
);

/// Pool gauges, counters and the acquire-latency histogram (seconds), labelled by pool.
fn pool_metrics(w: &mut MetricsWriter, pools: &[rmhost_core::pools::PoolMetrics]) {
    let gauges: [Family<f64>; 6] = [
        ("pool_connections", "Open connections.", |p| p.size as f64),
        ("pool_connections_idle", "Idle connections.", |p| {
            p.idle as f64
        }),
        ("pool_connections_in_use", "Connections handed out.", |p| {
            p.in_use as f64
        }),
        ("pool_waiters", "Callers waiting for a connection.", |p| {
            p.waiting as f64
        }),
        ("pool_max_connections", "The pool's maximum size.", |p| {
            p.max as f64
        }),
        (
            "pool_circuit_open",
            "1 while the circuit breaker is open or half-open.",
            |p| (p.circuit != rmhost_core::pools::CircuitState::Closed) as u8 as f64,
        ),
    ];
    let counters: [Family<u64>; 9] = [
        ("pool_acquires_total", "Connections handed out.", |p| {
            p.acquires
        }),
        ("pool_timeouts_total", "Acquires that timed out.", |p| {
            p.timeouts
        }),
        (
            "pool_circuit_rejections_total",
            "Acquires refused by an open breaker.",
            |p| p.circuit_rejections,
        ),
        ("pool_created_total", "Connections opened.", |p| p.created),
        (
            "pool_create_failures_total",
            "Failed connection attempts.",
            |p| p.create_failures,
        ),
        (
            "pool_recycled_total",
            "Connections recycled on return.",
            |p| p.recycled,
        ),
        (
            "pool_retired_lifetime_total",
            "Connections retired past their max lifetime.",
            |p| p.retired_lifetime,
        ),
        (
            "pool_health_checks_total",
            "Background health pings.",
            |p| p.health_checks,
        ),
        (
            "pool_failed_health_checks_total",
            "Failed background health pings.",
            |p| p.failed_health_checks,
        ),
    ];
    for (name, help, f) in gauges {
        w.family(name, "gauge", help);
        for p in pools {
            w.sample(name, &[("pool", &p.pool), ("backend", &p.kind)], f(p));
        }
    }
    for (name, help, f) in counters {
        w.family(name, "counter", help);
        for p in pools {
            w.sample(
                name,
                &[("pool", &p.pool), ("backend", &p.kind)],
                f(p) as f64,
            );
        }
    }
    w.family(
        "pool_wait_seconds_total",
        "counter",
        "Time callers spent waiting in the queue.",
    );
    for p in pools {
        w.sample(
            "pool_wait_seconds_total",
            &[("pool", &p.pool), ("backend", &p.kind)],
            p.wait_ms_total / 1000.0,
        );
    }
    let name = "pool_acquire_duration_seconds";
    w.family(name, "histogram", "Time to acquire a connection.");
    for p in pools {
        let h = &p.acquire_latency;
        let labels = [("pool", p.pool.as_str()), ("backend", p.kind.as_str())];
        for (i, c) in h.cumulative_counts.iter().enumerate() {
            let le = h
                .bounds_us
                .get(i)
                .map_or("+Inf".to_string(), |b| format!("{}", *b as f64 / 1e6));
            w.sample(
                &format!("{name}_bucket"),
                &[labels[0], labels[1], ("le", le.as_str())],
                *c as f64,
            );
        }
        w.sample(&format!("{name}_sum"), &labels, h.sum_us as f64 / 1e6);
        w.sample(&format!("{name}_count"), &labels, h.count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_help_type_and_escaped_labels() {
        let mut w = MetricsWriter::default();
        w.family("x_total", "counter", "Things.")
            .sample("x_total", &[("t", "a\"b")], 3.0);
        w.single("y_ratio", "gauge", "Share.", 0.25);
        assert_eq!(
            w.finish(),
            "# HELP rmhost_x_total Things.\n# TYPE rmhost_x_total counter\nrmhost_x_total{t=\"a\\\"b\"} 3\n\
             # HELP rmhost_y_ratio Share.\n# TYPE rmhost_y_ratio gauge\nrmhost_y_ratio 0.25\n"
        );
    }

    #[test]
    fn cache_removals_are_counted_per_cache_and_cause() {
        use rmhost_core::memory::{CacheInfo, CacheStats, RemovalCounts};
        let info = CacheInfo {
            name: "a/sessions".into(),
            tenant: "a".into(),
            mode: "accounting".into(),
            stats: CacheStats {
                removals: RemovalCounts {
                    size: 7,
                    expired: 2,
                    trimmed: 1,
                    removed: 3,
                    replaced: 4,
                },
                ..CacheStats::default()
            },
        };
        let mut w = MetricsWriter::default();
        cache_removals(&mut w, &[info]);
        let text = w.finish();
        for (cause, n) in [
            ("size", 7),
            ("expired", 2),
            ("trimmed", 1),
            ("removed", 3),
            ("replaced", 4),
        ] {
            let line = format!(
                "rmhost_cache_removals_total{{cache=\"a/sessions\",tenant=\"a\",cause=\"{cause}\"}} {n}"
            );
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
