//! The memory monitor: turns telemetry into a pressure level (normal / warning / critical,
//! with hysteresis), tells subscribers, and carries out the bound `PressurePolicy`'s
//! actions through an [`ActionSink`] the host implements.
//!
//! Signals (the level is the worst of them):
//! - process RSS as a percentage of the budget;
//! - accounted memory (cache bytes + allocation bytes from the ledger) against the budget;
//! - PSI memory: `some avg10 >= 10%` is warning (tasks stall on memory a tenth of the
//!   time), `full avg10 >= 5%` is critical (everything stalls: thrashing). Absent PSI
//!   (older kernels, some containers) is simply not a signal.
//!
//! The budget is `max_memory_mb` when set, else the cgroup limit when below system memory,
//! else system memory. Hysteresis: the level only goes down once every signal is
//! `hysteresis_points` below the current level's threshold (PSI: below half of it), so a
//! value hovering at a threshold does not flap.

use super::registry::CacheRegistry;
use crate::events::{Event, EventBus};
use crate::memory::CacheError;
use crate::policy::{PoolStat, PressureAction, PressureLevel, PressurePolicy};
use crate::pools::PoolError;
use crate::telemetry::{Telemetry, Usage};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Most actions carried out per response; the rest of a policy's answer is dropped.
pub const MAX_ACTIONS: usize = 64;
/// Thresholds, percent of the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PressureConfig {
    /// Warning at or above this percentage (default 70).
    pub warning_percent: f64,
    /// Critical at or above this percentage (default 85).
    pub critical_percent: f64,
    /// Points below a threshold before the level goes down (default 5).
    pub hysteresis_points: f64,
    /// The budget, bytes (`max_memory_mb`); `None`: cgroup limit, else system memory.
    pub max_memory_bytes: Option<u64>,
    /// PSI memory `some avg10` at or above this is warning (default 10).
    pub psi_some_warning: f64,
    /// PSI memory `full avg10` at or above this is critical (default 5).
    pub psi_full_critical: f64,
    /// While the level stays above normal, the policy's response repeats at most this
    /// often (ms; the health interval in the daemon). `tick` can then run often, to notice
    /// level changes quickly, without re-running the policy every time. A level change
    /// always runs it at once. Default 0: every tick.
    pub respond_interval_ms: u64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig {
            warning_percent: 70.0,
            critical_percent: 85.0,
            hysteresis_points: 5.0,
            max_memory_bytes: None,
            psi_some_warning: 10.0,
            psi_full_critical: 5.0,
            respond_interval_ms: 0,
        }
    }
}

/// What `check_memory_usage` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryStatus {
    /// The level after hysteresis.
    pub status: PressureLevel,
    /// The figures behind it.
    pub details: MemoryDetails,
}

/// The figures behind a level.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryDetails {
    /// The budget, bytes.
    pub budget_bytes: u64,
    /// `max_memory_mb`, `cgroup` or `system`.
    pub budget_source: String,
    /// Process RSS, bytes.
    pub rss_bytes: u64,
    /// RSS, percent of the budget.
    pub rss_percent: f64,
    /// Bytes held by caches.
    pub cache_bytes: u64,
    /// Bytes of granted memory allocations.
    pub allocation_bytes: u64,
    /// Cache + allocation bytes, percent of the budget.
    pub accounted_percent: f64,
    /// PSI memory some avg10, when available.
    pub psi_some_avg10: Option<f64>,
    /// PSI memory full avg10, when available.
    pub psi_full_avg10: Option<f64>,
    /// The level before hysteresis.
    pub raw_level: PressureLevel,
    /// Which signals are at or above warning.
    pub reasons: Vec<String>,
}

/// Why a pressure action could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The cache could not be trimmed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The pool could not be shrunk.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// A tenant over its memory share, as an [`ActionSink`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverShare {
    /// The tenant.
    pub tenant: String,
    /// Bytes it holds beyond its share.
    pub by: u64,
    /// Its request rate limit before any throttle (it is throttled to half), if the sink
    /// rate-limits.
    pub base_requests_per_minute: Option<u32>,
}

