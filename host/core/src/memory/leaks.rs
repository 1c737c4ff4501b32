//! Leak detection, three heuristics:
//! - **trend**: a Theil-Sen slope (median of pairwise slopes, robust to outliers and
//!   noise) over the recent samples of a series (RSS, each cache, each tenant), flagged
//!   when the slope exceeds `min_growth_bytes_per_min` *and* the growth is consistent: the
//!   confidence is Kendall's tau between time and value (+1 = always rising), and it
//!   must reach `min_confidence`. Noise around a flat level gives a tau near 0, so noisy
//!   flat series are not flagged. A single step (one jump, then flat) is deliberately
//!   *not* a leak: its tau is at most n / (2(n-1)), about 0.52, below the default 0.6,
//!   wherever the step sits; a one-off jump is a warm-up or a new working set. A
//!   staircase (repeated steps) is sustained growth and is flagged.
//! - **stale allocations**: allocations older than `max_allocation_age_ms` with no
//!   renewal (input: `(id, tenant, age_ms)` from the ledger).
//! - **instance growth**: a policy instance whose linear memory never shrank over at least
//!   `min_instance_samples` samples and grew by `min_instance_growth_bytes` (Wasm memory
//!   cannot shrink, but a healthy instance stops growing).

use super::purge::InstanceMemory;
use crate::events::{Event, EventBus};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Samples of instance memory kept per policy instance: the last hour at the daemon's
/// default scan interval (30 s).
pub const INSTANCE_WINDOW: usize = 120;

/// Tunables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakConfig {
    /// Samples kept per series (default 60: an hour at one a minute).
    pub window: usize,
    /// Fewest samples before a trend is judged (default 10).
    pub min_samples: usize,
    /// Slope above which growth is suspicious, bytes per minute (default 1 MiB/min).
    pub min_growth_bytes_per_min: f64,
    /// Kendall tau needed (default 0.6).
    pub min_confidence: f64,
    /// Age past which an unrenewed allocation is flagged, ms (default 1 h).
    pub max_allocation_age_ms: u64,
    /// Samples an instance must have grown over (default 5).
    pub min_instance_samples: usize,
    /// Total growth an instance must show, bytes (default 8 MiB).
    pub min_instance_growth_bytes: u64,
}

impl Default for LeakConfig {
    fn default() -> Self {
        LeakConfig {
            window: 60,
            min_samples: 10,
            min_growth_bytes_per_min: 1024.0 * 1024.0,
            min_confidence: 0.6,
            max_allocation_age_ms: 3_600_000,
            min_instance_samples: 5,
            min_instance_growth_bytes: 8 << 20,
        }
    }
}

/// One suspected leak (`rmhost leaks` lists these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Leak {
    /// `trend`, `stale_allocation` or `instance_growth`.
    pub kind: String,
    /// `rss`, `cache:NAME`, `tenant:NAME`, `allocation:ID`, `policy:NAME`.
    pub subject: String,
    /// Growth, bytes per minute (0 for stale allocations).
    pub bytes_per_minute: f64,
    /// 0-1.
    pub confidence: f64,
    /// A sentence for humans.
    pub message: String,
}

/// A trend estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Theil-Sen slope, value units per millisecond.
    pub slope_per_ms: f64,
    /// Kendall's tau in [-1, 1].
    pub tau: f64,
}

