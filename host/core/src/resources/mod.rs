//! The resource manager: allocations of memory, CPU, connections, file handles and request
//! rates to tenants, under global limits and per-tenant quotas, with priority preemption,
//! leases (TTL) and owner-process tracking for orphan cleanup, and GCRA rate limits.
//!
//! Owns: the ledger (in memory, or shared by several hosts through a [`SharedLedger`] such
//! as PostgreSQL), quotas, rate limiters, alert state. Decides through a `QuotaPolicy`
//! (native or Wasm, resolved per tenant by the runtime) but never sees wasmtime. Emits an
//! event for every grant, release, denial, reclaim and threshold crossing.

mod catalog;
mod ledger;
mod orphans;
#[cfg(feature = "postgres")]
mod pg;
mod ratelimit;
mod shared;
mod shared_ops;
#[cfg(feature = "redis")]
mod shared_rate;

pub use catalog::{CacheDef, SharedCatalog, StoredBinding};
pub use ledger::{Allocation, Ledger, Totals};
pub use orphans::{ProcessProbe, ProcfsProbe, spawn_reaper};
#[cfg(feature = "postgres")]
pub use pg::{PgLedger, PgLedgerOptions, SCHEMA_VERSION};
pub use ratelimit::{RateDecision, RateLimits};
pub use shared::{Grant, GrantOutcome, RemoteChange, SharedLedger, SharedTotals, Snapshot};

use crate::clock::Clock;
use crate::events::{Event, EventBus, ReleaseReason};
use crate::policy::{
    NativeQuota, QuotaDecision, QuotaPolicy, QuotaRequest, ResourceKind, SystemUsage, TenantState,
};
use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// What went wrong with a resource request. Each message says what happened in terms a
/// caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The tenant's quota for the kind would be exceeded.
    #[error("quota exceeded for tenant {tenant}: {used}+{requested} > {limit} {unit}", unit = kind.unit())]
    QuotaExceeded {
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// In use before the request.
        used: u64,
        /// Asked for.
        requested: u64,
        /// The quota.
        limit: u64,
    },
    /// The host's global limit for the kind would be exceeded.
    #[error("global {kind} limit exceeded: {used}+{requested} > {limit} {unit}", unit = kind.unit())]
    LimitExceeded {
        /// Kind.
        kind: ResourceKind,
        /// In use before the request.
        used: u64,
        /// Asked for.
        requested: u64,
        /// The limit.
        limit: u64,
    },
    /// The quota policy refused the request.
    #[error("policy {policy} denied {kind} for tenant {tenant}: {reason}")]
    Denied {
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// The deciding policy's name.
        policy: String,
        /// Its reason.
        reason: String,
    },
    /// No live allocation has this id (never existed, or already released).
    #[error("no live allocation with id {id}")]
    UnknownAllocation {
        /// The id asked for.
        id: u64,
    },
    /// The amount is not acceptable for the kind.
    #[error("invalid amount {amount} for {kind}: {reason}")]
    InvalidAmount {
        /// Kind.
        kind: ResourceKind,
        /// Amount given.
        amount: u64,
        /// Why.
        reason: String,
    },
    /// Another field of the request is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The shared ledger's backend could not answer within its timeout.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// `postgres`.
        backend: String,
        /// What failed.
        reason: String,
    },
    /// Memory pressure: work below a priority is being shed.
    #[error("shedding load under memory pressure: priority {priority} is below {threshold}")]
    Shed {
        /// The request's priority.
        priority: u8,
        /// The shed threshold.
        threshold: u8,
    },
}

impl ResourceError {
    /// A short stable code for metrics and events.
    pub fn code(&self) -> &'static str {
        match self {
            ResourceError::QuotaExceeded { .. } | ResourceError::Denied { .. } => "quota_exceeded",
            ResourceError::LimitExceeded { .. } => "limit_exceeded",
            ResourceError::UnknownAllocation { .. } => "not_found",
            ResourceError::InvalidAmount { .. } | ResourceError::InvalidRequest { .. } => {
                "invalid_request"
            }
            ResourceError::Shed { .. } => "shed",
            ResourceError::Unavailable { .. } => "unavailable",
        }
    }
}

/// An allocation request. Unknown fields are refused (a `"ttl"` meant as `"ttl_ms"` must
/// not silently make a permanent allocation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllocationRequest {
    /// The tenant to count it against.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._-]{1,128}$"))]
    pub tenant: String,
    /// What kind.
    pub kind: ResourceKind,
    /// How much (> 0).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub amount: u64,
    /// Who holds it within the tenant (at most 256 bytes).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub owner: String,
    /// 0-255, higher is more important.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 255))]
    pub priority: u8,
    /// Lease length: the allocation is reclaimed unless renewed within it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub ttl_ms: Option<u64>,
    /// Owner process: the allocation is reclaimed when it exits.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<i64>, minimum = 0, maximum = 4_294_967_295_i64)
    )]
    pub pid: Option<u32>,
}

