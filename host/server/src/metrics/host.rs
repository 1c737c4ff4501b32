//! rmhost's own system, ledger and pool figures (`rmhost_*`), read from the managers at
//! each scrape. The names predate the `prometheus-client` move and are kept: dashboards
//! and alerts use them.

use super::emit::{self, counter, counters, gauge, gauges};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use rmhost_core::host::Host;
use rmhost_core::pools::{CircuitState, PoolMetrics};
use std::fmt;
use std::sync::Arc;

/// System, allocation-ledger, rate-limit and pool families.
#[derive(Debug)]
pub struct HostCollector {
    host: Arc<Host>,
}

impl HostCollector {
    /// Reads `host` at each scrape.
    pub fn new(host: Arc<Host>) -> Self {
        HostCollector { host }
    }
}

impl Collector for HostCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        system(&mut enc, &self.host)?;
        ledger(&mut enc, &self.host)?;
        pools(&mut enc, &self.host.pools.metrics())
    }
}

fn system(w: &mut DescriptorEncoder, host: &Host) -> fmt::Result {
    let u = host.telemetry.usage();
    let uptime = host.uptime().as_secs_f64();
    gauge(
        w,
        "uptime_seconds",
        "Seconds since the host started.",
        uptime,
    )?;
    let cpu = u.cpu.percentage / 100.0;
    gauge(w, "cpu_usage_ratio", "System-wide CPU use, 0-1.", cpu)?;
    let own = u.cpu.process_percentage / 100.0;
    let help = "CPU use of the rmhost process, in cores.";
    gauge(w, "process_cpu_usage_ratio", help, own)?;
    let load = u.cpu.load_average[0];
    gauge(w, "load_average_1m", "One-minute load average.", load)?;
    gauge(
        w,
        "memory_used_bytes",
        "System memory in use.",
        u.memory.used,
    )?;
    gauge(
        w,
        "memory_total_bytes",
        "System memory in all.",
        u.memory.total,
    )?;
    let help = "Resident set size of the rmhost process.";
    gauge(
        w,
        "process_resident_memory_bytes",
        help,
        u.memory.process_rss,
    )?;
    let help = "Connections counted as active.";
    gauge(w, "connections_active", help, u.connections.active)?;
    let help = "Requests over the last sliding minute.";
    gauge(w, "requests_per_minute", help, u.requests.per_minute)?;
    let help = "Connections closed at accept because [http] max_connections were open.";
    counter(w, "http_connections_refused", help, u.connections.refused)?;
    let help = "Connections closed at accept because [grpc] max_connections were open.";
    counter(
        w,
        "grpc_connections_refused",
        help,
        u.connections.grpc_refused,
    )?;
    let help = "File handles the process holds open.";
    gauge(w, "open_file_handles", help, u.file_handles.open)?;
    let limit = u.file_handles.limit.map_or(f64::NAN, |l| l as f64);
    gauge(
        w,
        "file_handle_limit",
        "The process's file-handle limit.",
        limit,
    )?;
    if let Some(limit) = u.memory.cgroup_limit {
        let help = "The cgroup's memory limit.";
        gauge(w, "cgroup_memory_limit_bytes", help, limit)?;
    }
    let mut psi = Vec::new();
    for (resource, p) in [
        ("cpu", &u.pressure.cpu),
        ("memory", &u.pressure.memory),
        ("io", &u.pressure.io),
    ] {
        if let Some(p) = p {
            psi.push((
                [("resource", resource), ("scope", "some")],
                p.some.avg10 / 100.0,
            ));
            if let Some(full) = &p.full {
                psi.push((
                    [("resource", resource), ("scope", "full")],
                    full.avg10 / 100.0,
                ));
            }
        }
    }
    let help = "Pressure stall information, share of the last 10 s stalled (0-1).";
    gauges(w, "pressure_avg10_ratio", help, psi)
}

