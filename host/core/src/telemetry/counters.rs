//! Live counters: connections and requests, with requests per sliding minute.
//!
//! Recording sits on every request's path, so it is a couple of atomic operations and
//! never takes a lock. Time is passed in as whole seconds (`now_secs`) so tests can move
//! the clock without sleeping.

use crate::clock::Clock;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: usize = 60;

/// Requests over the last 60 seconds, in 60 one-second buckets.
///
/// Each bucket is one `AtomicU64` holding the second it counts (high 32 bits) and its
/// count (low 32 bits), so a writer that finds a stale bucket resets and counts it in a
/// single compare-and-swap, and no reader ever sees a new second with an old count.
#[derive(Debug)]
pub struct RequestWindow {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for RequestWindow {
    fn default() -> Self {
        Self::new()
    }
}

fn pack(second: u32, count: u32) -> u64 {
    (u64::from(second) << 32) | u64::from(count)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl RequestWindow {
    /// An empty window.
    pub fn new() -> Self {
        RequestWindow {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts `n` requests at second `now_secs` (any monotonic seconds counter). A
    /// bucket saturates at `u32::MAX` requests per second.
    pub fn record_at(&self, now_secs: u64, n: u64) {
        // Seconds wrap at 2^32 (136 years); ages are computed with wrapping arithmetic.
        let second = now_secs as u32;
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let bucket = &self.buckets[(now_secs % BUCKETS as u64) as usize];
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (s, c) = unpack(current);
            let next = if s == second {
                pack(second, c.saturating_add(n))
            } else {
                pack(second, n)
            };
            match bucket.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Requests counted in the 60 seconds ending with `now_secs` (that second included).
    pub fn per_minute_at(&self, now_secs: u64) -> u64 {
        let now = now_secs as u32;
        self.buckets
            .iter()
            .map(|b| unpack(b.load(Ordering::Relaxed)))
            .filter(|&(s, _)| now.wrapping_sub(s) < BUCKETS as u32)
            .map(|(_, c)| u64::from(c))
            .sum()
    }
}

/// Connection and request counters.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) clock: Clock,
    pub(crate) active_connections: AtomicU64,
    pub(crate) total_connections: AtomicU64,
    pub(crate) refused_connections: AtomicU64,
    pub(crate) refused_grpc_connections: AtomicU64,
    pub(crate) total_requests: AtomicU64,
    pub(crate) window: RequestWindow,
}

impl Counters {
    pub(crate) fn new(clock: Clock) -> Self {
        Counters {
            clock,
            active_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            refused_grpc_connections: AtomicU64::new(0),
            total_requests: AtomicU64::new(0),
            window: RequestWindow::new(),
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        self.total_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Never goes below zero, so an unmatched close cannot wrap the gauge.
    pub(crate) fn connection_closed(&self) {
        let _ = self
            .active_connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    pub(crate) fn record_requests(&self, n: u64) {
        self.total_requests.fetch_add(n, Ordering::Relaxed);
        self.window.record_at(self.clock.now_secs(), n);
    }

    pub(crate) fn requests_per_minute(&self) -> u64 {
        self.window.per_minute_at(self.clock.now_secs())
    }
}