/// Carries out pressure actions. The host implements it over the cache registry, the pool
/// manager, the rate limiter and the allocator (`rmhost_core::host::HostSink`). Each
/// success answers a line for the `PressureAction` event.
pub trait ActionSink: Send + Sync {
    /// Frees `bytes` from `cache`.
    fn trim_cache(&self, cache: &str, bytes: u64) -> Result<String, ActionError>;
    /// Closes up to `idle` idle connections of `pool`.
    fn shrink_pool(&self, pool: &str, idle: u32) -> Result<String, ActionError>;
    /// Limits `tenant` until pressure is normal.
    fn throttle(&self, tenant: &str, requests_per_minute: u32) -> Result<String, ActionError>;
    /// Refuses new work below `priority` until pressure is normal.
    fn shed_below(&self, priority: u8) -> Result<String, ActionError>;
    /// Hands free allocator memory back to the OS.
    fn purge_allocator(&self) -> Result<String, ActionError>;
    /// Raises an alert.
    fn alert(&self, message: &str) -> Result<String, ActionError>;
    /// The pools, as pressure policies see them.
    fn pool_stats(&self) -> Vec<PoolStat> {
        Vec::new()
    }
    /// Tenants over their memory share, most over first: they are throttled and their
    /// caches trimmed before the policy's response runs.
    fn over_share(&self) -> Vec<OverShare> {
        Vec::new()
    }
    /// Pressure is back to normal: lift throttles and shedding.
    fn relieved(&self) {}
}

/// The pressure level as last computed, shared: the monitor writes it, and whoever shows
/// policies the system usage (the resource manager, built before the monitor) reads it.
/// Cheap to clone; clones share the level.
#[derive(Debug, Clone, Default)]
pub struct PressureGauge(Arc<AtomicU8>);

impl PressureGauge {
    /// A gauge at normal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The level now.
    pub fn get(&self) -> PressureLevel {
        match self.0.load(Ordering::Relaxed) {
            0 => PressureLevel::Normal,
            1 => PressureLevel::Warning,
            _ => PressureLevel::Critical,
        }
    }

    fn set(&self, level: PressureLevel) {
        let v = match level {
            PressureLevel::Normal => 0,
            PressureLevel::Warning => 1,
            PressureLevel::Critical => 2,
        };
        self.0.store(v, Ordering::Relaxed);
    }
}

/// What a [`MemoryMonitor`] reads, decides through and acts on.
pub struct MonitorParts {
    /// Process and system telemetry.
    pub telemetry: Telemetry,
    /// The caches it accounts and trims.
    pub caches: Arc<CacheRegistry>,
    /// Granted memory allocations, bytes (the ledger's), added to the caches' bytes.
    pub allocation_bytes: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Decides the response to pressure.
    pub policy: Arc<dyn PressurePolicy>,
    /// Carries the response out.
    pub sink: Arc<dyn ActionSink>,
    /// Where `MemoryPressure`, `PressureAction` and `Alert` events go.
    pub events: Option<EventBus>,
    /// Where the level is published.
    pub gauge: PressureGauge,
}

impl std::fmt::Debug for MonitorParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorParts")
            .field("policy", &self.policy.name())
            .finish_non_exhaustive()
    }
}

type Callback = Arc<dyn Fn(PressureLevel, &MemoryStatus) + Send + Sync>;

/// The monitor. Share it with an `Arc`.
pub struct MemoryMonitor {
    cfg: PressureConfig,
    telemetry: Telemetry,
    caches: Arc<CacheRegistry>,
    allocation_bytes: Box<dyn Fn() -> u64 + Send + Sync>,
    policy: Arc<dyn PressurePolicy>,
    sink: Arc<dyn ActionSink>,
    events: Option<EventBus>,
    /// Serialises `tick` (the level is read, evaluated and written as one step).
    level: Mutex<PressureLevel>,
    gauge: PressureGauge,
    callbacks: Mutex<Vec<Callback>>,
    last_respond: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for MemoryMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryMonitor")
            .field("cfg", &self.cfg)
            .field("level", &*self.level.lock())
            .finish_non_exhaustive()
    }
}

impl MemoryMonitor {
    /// A monitor with thresholds `cfg` over `parts`.
    pub fn new(cfg: PressureConfig, parts: MonitorParts) -> Self {
        parts.gauge.set(PressureLevel::Normal);
        MemoryMonitor {
            cfg,
            telemetry: parts.telemetry,
            caches: parts.caches,
            allocation_bytes: parts.allocation_bytes,
            policy: parts.policy,
            sink: parts.sink,
            events: parts.events,
            level: Mutex::new(PressureLevel::Normal),
            gauge: parts.gauge,
            callbacks: Mutex::new(Vec::new()),
            last_respond: Mutex::new(None),
        }
    }

    /// The gauge the level is published on.
    pub fn gauge(&self) -> &PressureGauge {
        &self.gauge
    }

    /// Calls `f(level, status)` on every level change.
    pub fn on_memory_pressure(
        &self,
        f: impl Fn(PressureLevel, &MemoryStatus) + Send + Sync + 'static,
    ) {
        self.callbacks.lock().push(Arc::new(f));
    }

    /// Takes a telemetry sample now (tests, and `rmhost health` on demand).
    pub fn telemetry_sample(&self) {
        self.telemetry.sample_now();
    }

