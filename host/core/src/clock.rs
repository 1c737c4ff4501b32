//! The one clock of the host: milliseconds on a monotonic clock, real or moved by hand.
//!
//! Resources (leases, allocation ages), telemetry (the sliding request minute) and caches
//! (event stamps, TTLs) all read a [`Clock`]. The real clock reads `CLOCK_MONOTONIC_COARSE`
//! (a vDSO read of ~7 ns at tick resolution, a few ms) rather than `Instant::now()` (~33 ns
//! measured here), because caches stamp every event with it and telemetry every request;
//! millisecond leases and one-second buckets need no more resolution than a tick. Tests and
//! `rmhost sim` use a [`ManualClock`] instead, so nothing has to sleep and a trace's own
//! time can drive the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds of the coarse monotonic clock since an arbitrary fixed point (boot on
/// Linux). Only differences mean anything.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through a pointer to a live local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc == 0 {
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    } else {
        0
    }
}

/// Milliseconds of a monotonic clock since the first call (platforms without a coarse
/// clock).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
pub fn coarse_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// A monotonic millisecond clock. Cheap to clone; clones of a manual clock share its time.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since `start` on the coarse monotonic clock ([`Clock::real`] takes it).
    Real {
        /// The coarse reading the clock counts from.
        start: u64,
    },
    /// A time someone else sets ([`ManualClock`]).
    Manual(Arc<AtomicU64>),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

impl Clock {
    /// A real clock at 0 now.
    pub fn real() -> Self {
        Clock::Real { start: coarse_ms() }
    }

    /// Milliseconds since the clock's start.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::Real { start } => coarse_ms().saturating_sub(*start),
            Clock::Manual(v) => v.load(Ordering::Relaxed),
        }
    }

    /// Whole seconds since the clock's start.
    #[inline]
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// A clock a test (or `rmhost sim`, from a trace's timestamps) moves by hand. Every
/// [`Clock`] made from it with [`ManualClock::clock`] shows its time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at 0 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// The [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        Clock::Manual(self.0.clone())
    }

    /// The current time, ms.
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves the clock forward by `ms` (saturating).
    pub fn advance(&self, ms: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(ms))
            });
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_share_time_and_saturate() {
        let m = ManualClock::new();
        let c = m.clock();
        m.advance(1500);
        assert_eq!(c.now_ms(), 1500);
        assert_eq!(c.now_secs(), 1);
        m.advance(u64::MAX);
        assert_eq!(c.now_ms(), u64::MAX);
        m.set(7);
        assert_eq!(c.clone().now_ms(), 7);
    }

    #[test]
    fn the_real_clock_starts_near_zero_and_never_goes_back() {
        let c = Clock::real();
        let a = c.now_ms();
        let b = c.now_ms();
        assert!(b >= a);
        assert!(a < 60_000, "a fresh clock reads {a} ms");
    }
}
