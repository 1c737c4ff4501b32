//! Configuration: `rmhost.toml`, the original system's environment variables and CLI flags, layered
//! into one typed [`Config`], with a record of where every value came from.
//!
//! Precedence, lowest first: defaults (the original system's `ResourceConfig`) < the file < the
//! environment < CLI overrides. [`load`] applies the layers and validates the result;
//! [`render`] prints it for `rmhost config print` with each key's source.
//!
//! "The original system" is the resource manager rmhost replaces: its configuration names
//! are kept so its deployments move over unchanged — the `ResourceConfig` fields (`limits`,
//! `connectionPools.database` / `.redis`, `memory`, as snake_case keys here) and its
//! environment variables (`MAX_MEMORY_MB`, `DB_POOL_MAX`, `REDIS_URL`, `METRICS_INTERVAL`,
//! ...; the full table is in `load.rs`).
//!
//! This module owns parsing and validation only. It reads no process state by itself: the
//! environment is passed in (see [`process_env`]) so tests never touch the real one.
//!
//! # File shape
//! ```toml
//! listen = "127.0.0.1:7070"
//! shutdown_timeout_ms = 10000          # top level, next to `listen`
//!
//! [limits]
//! max_memory_mb = 2048
//!
//! [connection_pools.database]
//! max = 10
//!
//! [state]
//! ledger = "postgres://127.0.0.1/rmhost"  # default "memory"; plus ledger_pool_size, host_lapse_ms
//! ratelimit = "redis://127.0.0.1:6379/"   # default "local"
//!
//! [http]
//! max_connections = 512                # plus header_read_timeout_ms, max_body_bytes, max_profiles
//!
//! [grpc]                               # Envoy's rate-limit service; off unless listen is set
//! listen = "127.0.0.1:8081"
//! tenant_key = "tenant"                # the descriptor entry naming the tenant
//! max_connections = 512                # plus max_concurrent_streams (per connection)
//!
//! [auth]
//! admin_token_sha256 = "<64 hex chars>"        # see hash_token()
//! [auth.tenants.acme]
//! token_sha256 = "<64 hex chars>"
//!
//! [policies]
//! dir = "policies"
//! [policies.bindings]                  # default binding per kind: kind = policy name
//! eviction = "lru"
//! [policies.policy.lru]                # per-policy tables live under `policies.policy`,
//! deadline_ms = 20                     # so a policy name never clashes with a fixed key
//! [policies.policy.lru.settings]       # what the guest reads with `setting(key)`
//! algorithm = "lru"
//!
//! [tenant_defaults]                    # quotas of tenants without their own
//! memory = 268435456
//!
//! [tenants.acme]                       # per-tenant quotas, all optional
//! memory = 1073741824
//! requests_per_minute = 600
//! ```
//! Unknown keys are rejected with their full dotted path.

mod error;
mod load;
mod render;
mod schema;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;

pub use error::ConfigError;
pub use load::{ENV_VARS, Loaded, Override, Source, load, load_str, process_env};
pub use render::{Format, render};

use crate::policy::PolicyKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

/// The file name looked for when none is given.
pub const DEFAULT_FILE: &str = "rmhost.toml";

/// The whole configuration. `Default` is the original system's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the daemon's HTTP API listens.
    pub listen: SocketAddr,
    /// How long a graceful shutdown may take before in-flight work is dropped, ms.
    pub shutdown_timeout_ms: u64,
    /// Host-wide limits.
    pub limits: Limits,
    /// Postgres and Redis pools.
    pub connection_pools: ConnectionPools,
    /// Memory-pressure thresholds and diagnostics.
    pub memory: MemoryConfig,
    /// Sampling and health intervals.
    pub monitoring: Monitoring,
    /// API tokens.
    pub auth: Auth,
    /// The policy runtime.
    pub policies: Policies,
    /// The HTTP server's own bounds.
    pub http: Http,
    /// Envoy's rate-limit service over gRPC (off unless `listen` is set).
    pub grpc: Grpc,
    /// Where state shared by several hosts lives.
    pub state: State,
    /// Per-tenant quotas, by tenant name.
    pub tenants: BTreeMap<String, TenantQuota>,
    /// Quotas of every tenant without its own value in `[tenants.NAME]`; `memory` here is
    /// the share a tenant may account (allocations plus cache capacity) before it is the
    /// first trimmed and shed.
    pub tenant_defaults: TenantQuota,
    /// Named connection pools: `[pools.postgres.NAME]`, `[pools.redis.NAME]` (the original system's
    /// `DATABASE_URL` / `REDIS_URL` define the pools named `main`).
    pub pools: crate::pools::PoolsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 7070)),
            shutdown_timeout_ms: 10_000,
            limits: Limits::default(),
            connection_pools: ConnectionPools::default(),
            memory: MemoryConfig::default(),
            monitoring: Monitoring::default(),
            auth: Auth::default(),
            policies: Policies::default(),
            http: Http::default(),
            grpc: Grpc::default(),
            state: State::default(),
            tenants: BTreeMap::new(),
            tenant_defaults: TenantQuota::default(),
            pools: crate::pools::PoolsSettings::default(),
        }
    }
}