    /// The current level.
    pub fn level(&self) -> PressureLevel {
        self.gauge.get()
    }

    fn budget(&self, u: &Usage) -> (u64, &'static str) {
        if let Some(b) = self.cfg.max_memory_bytes {
            return (b, "max_memory_mb");
        }
        match u.memory.cgroup_limit {
            Some(l) if l < u.memory.total || u.memory.total == 0 => (l, "cgroup"),
            _ => (u.memory.total, "system"),
        }
    }

    /// The level the signals give with thresholds lowered by `slack` points (PSI scaled by
    /// `psi_scale`): slack 0 is the raw level; the hysteresis level uses the configured
    /// points.
    fn level_of(
        &self,
        d: &MemoryDetails,
        slack: f64,
        psi_scale: f64,
        reasons: &mut Vec<String>,
    ) -> PressureLevel {
        let mut level = PressureLevel::Normal;
        let mut bump = |l: PressureLevel, why: String| {
            reasons.push(why);
            level = level.max(l);
        };
        let (w, c) = (
            self.cfg.warning_percent - slack,
            self.cfg.critical_percent - slack,
        );
        for (name, pct) in [("rss", d.rss_percent), ("accounted", d.accounted_percent)] {
            if pct >= c {
                bump(
                    PressureLevel::Critical,
                    format!("{name} at {pct:.1}% of budget"),
                );
            } else if pct >= w {
                bump(
                    PressureLevel::Warning,
                    format!("{name} at {pct:.1}% of budget"),
                );
            }
        }
        if let Some(full) = d
            .psi_full_avg10
            .filter(|&v| v >= self.cfg.psi_full_critical * psi_scale)
        {
            bump(
                PressureLevel::Critical,
                format!("PSI memory full avg10 {full:.1}%"),
            );
        }
        if let Some(some) = d
            .psi_some_avg10
            .filter(|&v| v >= self.cfg.psi_some_warning * psi_scale)
        {
            bump(
                PressureLevel::Warning,
                format!("PSI memory some avg10 {some:.1}%"),
            );
        }
        level
    }

    fn measure(&self) -> MemoryDetails {
        let u = self.telemetry.usage();
        let (budget, source) = self.budget(&u);
        let cache_bytes = self.caches.total_bytes();
        let allocation_bytes = (self.allocation_bytes)();
        let pct = |v: u64| crate::telemetry::percentage(v, budget);
        let psi = u.pressure.memory;
        MemoryDetails {
            budget_bytes: budget,
            budget_source: source.into(),
            rss_bytes: u.memory.process_rss,
            rss_percent: pct(u.memory.process_rss),
            cache_bytes,
            allocation_bytes,
            accounted_percent: pct(cache_bytes.saturating_add(allocation_bytes)),
            psi_some_avg10: psi.map(|p| p.some.avg10),
            psi_full_avg10: psi.and_then(|p| p.full.map(|f| f.avg10)),
            raw_level: PressureLevel::Normal,
            reasons: Vec::new(),
        }
    }

    /// The level now, from the latest telemetry sample, without acting on it.
    pub fn check_memory_usage(&self) -> MemoryStatus {
        let (level, details) = self.evaluate(*self.level.lock());
        MemoryStatus {
            status: level,
            details,
        }
    }

    fn evaluate(&self, current: PressureLevel) -> (PressureLevel, MemoryDetails) {
        let mut d = self.measure();
        let mut reasons = Vec::new();
        let raw = self.level_of(&d, 0.0, 1.0, &mut reasons);
        let sticky = self.level_of(&d, self.cfg.hysteresis_points, 0.5, &mut Vec::new());
        let level = if raw >= current {
            raw
        } else {
            // Going down: only as far as the lowered thresholds allow.
            sticky.min(current)
        };
        d.raw_level = raw;
        d.reasons = reasons;
        (level, d)
    }

    /// One monitoring step (call it every health interval, after a telemetry sample):
    /// updates the level; on a change publishes `MemoryPressure` and tells subscribers; on
    /// a change or while not normal runs the pressure policy and carries out its actions.
    /// May block (a Wasm pressure policy): call it off the async executor.
    pub fn tick(&self) -> MemoryStatus {
        let mut guard = self.level.lock();
        let previous = *guard;
        let (level, details) = self.evaluate(previous);
        *guard = level;
        self.gauge.set(level);
        drop(guard);
        let status = MemoryStatus {
            status: level,
            details,
        };
        if level != previous {
            if let Some(bus) = &self.events {
                bus.publish(Event::MemoryPressure { level });
            }
            let callbacks = self.callbacks.lock().clone();
            for cb in callbacks {
                cb(level, &status);
            }
            if level == PressureLevel::Normal {
                self.sink.relieved();
            }
        }
        let due = {
            let last = self.last_respond.lock();
            let every = Duration::from_millis(self.cfg.respond_interval_ms);
            last.is_none_or(|t| t.elapsed() >= every)
        };
        if level != previous || (level != PressureLevel::Normal && due) {
            *self.last_respond.lock() = Some(std::time::Instant::now());
            self.respond(level);
        }
        status
    }