fn ledger(w: &mut DescriptorEncoder, host: &Host) -> fmt::Result {
    let backends = host.state_backends();
    if !backends.is_empty() {
        let label =
            |b: &rmhost_core::host::BackendState| [("backend", b.backend), ("role", b.role)];
        gauges(
            w,
            "state_backend_up",
            "Whether a shared-state backend answered its last call (1) or not (0).",
            backends.iter().map(|b| (label(b), u32::from(b.up))),
        )?;
        gauges(
            w,
            "state_live_hosts",
            "Hosts with a current heartbeat on a shared-state backend.",
            backends.iter().map(|b| (label(b), b.live_hosts)),
        )?;
    }
    // A shared ledger that cannot answer shows as BackendDown, not as a scrape error.
    let ledger = host.resources.usage().unwrap_or_default();
    let kind = |k: &rmhost_core::resources::KindUsage| [("kind", k.kind.as_str())];
    gauges(
        w,
        "allocation_used",
        "Allocated amount per kind (bytes, millicores, connections, requests/min, file handles).",
        ledger.global.iter().map(|k| (kind(k), k.used)),
    )?;
    gauges(
        w,
        "allocation_limit",
        "Global limit per kind, in the kind's unit.",
        ledger
            .global
            .iter()
            .map(|k| (kind(k), k.limit.unwrap_or(0))),
    )?;
    gauges(
        w,
        "allocations",
        "Live allocations per kind.",
        ledger.global.iter().map(|k| (kind(k), k.allocations)),
    )?;
    let tenant_kinds = || {
        ledger
            .tenants
            .iter()
            .flat_map(|t| t.kinds.iter().map(move |k| (t.tenant.as_str(), k)))
    };
    gauges(
        w,
        "tenant_allocation_used",
        "Allocated amount per tenant and kind.",
        tenant_kinds()
            .filter(|(_, k)| k.allocations > 0)
            .map(|(t, k)| ([("tenant", t), ("kind", k.kind.as_str())], k.used)),
    )?;
    gauges(
        w,
        "tenant_quota_limit",
        "Quota per tenant and kind.",
        tenant_kinds()
            .filter_map(|(t, k)| Some(([("tenant", t), ("kind", k.kind.as_str())], k.limit?))),
    )?;
    let st = host.resources.stats();
    counter(
        w,
        "allocations_granted",
        "Allocations granted.",
        st.allocated,
    )?;
    counters(
        w,
        "allocations_ended",
        "Allocations ended, by reason.",
        [
            ("released", st.released),
            ("preempted", st.preempted),
            ("reclaimed", st.reclaimed),
        ]
        .map(|(r, n)| ([("reason", r)], n)),
    )?;
    counters(
        w,
        "allocation_denials",
        "Allocation requests refused, by reason.",
        [
            "quota_exceeded",
            "limit_exceeded",
            "shed",
            "invalid_request",
        ]
        .map(|r| ([("reason", r)], st.denied.get(r).copied().unwrap_or(0))),
    )?;
    counters(
        w,
        "ratelimit_checks",
        "Rate-limit checks, by result.",
        [
            ([("result", "allowed")], st.rate_allowed),
            ([("result", "limited")], st.rate_limited),
        ],
    )
}

/// A metric family read off each pool: name, help, getter.
type Family<T> = (&'static str, &'static str, fn(&PoolMetrics) -> T);

/// Pool gauges, counters and the acquire-latency histogram (seconds), labelled by pool.
fn pools(w: &mut DescriptorEncoder, pools: &[PoolMetrics]) -> fmt::Result {
    let label = |p: &PoolMetrics| [("pool", p.pool.clone()), ("backend", p.kind.clone())];
    let gauge_families: [Family<f64>; 6] = [
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
            |p| u8::from(p.circuit != CircuitState::Closed).into(),
        ),
    ];
    let counter_families: [Family<u64>; 9] = [
        ("pool_acquires", "Connections handed out.", |p| p.acquires),
        ("pool_timeouts", "Acquires that timed out.", |p| p.timeouts),
        (
            "pool_circuit_rejections",
            "Acquires refused by an open breaker.",
            |p| p.circuit_rejections,
        ),
        ("pool_created", "Connections opened.", |p| p.created),
        ("pool_create_failures", "Failed connection attempts.", |p| {
            p.create_failures
        }),
        ("pool_recycled", "Connections recycled on return.", |p| {
            p.recycled
        }),
        (
            "pool_retired_lifetime",
            "Connections retired past their max lifetime.",
            |p| p.retired_lifetime,
        ),
        ("pool_health_checks", "Background health pings.", |p| {
            p.health_checks
        }),
        (
            "pool_failed_health_checks",
            "Failed background health pings.",
            |p| p.failed_health_checks,
        ),
    ];
    for (name, help, f) in gauge_families {
        gauges(w, name, help, pools.iter().map(|p| (label(p), f(p))))?;
    }
    for (name, help, f) in counter_families {
        counters(w, name, help, pools.iter().map(|p| (label(p), f(p))))?;
    }
    counters(
        w,
        "pool_wait_seconds",
        "Time callers spent waiting in the queue.",
        pools.iter().map(|p| (label(p), p.wait_ms_total / 1000.0)),
    )?;
    emit::histograms(
        w,
        "pool_acquire_duration_seconds",
        "Time to acquire a connection.",
        pools.iter().map(|p| {
            let h = &p.acquire_latency;
            let hist = emit::Histogram {
                bounds: h.bounds_us.iter().map(|b| *b as f64 / 1e6).collect(),
                cumulative: h.cumulative_counts.clone(),
                sum: h.sum_us as f64 / 1e6,
            };
            (label(p), hist)
        }),
    )
}