impl Config {
    /// `limits.max_memory_mb` in bytes.
    pub fn memory_budget_bytes(&self) -> u64 {
        self.limits.max_memory_mb.saturating_mul(1024 * 1024)
    }

    /// Checks the cross-field and range rules that the types alone do not express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self, &|_| String::new())
    }
}

/// Host-wide limits (the original system's `limits`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory budget for everything the host manages, MiB.
    pub max_memory_mb: u64,
    /// System CPU use above which the host is under CPU pressure, 1-100.
    pub max_cpu_percentage: u32,
    /// Open connections the host accepts.
    pub max_connections: u32,
    /// Requests per minute, host-wide (tenants may have their own).
    pub max_requests_per_minute: u32,
    /// Open file handles.
    pub max_file_handles: u64,
    /// Caches one tenant may declare.
    pub max_caches_per_tenant: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_mb: 2048,
            max_cpu_percentage: 80,
            max_connections: 100,
            max_requests_per_minute: 1000,
            max_file_handles: 1024,
            max_caches_per_tenant: 64,
        }
    }
}

/// The original system's `connectionPools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionPools {
    /// The Postgres pool.
    pub database: DatabasePool,
    /// The Redis pool.
    pub redis: RedisPool,
}

/// The Postgres pool. No `url` means no pool: the daemon runs without Postgres.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabasePool {
    /// Connections kept open even when idle.
    pub min: u32,
    /// Connections at most.
    pub max: u32,
    /// How long a caller waits for a connection, ms.
    pub acquire_timeout_ms: u64,
    /// How long a connection above `min` may stay idle, ms.
    pub idle_timeout_ms: u64,
    /// `postgres://...` (`DATABASE_URL`).
    pub url: Option<String>,
}

impl Default for DatabasePool {
    fn default() -> Self {
        DatabasePool {
            min: 2,
            max: 10,
            acquire_timeout_ms: 30_000,
            idle_timeout_ms: 10_000,
            url: None,
        }
    }
}

/// The Redis pool. No `url` means no pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisPool {
    /// Connections kept open even when idle.
    pub min: u32,
    /// Connections at most.
    pub max: u32,
    /// How long a caller waits for a connection, ms.
    pub acquire_timeout_ms: u64,
    /// `redis://...` (`REDIS_URL`).
    pub url: Option<String>,
}

impl Default for RedisPool {
    fn default() -> Self {
        RedisPool {
            min: 1,
            max: 10,
            acquire_timeout_ms: 30_000,
            url: None,
        }
    }
}

/// Memory-pressure thresholds (percent of the memory budget) and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Pressure is `warning` at or above this, 1-100.
    pub warning_threshold_percent: u8,
    /// Pressure is `critical` at or above this, 1-100, above the warning threshold.
    pub critical_threshold_percent: u8,
    /// Heap profiling (`rmhost profile`).
    pub enable_memory_profiling: bool,
    /// Periodic leak detection.
    pub enable_leak_detection: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            warning_threshold_percent: 70,
            critical_threshold_percent: 85,
            enable_memory_profiling: false,
            enable_leak_detection: true,
        }
    }
}

