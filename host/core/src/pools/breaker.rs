//! The per-pool circuit breaker, and the backoff used by retries.
//!
//! Closed: everything goes through; N consecutive failures (or M consecutive acquire
//! timeouts: sustained exhaustion) open it. Open: callers fail fast with
//! `PoolError::CircuitOpen` instead of queueing behind a dead backend. After `open_ms`
//! one probe is let through (half-open): success closes it, failure re-opens it.
//!
//! The closed, failure-free state is read with one atomic load, so the breaker costs the
//! hot path nothing measurable; the mutex is only taken on failures and transitions.

use super::settings::{BreakerSettings, RetrySettings};
use crate::events::{Event, EventBus};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CircuitState {
    /// Requests go through.
    #[default]
    Closed,
    /// Requests fail fast.
    Open,
    /// One probe is in flight; others fail fast.
    HalfOpen,
}

impl CircuitState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

#[derive(Debug)]
struct Slow {
    opened_at: Instant,
    probe_started: Option<Instant>,
    reason: String,
}

/// Refusal: why, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub reason: String,
    pub retry_in: Duration,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    pool: String,
    cfg: BreakerSettings,
    bus: EventBus,
    state: AtomicU8,
    failures: AtomicU32,
    timeouts: AtomicU32,
    slow: Mutex<Slow>,
}

impl Breaker {
    pub fn new(pool: String, cfg: BreakerSettings, bus: EventBus) -> Self {
        Breaker {
            pool,
            cfg,
            bus,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            timeouts: AtomicU32::new(0),
            slow: Mutex::new(Slow {
                opened_at: Instant::now(),
                probe_started: None,
                reason: String::new(),
            }),
        }
    }

    pub fn state(&self) -> CircuitState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Why it last opened.
    pub fn reason(&self) -> String {
        self.slow.lock().reason.clone()
    }

    /// May a request go through now? While open, the first caller after `open_ms` becomes
    /// the probe; a probe that never reports back (its future was dropped) is replaced
    /// after another `open_ms`, so the breaker cannot stick half-open.
    pub fn admit(&self) -> Result<(), Refused> {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Ok(());
        }
        let open_for = Duration::from_millis(self.cfg.open_ms);
        let mut slow = self.slow.lock();
        let now = Instant::now();
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(()),
            OPEN if now.duration_since(slow.opened_at) >= open_for => {
                self.state.store(HALF_OPEN, Ordering::Release);
                slow.probe_started = Some(now);
                Ok(())
            }
            HALF_OPEN
                if slow
                    .probe_started
                    .is_none_or(|p| now.duration_since(p) >= open_for) =>
            {
                slow.probe_started = Some(now);
                Ok(())
            }
            _ => {
                let since = slow.probe_started.unwrap_or(slow.opened_at);
                Err(Refused {
                    reason: slow.reason.clone(),
                    retry_in: open_for.saturating_sub(now.duration_since(since)),
                })
            }
        }
    }

    /// Something worked: reset the counts; a half-open (or open) breaker closes.
    pub fn on_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.timeouts.load(Ordering::Relaxed) != 0 {
            self.timeouts.store(0, Ordering::Relaxed);
        }
        if self.state.load(Ordering::Acquire) == CLOSED {
            return;
        }
        let mut slow = self.slow.lock();
        if self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED {
            slow.probe_started = None;
            drop(slow);
            tracing::info!(pool = %self.pool, "circuit closed");
            self.bus.publish(Event::CircuitClosed {
                pool: self.pool.clone(),
            });
        }
    }

    /// The backend failed (`what` says how).
    pub fn on_failure(&self, what: &str) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        match self.state.load(Ordering::Acquire) {
            CLOSED if n >= self.cfg.failure_threshold => {
                self.open(format!("{n} consecutive failures (last: {what})"));
            }
            // The probe failed (or a straggler did while we were half-open): stay out.
            HALF_OPEN => self.open(format!("probe failed: {what}")),
            _ => {}
        }
    }

    /// An acquire timed out: the pool is exhausted. Sustained exhaustion opens the
    /// breaker so callers stop piling up behind it.
    pub fn on_timeout(&self) {
        let n = self.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.cfg.timeout_threshold;
        if limit > 0 && n >= limit && self.state.load(Ordering::Acquire) == CLOSED {
            self.open(format!("{n} consecutive acquire timeouts (pool exhausted)"));
        }
    }

    fn open(&self, reason: String) {
        let mut slow = self.slow.lock();
        let was = self.state.swap(OPEN, Ordering::AcqRel);
        slow.opened_at = Instant::now();
        slow.probe_started = None;
        slow.reason = reason.clone();
        drop(slow);
        self.failures.store(0, Ordering::Relaxed);
        self.timeouts.store(0, Ordering::Relaxed);
        if was == CLOSED {
            tracing::warn!(pool = %self.pool, %reason, "circuit opened");
            self.bus.publish(Event::CircuitOpened {
                pool: self.pool.clone(),
                reason,
            });
        }
    }
}

/// The pause before retry number `attempt` (1 = the first retry): exponential from
/// `base_ms`, capped at `max_ms`, with "equal jitter" (half fixed, half random) so
/// clients that failed together do not retry together.
pub(crate) fn backoff(retry: &RetrySettings, attempt: u32) -> Duration {
    let exp = retry
        .base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(retry.max_ms);
    let half = exp / 2;
    Duration::from_millis(half + random_below(exp - half + 1))
}

/// A random number below `n` (n > 0). std's `RandomState` is randomly keyed per
/// instance, which is all the randomness jitter needs; no RNG dependency for this.
pub(crate) fn random_below(n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let mut h = RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}
