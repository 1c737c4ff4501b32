//! The composition of the core managers, in dependency order: a [`HostBuilder`] passes
//! each manager what it needs at construction, so nothing is wired afterwards.
//!
//! ```text
//! events, telemetry, pressure gauge      (no dependencies)
//!   -> policies (a PolicyProvider: the Wasm runtime, or the native defaults)
//!   -> resources  (quota resolver, system usage = telemetry + gauge)
//!   -> pools      (priority resolver)
//!   -> caches
//!   -> sink       (caches, resources, pools)
//!   -> memory monitor (telemetry, caches, granted memory, pressure resolver, sink, gauge)
//!   -> leak detector
//! ```
//! The pressure level is the one value read "backwards" (resources show it to quota
//! policies, the monitor computes it later); the [`PressureGauge`] is made first and shared,
//! so that needs no late wiring either.
//!
//! An embedder builds a [`Host`] and runs [`Host::spawn_background`]; the daemon
//! (`rmhost-server`) adds the HTTP API on top.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Host`], [`HostBuilder`], [`HostError`] |
//! | `policies.rs` | [`PolicyProvider`] and the native [`NativePolicies`] |
//! | `sink.rs` | [`HostSink`]: carrying out pressure actions |
//! | `tasks.rs` | background tasks: sampling, reaper, limit watch, monitor, leak scan |
//! | `checks.rs` | [`Host::health`] |
//! | `catalog.rs` | caches and bindings kept on the shared ledger, other hosts' changes |
//! | `tenancy.rs` | [`Host::declare_cache`]: the per-tenant bounds of a cache |

mod catalog;
mod checks;
mod policies;
mod sink;
mod state;
mod tasks;
mod tenancy;

pub use catalog::{CatalogRestore, binding};
pub use policies::{NativePolicies, PolicyLookupError, PolicyProvider};
pub use sink::HostSink;
pub use state::{BackendState, RateCheckError, host_id};

use crate::config::Config;
use crate::events::EventBus;
use crate::memory::{
    CacheRegistry, InstanceMemory, LeakConfig, LeakDetector, MemoryMonitor, MonitorParts,
    PressureConfig, PressureGauge,
};
use crate::policy::{EvictionPolicy, PressureLevel, ResourceKind};
use crate::pools::PoolManager;
use crate::resources::{
    AllocationFilter, GlobalLimits, ManagerOptions, ManagerParts, ResourceManager,
};
use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a host could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A tenant's quota in the config is invalid.
    #[error("config tenants.{tenant}: {source}")]
    Tenant {
        /// The tenant.
        tenant: String,
        /// What the ledger said.
        source: crate::resources::ResourceError,
    },
    /// Telemetry could not start.
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The pools could not be set up.
    #[error("pools: {0}")]
    Pools(#[from] crate::pools::PoolError),
    /// The shared-state backends could not be set up.
    #[error("state: {0}")]
    State(String),
}

/// Every core manager of a running host.
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
    /// PostgreSQL and Redis pools (none unless configured).
    pub pools: PoolManager,
    /// Where eviction instances and the other deciders come from.
    pub policies: Arc<dyn PolicyProvider>,
    ready: AtomicBool,
    started: Instant,
    /// Serialises cache declarations (see `declare_cache`).
    declaring: parking_lot::Mutex<()>,
    /// This host's id among the hosts sharing state.
    pub host_id: String,
    shared_rate: Option<state::Shared>,
}

/// Builds a [`Host`]: `Host::builder(config)`, optionally `.telemetry(..)`, `.events(..)`
/// and `.policies(..)`, then `.build()`.
#[derive(Debug)]
pub struct HostBuilder {
    config: Config,
    telemetry: Option<Telemetry>,
    events: Option<EventBus>,
    policies: Option<Arc<dyn PolicyProvider>>,
}

impl HostBuilder {
    /// Real telemetry (sysinfo, `/proc`) unless given; tests pass a fake source.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// The event bus to publish on (a fresh one unless given). Pass the bus the policy
    /// runtime was built with, so its events reach the same subscribers.
    pub fn events(mut self, events: EventBus) -> Self {
        self.events = Some(events);
        self
    }