/// Intervals, all in ms and all non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitoring {
    /// Metrics collection (`METRICS_INTERVAL`).
    pub metrics_interval_ms: u64,
    /// Health checks, and pressure re-evaluation while not normal (`HEALTH_CHECK_INTERVAL`).
    pub health_check_interval_ms: u64,
    /// Telemetry sampling.
    pub sample_interval_ms: u64,
    /// Scans for allocations whose owner is gone.
    pub orphan_scan_interval_ms: u64,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            metrics_interval_ms: 60_000,
            health_check_interval_ms: 30_000,
            sample_interval_ms: 1_000,
            orphan_scan_interval_ms: 1_000,
        }
    }
}

/// State shared across hosts, `[state]`: the ledger on PostgreSQL and rate limits on Redis,
/// so every replica's sidecar enforces one quota and one limit per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct State {
    /// `memory` (this host's own ledger, lost on exit) or a `postgres://` URL (allocations,
    /// quotas, rate overrides shared by every host on the database, and durable).
    pub ledger: String,
    /// Connections of the shared ledger's pool.
    pub ledger_pool_size: u32,
    /// A host whose heartbeat is older than this, ms, has its pid-bound allocations
    /// reclaimed by the others.
    pub host_lapse_ms: u64,
    /// `local` (each host limits on its own) or a `redis://` / `rediss://` URL (hosts share
    /// one GCRA state per tenant, on Redis' clock).
    pub ratelimit: String,
    /// When Redis cannot answer within `backend_timeout_ms`: `open` falls back to the
    /// local limiter at the tenant's limit divided by the hosts last seen live; `closed`
    /// refuses the check with 503.
    pub ratelimit_failure: String,
    /// Longest wait for a shared-state backend, ms.
    pub backend_timeout_ms: u64,
    /// Key prefix on Redis (keys are `PREFIX:{TENANT}:...`, hash-tagged by tenant).
    pub key_prefix: String,
    /// This host's name among its peers (default: the hostname and a random suffix).
    pub host_id: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            ledger: "memory".into(),
            ledger_pool_size: 16,
            host_lapse_ms: 10_000,
            ratelimit: "local".into(),
            ratelimit_failure: "open".into(),
            backend_timeout_ms: 250,
            key_prefix: "rmhost".into(),
            host_id: None,
        }
    }
}

/// The HTTP server's bounds, `[http]`: what one client can hold of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Open connections served at once; more are closed at accept (event streams hold one
    /// each).
    pub max_connections: u32,
    /// Time a client has to send a request's headers, ms (slowloris).
    pub header_read_timeout_ms: u64,
    /// Largest request body, bytes; a larger one is answered 413.
    pub max_body_bytes: u64,
    /// `GET /v1/profile` runs at once (each samples for up to 10 minutes).
    pub max_profiles: u32,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            max_connections: 512,
            header_read_timeout_ms: 10_000,
            max_body_bytes: 2 * 1024 * 1024,
            max_profiles: 4,
        }
    }
}

/// Envoy's global rate-limit service, `[grpc]`: `ShouldRateLimit` on its own port, through
/// the same limiter as `POST /v1/ratelimit/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grpc {
    /// Where the gRPC service listens; unset (the default) serves no gRPC at all.
    pub listen: Option<SocketAddr>,
    /// The key of the descriptor entry whose value names the tenant.
    pub tenant_key: String,
    /// The one rate-limit domain served; unset accepts any (Envoy's filter `domain`).
    pub domain: Option<String>,
    /// Open connections served at once; more are closed at accept, as `[http]
    /// max_connections` does for the API (Envoy keeps a few multiplexed ones).
    pub max_connections: u32,
    /// Calls in flight at once on one connection (HTTP/2 `MAX_CONCURRENT_STREAMS`): with
    /// `max_connections` it bounds the checks the service works on at once.
    pub max_concurrent_streams: u32,
}

impl Default for Grpc {
    fn default() -> Self {
        Grpc {
            listen: None,
            tenant_key: "tenant".into(),
            domain: None,
            max_connections: 512,
            max_concurrent_streams: 128,
        }
    }
}

/// API tokens, stored as hex SHA-256 hashes (see [`hash_token`]), never in plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// The admin token's hash. The admin sees and touches every tenant.
    pub admin_token_sha256: Option<String>,
    /// Tenant tokens, by tenant name. A tenant sees and touches only its own.
    pub tenants: BTreeMap<String, TenantToken>,
    /// With tokens configured, `/metrics` still answers without one (for a Prometheus
    /// that cannot send a bearer token). Its figures name tenants and caches.
    pub metrics_public: bool,
}

