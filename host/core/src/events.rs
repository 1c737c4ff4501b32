//! Events: everything the host does that an operator may want to see, on one broadcast
//! bus. Subscribers are the SSE endpoint (`/v1/events`), metrics, and library users
//! (`subscribe()`); every event is also written through `tracing` (the audit log).
//!
//! The bus never blocks a publisher: a slow subscriber lags and is told how many events it
//! missed (tokio's broadcast semantics). A ring of recent events serves late joiners.

use crate::policy::{FaultKind, PolicyKind, PressureLevel, ResourceKind};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Why an allocation was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// Its holder released it.
    Released,
    /// A higher-priority request of the same tenant preempted it.
    Preempted,
    /// Its lease expired without renewal.
    LeaseExpired,
    /// Its owner process is gone.
    OwnerGone,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// An allocation was granted.
    ResourceAllocated {
        /// Allocation id.
        id: u64,
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// Amount.
        amount: u64,
        /// Owner.
        owner: String,
        /// Priority.
        priority: u8,
    },
    /// An allocation ended.
    ResourceReleased {
        /// Allocation id.
        id: u64,
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// Amount.
        amount: u64,
        /// Why.
        reason: ReleaseReason,
    },
    /// A request was refused.
    AllocationDenied {
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// Amount asked.
        amount: u64,
        /// `quota_exceeded`, `limit_exceeded`, `policy` or `shed`.
        code: String,
        /// Human-readable reason.
        reason: String,
    },
    /// An orphaned allocation was reclaimed (lease expired or owner process gone).
    OrphanReclaimed {
        /// Allocation id.
        id: u64,
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// Amount.
        amount: u64,
        /// `lease_expired` or `owner_gone`.
        reason: ReleaseReason,
    },
    /// Use of a kind crossed 80% or 100% of a limit: a tenant's quota, the global
    /// allocation limit, or (scope `system`) what telemetry measures against `[limits]`.
    ResourceAlerts {
        /// Kind.
        kind: ResourceKind,
        /// Tenant, or `None` for a global limit.
        tenant: Option<String>,
        /// `tenant`, `allocations` (the ledger against global limits) or `system`
        /// (measured use: process RSS, CPU %, active connections, requests/min, open fds).
        scope: String,
        /// Threshold crossed, percent (80 or 100).
        threshold_percent: u32,
        /// In use.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// A tenant's quota changed.
    QuotaChanged {
        /// Tenant.
        tenant: String,
        /// Kind.
        kind: ResourceKind,
        /// New limit; `None` removes it.
        limit: Option<u64>,
    },
    /// A tenant hit its rate limit.
    RateLimited {
        /// Tenant.
        tenant: String,
        /// Milliseconds until a request would be allowed.
        retry_after_ms: u64,
    },
    /// A policy was loaded (or reloaded) and validated.
    PolicyLoaded {
        /// Policy name (file stem).
        name: String,
        /// Kinds it implements.
        kinds: Vec<PolicyKind>,
        /// SHA-256 of the component, hex.
        hash: String,
    },
    /// A new version of a policy failed to load; the old one stays.
    PolicyReloadFailed {
        /// Policy name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A policy was unloaded (its file was deleted); its bindings fell back to the default.
    PolicyUnloaded {
        /// Policy name.
        name: String,
    },
    /// A binding changed.
    PolicyBound {
        /// Tenant, or `None` for the default binding.
        tenant: Option<String>,
        /// Kind.
        kind: PolicyKind,
        /// Policy name, or `None` when unbound.
        policy: Option<String>,
    },
    /// A policy call trapped, missed its deadline or answered malformed; the native
    /// default decided instead.
    PolicyFault {
        /// Policy name.
        policy: String,
        /// Kind of the call.
        kind: PolicyKind,
        /// What kind of fault.
        fault: FaultKind,
        /// What went wrong.
        reason: String,
        /// Faults within the current window.
        faults_in_window: u32,
    },
    /// A policy faulted too often and was quarantined: its bindings use the default.
    PolicyQuarantined {
        /// Policy name.
        policy: String,
        /// Why.
        reason: String,
    },
    /// The memory-pressure level changed.
    MemoryPressure {
        /// New level.
        level: PressureLevel,
    },
    /// A free-form alert (from a pressure policy or a health check).
    Alert {
        /// The alert's text.
        message: String,
    },
    /// A cache entry left without being removed by its owner: evicted by the policy,
    /// rejected by its admission, or expired. How remote users of accounting caches
    /// learn of evictions.
    CacheEvicted {
        /// Cache name.
        cache: String,
        /// The tenant that declared the cache (its stream carries the event).
        tenant: String,
        /// The entry's key.
        key: String,
        /// `evicted` (for room: the size bound), `rejected` (not admitted), `expired` (its
        /// TTL), `trimmed` (pressure, `gc` or a trim request) or `replaced` (by a value
        /// larger than the cache).
        reason: String,
        /// The cause, as `/metrics` counts it per cache (`rmhost_cache_evictions_total`):
        /// `size` (evicted or rejected), `expired`, `trimmed`, `replaced`; `removed` is
        /// counted but not published (the caller that removed the entry knows).
        #[serde(default)]
        cause: String,
    },
    /// The leak detector flagged something (see `memory::leaks`).
    LeakDetected {
        /// `trend`, `stale_allocation` or `instance_growth`.
        kind: String,
        /// What leaks: `rss`, `cache:NAME`, `tenant:NAME`, `allocation:ID`, `policy:NAME`.
        subject: String,
        /// Growth rate, bytes per minute (0 for stale allocations).
        bytes_per_minute: f64,
        /// 0-1: how sure the detector is.
        confidence: f64,
        /// Human-readable summary.
        message: String,
    },
    /// A pressure action was carried out (or failed).
    PressureAction {
        /// The pressure level that asked for it.
        level: PressureLevel,
        /// The action.
        action: crate::policy::PressureAction,
        /// What happened (`trimmed 1048576 bytes`, `no such cache`, ...).
        outcome: String,
    },
    /// A pool's circuit breaker opened: callers fail fast until a probe succeeds.
    CircuitOpened {
        /// Pool (`postgres/main`, `redis/cache`).
        pool: String,
        /// Why it opened (the last failure, or exhaustion).
        reason: String,
    },
    /// A pool's circuit breaker closed after a successful probe.
    CircuitClosed {
        /// Pool.
        pool: String,
    },
    /// A pool's periodic metrics snapshot (every metrics interval).
    PoolMetrics {
        /// Pool.
        pool: String,
        /// Open connections.
        size: u32,
        /// Idle connections.
        idle: u32,
        /// Connections handed out.
        in_use: u32,
        /// Callers waiting.
        waiting: u32,
        /// Successful acquires since start.
        acquires: u64,
        /// Acquire timeouts since start.
        timeouts: u64,
        /// `closed`, `open` or `half_open`.
        circuit: String,
    },
    /// The daemon is shutting down.
    Shutdown {
        /// Why (`SIGTERM`, `SIGINT`).
        reason: String,
    },
    /// A shared-state backend stopped answering.
    BackendDown {
        /// `redis` or `postgres`.
        backend: String,
        /// What failed.
        error: String,
    },
    /// A shared-state backend answers again.
    BackendUp {
        /// `redis` or `postgres`.
        backend: String,
    },
}

impl Event {
    /// The tenant an event is about, whose stream carries it (`None`: host-wide).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Event::ResourceAllocated { tenant, .. }
            | Event::ResourceReleased { tenant, .. }
            | Event::AllocationDenied { tenant, .. }
            | Event::OrphanReclaimed { tenant, .. }
            | Event::QuotaChanged { tenant, .. }
            | Event::RateLimited { tenant, .. }
            | Event::CacheEvicted { tenant, .. } => Some(tenant),
            Event::ResourceAlerts { tenant, .. } | Event::PolicyBound { tenant, .. } => {
                tenant.as_deref()
            }
            _ => None,
        }
    }

    /// The event's type name, as in its JSON `type` field.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ResourceAllocated { .. } => "ResourceAllocated",
            Event::ResourceReleased { .. } => "ResourceReleased",
            Event::AllocationDenied { .. } => "AllocationDenied",
            Event::OrphanReclaimed { .. } => "OrphanReclaimed",
            Event::ResourceAlerts { .. } => "ResourceAlerts",
            Event::QuotaChanged { .. } => "QuotaChanged",
            Event::RateLimited { .. } => "RateLimited",
            Event::PolicyLoaded { .. } => "PolicyLoaded",
            Event::PolicyReloadFailed { .. } => "PolicyReloadFailed",
            Event::PolicyUnloaded { .. } => "PolicyUnloaded",
            Event::PolicyBound { .. } => "PolicyBound",
            Event::PolicyFault { .. } => "PolicyFault",
            Event::PolicyQuarantined { .. } => "PolicyQuarantined",
            Event::MemoryPressure { .. } => "MemoryPressure",
            Event::Alert { .. } => "Alert",
            Event::CacheEvicted { .. } => "CacheEvicted",
            Event::LeakDetected { .. } => "LeakDetected",
            Event::PressureAction { .. } => "PressureAction",
            Event::CircuitOpened { .. } => "CircuitOpened",
            Event::CircuitClosed { .. } => "CircuitClosed",
            Event::PoolMetrics { .. } => "PoolMetrics",
            Event::Shutdown { .. } => "Shutdown",
            Event::BackendDown { .. } => "BackendDown",
            Event::BackendUp { .. } => "BackendUp",
        }
    }
}

