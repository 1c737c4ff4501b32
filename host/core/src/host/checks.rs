//! Health checks of a running host: telemetry against `[limits]`, the ledger against the
//! global limits, memory pressure.

use super::Host;
use crate::health::{HealthCheck, HealthReport, HealthStatus};
use crate::policy::PressureLevel;

impl Host {
    /// Every subsystem's checks, the worst deciding the status.
    pub fn health(&self) -> HealthReport {
        let c = &self.config;
        let u = self.telemetry.usage();
        let mem = &c.memory;
        let mut checks = vec![
            HealthCheck::threshold(
                "memory.process_rss",
                u.memory.process_rss as f64,
                c.memory_budget_bytes() as f64,
                mem.warning_threshold_percent as f64,
                Some(mem.critical_threshold_percent as f64),
                "bytes",
            ),
            HealthCheck::threshold(
                "cpu",
                u.cpu.percentage,
                c.limits.max_cpu_percentage as f64,
                100.0,
                None,
                "%",
            ),
            HealthCheck::threshold(
                "connections",
                u.connections.active as f64,
                c.limits.max_connections as f64,
                80.0,
                Some(100.0),
                "connections",
            ),
            HealthCheck::threshold(
                "requests_per_minute",
                u.requests.per_minute as f64,
                c.limits.max_requests_per_minute as f64,
                80.0,
                Some(100.0),
                "requests/min",
            ),
            HealthCheck::threshold(
                "file_handles",
                u.file_handles.open as f64,
                c.limits.max_file_handles as f64,
                80.0,
                Some(100.0),
                "file handles",
            ),
        ];
        // A shared ledger that cannot answer is the `state` check's to report.
        let global = self.resources.usage().map(|u| u.global).unwrap_or_default();
        for k in global {
            let limit = k.limit.unwrap_or(0) as f64;
            let mut check = HealthCheck::threshold(
                &format!("allocations.{}", k.kind),
                k.used as f64,
                limit,
                90.0,
                None,
                k.kind.unit(),
            );
            if check.status > HealthStatus::Degraded {
                check.status = HealthStatus::Degraded;
            }
            checks.push(check);
        }
        let mem = self.memory.check_memory_usage();
        checks.push(HealthCheck {
            name: "memory.pressure".into(),
            status: match mem.status {
                PressureLevel::Normal => HealthStatus::Healthy,
                PressureLevel::Warning => HealthStatus::Degraded,
                PressureLevel::Critical => HealthStatus::Unhealthy,
            },
            message: format!(
                "{} (rss {:.1}%, accounted {:.1}% of the {} budget){}",
                mem.status.as_str(),
                mem.details.rss_percent,
                mem.details.accounted_percent,
                mem.details.budget_source,
                if mem.details.reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", mem.details.reasons.join(", "))
                }
            ),
            value: Some(mem.details.rss_percent),
            limit: None,
        });
        checks.extend(self.pools.health_checks());
        checks.push(self.state_check());
        HealthReport::from_checks(checks, self.uptime().as_secs())
    }
}
