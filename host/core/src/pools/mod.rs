//! Connection pools: named Postgres and Redis pools with a priority wait queue, retries,
//! a circuit breaker, background health checks, recycling and metrics.
//!
//! Owns: the `[pools]` settings, every pooled connection, and the pools' background
//! tasks. Must not: know about HTTP or the CLI (the API renders [`PoolMetrics`] and
//! [`PoolManager::health_checks`]), or touch wasmtime (the priority policy comes in as a
//! `dyn PriorityPolicy`).
//!
//! | file | what |
//! |---|---|
//! | `managed.rs` | the generic [`ManagedPool`] over deadpool: acquire, guard, retries |
//! | `queue.rs` | the ranked admission layer (deadpool's own queue is FIFO) |
//! | `breaker.rs` | the circuit breaker and backoff with jitter |
//! | `maintain.rs` | health pings, idle timeout, keeping `min` warm, `shrink`, snapshots |
//! | `postgres.rs`, `redis.rs` | the two backends |
//! | `settings.rs`, `error.rs`, `metrics.rs` | config, errors, counters |
//!
//! ```no_run
//! # async fn demo(pools: &rmhost_core::pools::PoolManager) -> Result<(), rmhost_core::pools::PoolError> {
//! let db = pools.postgres("main")?.get().await?;
//! db.simple_query("SELECT 1").await.ok();
//! drop(db); // back to the pool
//! let n: i64 = pools.redis("main")?.query(redis::cmd("INCR").arg("hits")).await?;
//! # let _ = n; Ok(()) }
//! ```

// With both backends compiled out, the generic pool machinery has no user.
#![cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]

mod breaker;
mod error;
mod maintain;
mod managed;
mod metrics;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
#[cfg(feature = "redis")]
mod redis;
mod settings;

#[cfg(all(test, feature = "postgres", feature = "redis"))]
mod tests;

pub use breaker::CircuitState;
pub use error::{BackendError, PoolError, PoolTimeout, SettingsError, error_chain};
pub use managed::{Backend, ManagedPool, Pooled};
pub use metrics::{LATENCY_BOUNDS_US, LatencyHistogram, PoolMetrics};
#[cfg(feature = "postgres")]
pub use postgres::{PgConn, PostgresPool};
#[cfg(feature = "redis")]
pub use redis::{RedisConn, RedisPool};
pub use settings::{
    BreakerSettings, PoolsSettings, PostgresSettings, RecycleCheck, RedisSettings, RetrySettings,
    redact,
};

use crate::events::{Event, EventBus};
use crate::health::HealthCheck;
use crate::policy::{NativePriority, PoolStat, PriorityPolicy};
use futures::future::BoxFuture;
use managed::Ctx;
#[cfg(any(feature = "postgres", feature = "redis"))]
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Every configured pool, by kind and name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PoolManager {
    ctx: Arc<Ctx>,
    #[cfg(feature = "postgres")]
    postgres: Arc<BTreeMap<String, PostgresPool>>,
    #[cfg(feature = "redis")]
    redis: Arc<BTreeMap<String, RedisPool>>,
    /// Every pool, Postgres first, by name: what the kind-independent operations walk.
    all: Arc<Vec<Arc<dyn AnyPool>>>,
    health_interval: Duration,
}

/// What the manager does with a pool of any backend (object-safe, so the operations that
/// walk every pool need no per-backend code and the backends can be compiled out).
trait AnyPool: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> &'static str;
    fn bare_name(&self) -> &str;
    fn full_name(&self) -> &str;
    fn maintain(&self) -> BoxFuture<'_, ()>;
    fn metrics(&self) -> PoolMetrics;
    fn stat(&self) -> PoolStat;
    fn health_check(&self) -> HealthCheck;
    fn shrink(&self, n: usize) -> usize;
    fn close(&self);
}

impl<B: Backend> AnyPool for ManagedPool<B>
where
    B::Type: Send,
{
    fn kind(&self) -> &'static str {
        B::KIND
    }
    fn bare_name(&self) -> &str {
        let full = ManagedPool::name(self);
        full.split_once('/').map_or(full, |(_, bare)| bare)
    }
    fn full_name(&self) -> &str {
        ManagedPool::name(self)
    }
    fn maintain(&self) -> BoxFuture<'_, ()> {
        Box::pin(ManagedPool::maintain(self))
    }
    fn metrics(&self) -> PoolMetrics {
        ManagedPool::metrics(self)
    }
    fn stat(&self) -> PoolStat {
        ManagedPool::stat(self)
    }
    fn health_check(&self) -> HealthCheck {
        ManagedPool::health_check(self)
    }
    fn shrink(&self, n: usize) -> usize {
        ManagedPool::shrink(self, n)
    }
    fn close(&self) {
        ManagedPool::close(self)
    }
}

impl PoolManager {
    /// Builds every pool in `settings` (validated first), ranking waiters with the native
    /// aging policy. Opens no connection: call [`PoolManager::warm_up`] or
    /// [`PoolManager::spawn_maintenance`] for that.
    pub fn new(settings: &PoolsSettings, bus: EventBus) -> Result<Self, PoolError> {
        Self::with_priority(settings, bus, Arc::new(NativePriority::default()))
    }

