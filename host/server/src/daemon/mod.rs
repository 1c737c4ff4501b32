//! The composition root: builds every manager from a `Config`, wires them together, runs
//! the background tasks, and serves the HTTP API until a shutdown signal, draining
//! in-flight requests within the configured timeout.
//!
//! Library users embed [`Host`] directly; the `rmhost run` binary is a thin wrapper.

mod checks;
mod policies;
mod serve;
mod sink;
mod tasks;

pub use policies::{PolicySources, runtime_options};
pub use serve::{check_listen, serve, shutdown_signal};
pub use sink::HostSink;

use rmhost_core::config::Config;
use rmhost_core::events::EventBus;
use rmhost_core::memory::{CacheRegistry, LeakConfig, LeakDetector, MemoryMonitor, PressureConfig};
use rmhost_core::policy::{PressureLevel, ResourceKind};
use rmhost_core::resources::{AllocationFilter, GlobalLimits, ManagerOptions, ResourceManager};
use rmhost_core::telemetry::Telemetry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Auth is off and the listen address is not loopback.
    #[error(
        "refusing to listen on {addr} without auth: set [auth] admin_token_sha256 (see `rmhost config hash-token`) or listen on a loopback address such as 127.0.0.1:7070"
    )]
    InsecureListen {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A tenant's quota in the config is invalid.
    #[error("config tenants.{tenant}: {reason}")]
    Tenant {
        /// The tenant.
        tenant: String,
        /// Why.
        reason: String,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Telemetry could not start.
    #[error("telemetry: {0}")]
    Telemetry(rmhost_core::telemetry::TelemetryError),
    /// The pools could not be set up.
    #[error("pools: {0}")]
    Pools(rmhost_core::pools::PoolError),
    /// A policy could not be loaded or bound.
    #[error("policy {file}: {reason}")]
    Policy {
        /// The file (or config key).
        file: String,
        /// Why.
        reason: String,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Every manager of a running host.
#[derive(Debug)]
pub struct Host {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The event bus.
    pub events: EventBus,
    /// System and process telemetry.
    pub telemetry: Telemetry,
    /// The allocation ledger.
    pub resources: ResourceManager,
    /// Named caches (typed and accounting-only).
    pub caches: Arc<CacheRegistry>,
    /// Memory pressure levels and responses.
    pub memory: Arc<MemoryMonitor>,
    /// Leak heuristics over RSS, caches, tenants, allocations and policy instances.
    pub leaks: Arc<LeakDetector>,
    /// The Wasm policy runtime: loaded policies, bindings, resolvers.
    pub runtime: rmhost_runtime::PolicyRuntime,
    /// PostgreSQL and Redis pools (none unless configured).
    pub pools: rmhost_core::pools::PoolManager,
    /// Recent linear-memory sizes per policy, for the "only grows" leak heuristic.
    instance_history: parking_lot::Mutex<std::collections::BTreeMap<String, Vec<u64>>>,
    ready: AtomicBool,
    started: Instant,
}

/// Global limits from the config's `[limits]`: CPU as a share of every core, in millicores.
pub fn global_limits(config: &Config) -> GlobalLimits {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    GlobalLimits {
        memory_bytes: config.memory_budget_bytes(),
        cpu_millicores: cores * 10 * config.limits.max_cpu_percentage as u64,
        connections: config.limits.max_connections as u64,
        requests_per_minute: config.limits.max_requests_per_minute as u64,
        file_handles: config.limits.max_file_handles,
    }
}

/// The pools of `[pools.*]`, plus the pools named `main` that the seed's `DATABASE_URL`
/// and `REDIS_URL` (with `connection_pools.*`) define. Pool health runs on the monitoring
/// health interval.
fn build_pools(
    config: &Config,
    events: EventBus,
) -> Result<rmhost_core::pools::PoolManager, HostError> {
    let mut ps = config.pools.clone();
    ps.health_check_interval_ms = config.monitoring.health_check_interval_ms;
    let db = &config.connection_pools.database;
    if let Some(url) = &db.url {
        ps.apply_seed_postgres(
            url,
            db.min,
            db.max,
            db.acquire_timeout_ms,
            db.idle_timeout_ms,
        );
    }
    let r = &config.connection_pools.redis;
    if let Some(url) = &r.url {
        ps.apply_seed_redis(url, r.min, r.max, r.acquire_timeout_ms);
    }
    rmhost_core::pools::PoolManager::new(&ps, events).map_err(HostError::Pools)
}

impl Host {
    /// Builds every manager from `config` with real telemetry.
    pub fn new(config: Config) -> Result<Arc<Host>, HostError> {
        let telemetry = Telemetry::sysinfo().map_err(HostError::Telemetry)?;
        Self::with_telemetry(config, telemetry)
    }

    /// Builds every manager with the given telemetry (tests pass a fake source).
    pub fn with_telemetry(config: Config, telemetry: Telemetry) -> Result<Arc<Host>, HostError> {
        let events = EventBus::new();
        let resources = ResourceManager::new(
            ManagerOptions {
                limits: global_limits(&config),
                requests_per_minute: config.limits.max_requests_per_minute,
            },
            events.clone(),
        );
        for (tenant, q) in &config.tenants {
            for kind in ResourceKind::ALL {
                if let Some(limit) = q.limit(kind) {
                    resources
                        .set_quota(tenant, kind, Some(limit))
                        .map_err(|e| HostError::Tenant {
                            tenant: tenant.clone(),
                            reason: e.to_string(),
                        })?;
                }
            }
            if let Some(rpm) = q.requests_per_minute {
                resources.rate_limits().set_override(tenant, Some(rpm));
            }
        }
        let runtime = policies::build_runtime(&config, events.clone())?;
        // Managers decide through the runtime's resolvers: the bound Wasm policy per
        // tenant, the native default when none is bound or it faults.
        resources.set_quota_policy(runtime.quota_policy());
        let pools = build_pools(&config, events.clone())?;
        pools.set_priority_policy(runtime.priority_policy());
        let caches = Arc::new(CacheRegistry::new(Some(events.clone())));
        let sink = Arc::new(HostSink::new(
            caches.clone(),
            resources.clone(),
            events.clone(),
        ));
        {
            let (p1, p2) = (pools.clone(), pools.clone());
            sink.register_pools(
                Box::new(move |(name, n): (String, u32)| {
                    p1.shrink(&name, n)
                        .map(|closed| format!("closed {closed} idle connections of {name}"))
                        .map_err(|e| e.to_string())
                }),
                Arc::new(move || p2.stats()),
            );
        }
        let r = resources.clone();
        let memory = Arc::new(MemoryMonitor::new(
            PressureConfig {
                warning_percent: config.memory.warning_threshold_percent as f64,
                critical_percent: config.memory.critical_threshold_percent as f64,
                max_memory_bytes: Some(config.memory_budget_bytes()),
                ..PressureConfig::default()
            },
            telemetry.clone(),
            caches.clone(),
            move || r.global_used(ResourceKind::Memory),
            runtime.pressure_policy(),
            sink,
            Some(events.clone()),
        ));
        memory.set_respond_interval(Duration::from_millis(
            config.monitoring.health_check_interval_ms,
        ));
        let m = memory.clone();
        let t = telemetry.clone();
        resources.set_system_usage(move || t.system_usage(m.level()));
        let leaks = Arc::new(LeakDetector::new(
            LeakConfig::default(),
            Some(events.clone()),
        ));
        Ok(Arc::new(Host {
            config: Arc::new(config),
            events,
            telemetry,
            resources,
            caches,
            memory,
            leaks,
            runtime,
            pools,
            instance_history: Default::default(),
            ready: AtomicBool::new(false),
            started: Instant::now(),
        }))
    }

    /// Whether the host serves requests (false before start and while shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready
            .store(ready, std::sync::atomic::Ordering::Relaxed);
    }

    /// Time since the host was built.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Granted memory per tenant (for snapshots).
    pub fn tenant_memory(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for a in self.resources.allocations(&AllocationFilter {
            kind: Some(ResourceKind::Memory),
            ..Default::default()
        }) {
            *out.entry(a.tenant).or_default() += a.amount;
        }
        out
    }

    /// The current pressure level.
    pub fn pressure(&self) -> PressureLevel {
        self.memory.level()
    }
}
