//! Per-pool counters and the acquire-latency histogram, all atomics so recording costs
//! the hot path a few uncontended increments; `PoolMetrics` is the serializable snapshot
//! the API, `/metrics` and `rmhost connections` render.

use super::breaker::CircuitState;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the acquire-latency buckets, microseconds (Prometheus `le`).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000, 5_000_000,
];

/// The rarely-touched counters are plain atomics; the per-acquire ones live in `hot`,
/// striped per thread, because a counter every worker thread bumps on every acquire
/// bounces its cache line between cores and costs more than the rest of the acquire.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hot: Striped,
    pub timeouts: AtomicU64,
    pub circuit_rejections: AtomicU64,
    pub created: AtomicU64,
    pub create_failures: AtomicU64,
    pub recycle_failures: AtomicU64,
    pub retired_lifetime: AtomicU64,
    pub discarded: AtomicU64,
    pub idle_closed: AtomicU64,
    pub shrunk: AtomicU64,
    pub health_checks: AtomicU64,
    pub failed_health_checks: AtomicU64,
    pub last_ping_us: AtomicU64,
    pub waits: AtomicU64,
    pub wait_us_sum: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

const SHARDS: usize = 8;
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// One thread's share of the hot counters, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    recycled: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Striped {
    shards: [Shard; SHARDS],
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

impl Striped {
    fn mine(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    /// A successful acquire and its latency (the bucket count doubles as `acquires`).
    pub fn acquired(&self, latency: Duration) {
        let s = self.mine();
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        s.buckets[i].fetch_add(1, Ordering::Relaxed);
        if us > 0 {
            s.sum_us.fetch_add(us, Ordering::Relaxed);
        }
    }

    pub fn recycled(&self) {
        self.mine().recycled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn recycled_total(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.recycled.load(Ordering::Relaxed))
            .sum()
    }

    pub fn latency(&self) -> LatencyHistogram {
        let mut cumulative = Vec::with_capacity(BUCKETS);
        let mut total = 0;
        for i in 0..BUCKETS {
            total += self
                .shards
                .iter()
                .map(|s| s.buckets[i].load(Ordering::Relaxed))
                .sum::<u64>();
            cumulative.push(total);
        }
        LatencyHistogram {
            bounds_us: LATENCY_BOUNDS_US.to_vec(),
            cumulative_counts: cumulative,
            count: total,
            sum_us: self
                .shards
                .iter()
                .map(|s| s.sum_us.load(Ordering::Relaxed))
                .sum(),
        }
    }
}

/// Acquire latency (wait in the queue plus connecting or recycling), Prometheus-shaped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyHistogram {
    /// Bucket upper bounds, microseconds; a last, implicit `+Inf` bucket follows.
    pub bounds_us: Vec<u64>,
    /// Acquires at or under each bound, then the total (`+Inf`): one more than `bounds_us`.
    pub cumulative_counts: Vec<u64>,
    /// Acquires recorded.
    pub count: u64,
    /// Their summed latency, microseconds.
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// The smallest bucket bound at or above the `q` quantile (0-1), microseconds;
    /// `None` when empty or when it falls in the `+Inf` bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let want = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let i = self.cumulative_counts.iter().position(|&c| c >= want)?;
        self.bounds_us.get(i).copied()
    }
}

/// One pool's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolMetrics {
    /// `kind/name`, e.g. `postgres/main`.
    pub pool: String,
    /// `postgres` or `redis`.
    pub kind: String,
    /// Configured minimum.
    pub min: u32,
    /// Configured maximum.
    pub max: u32,
    /// Open connections.
    pub size: u32,
    /// Open and idle.
    pub idle: u32,
    /// Handed out now.
    pub in_use: u32,
    /// Callers queued now.
    pub waiting: u32,
    /// Successful acquires.
    pub acquires: u64,
    /// Acquires that ran out of `acquire_timeout`.
    pub timeouts: u64,
    /// Acquires refused because the breaker was open.
    pub circuit_rejections: u64,
    /// Connections opened.
    pub created: u64,
    /// Connection attempts that failed.
    pub create_failures: u64,
    /// Idle connections that passed their recycle check and were handed out again.
    pub recycled: u64,
    /// Connections dropped because their recycle check failed.
    pub recycle_failures: u64,
    /// Connections retired for reaching `max_lifetime`.
    pub retired_lifetime: u64,
    /// Connections dropped as broken when returned (closed, or discarded by the caller).
    pub discarded: u64,
    /// Idle connections closed after `idle_timeout`.
    pub idle_closed: u64,
    /// Idle connections closed by `shrink` (pressure).
    pub shrunk: u64,
    /// Health pings made.
    pub health_checks: u64,
    /// Health pings that failed (the connection was dropped).
    pub failed_health_checks: u64,
    /// The last successful health ping's round trip, ms.
    pub last_ping_ms: Option<f64>,
    /// Acquires that had to queue.
    pub waits: u64,
    /// Their summed time in the queue, ms.
    pub wait_ms_total: f64,
    /// The breaker's state.
    pub circuit: CircuitState,
    /// Acquire latency.
    pub acquire_latency: LatencyHistogram,
}
