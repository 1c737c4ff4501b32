//! The policy seam: domain types and the four decision traits (`EvictionPolicy`,
//! `QuotaPolicy`, `PriorityPolicy`, `PressurePolicy`), each with a native default.
//!
//! Managers (`resources`, `memory`, `pools`) talk to policies only through these traits, so
//! they are tested without Wasm, and every Wasm policy can be checked against its native
//! twin. The types mirror `wit/policy.wit` one to one; the conversions live in `runtime`,
//! the only module that sees wasmtime.

mod native;

pub use native::{NativePressure, NativePriority, NativeQuota};
// The packed encoding, the eviction seam and the native eviction algorithms live in the
// dependency-free ABI crate, which the guest policies compile too.
pub use rmhost_abi::{
    EVENT_WORDS, EVENT_WORDS_V01, EventKind, EvictionPolicy, FrequencySketch, NativeArc,
    NativeFifo, NativeLru, NativeS3Fifo, NativeSieve, NativeWTinyLfu, PackedEvent, WTinyLfu,
    decode_event, encode_event, strip_fingerprints,
};

use serde::{Deserialize, Serialize};

/// The names of the native eviction policies, as `builtin:NAME` selects them.
pub const BUILTIN_EVICTION: &[&str] = &["lru", "fifo", "sieve", "s3fifo", "wtinylfu", "arc"];

/// A fresh native eviction policy by name (`lru`, `fifo`, `sieve`, `s3fifo`, `wtinylfu`,
/// `arc`, with or without the `builtin:` prefix); `None` for any other name.
pub fn builtin_eviction(name: &str) -> Option<Box<dyn EvictionPolicy>> {
    match name.strip_prefix("builtin:").unwrap_or(name) {
        "lru" => Some(Box::new(NativeLru::new())),
        "fifo" => Some(Box::new(NativeFifo::new())),
        "sieve" => Some(Box::new(NativeSieve::new())),
        "s3fifo" => Some(Box::new(NativeS3Fifo::new())),
        "wtinylfu" => Some(Box::new(NativeWTinyLfu::new())),
        "arc" => Some(Box::new(NativeArc::new())),
        _ => None,
    }
}
use std::fmt;
use std::str::FromStr;

/// The host's memory-pressure level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PressureLevel {
    /// Below the warning threshold.
    #[default]
    Normal,
    /// At or above the warning threshold.
    Warning,
    /// At or above the critical threshold.
    Critical,
}

impl PressureLevel {
    /// The lower-case name used in the API and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Warning => "warning",
            PressureLevel::Critical => "critical",
        }
    }
}

/// What an allocation is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ResourceKind {
    /// Bytes.
    Memory,
    /// Millicores.
    Cpu,
    /// Open connections.
    Connections,
    /// Requests per minute.
    Requests,
    /// Open file handles.
    FileHandles,
}

impl ResourceKind {
    /// Every kind, in a fixed order (for tables and metrics).
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Memory,
        ResourceKind::Cpu,
        ResourceKind::Connections,
        ResourceKind::Requests,
        ResourceKind::FileHandles,
    ];

    /// The snake_case name used in the API, the config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Memory => "memory",
            ResourceKind::Cpu => "cpu",
            ResourceKind::Connections => "connections",
            ResourceKind::Requests => "requests",
            ResourceKind::FileHandles => "file_handles",
        }
    }

    /// The unit an amount of this kind is counted in.
    pub fn unit(self) -> &'static str {
        match self {
            ResourceKind::Memory => "bytes",
            ResourceKind::Cpu => "millicores",
            ResourceKind::Connections => "connections",
            ResourceKind::Requests => "requests/min",
            ResourceKind::FileHandles => "file handles",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(ResourceKind::Memory),
            "cpu" => Ok(ResourceKind::Cpu),
            "connections" => Ok(ResourceKind::Connections),
            "requests" => Ok(ResourceKind::Requests),
            "file_handles" | "file-handles" => Ok(ResourceKind::FileHandles),
            other => Err(format!(
                "unknown resource kind {other:?} (expected memory, cpu, connections, requests or file_handles)"
            )),
        }
    }
}

/// The telemetry a policy sees (the WIT `usage` record).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemUsage {
    /// System-wide CPU use, 0-100.
    pub cpu_percent: f32,
    /// System memory in use, bytes.
    pub memory_used_bytes: u64,
    /// System memory in all (or the cgroup limit when lower), bytes.
    pub memory_total_bytes: u64,
    /// The host process's resident set size, bytes.
    pub process_rss_bytes: u64,
    /// Active connections.
    pub connections_active: u32,
    /// Requests over the last sliding minute.
    pub requests_per_minute: u32,
    /// One-minute load average.
    pub load_average_1m: f32,
    /// Current pressure level.
    pub pressure: PressureLevel,
}

/// The policy kinds a component can implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PolicyKind {
    /// `eviction`: which cache entries to drop.
    Eviction,
    /// `quota`: whether to grant an allocation.
    Quota,
    /// `priority`: whom to serve next.
    Priority,
    /// `pressure`: how to respond to memory pressure.
    Pressure,
}

impl PolicyKind {
    /// Every kind.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Eviction,
        PolicyKind::Quota,
        PolicyKind::Priority,
        PolicyKind::Pressure,
    ];

    /// The name used in the API, the CLI and the WIT interface.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Eviction => "eviction",
            PolicyKind::Quota => "quota",
            PolicyKind::Priority => "priority",
            PolicyKind::Pressure => "pressure",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eviction" => Ok(PolicyKind::Eviction),
            "quota" => Ok(PolicyKind::Quota),
            "priority" => Ok(PolicyKind::Priority),
            "pressure" => Ok(PolicyKind::Pressure),
            other => Err(format!(
                "unknown policy kind {other:?} (expected eviction, quota, priority or pressure)"
            )),
        }
    }
}