/// An event with its sequence number and wall-clock time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sequence number, from 1, gap-free per bus.
    pub seq: u64,
    /// Unix time, milliseconds.
    pub at_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

const RECENT: usize = 1024;

/// The broadcast bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

#[derive(Debug)]
struct BusInner {
    tx: broadcast::Sender<Arc<Envelope>>,
    /// One channel per tenant with a subscriber: a tenant's stream lags only on its own
    /// events, never because another tenant floods the bus with evictions.
    tenants: Mutex<HashMap<String, broadcast::Sender<Arc<Envelope>>>>,
    seq: AtomicU64,
    recent: Mutex<VecDeque<Arc<Envelope>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus whose subscribers may lag by up to 4096 events before they miss some.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        EventBus {
            inner: Arc::new(BusInner {
                tx,
                tenants: Mutex::default(),
                seq: AtomicU64::new(0),
                recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            }),
        }
    }

    /// Publishes `event` to every subscriber and to the audit log.
    pub fn publish(&self, event: Event) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // Sequence, ring and broadcast under one lock, so subscribers and the ring see
        // events in sequence order; the (costlier) audit logging happens after.
        let env = {
            let mut recent = self.inner.recent.lock();
            let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let env = Arc::new(Envelope { seq, at_ms, event });
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(env.clone());
            // No subscribers is not an error: events are also kept in the ring.
            let _ = self.inner.tx.send(env.clone());
            if let Some(t) = env.event.tenant() {
                let mut tenants = self.inner.tenants.lock();
                if let Some(tx) = tenants.get(t)
                    && tx.send(env.clone()).is_err()
                {
                    // Its last subscriber left: forget the channel.
                    tenants.remove(t);
                }
            }
            env
        };
        // The audit log: allocation, policy and pressure events at info; per-entry cache
        // evictions (possibly thousands a second) only at debug.
        let chatty = matches!(env.event, Event::CacheEvicted { .. });
        let level_on = if chatty {
            tracing::enabled!(target: "rmhost::audit", tracing::Level::DEBUG)
        } else {
            tracing::enabled!(target: "rmhost::audit", tracing::Level::INFO)
        };
        if level_on {
            let json = serde_json::to_string(&*env).unwrap_or_default();
            let (name, seq) = (env.event.name(), env.seq);
            if chatty {
                tracing::debug!(target: "rmhost::audit", event = name, seq, "{json}");
            } else {
                tracing::info!(target: "rmhost::audit", event = name, seq, "{json}");
            }
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.inner.tx.subscribe()
    }

    /// A receiver of `tenant`'s events published from now on, on a channel of its own
    /// (4096 deep): other tenants' events never make it lag.
    pub fn subscribe_tenant(&self, tenant: &str) -> broadcast::Receiver<Arc<Envelope>> {
        // The ring lock orders this against publish, which sends under it.
        let _order = self.inner.recent.lock();
        let mut tenants = self.inner.tenants.lock();
        match tenants.get(tenant) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(4096);
                tenants.insert(tenant.to_string(), tx);
                rx
            }
        }
    }

    /// Up to the last 1024 events with a sequence number above `after`, oldest first.
    pub fn recent(&self, after: u64) -> Vec<Arc<Envelope>> {
        self.inner
            .recent
            .lock()
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_events_in_order_and_the_ring_keeps_them() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.publish(Event::Alert {
            message: "a".into(),
        });
        bus.publish(Event::Alert {
            message: "b".into(),
        });
        assert_eq!(rx.recv().await.unwrap().seq, 1);
        let second = rx.recv().await.unwrap();
        assert_eq!(second.seq, 2);
        assert_eq!(
            second.event,
            Event::Alert {
                message: "b".into()
            }
        );
        assert_eq!(bus.recent(1).len(), 1);
        let json = serde_json::to_value(&*second).unwrap();
        assert_eq!(json["type"], "Alert");
        assert_eq!(json["message"], "b");
    }

    #[tokio::test]
    async fn another_tenants_flood_never_lags_a_tenant_stream() {
        let bus = EventBus::new();
        let mut calm = bus.subscribe_tenant("calm");
        for i in 0..10_000 {
            bus.publish(Event::CacheEvicted {
                cache: "flood".into(),
                tenant: "hog".into(),
                key: i.to_string(),
                reason: "evicted".into(),
                cause: "size".into(),
            });
        }
        bus.publish(Event::QuotaChanged {
            tenant: "calm".into(),
            kind: ResourceKind::Memory,
            limit: Some(1),
        });
        let e = calm.recv().await.expect("no lag, no loss");
        assert_eq!(e.event.tenant(), Some("calm"));
        assert_eq!(e.seq, 10_001);
        assert!(calm.try_recv().is_err(), "only its own events");
    }
}
