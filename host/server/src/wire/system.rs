//! Bodies of the system routes: `/ready`, `/v1/profile`, `/v1/pools` (`/health` answers
//! a core `HealthReport`).

use rmhost_core::pools::PoolMetrics;
use rmhost_core::telemetry::Usage;
use serde::{Deserialize, Serialize};

/// `GET /ready`: 200 `{"ready": true}` while serving, 503 `{"ready": false}` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ready {
    /// Whether the daemon serves.
    pub ready: bool,
}

/// One profile point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfilePoint {
    /// Milliseconds since the profile started.
    pub t_ms: u64,
    /// The usage snapshot then.
    pub usage: Usage,
}

/// `GET /v1/profile`: the usage time series `rmhost profile` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    /// How long it sampled, ms.
    pub duration_ms: u64,
    /// The sampling interval, ms.
    pub interval_ms: u64,
    /// The samples, oldest first.
    pub points: Vec<ProfilePoint>,
}

/// `GET /v1/pools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolList {
    /// Every pool's metrics.
    pub pools: Vec<PoolMetrics>,
}
