//! The runtime as the host's [`PolicyProvider`]: resolvers that pick the bound Wasm policy
//! per tenant at call time (native default when none is bound, or it faults), and eviction
//! instances by name: a builtin, a loaded Wasm policy, or the tenant's binding.

use crate::PolicyRuntime;
use rmhost_core::host::{PolicyLookupError, PolicyProvider};
use rmhost_core::memory::InstanceMemory;
use rmhost_core::policy::{
    EvictionPolicy, PolicyKind, PressurePolicy, PriorityPolicy, QuotaPolicy, builtin_eviction,
};
use std::sync::Arc;

impl PolicyProvider for PolicyRuntime {
    fn quota(&self) -> Arc<dyn QuotaPolicy> {
        self.quota_policy()
    }

    fn priority(&self) -> Arc<dyn PriorityPolicy> {
        self.priority_policy()
    }

    fn pressure(&self) -> Arc<dyn PressurePolicy> {
        self.pressure_policy()
    }

    fn eviction(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Box<dyn EvictionPolicy>, PolicyLookupError> {
        let Some(n) = name else {
            return Ok(self.eviction_policy(tenant, None));
        };
        // An explicit `builtin:` never means a loaded policy, even one named `lru`.
        if n.starts_with("builtin:") {
            return builtin_eviction(n).ok_or_else(|| PolicyLookupError::unknown(n));
        }
        if let Some(info) = self.get(n) {
            if !info.kinds.contains(&PolicyKind::Eviction) {
                return Err(PolicyLookupError::NotEviction { name: n.into() });
            }
            return Ok(self.eviction_policy(tenant, Some(n)));
        }
        builtin_eviction(n).ok_or_else(|| PolicyLookupError::unknown(n))
    }

    fn apply_binding(
        &self,
        tenant: Option<&str>,
        kind: PolicyKind,
        policy: Option<&str>,
    ) -> Result<(), String> {
        self.bind(tenant, kind, policy).map_err(|e| e.to_string())
    }

    fn instance_memory(&self) -> Vec<InstanceMemory> {
        self.list()
            .into_iter()
            .map(|p| InstanceMemory {
                name: p.name,
                bytes: p.memory_bytes,
            })
            .collect()
    }
}
