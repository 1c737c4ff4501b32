//! Bodies of the resource routes: usage and quotas (allocations answer the core
//! `Allocation`, rate checks the core `RateDecision`).

use rmhost_core::resources::LedgerUsage;
use rmhost_core::telemetry::Usage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /v1/usage`: the telemetry's fields at the top level plus the ledger under
/// `allocations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// System and process figures.
    #[serde(flatten)]
    pub usage: Usage,
    /// Allocations, global and per tenant (a tenant token sees its own tenant only).
    pub allocations: LedgerUsage,
    /// This host's id among the hosts sharing state (`[state] host_id`).
    #[serde(default)]
    pub host_id: String,
}

/// One kind's quota and use in [`Quotas`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotaEntry {
    /// The tenant's limit, if any.
    pub limit: Option<u64>,
    /// In use.
    pub used: u64,
    /// Live allocations.
    pub allocations: u32,
    /// used / limit in percent, when limited.
    pub percentage: Option<f64>,
}

/// `GET` and `PUT /v1/tenants/{t}/quotas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quotas {
    /// The tenant.
    pub tenant: String,
    /// Per kind, keyed by the kind's snake_case name (`memory`, `cpu`, ...).
    pub quotas: BTreeMap<String, QuotaEntry>,
    /// The tenant's rate limit, requests per minute.
    pub requests_per_minute: u32,
}

/// `POST /v1/ledger/repair`: counters recomputed from the live allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepairReport {
    /// The ledger repaired (`memory` or `postgres`).
    pub ledger: String,
    /// Counter rows that differed from the live rows and were corrected.
    pub fixed: u64,
}