    /// The deciders ([`NativePolicies`] unless given).
    pub fn policies(mut self, policies: Arc<dyn PolicyProvider>) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Builds every manager, in dependency order.
    pub fn build(self) -> Result<Arc<Host>, HostError> {
        let config = self.config;
        let telemetry = match self.telemetry {
            Some(t) => t,
            None => Telemetry::sysinfo()?,
        };
        let events = self.events.unwrap_or_default();
        let policies = self.policies.unwrap_or_else(|| Arc::new(NativePolicies));
        let gauge = PressureGauge::new();

        let usage = {
            let (t, g) = (telemetry.clone(), gauge.clone());
            Arc::new(move || t.system_usage(g.get()))
        };
        let caches = Arc::new(CacheRegistry::new(Some(events.clone())));
        let host_id = host_id(&config);
        let shared_ledger = state::shared_ledger(&config, &host_id, &events)?;
        let resources = ResourceManager::with_parts(
            ManagerOptions {
                limits: global_limits(&config),
                requests_per_minute: config
                    .tenant_defaults
                    .requests_per_minute
                    .unwrap_or(config.limits.max_requests_per_minute),
                tenant_defaults: config.tenant_defaults.clone(),
            },
            events.clone(),
            ManagerParts {
                quota_policy: policies.quota(),
                system_usage: usage,
                held_elsewhere: caches.clone(),
                shared_ledger,
                ..ManagerParts::default()
            },
        );
        apply_tenants(&config, &resources)?;
        // What the shared ledger holds (quotas and rate overrides set through any host's
        // API) wins over the config's seeds.
        resources
            .load_shared()
            .map_err(|e| HostError::State(e.to_string()))?;
        let pools = PoolManager::with_priority(
            &pool_settings(&config),
            events.clone(),
            policies.priority(),
        )?;
        let sink = Arc::new(HostSink::new(
            caches.clone(),
            resources.clone(),
            pools.clone(),
            events.clone(),
        ));
        let granted = resources.clone();
        let memory = Arc::new(MemoryMonitor::new(
            PressureConfig {
                warning_percent: config.memory.warning_threshold_percent as f64,
                critical_percent: config.memory.critical_threshold_percent as f64,
                max_memory_bytes: Some(config.memory_budget_bytes()),
                respond_interval_ms: config.monitoring.health_check_interval_ms,
                ..PressureConfig::default()
            },
            MonitorParts {
                telemetry: telemetry.clone(),
                caches: caches.clone(),
                allocation_bytes: Box::new(move || granted.global_used(ResourceKind::Memory)),
                policy: policies.pressure(),
                sink,
                events: Some(events.clone()),
                gauge,
            },
        ));
        let shared_rate = state::shared_limiter(&config, &host_id, &events)?;
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
            pools,
            policies,
            ready: AtomicBool::new(false),
            started: Instant::now(),
            declaring: parking_lot::Mutex::new(()),
            host_id,
            shared_rate,
        }))
    }
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

/// `[tenants.NAME]` quotas and rate limits. On a shared ledger the quotas seed it (what
/// the API set since is kept) and the rate limits are this host's defaults until
/// [`ResourceManager::load_shared`] reads the ledger's overrides.
fn apply_tenants(config: &Config, resources: &ResourceManager) -> Result<(), HostError> {
    for (tenant, q) in &config.tenants {
        for kind in ResourceKind::ALL {
            if let Some(limit) = q.limit(kind) {
                resources
                    .seed_quota(tenant, kind, limit)
                    .map_err(|source| HostError::Tenant {
                        tenant: tenant.clone(),
                        source,
                    })?;
            }
        }
        if let Some(rpm) = q.requests_per_minute {
            resources.rate_limits().set_override(tenant, Some(rpm));
        }
    }
    Ok(())
}

/// The pools of `[pools.*]`, plus the pools named `main` that the original system's
/// `DATABASE_URL` and `REDIS_URL` (with `connection_pools.*`) define. Pool health runs on
/// the monitoring health interval.
fn pool_settings(config: &Config) -> crate::pools::PoolsSettings {
    let mut ps = config.pools.clone();
    ps.health_check_interval_ms = config.monitoring.health_check_interval_ms;
    let db = &config.connection_pools.database;
    if let Some(url) = &db.url {
        ps.apply_main_postgres(
            url,
            db.min,
            db.max,
            db.acquire_timeout_ms,
            db.idle_timeout_ms,
        );
    }
    let r = &config.connection_pools.redis;
    if let Some(url) = &r.url {
        ps.apply_main_redis(url, r.min, r.max, r.acquire_timeout_ms);
    }
    ps
}

impl Host {
    /// A builder over `config`.
    pub fn builder(config: Config) -> HostBuilder {
        HostBuilder {
            config,
            telemetry: None,
            events: None,
            policies: None,
        }
    }

    /// Whether the host serves requests (false before start and while shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the host ready (serving) or not (starting, draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Time since the host was built.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Granted memory per tenant (for snapshots).
    pub fn tenant_memory(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        // Best effort: a shared ledger that cannot answer leaves the snapshot without it.
        for a in self
            .resources
            .allocations(&AllocationFilter {
                kind: Some(ResourceKind::Memory),
                ..Default::default()
            })
            .unwrap_or_default()
        {
            *out.entry(a.tenant).or_default() += a.amount;
        }
        out
    }

    /// The current pressure level.
    pub fn pressure(&self) -> PressureLevel {
        self.memory.level()
    }

    /// A fresh eviction policy instance for a cache of `tenant` (see
    /// [`PolicyProvider::eviction`]).
    pub fn eviction_policy(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Box<dyn EvictionPolicy>, PolicyLookupError> {
        self.policies.eviction(tenant, name)
    }

    /// Linear memory of every policy instance.
    pub fn policy_instance_memory(&self) -> Vec<InstanceMemory> {
        self.policies.instance_memory()
    }
}