    /// Runs the pressure policy at `level` and carries out its actions; returns them with
    /// their outcomes.
    pub fn respond(
        &self,
        level: PressureLevel,
    ) -> Vec<(PressureAction, Result<String, ActionError>)> {
        let system = self.telemetry.system_usage(level);
        let caches = self.caches.stats();
        let pools = self.sink.pool_stats();
        let mut done = self.trim_over_share(level);
        let actions = self.policy.respond(level, &system, &caches, &pools);
        // A policy answers a handful of actions; one that answers thousands (or a 2 MB
        // alert) is cut, so its answer cannot flood the event bus.
        for mut action in actions.into_iter().take(MAX_ACTIONS) {
            if let PressureAction::Alert { message } = &mut action {
                *message = crate::limits::truncate_reason(std::mem::take(message));
            }
            let outcome = match &action {
                PressureAction::TrimCache { cache, bytes } => self.sink.trim_cache(cache, *bytes),
                PressureAction::ShrinkPool { pool, idle } => self.sink.shrink_pool(pool, *idle),
                PressureAction::Throttle {
                    tenant,
                    requests_per_minute,
                } => self.sink.throttle(tenant, *requests_per_minute),
                PressureAction::ShedBelow { priority } => self.sink.shed_below(*priority),
                PressureAction::PurgeAllocator => self.sink.purge_allocator(),
                PressureAction::Alert { message } => self.sink.alert(message),
            };
            self.announce(level, &action, &outcome);
            if let Some(bus) = &self.events
                && let PressureAction::Alert { message } = &action
            {
                bus.publish(Event::Alert {
                    message: message.clone(),
                });
            }
            done.push((action, outcome));
        }
        done
    }

    /// A `PressureAction` event with the action's outcome.
    fn announce(
        &self,
        level: PressureLevel,
        action: &PressureAction,
        outcome: &Result<String, ActionError>,
    ) {
        if let Some(bus) = &self.events {
            bus.publish(Event::PressureAction {
                level,
                action: action.clone(),
                outcome: match outcome {
                    Ok(s) => s.clone(),
                    Err(e) => format!("failed: {e}"),
                },
            });
        }
    }

    /// Under pressure, throttles tenants over their memory share to half their request
    /// rate and trims their caches first (by up to what each is over, largest cache
    /// first), so a tenant within its share keeps its cache while another's excess is what
    /// goes. Each step is a `PressureAction` event.
    fn trim_over_share(
        &self,
        level: PressureLevel,
    ) -> Vec<(PressureAction, Result<String, ActionError>)> {
        let mut done = Vec::new();
        if level == PressureLevel::Normal {
            return done;
        }
        let over = self.sink.over_share();
        if over.is_empty() {
            return done;
        }
        let mut held = self.caches.snapshot();
        held.sort_by_key(|c| std::cmp::Reverse(c.bytes));
        let mut note = |action: PressureAction, outcome: Result<String, ActionError>| {
            self.announce(level, &action, &outcome);
            done.push((action, outcome));
        };
        for OverShare {
            tenant,
            by,
            base_requests_per_minute,
        } in over
        {
            if let Some(base) = base_requests_per_minute {
                let requests_per_minute = (base / 2).max(1);
                let outcome = self.sink.throttle(&tenant, requests_per_minute);
                note(
                    PressureAction::Throttle {
                        tenant: tenant.clone(),
                        requests_per_minute,
                    },
                    outcome,
                );
            }
            let mut left = by;
            for c in held.iter().filter(|c| c.tenant == tenant && c.bytes > 0) {
                if left == 0 {
                    break;
                }
                let want = left.min(c.bytes);
                let outcome = self
                    .caches
                    .trim(&c.name, want)
                    .map(|freed| {
                        left = left.saturating_sub(freed);
                        format!(
                            "freed {freed} bytes: tenant {tenant} is over its memory share by {by}"
                        )
                    })
                    .map_err(ActionError::from);
                note(
                    PressureAction::TrimCache {
                        cache: c.name.clone(),
                        bytes: want,
                    },
                    outcome,
                );
            }
        }
        done
    }

    /// Ticks every `interval` on the blocking pool until aborted (telemetry samples on its
    /// own task, `Telemetry::spawn`).
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                let me = self.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || me.tick()).await {
                    tracing::warn!(error = %e, "memory monitor tick failed");
                }
            }
        })
    }
}
