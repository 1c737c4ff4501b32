//! The host's background tasks: telemetry sampling, the orphan reaper, the limit watcher,
//! the memory monitor, cache expiry and the leak scan.

use super::Host;
use crate::policy::ResourceKind as K;
use crate::resources::spawn_reaper;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

impl Host {
    /// Starts every background task; abort the handles to stop them.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let m = &self.config.monitoring;
        self.telemetry.sample_now();
        let sample = Duration::from_millis(m.sample_interval_ms);
        let mut tasks = vec![
            self.telemetry.spawn(sample),
            spawn_reaper(
                self.resources.clone(),
                Duration::from_millis(m.orphan_scan_interval_ms),
            ),
            self.spawn_limit_watch(sample),
            // Level changes are noticed at the sampling rate; the response repeats every
            // health interval while pressure lasts (`PressureConfig::respond_interval_ms`).
            self.memory.clone().spawn(sample),
            self.spawn_expiry(sample),
        ];
        if let Some(mut changes) = self
            .resources
            .shared_ledger()
            .and_then(|l| l.take_changes())
        {
            // Other hosts' preemptions, reclaims, quota, binding and cache changes, in the
            // order they committed (declaring a cache instantiates its policy: off the
            // async workers).
            let host = self.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(c) = changes.recv().await {
                    let h = host.clone();
                    let _ = tokio::task::spawn_blocking(move || h.apply_remote(c)).await;
                }
            }));
        }
        tasks.push(self.pools.spawn_maintenance());
        tasks.push(
            self.pools
                .spawn_metrics(Duration::from_millis(m.metrics_interval_ms)),
        );
        if self.config.memory.enable_leak_detection {
            tasks.push(self.spawn_leak_scan(Duration::from_millis(m.health_check_interval_ms)));
        }
        tasks
    }

    /// Reclaims expired cache entries every `interval` (on the blocking pool: a scan
    /// walks every entry), so a TTL frees its bytes even if the key is never read again.
    fn spawn_expiry(&self, interval: Duration) -> JoinHandle<()> {
        let caches = self.caches.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let c = caches.clone();
                let _ = tokio::task::spawn_blocking(move || c.purge_expired(10_000)).await;
            }
        })
    }

    /// Compares measured use with `[limits]` after every sample, so crossing 80% and 100%
    /// of a limit raises a `ResourceAlerts` event (scope `system`) even when nothing is
    /// allocated through the ledger. CPU is compared in percent.
    fn spawn_limit_watch(&self, interval: Duration) -> JoinHandle<()> {
        let telemetry = self.telemetry.clone();
        let resources = self.resources.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let u = telemetry.usage();
                let l = &config.limits;
                let r = &resources;
                r.observe_system(
                    K::Memory,
                    u.memory.process_rss,
                    config.memory_budget_bytes(),
                );
                r.observe_system(
                    K::Cpu,
                    u.cpu.percentage.round() as u64,
                    l.max_cpu_percentage as u64,
                );
                r.observe_system(
                    K::Connections,
                    u.connections.active,
                    l.max_connections as u64,
                );
                r.observe_system(
                    K::Requests,
                    u.requests.per_minute,
                    l.max_requests_per_minute as u64,
                );
                r.observe_system(K::FileHandles, u.file_handles.open, l.max_file_handles);
            }
        })
    }

    /// Records RSS, every cache and every tenant's granted memory each `interval`, then
    /// runs the leak heuristics (trends, stale allocations).
    fn spawn_leak_scan(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let host = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let h = host.clone();
                let _ = tokio::task::spawn_blocking(move || h.leak_scan_once()).await;
            }
        })
    }

    /// One leak-detection round (also what `GET /v1/leaks?scan=true` runs).
    pub fn leak_scan_once(&self) -> Vec<crate::memory::Leak> {
        let t = self.uptime().as_millis() as u64;
        self.leaks
            .record("rss", t, self.telemetry.usage().memory.process_rss);
        for c in self.caches.snapshot() {
            self.leaks.record(&format!("cache:{}", c.name), t, c.bytes);
        }
        for (tenant, bytes) in self.tenant_memory() {
            self.leaks.record(&format!("tenant:{tenant}"), t, bytes);
        }
        let now = self.resources.now_ms();
        // A shared ledger's allocations are every host's, stamped on the database's clock:
        // not this host's leaks to judge.
        let own = match self.resources.shared_ledger() {
            Some(_) => Vec::new(),
            None => self
                .resources
                .allocations(&Default::default())
                .unwrap_or_default(),
        };
        let allocs: Vec<(u64, String, u64)> = own
            .into_iter()
            .filter(|a| a.ttl_ms.is_none())
            .map(|a| (a.id, a.tenant, now.saturating_sub(a.created_ms)))
            .collect();
        self.leaks.record_instances(&self.policy_instance_memory());
        self.leaks.scan(&allocs)
    }
}