/// Theil-Sen slope and Kendall's tau of `(t_ms, value)` samples; `None` under 2 samples
/// or when all times are equal. O(n^2) pairs: fine for windows of ~100.
pub fn trend(samples: &[(u64, f64)]) -> Option<Trend> {
    let mut slopes = Vec::with_capacity(samples.len() * samples.len() / 2);
    let (mut concordant, mut discordant) = (0i64, 0i64);
    for (i, &(t1, v1)) in samples.iter().enumerate() {
        for &(t2, v2) in &samples[i + 1..] {
            if t2 == t1 {
                continue;
            }
            let s = (v2 - v1) / (t2 as f64 - t1 as f64);
            slopes.push(s);
            match (s > 0.0, s < 0.0) {
                (true, _) => concordant += 1,
                (_, true) => discordant += 1,
                _ => {}
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_unstable_by(f64::total_cmp);
    let n = slopes.len();
    let median = if n % 2 == 1 {
        slopes[n / 2]
    } else {
        (slopes[n / 2 - 1] + slopes[n / 2]) / 2.0
    };
    Some(Trend {
        slope_per_ms: median,
        tau: (concordant - discordant) as f64 / n as f64,
    })
}

/// Keeps series and the current findings.
#[derive(Debug, Default)]
pub struct LeakDetector {
    cfg: LeakConfig,
    series: Mutex<BTreeMap<String, VecDeque<(u64, f64)>>>,
    /// Linear-memory sizes per policy instance, in sample order (the "only grows" input).
    instances: Mutex<BTreeMap<String, VecDeque<u64>>>,
    findings: Mutex<Vec<Leak>>,
    events: Option<EventBus>,
}

impl LeakDetector {
    /// A detector publishing `LeakDetected` on `events` when given.
    pub fn new(cfg: LeakConfig, events: Option<EventBus>) -> Self {
        LeakDetector {
            cfg,
            series: Mutex::new(BTreeMap::new()),
            instances: Mutex::new(BTreeMap::new()),
            findings: Mutex::new(Vec::new()),
            events,
        }
    }

    /// Records one sample of `subject` (e.g. `rss`, `cache:sessions`, `tenant:acme`).
    pub fn record(&self, subject: &str, t_ms: u64, bytes: u64) {
        let mut series = self.series.lock();
        let s = series.entry(subject.to_string()).or_default();
        s.push_back((t_ms, bytes as f64));
        while s.len() > self.cfg.window {
            s.pop_front();
        }
    }

    /// Records one sample of every live policy instance's linear memory; instances that
    /// are gone are forgotten. Keeps the last [`INSTANCE_WINDOW`] samples each.
    pub fn record_instances(&self, live: &[InstanceMemory]) {
        let mut hist = self.instances.lock();
        hist.retain(|name, _| live.iter().any(|m| &m.name == name));
        for m in live {
            let series = hist.entry(m.name.clone()).or_default();
            series.push_back(m.bytes);
            while series.len() > INSTANCE_WINDOW {
                series.pop_front();
            }
        }
    }

    /// Forgets a subject (a cache dropped, a tenant gone).
    pub fn forget(&self, subject: &str) {
        self.series.lock().remove(subject);
    }

    /// Judges one series.
    pub fn judge_trend(&self, subject: &str, samples: &[(u64, f64)]) -> Option<Leak> {
        if samples.len() < self.cfg.min_samples {
            return None;
        }
        let t = trend(samples)?;
        let per_min = t.slope_per_ms * 60_000.0;
        (per_min >= self.cfg.min_growth_bytes_per_min && t.tau >= self.cfg.min_confidence).then(
            || Leak {
                kind: "trend".into(),
                subject: subject.to_string(),
                bytes_per_minute: per_min,
                confidence: t.tau,
                message: format!(
                    "{subject} grows {:.1} KiB/min over the last {} samples (Kendall tau {:.2})",
                    per_min / 1024.0,
                    samples.len(),
                    t.tau
                ),
            },
        )
    }

    /// Allocations past the age limit; input `(id, tenant, age_ms)`.
    pub fn stale_allocations(&self, allocations: &[(u64, String, u64)]) -> Vec<Leak> {
        allocations
            .iter()
            .filter(|(_, _, age)| *age > self.cfg.max_allocation_age_ms)
            .map(|(id, tenant, age)| Leak {
                kind: "stale_allocation".into(),
                subject: format!("allocation:{id}"),
                bytes_per_minute: 0.0,
                confidence: 1.0,
                message: format!(
                    "allocation {id} of tenant {tenant} is {} min old without renewal",
                    age / 60_000
                ),
            })
            .collect()
    }

    /// Policy instances whose memory only grew; input: name -> sizes in sample order.
    pub fn instance_growth(&self, instances: &[(String, Vec<u64>)]) -> Vec<Leak> {
        instances
            .iter()
            .filter_map(|(name, sizes)| {
                let n = sizes.len();
                if n < self.cfg.min_instance_samples {
                    return None;
                }
                let monotone = sizes.windows(2).all(|w| w[1] >= w[0]);
                let steps = sizes.windows(2).filter(|w| w[1] > w[0]).count();
                let growth = sizes[n - 1].saturating_sub(sizes[0]);
                (monotone && growth >= self.cfg.min_instance_growth_bytes).then(|| Leak {
                    kind: "instance_growth".into(),
                    subject: format!("policy:{name}"),
                    bytes_per_minute: 0.0,
                    confidence: steps as f64 / (n - 1) as f64,
                    message: format!(
                        "policy instance {name} grew {} KiB over {n} samples and never shrank",
                        growth / 1024
                    ),
                })
            })
            .collect()
    }

    /// Runs every heuristic over the recorded series and instance sizes and the given
    /// allocations, replaces the findings, and publishes `LeakDetected` for findings that
    /// are new.
    pub fn scan(&self, allocations: &[(u64, String, u64)]) -> Vec<Leak> {
        let instances: Vec<(String, Vec<u64>)> = self
            .instances
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
            .collect();
        let series: Vec<(String, Vec<(u64, f64)>)> = self
            .series
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
            .collect();
        let mut found: Vec<Leak> = series
            .iter()
            .filter_map(|(subject, s)| self.judge_trend(subject, s))
            .collect();
        found.extend(self.stale_allocations(allocations));
        found.extend(self.instance_growth(&instances));
        let mut findings = self.findings.lock();
        if let Some(bus) = &self.events {
            for l in found.iter().filter(|l| {
                !findings
                    .iter()
                    .any(|o| o.kind == l.kind && o.subject == l.subject)
            }) {
                bus.publish(Event::LeakDetected {
                    kind: l.kind.clone(),
                    subject: l.subject.clone(),
                    bytes_per_minute: l.bytes_per_minute,
                    confidence: l.confidence,
                    message: l.message.clone(),
                });
            }
        }
        *findings = found.clone();
        found
    }

    /// The findings of the last scan.
    pub fn leaks(&self) -> Vec<Leak> {
        self.findings.lock().clone()
    }
}
