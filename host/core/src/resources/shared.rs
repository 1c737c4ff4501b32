//! The contract between the resource manager and a ledger shared by several hosts (the
//! PostgreSQL one, `[state] ledger = "postgres://…"`).
//!
//! The manager keeps its decisions (validation, the quota policy, events, alerts) and asks
//! the shared ledger only for what must be atomic across hosts: a snapshot for the policy
//! to decide on, then a grant committed against the counters as they are, with the
//! snapshot's version checked so a policy never decides on stale state (retried on
//! conflict). The calls are synchronous and bounded by the backend timeout: the manager's
//! callers already run it off the async workers (a Wasm quota policy may take its deadline
//! too), and a bounded wait is what "the backend is down" has to mean to a caller.

use super::{Allocation, AllocationFilter, ProcessProbe, ResourceError, Totals};
use crate::events::ReleaseReason;
use crate::invariant::InvariantViolation;
use crate::policy::{Holder, ResourceKind};

/// What a quota policy is shown, read from the shared ledger in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The tenant's live use of the kind.
    pub tenant: Totals,
    /// The tenant counter's version: a grant that names it commits only if nothing changed.
    pub version: u64,
    /// The tenant's quota (the ledger's, else the default passed in).
    pub quota: Option<u64>,
    /// Global use of the kind.
    pub global_used: u64,
    /// When the request would not fit the quota: the tenant's allocations of the kind below
    /// the request's priority, lowest priority then oldest first.
    pub holders: Vec<Holder>,
}

/// A grant to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    /// The request (validated).
    pub request: &'a super::AllocationRequest,
    /// The quota to apply when the ledger holds none for the tenant.
    pub default_quota: Option<u64>,
    /// The host's global limit for the kind.
    pub global_limit: u64,
    /// Memory the tenant holds outside the ledger on this host (cache capacity).
    pub elsewhere: u64,
    /// Commit only if the tenant's counter still has this version.
    pub version: Option<u64>,
    /// Allocations the policy chose to preempt (only those still live and below the
    /// request's priority are taken).
    pub victims: Vec<u64>,
}

/// How a commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantOutcome {
    /// Granted: the allocation, what was preempted for it, and use after it.
    Granted {
        /// The new allocation.
        allocation: Allocation,
        /// Preempted victims.
        preempted: Vec<Allocation>,
        /// The tenant's use of the kind after the grant.
        tenant_used: u64,
        /// Global use of the kind after the grant.
        global_used: u64,
        /// The tenant's quota the grant was checked against.
        quota: Option<u64>,
    },
    /// The tenant's counter moved since the snapshot.
    Conflict,
    /// The tenant's quota would be exceeded.
    Quota {
        /// Use before the request (with memory held elsewhere).
        used: u64,
        /// The quota.
        limit: u64,
    },
    /// The global limit would be exceeded.
    Limit {
        /// Global use before the request.
        used: u64,
    },
}

/// Every counter of the shared ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedTotals {
    /// Per (tenant, kind) with live allocations.
    pub tenants: Vec<(String, ResourceKind, Totals)>,
    /// Per kind, in [`ResourceKind::ALL`] order.
    pub global: [Totals; 5],
    /// Live allocations in all.
    pub allocations: usize,
}

/// A change another host made, for this host's caches and event streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteChange {
    /// Allocations another host released, preempted or reclaimed.
    Released {
        /// What went.
        allocations: Vec<Allocation>,
        /// Why.
        reason: ReleaseReason,
    },
    /// A tenant's quota changed.
    Quota {
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// The new quota (`None`: removed).
        limit: Option<u64>,
    },
    /// A tenant's rate-limit override changed.
    Rate {
        /// Tenant.
        tenant: String,
        /// Requests per minute (`None`: back to the default).
        per_minute: Option<u32>,
    },
    /// The listener reconnected: what other hosts changed meanwhile was not heard, so the
    /// host reloads what it caches from the ledger (quotas, overrides, bindings, caches).
    Resync,
    /// A policy binding changed (applied by the host, not the manager).
    Binding(super::StoredBinding),
    /// A cache definition changed (applied by the host, not the manager).
    Cache {
        /// The registry name.
        name: String,
        /// The new definition (`None`: the cache was deleted).
        def: Option<super::CacheDef>,
    },
}

/// A ledger several hosts share. Every call waits at most the backend timeout and answers
/// [`ResourceError::Unavailable`] naming the backend when it cannot.
pub trait SharedLedger: super::SharedCatalog + Send + Sync + std::fmt::Debug {
    /// The backend's name (`postgres`), for messages and metrics.
    fn backend(&self) -> &'static str;
    /// What the quota policy is shown for `request`.
    fn snapshot(
        &self,
        request: &super::AllocationRequest,
        default_quota: Option<u64>,
        elsewhere: u64,
    ) -> Result<Snapshot, ResourceError>;
    /// Commits a grant, all or nothing.
    fn grant(&self, grant: &Grant<'_>) -> Result<GrantOutcome, ResourceError>;
    /// Releases a live allocation (`None`: not live). Other hosts hear of it.
    fn release(&self, id: u64, reason: ReleaseReason) -> Result<Option<Allocation>, ResourceError>;
    /// Extends a lease from now (`None`: not live).
    fn renew(&self, id: u64) -> Result<Option<Allocation>, ResourceError>;
    /// One live allocation.
    fn get(&self, id: u64) -> Result<Option<Allocation>, ResourceError>;
    /// Live allocations matching `filter`, by id.
    fn list(&self, filter: &AllocationFilter) -> Result<Vec<Allocation>, ResourceError>;
    /// Every counter.
    fn totals(&self) -> Result<SharedTotals, ResourceError>;
    /// Global use of `kind` as last seen (no round trip: the memory monitor reads it each
    /// sample).
    fn global_used_cached(&self, kind: ResourceKind) -> u64;
    /// Every tenant quota the ledger holds.
    fn quotas(&self) -> Result<Vec<(String, ResourceKind, u64)>, ResourceError>;
    /// Sets or removes a quota; with `seed`, only when the ledger holds none (config
    /// quotas seed the ledger, they do not overwrite what the API set).
    fn set_quota(
        &self,
        tenant: &str,
        kind: ResourceKind,
        limit: Option<u64>,
        seed: bool,
    ) -> Result<Option<u64>, ResourceError>;
    /// Every rate-limit override.
    fn rate_overrides(&self) -> Result<Vec<(String, u32)>, ResourceError>;
    /// Sets or removes a tenant's rate-limit override.
    fn set_rate_override(&self, tenant: &str, per_minute: Option<u32>)
    -> Result<(), ResourceError>;
    /// Reaps expired leases and the pid-bound allocations of lapsed hosts (any host may),
    /// and this host's own pid-bound allocations whose process is gone.
    fn reap(
        &self,
        probe: &dyn ProcessProbe,
    ) -> Result<Vec<(Allocation, ReleaseReason)>, ResourceError>;
    /// Recomputes the counters from the live rows; answers how many were wrong.
    fn repair(&self) -> Result<u64, ResourceError>;
    /// Whether the counters equal the sums of the live rows (nothing is changed).
    fn check(&self) -> Result<(), InvariantViolation>;
    /// `Some(why)` while the backend cannot be reached.
    fn down(&self) -> Option<String>;
    /// Hosts whose heartbeat is current.
    fn live_hosts(&self) -> u64;
    /// Changes other hosts made, once: the host's background task drains it.
    fn take_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<RemoteChange>>;
}
