//! Per-policy call statistics, cheap enough for the hot path: three relaxed atomic adds and
//! one histogram bucket per call. The histogram has four sub-buckets per power of two of
//! nanoseconds, so p99 is exact to within ~25%. [`PolicyRuntime::metrics`] exports them
//! for `/metrics`, the histogram folded to power-of-two bounds (exact bucket edges).

use super::registry::PolicyRuntime;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: usize = 256;

pub(crate) struct Stats {
    pub calls: AtomicU64,
    pub faults: AtomicU64,
    total_ns: AtomicU64,
    /// Largest linear memory seen in an instance of the current version, bytes.
    pub memory_bytes: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("calls", &self.calls)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            memory_bytes: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn bucket(ns: u64) -> usize {
    if ns < 8 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros() as u64; // >= 3
    let sub = (ns >> (e - 2)) & 3;
    (e * 4 + sub) as usize
}

/// The upper bound of bucket `i`, ns.
fn upper(i: usize) -> u64 {
    if i < 8 {
        return i as u64 + 1;
    }
    let (e, sub) = ((i / 4) as u32, (i % 4) as u64);
    (5 + sub).checked_shl(e - 2).unwrap_or(u64::MAX)
}

impl Stats {
    /// Records one call (faulted or not).
    pub(crate) fn record(&self, took: Duration, memory_bytes: Option<usize>) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Relaxed);
        self.total_ns.fetch_add(ns, Relaxed);
        self.buckets[bucket(ns).min(BUCKETS - 1)].fetch_add(1, Relaxed);
        if let Some(m) = memory_bytes {
            self.memory_bytes.fetch_max(m as u64, Relaxed);
        }
    }

    pub(crate) fn mean_ns(&self) -> u64 {
        let calls = self.calls.load(Relaxed);
        self.total_ns.load(Relaxed).checked_div(calls).unwrap_or(0)
    }

    /// The 99th percentile call time (bucket upper bound), ns; 0 with no calls.
    pub(crate) fn p99_ns(&self) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = total - total / 100;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return upper(i);
            }
        }
        upper(BUCKETS - 1)
    }
}

/// Exported bounds: 2^8 ns (256 ns) to 2^27 ns (~134 ms, past any sane deadline). Every
/// power of two is the upper edge of a fine bucket, so the folding loses nothing.
const EXPORT_EXPONENTS: std::ops::RangeInclusive<u32> = 8..=27;

/// A call-latency histogram, Prometheus-shaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallHistogram {
    /// Bucket upper bounds, ns (a call of `b - 1` ns or less counts under `b`); a last,
    /// implicit `+Inf` bucket follows.
    pub bounds_ns: Vec<u64>,
    /// Calls under each bound, then the total: one more than `bounds_ns`.
    pub cumulative_counts: Vec<u64>,
    /// Their summed time, ns.
    pub sum_ns: u64,
}

/// One loaded policy's counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyMetrics {
    /// Policy name (a loaded file's stem: a bounded label).
    pub name: String,
    /// Guest calls since the name was first loaded.
    pub calls: u64,
    /// Faults since the name was first loaded.
    pub faults: u64,
    /// Quarantines ever entered, over every (policy, tenant) account.
    pub quarantines: u64,
    /// Accounts quarantined now (tenants, plus tenant-less calls).
    pub quarantined_accounts: u32,
    /// Largest linear memory of an instance of the current version, bytes.
    pub memory_bytes: u64,
    /// Call latency.
    pub latency: CallHistogram,
}

impl Stats {
    /// The histogram folded to [`EXPORT_EXPONENTS`] bounds.
    pub(crate) fn histogram(&self) -> CallHistogram {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let mut bounds_ns = Vec::new();
        let mut cumulative_counts = Vec::new();
        let (mut i, mut seen) = (0, 0);
        for e in EXPORT_EXPONENTS {
            let bound = 1u64 << e;
            while i < BUCKETS && upper(i) <= bound {
                seen += counts[i];
                i += 1;
            }
            bounds_ns.push(bound);
            cumulative_counts.push(seen);
        }
        cumulative_counts.push(seen + counts[i..].iter().sum::<u64>());
        CallHistogram {
            bounds_ns,
            cumulative_counts,
            sum_ns: self.total_ns.load(Relaxed),
        }
    }
}

impl PolicyRuntime {
    /// Every loaded policy's call counters and latency histogram, sorted by name: cheap
    /// (atomic loads, no bindings walk) for every scrape.
    pub fn metrics(&self) -> Vec<PolicyMetrics> {
        let mut out: Vec<PolicyMetrics> = self
            .shared
            .all_slots()
            .iter()
            .filter(|s| s.current().is_some())
            .map(|s| PolicyMetrics {
                name: s.name.to_string(),
                calls: s.stats.calls.load(Relaxed),
                faults: s.stats.faults.load(Relaxed),
                quarantines: s.health.entered.load(Relaxed),
                quarantined_accounts: s.health.quarantined_accounts(),
                memory_bytes: s.stats.memory_bytes.load(Relaxed),
                latency: s.stats.histogram(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        for ns in [0u64, 7, 8, 9, 100, 1000, 123_456, 10_000_000_000] {
            let b = bucket(ns);
            assert!(upper(b) > ns, "{ns} in bucket {b} with upper {}", upper(b));
            assert!(bucket(ns + 1) >= b);
        }
    }

    #[test]
    fn p99_tracks_the_slow_tail() {
        let s = Stats::default();
        for _ in 0..990 {
            s.record(Duration::from_nanos(200), None);
        }
        for _ in 0..10 {
            s.record(Duration::from_micros(50), None);
        }
        assert!(s.p99_ns() <= 256, "p99 {}", s.p99_ns());
        s.record(Duration::from_micros(50), Some(65536));
        assert!(s.p99_ns() >= 50_000);
        assert_eq!(s.memory_bytes.load(Relaxed), 65536);
    }

    #[test]
    fn the_exported_histogram_folds_at_exact_edges() {
        let s = Stats::default();
        for ns in [100, 255, 256, 1000, 1 << 20, 1 << 40] {
            s.record(Duration::from_nanos(ns), None);
        }
        let h = s.histogram();
        assert_eq!(h.bounds_ns.first(), Some(&256));
        assert_eq!(h.cumulative_counts.len(), h.bounds_ns.len() + 1);
        // Under 256: 100 and 255; under 1024: also 256 and 1000; under 2^21: also 2^20.
        assert_eq!(h.cumulative_counts[0], 2);
        assert_eq!(h.cumulative_counts[2], 4);
        assert_eq!(h.cumulative_counts[13], 5);
        assert_eq!(h.cumulative_counts.last(), Some(&6));
        assert!(h.cumulative_counts.windows(2).all(|w| w[0] <= w[1]));
    }
}