/// The host's global limits, one per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalLimits {
    /// Bytes.
    pub memory_bytes: u64,
    /// Millicores.
    pub cpu_millicores: u64,
    /// Connections.
    pub connections: u64,
    /// Requests per minute.
    pub requests_per_minute: u64,
    /// File handles.
    pub file_handles: u64,
}

impl GlobalLimits {
    /// The limit for `kind`.
    pub fn get(&self, kind: ResourceKind) -> u64 {
        match kind {
            ResourceKind::Memory => self.memory_bytes,
            ResourceKind::Cpu => self.cpu_millicores,
            ResourceKind::Connections => self.connections,
            ResourceKind::Requests => self.requests_per_minute,
            ResourceKind::FileHandles => self.file_handles,
        }
    }
}

/// Filter for `allocations()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this kind.
    pub kind: Option<ResourceKind>,
    /// Only this owner's.
    pub owner: Option<String>,
}

/// Use of one kind against a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KindUsage {
    /// Kind.
    pub kind: ResourceKind,
    /// In use.
    pub used: u64,
    /// The limit (global, or the tenant's quota), if any.
    pub limit: Option<u64>,
    /// used / limit in percent, when limited.
    pub percentage: Option<f64>,
    /// Live allocations.
    pub allocations: u32,
}

/// A tenant's use of every kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantUsage {
    /// Tenant.
    pub tenant: String,
    /// Per kind, against the tenant's quotas.
    pub kinds: Vec<KindUsage>,
    /// The tenant's rate limit, requests per minute.
    pub requests_per_minute_limit: u32,
}

/// The ledger's use: global and per tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerUsage {
    /// Per kind, against the global limits.
    pub global: Vec<KindUsage>,
    /// Per tenant with allocations or quotas.
    pub tenants: Vec<TenantUsage>,
    /// Live allocations in all.
    pub allocations: usize,
}

/// Counters since start, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStats {
    /// Grants.
    pub allocated: u64,
    /// Releases by their holder.
    pub released: u64,
    /// Preemptions.
    pub preempted: u64,
    /// Reclaimed orphans (lease expired or owner gone).
    pub reclaimed: u64,
    /// Denials by code (`quota_exceeded`, `limit_exceeded`, `shed`, `invalid_request`).
    pub denied: std::collections::BTreeMap<String, u64>,
    /// Rate-limit checks allowed.
    pub rate_allowed: u64,
    /// Rate-limit checks refused.
    pub rate_limited: u64,
    /// Shared-ledger grants whose snapshot had gone stale and were decided again.
    #[serde(default)]
    pub conflicts: u64,
}

/// (tenant or `None` for global, kind, measured by telemetry rather than the ledger).
type AlertKey = (Option<String>, ResourceKind, bool);

/// Where quota policies get the system usage they are shown.
pub type SystemUsageFn = Arc<dyn Fn() -> SystemUsage + Send + Sync>;

/// The resource manager. Cheap to clone.
#[derive(Clone)]
pub struct ResourceManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ResourceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceManager")
            .field("limits", &self.inner.limits)
            .field("allocations", &self.inner.ledger.lock().len())
            .finish()
    }
}

struct Inner {
    limits: GlobalLimits,
    ledger: Mutex<Ledger>,
    quotas: RwLock<HashMap<(String, ResourceKind), u64>>,
    /// Highest alert threshold already announced per (tenant or global, kind, system?).
    alerted: Mutex<HashMap<AlertKey, u32>>,
    policy: Arc<dyn QuotaPolicy>,
    system: SystemUsageFn,
    rates: RateLimits,
    shed_below: AtomicU8,
    events: EventBus,
    clock: Clock,
    probe: Arc<dyn ProcessProbe>,
    stats: Mutex<ResourceStats>,
    /// Quotas of tenants without their own (`[tenant_defaults]`).
    defaults: crate::config::TenantQuota,
    elsewhere: Arc<dyn HeldElsewhere>,
    /// The ledger shared with other hosts, when `[state] ledger` names one; the local
    /// `ledger` then stays empty.
    shared: Option<Arc<dyn SharedLedger>>,
}

mod manager;
mod share;
mod views;
pub use manager::{ManagerOptions, ManagerParts};
pub use share::{HeldElsewhere, MemoryShare, NothingElsewhere};
#[cfg(feature = "redis")]
pub use shared_rate::{SharedAnswer, SharedRateError, SharedRateLimiter, SharedRateOptions};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_share;