/// Why a policy call was not used: the kind of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The instance tried to grow its memory past the cap.
    MemoryCap,
    /// The call returned, but its answer breaks the contract.
    MalformedAnswer,
    /// A new instance could not be created.
    Instantiate,
}

impl FaultKind {
    /// The snake_case name used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::MemoryCap => "memory_cap",
            FaultKind::MalformedAnswer => "malformed_answer",
            FaultKind::Instantiate => "instantiate",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- quota -------------------------------------------------------------------------------

/// An allocation request, as a quota policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRequest {
    /// The tenant that asks.
    pub tenant: String,
    /// Who within the tenant asks.
    pub owner: String,
    /// What is asked for.
    pub kind: ResourceKind,
    /// How much, never 0.
    pub amount: u64,
    /// Higher is more important.
    pub priority: u8,
}

/// The tenant's standing for the requested kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    /// In use now.
    pub used: u64,
    /// The tenant's quota; `None` when unlimited.
    pub limit: Option<u64>,
    /// Live allocations of this kind.
    pub allocations: u32,
}

/// An allocation that may be preempted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Allocation id.
    pub allocation: u64,
    /// Its owner.
    pub owner: String,
    /// Its amount.
    pub amount: u64,
    /// Its priority (below the request's).
    pub priority: u8,
    /// Milliseconds since it was granted.
    pub age_ms: u64,
}

/// A quota policy's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaDecision {
    /// Grant as asked.
    Grant,
    /// Refuse, with a reason.
    Deny(String),
    /// Release these allocations (all from `preemptible`), then grant.
    Preempt(Vec<u64>),
}

/// Decides whether to grant an allocation. Shared by every tenant bound to it.
pub trait QuotaPolicy: Send + Sync {
    /// A short name for logs and stats.
    fn name(&self) -> &str;
    /// Decides one request. `preemptible` lists the tenant's lower-priority allocations of
    /// the same kind (lowest priority, then oldest, first) and is empty unless granting
    /// would exceed the tenant's limit.
    fn decide(
        &self,
        req: &QuotaRequest,
        tenant: &TenantState,
        system: &SystemUsage,
        preemptible: &[Holder],
    ) -> QuotaDecision;
    /// The name of the policy that decides for `tenant` (a resolver answers with the bound
    /// policy's name), for error messages.
    fn name_for(&self, _tenant: &str) -> String {
        self.name().to_string()
    }
    /// Whether this policy, for `tenant`, grants every request that fits the tenant's
    /// quota and nothing else without consulting what else it is shown (the built-in
    /// policy does). A shared ledger then grants in one round trip, checking the quota in
    /// the database, and asks the policy only about requests over it.
    fn grants_what_fits(&self, _tenant: &str) -> bool {
        false
    }
}

// ---- priority ----------------------------------------------------------------------------

/// One waiter for a scarce resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// The tenant it waits for.
    pub tenant: String,
    /// Higher is more important.
    pub priority: u8,
    /// Host clock when it started waiting, ms.
    pub enqueued_ms: u64,
    /// The queue's (pool's) name.
    pub queue: String,
}

/// Ranks waiters: the lowest rank is served first, ties in arrival order.
pub trait PriorityPolicy: Send + Sync {
    /// A short name for logs and stats.
    fn name(&self) -> &str;
    /// The waiter's rank, computed once when it starts waiting.
    fn rank(&self, waiter: &Waiter) -> i64;
}

// ---- pressure ----------------------------------------------------------------------------

/// A cache's standing, as a pressure policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStat {
    /// Cache name.
    pub name: String,
    /// Bytes held.
    pub bytes: u64,
    /// Entries held.
    pub entries: u64,
    /// Hits / (hits + misses), 0 when unused.
    pub hit_ratio: f32,
}

/// A pool's standing, as a pressure policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStat {
    /// Pool name.
    pub name: String,
    /// Open connections.
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub waiting: u32,
}

/// One response to pressure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum PressureAction {
    /// Free `bytes` from `cache`.
    TrimCache {
        /// Cache name.
        cache: String,
        /// Bytes to free.
        bytes: u64,
    },
    /// Close up to `idle` idle connections of `pool`.
    ShrinkPool {
        /// Pool name.
        pool: String,
        /// How many idle connections to close.
        idle: u32,
    },
    /// Limit `tenant` until pressure is normal.
    Throttle {
        /// Tenant.
        tenant: String,
        /// Its limit while throttled.
        requests_per_minute: u32,
    },
    /// Refuse new work below this priority until pressure is normal.
    ShedBelow {
        /// The priority below which work is refused.
        priority: u8,
    },
    /// Hand free allocator memory back to the OS.
    PurgeAllocator,
    /// Raise an alert.
    Alert {
        /// The alert's text.
        message: String,
    },
}

/// Decides how to respond to memory pressure.
pub trait PressurePolicy: Send + Sync {
    /// A short name for logs and stats.
    fn name(&self) -> &str;
    /// Called on every level change and every health interval while not normal.
    fn respond(
        &self,
        level: PressureLevel,
        system: &SystemUsage,
        caches: &[CacheStat],
        pools: &[PoolStat],
    ) -> Vec<PressureAction>;
}
