//! Health: one report built from every subsystem's checks. The worst check decides the
//! status; `rmhost health` turns it into an exit code (0 healthy, 1 degraded,
//! 2 unhealthy) so scripts and orchestrators can rely on it.

use serde::{Deserialize, Serialize};

/// Overall or per-check status, ordered from best to worst.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HealthStatus {
    /// Within every limit.
    #[default]
    Healthy,
    /// Working, but a limit or threshold is near or crossed.
    Degraded,
    /// A critical threshold is crossed or a dependency is down.
    Unhealthy,
}

impl HealthStatus {
    /// The exit code `rmhost health` uses.
    pub fn exit_code(self) -> i32 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 2,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheck {
    /// What was checked (`memory`, `cpu`, `connections`, `allocations.memory`, ...).
    pub name: String,
    /// Its status.
    pub status: HealthStatus,
    /// What was seen, in words.
    pub message: String,
    /// The observed value, when numeric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The limit it was compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

impl HealthCheck {
    /// A check comparing `value` with `limit`: degraded at `degraded_pct` percent of the
    /// limit, unhealthy at `unhealthy_pct` (None: never unhealthy).
    pub fn threshold(
        name: &str,
        value: f64,
        limit: f64,
        degraded_pct: f64,
        unhealthy_pct: Option<f64>,
        unit: &str,
    ) -> Self {
        let pct = if limit > 0.0 {
            value * 100.0 / limit
        } else {
            0.0
        };
        let status = if unhealthy_pct.is_some_and(|u| pct >= u) {
            HealthStatus::Unhealthy
        } else if pct >= degraded_pct {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        HealthCheck {
            name: name.to_string(),
            status,
            message: format!(
                "{} of {} {unit} ({pct:.1}%)",
                fmt_num(value),
                fmt_num(limit)
            ),
            value: Some(value),
            limit: Some(limit),
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReport {
    /// The worst check's status.
    pub status: HealthStatus,
    /// Every check.
    pub checks: Vec<HealthCheck>,
    /// Seconds since the host started.
    pub uptime_s: u64,
}

impl HealthReport {
    /// A report whose status is the worst of `checks`.
    pub fn from_checks(checks: Vec<HealthCheck>, uptime_s: u64) -> Self {
        let status = checks.iter().map(|c| c.status).max().unwrap_or_default();
        HealthReport {
            status,
            checks,
            uptime_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_check_decides() {
        let ok = HealthCheck::threshold("a", 10.0, 100.0, 80.0, Some(95.0), "x");
        let warn = HealthCheck::threshold("b", 85.0, 100.0, 80.0, Some(95.0), "x");
        let bad = HealthCheck::threshold("c", 99.0, 100.0, 80.0, Some(95.0), "x");
        assert_eq!(ok.status, HealthStatus::Healthy);
        assert_eq!(warn.message, "85 of 100 x (85.0%)");
        let r = HealthReport::from_checks(vec![ok.clone(), warn.clone()], 1);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert_eq!(
            HealthReport::from_checks(vec![ok, warn, bad], 1)
                .status
                .exit_code(),
            2
        );
        assert_eq!(
            HealthReport::from_checks(vec![], 1).status,
            HealthStatus::Healthy
        );
    }
}