impl Auth {
    /// True when any token is configured, so the API requires one.
    pub fn is_set(&self) -> bool {
        self.admin_token_sha256.is_some() || !self.tenants.is_empty()
    }
}

/// One tenant's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TenantToken {
    /// The token's hex SHA-256.
    pub token_sha256: String,
}

/// The hex SHA-256 of `token`, the form tokens are stored in (`rmhost.toml` and comparisons).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The policy runtime's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policies {
    /// Watched for `*.wasm` (hot reload).
    pub dir: String,
    /// Default per-call deadline, ms.
    pub deadline_ms: u64,
    /// Default memory cap per instance, MiB.
    pub memory_cap_mb: u64,
    /// Faults within `fault_window_ms` that quarantine a policy.
    pub max_faults: u32,
    /// The window faults are counted in, ms.
    pub fault_window_ms: u64,
    /// Largest policy file read, bytes (default 64 MiB, room for the ~18 MB Python and
    /// 10-20 MB JavaScript policies); larger files are refused before they are read.
    pub max_file_bytes: u64,
    /// Where compiled components are cached; `None`: no cache.
    pub cache_dir: Option<String>,
    /// Default binding per kind: kind -> policy name. Unbound kinds use the native default.
    pub bindings: BTreeMap<PolicyKind, String>,
    /// Per-policy settings and limits, by policy name (`[policies.policy.NAME]`).
    pub policy: BTreeMap<String, PolicySettings>,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            dir: "policies".to_string(),
            deadline_ms: 10,
            memory_cap_mb: 64,
            max_faults: 5,
            fault_window_ms: 60_000,
            max_file_bytes: 64 << 20,
            cache_dir: None,
            bindings: BTreeMap::new(),
            policy: BTreeMap::new(),
        }
    }
}

impl Policies {
    /// The deadline for `policy`'s calls: its own, else the default.
    pub fn deadline_ms_for(&self, policy: &str) -> u64 {
        self.policy
            .get(policy)
            .and_then(|p| p.deadline_ms)
            .unwrap_or(self.deadline_ms)
    }

    /// The memory cap for `policy`'s instances, MiB: its own, else the default.
    pub fn memory_cap_mb_for(&self, policy: &str) -> u64 {
        self.policy
            .get(policy)
            .and_then(|p| p.memory_cap_mb)
            .unwrap_or(self.memory_cap_mb)
    }

    /// `policy`'s setting `key`, what the guest's `setting(key)` import answers.
    pub fn setting(&self, policy: &str, key: &str) -> Option<&str> {
        self.policy
            .get(policy)
            .and_then(|p| p.settings.get(key))
            .map(String::as_str)
    }
}

/// One policy's table, `[policies.policy.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Key/value settings the guest reads with `setting(key)`. Numbers and booleans in the
    /// file are taken as their text.
    pub settings: BTreeMap<String, String>,
    /// Overrides `policies.deadline_ms`.
    pub deadline_ms: Option<u64>,
    /// Overrides `policies.memory_cap_mb`.
    pub memory_cap_mb: Option<u64>,
}

/// A tenant's quotas, `[tenants.NAME]`; `None` is unlimited (within the host's limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TenantQuota {
    /// Bytes.
    pub memory: Option<u64>,
    /// Millicores.
    pub cpu: Option<u64>,
    /// Open connections.
    pub connections: Option<u64>,
    /// Requests (as a quota of allocated request slots).
    pub requests: Option<u64>,
    /// Open file handles.
    pub file_handles: Option<u64>,
    /// Overrides the host's rate limit for this tenant.
    pub requests_per_minute: Option<u32>,
}

impl TenantQuota {
    /// The quota for `kind`, in that kind's unit.
    pub fn limit(&self, kind: crate::policy::ResourceKind) -> Option<u64> {
        use crate::policy::ResourceKind;
        match kind {
            ResourceKind::Memory => self.memory,
            ResourceKind::Cpu => self.cpu,
            ResourceKind::Connections => self.connections,
            ResourceKind::Requests => self.requests,
            ResourceKind::FileHandles => self.file_handles,
        }
    }
}