    /// Like [`PoolManager::new`], with waiters ranked by `policy` (the runtime's resolver
    /// in the daemon, which picks the bound Wasm policy per call).
    pub fn with_priority(
        settings: &PoolsSettings,
        bus: EventBus,
        policy: Arc<dyn PriorityPolicy>,
    ) -> Result<Self, PoolError> {
        settings.validate()?;
        let ctx = Arc::new(Ctx {
            started: Instant::now(),
            policy,
            bus,
        });
        #[allow(unused_mut)] // nothing to push when both backends are compiled out
        let mut all: Vec<Arc<dyn AnyPool>> = Vec::new();
        #[cfg(feature = "postgres")]
        let postgres = {
            let mut m = BTreeMap::new();
            for (name, s) in &settings.postgres {
                let p = postgres::build(name, s, ctx.clone())?;
                all.push(Arc::new(p.clone()));
                m.insert(name.clone(), p);
            }
            m
        };
        #[cfg(feature = "redis")]
        let redis = {
            let mut m = BTreeMap::new();
            for (name, s) in &settings.redis {
                let p = redis::build(name, s, ctx.clone())?;
                all.push(Arc::new(p.clone()));
                m.insert(name.clone(), p);
            }
            m
        };
        Ok(PoolManager {
            ctx,
            #[cfg(feature = "postgres")]
            postgres: Arc::new(postgres),
            #[cfg(feature = "redis")]
            redis: Arc::new(redis),
            all: Arc::new(all),
            health_interval: Duration::from_millis(settings.health_check_interval_ms),
        })
    }

    /// The Postgres pool `name`.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self, name: &str) -> Result<PostgresPool, PoolError> {
        self.postgres
            .get(name)
            .cloned()
            .ok_or_else(|| unknown("postgres", name, self.postgres.keys()))
    }

    /// The Redis pool `name`.
    #[cfg(feature = "redis")]
    pub fn redis(&self, name: &str) -> Result<RedisPool, PoolError> {
        self.redis
            .get(name)
            .cloned()
            .ok_or_else(|| unknown("redis", name, self.redis.keys()))
    }

    /// The policy ranking waiters now.
    pub fn priority_policy(&self) -> Arc<dyn PriorityPolicy> {
        self.ctx.policy.clone()
    }

    /// The manager's monotonic clock (ms since it was built): waiters' `enqueued_ms`.
    pub fn now_ms(&self) -> u64 {
        self.ctx.now_ms()
    }

    /// Runs one maintenance round on every pool now (opens `min` connections, pings).
    pub async fn warm_up(&self) {
        futures::future::join_all(self.all.iter().map(|p| p.maintain())).await;
    }

    /// Runs a maintenance round on every pool every `health_check_interval_ms` until the
    /// handle is aborted. Pools are maintained concurrently, so a dead backend's
    /// timeouts do not delay the others.
    pub fn spawn_maintenance(&self) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.health_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.warm_up().await;
            }
        })
    }

    /// Publishes a `PoolMetrics` event per pool every `interval` until aborted.
    pub fn spawn_metrics(&self, interval: Duration) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                for m in me.metrics() {
                    me.ctx.bus.publish(Event::PoolMetrics {
                        pool: m.pool,
                        size: m.size,
                        idle: m.idle,
                        in_use: m.in_use,
                        waiting: m.waiting,
                        acquires: m.acquires,
                        timeouts: m.timeouts,
                        circuit: m.circuit.as_str().to_string(),
                    });
                }
            }
        })
    }

    /// Every pool's snapshot, Postgres first, by name.
    pub fn metrics(&self) -> Vec<PoolMetrics> {
        self.all.iter().map(|p| p.metrics()).collect()
    }

    /// What pressure policies see of every pool.
    pub fn stats(&self) -> Vec<PoolStat> {
        self.all.iter().map(|p| p.stat()).collect()
    }

    /// One health check per pool, named `pool.KIND/NAME`.
    pub fn health_checks(&self) -> Vec<HealthCheck> {
        self.all.iter().map(|p| p.health_check()).collect()
    }

    /// Closes up to `n` idle connections of pool `name` (`postgres/main`, or a bare
    /// `main` for every pool of that name), never one in use; returns how many closed.
    /// This is the pressure policies' `shrink-pool` action.
    pub fn shrink(&self, name: &str, n: u32) -> Result<u32, PoolError> {
        let (kind, bare) = match name.split_once('/') {
            Some((k, b)) => (Some(k), b),
            None => (None, name),
        };
        let mut left = n as usize;
        let mut found = false;
        for p in self
            .all
            .iter()
            .filter(|p| kind.is_none_or(|k| k == p.kind()) && p.bare_name() == bare)
        {
            found = true;
            left -= p.shrink(left);
        }
        if !found {
            let names = self.names();
            return Err(unknown(
                kind.unwrap_or("postgres or redis"),
                name,
                names.iter(),
            ));
        }
        Ok(n - left as u32)
    }

    /// Every pool's full name.
    pub fn names(&self) -> Vec<String> {
        self.all.iter().map(|p| p.full_name().to_string()).collect()
    }

    /// Closes every pool.
    pub fn close(&self) {
        self.all.iter().for_each(|p| p.close());
    }
}

fn unknown<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a String>) -> PoolError {
    let known: Vec<&str> = known.map(String::as_str).collect();
    PoolError::UnknownPool {
        kind: if kind == "redis" { "redis" } else { "postgres" },
        name: name.to_string(),
        known: if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        },
    }
}
