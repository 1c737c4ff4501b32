//! The maintenance round a pool runs every `health_check_interval`, and what is read off
//! a pool for metrics, health and pressure.
//!
//! Maintenance takes connections only through `try_acquire` on the admission layer: it
//! never queues, so it cannot delay a caller or push the pool past `max`. When the pool
//! is busy it skips the ping: connections in use are being exercised anyway.

use super::breaker::CircuitState;
use super::managed::{Backend, ManagedPool};
use super::metrics::{Counters, PoolMetrics};
use crate::health::{HealthCheck, HealthStatus};
use crate::policy::PoolStat;
use deadpool::managed::Object;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl<B: Backend> ManagedPool<B> {
    /// One maintenance round: drop idle connections that are closed or past their
    /// lifetime, close idle ones past `idle_timeout` (down to `min`), open connections
    /// up to `min`, and ping one idle connection (which is also the breaker's half-open
    /// probe).
    pub async fn maintain(&self) {
        self.drop_dead_idle();
        self.close_idle();
        self.warm().await;
        self.health_ping().await;
    }

    fn drop_dead_idle(&self) {
        let c = &self.inner.shared.counters;
        let now = Instant::now();
        let removed = self.inner.pool.retain(|conn, _| {
            if conn.expired(now) {
                Counters::inc(&c.retired_lifetime);
                false
            } else if B::is_closed(conn.raw()) {
                Counters::inc(&c.discarded);
                false
            } else {
                true
            }
        });
        drop(removed);
    }

    fn close_idle(&self) {
        let sh = &self.inner.shared;
        let Some(idle_timeout) = sh.cfg.idle_timeout else {
            return;
        };
        let mut excess = self
            .inner
            .pool
            .status()
            .size
            .saturating_sub(sh.cfg.min as usize);
        if excess == 0 {
            return;
        }
        let now = Instant::now();
        let removed = self.inner.pool.retain(|conn, _| {
            if excess > 0 && now.duration_since(conn.returned) >= idle_timeout {
                excess -= 1;
                Counters::inc(&sh.counters.idle_closed);
                false
            } else {
                true
            }
        });
        drop(removed);
    }

    async fn health_ping(&self) {
        let inner = &*self.inner;
        let sh = &*inner.shared;
        let c = &sh.counters;
        // While open and cooling down, leave the backend alone; once the cool-down is
        // over this ping is the probe that may close the breaker.
        // With nothing idle there is nothing to ping, and opening a connection just for
        // it would churn pools whose `min` is 0; only a probe is worth one.
        let nothing_idle = inner.pool.status().available == 0;
        if nothing_idle && sh.breaker.state() == CircuitState::Closed {
            return;
        }
        if sh.breaker.admit().is_err() || !inner.shared.admission.try_acquire() {
            return;
        }
        let got = tokio::time::timeout(sh.cfg.acquire_timeout, inner.pool.get()).await;
        match got {
            Ok(Ok(mut obj)) => {
                Counters::inc(&c.health_checks);
                let t = Instant::now();
                let ping = tokio::time::timeout(sh.cfg.connect_timeout, B::ping(obj.raw_mut()));
                match ping.await {
                    Ok(Ok(())) => {
                        let us = t.elapsed().as_micros().max(1) as u64;
                        c.last_ping_us.store(us, Ordering::Relaxed);
                        sh.breaker.on_success();
                        drop(obj);
                    }
                    failed => {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "health ping timed out".to_string(),
                        };
                        tracing::warn!(pool = %sh.name, error = %why, "health ping failed");
                        Counters::inc(&c.failed_health_checks);
                        c.last_ping_us.store(0, Ordering::Relaxed);
                        sh.breaker.on_failure(&format!("health ping: {why}"));
                        drop(Object::take(obj));
                    }
                }
            }
            // Connecting failed (already counted by the breaker) or took too long.
            Ok(Err(_)) | Err(_) => {
                Counters::inc(&c.health_checks);
                Counters::inc(&c.failed_health_checks);
                c.last_ping_us.store(0, Ordering::Relaxed);
            }
        }
        inner.shared.admission.release();
    }

    async fn warm(&self) {
        let inner = &*self.inner;
        let sh = &*inner.shared;
        let size = inner.pool.status().size;
        let min = sh.cfg.min as usize;
        if size >= min || sh.breaker.state() != CircuitState::Closed {
            return;
        }
        // Holding the connections at once makes deadpool open new ones once the idle
        // ones are all taken, rather than hand back the same idle one.
        let mut held = Vec::new();
        while inner.pool.status().size < min && held.len() < sh.cfg.max as usize {
            if !inner.shared.admission.try_acquire() {
                break;
            }
            match tokio::time::timeout(sh.cfg.acquire_timeout, inner.pool.get()).await {
                Ok(Ok(obj)) => held.push(obj),
                _ => {
                    inner.shared.admission.release();
                    break;
                }
            }
        }
        let now = Instant::now();
        for mut obj in held {
            obj.returned = now;
            drop(obj);
            inner.shared.admission.release();
        }
    }

    /// Closes up to `n` idle connections (a pressure response); never one in use.
    /// Returns how many were closed. Connections below `min` may go too: the next
    /// maintenance round reopens them once pressure allows.
    pub fn shrink(&self, n: usize) -> usize {
        let c = &self.inner.shared.counters;
        let mut left = n;
        let removed = self.inner.pool.retain(|_, _| {
            if left > 0 {
                left -= 1;
                false
            } else {
                true
            }
        });
        let closed = removed.removed.len();
        Counters::add(&c.shrunk, closed as u64);
        closed
    }

    /// The pool's metrics snapshot.
    pub fn metrics(&self) -> PoolMetrics {
        let inner = &*self.inner;
        let sh = &*inner.shared;
        let c = &sh.counters;
        let status = inner.pool.status();
        let ping = Counters::get(&c.last_ping_us);
        let acquire_latency = c.hot.latency();
        PoolMetrics {
            pool: sh.name.clone(),
            kind: B::KIND.to_string(),
            min: sh.cfg.min,
            max: sh.cfg.max,
            size: status.size as u32,
            idle: status.available as u32,
            // deadpool's count of objects out: callers' connections, plus one a
            // maintenance round may hold for a moment. Counting our own would cost
            // every acquire two more atomic operations.
            in_use: status.size.saturating_sub(status.available) as u32,
            waiting: inner.shared.admission.waiting() as u32,
            acquires: acquire_latency.count,
            timeouts: Counters::get(&c.timeouts),
            circuit_rejections: Counters::get(&c.circuit_rejections),
            created: Counters::get(&c.created),
            create_failures: Counters::get(&c.create_failures),
            recycled: c.hot.recycled_total(),
            recycle_failures: Counters::get(&c.recycle_failures),
            retired_lifetime: Counters::get(&c.retired_lifetime),
            discarded: Counters::get(&c.discarded),
            idle_closed: Counters::get(&c.idle_closed),
            shrunk: Counters::get(&c.shrunk),
            health_checks: Counters::get(&c.health_checks),
            failed_health_checks: Counters::get(&c.failed_health_checks),
            last_ping_ms: (ping > 0).then(|| ping as f64 / 1000.0),
            waits: Counters::get(&c.waits),
            wait_ms_total: Counters::get(&c.wait_us_sum) as f64 / 1000.0,
            circuit: sh.breaker.state(),
            acquire_latency,
        }
    }

    /// What a pressure policy sees of the pool.
    pub fn stat(&self) -> PoolStat {
        let status = self.inner.pool.status();
        PoolStat {
            name: self.name().to_string(),
            size: status.size as u32,
            idle: status.available as u32,
            waiting: self.inner.shared.admission.waiting() as u32,
        }
    }

    /// The pool's health: unhealthy while the breaker is open, degraded while it probes,
    /// after a failed ping, or while exhausted with callers queued.
    pub fn health_check(&self) -> HealthCheck {
        let m = self.metrics();
        let sh = &*self.inner.shared;
        let ping = m
            .last_ping_ms
            .map_or_else(|| "no ping yet".to_string(), |p| format!("ping {p:.2} ms"));
        let usage = format!(
            "{}/{} in use, {} idle, {} waiting, {ping}",
            m.in_use, m.max, m.idle, m.waiting
        );
        let (status, message) = match m.circuit {
            CircuitState::Open => (
                HealthStatus::Unhealthy,
                format!("circuit open ({}); {usage}", sh.breaker.reason()),
            ),
            CircuitState::HalfOpen => (
                HealthStatus::Degraded,
                format!("circuit half-open, probing; {usage}"),
            ),
            CircuitState::Closed if m.health_checks > 0 && m.last_ping_ms.is_none() => {
                (HealthStatus::Degraded, format!("last ping failed; {usage}"))
            }
            CircuitState::Closed if m.waiting > 0 && m.in_use >= m.max => {
                (HealthStatus::Degraded, format!("exhausted; {usage}"))
            }
            CircuitState::Closed => (HealthStatus::Healthy, usage),
        };
        HealthCheck {
            name: format!("pool.{}", m.pool),
            status,
            message,
            value: Some(f64::from(m.in_use)),
            limit: Some(f64::from(m.max)),
        }
    }
}
