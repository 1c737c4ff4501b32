//! Wire types: every JSON body the API answers, as typed structs that the server
//! serializes and clients (the `rmhost` CLI, its monitor, tests) deserialize, so the two
//! sides cannot drift apart field by field.
//!
//! Where a core or runtime type already is the body it is used as is (re-exported here);
//! the envelopes around them live in one file per route group. Field names are the API's
//! contract: renaming one is a breaking change for every client.

mod memory;
mod policies;
mod resources;
mod system;

pub use memory::{CacheDeleted, EntryRemoved, EntryStored, EntryValue, LeakList, Trimmed};
pub use policies::{BindingAnswer, PolicyList, ReloadAnswer};
pub use resources::{QuotaEntry, Quotas, RepairReport, UsageReport};
pub use system::{PoolList, Profile, ProfilePoint, Ready};

// The bodies that are core or runtime types, so a client needs only this module.
pub use rmhost_core::health::HealthReport;
pub use rmhost_core::memory::{CacheInfo, GcReport, Leak, MemorySnapshot, MemoryStatus};
pub use rmhost_core::pools::{CircuitState, LatencyHistogram, PoolMetrics};
pub use rmhost_core::resources::{Allocation, LedgerUsage, RateDecision};
pub use rmhost_core::telemetry::Usage;
pub use rmhost_runtime::{BindingInfo, PolicyInfo, ReloadAction, ReloadOutcome};

use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": CODE, "message": TEXT, ...}`. Some errors
/// carry more fields (a 429 carries the rate decision); they are kept in `details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (`invalid_request`, `not_found`, `quota_exceeded`...).
    pub error: String,
    /// Human-readable message naming what is wrong.
    pub message: String,
    /// Extra fields of this error, merged into the top level of the body.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}
