//! Where the host's managers get their deciders: a [`PolicyProvider`]. The Wasm runtime
//! (`rmhost-runtime`) implements it with resolvers that pick each tenant's bound policy at
//! call time and fall back to the native defaults; [`NativePolicies`] is the provider of a
//! host without Wasm.

use crate::memory::InstanceMemory;
use crate::policy::{
    BUILTIN_EVICTION, EvictionPolicy, NativePressure, NativePriority, NativeQuota, PolicyKind,
    PressurePolicy, PriorityPolicy, QuotaPolicy, builtin_eviction,
};
use std::sync::Arc;

/// Why no eviction policy could be given for a cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyLookupError {
    /// Neither a loaded policy nor a builtin has that name.
    #[error(
        "unknown eviction policy {name:?}: not a loaded Wasm policy nor a builtin ({builtins})"
    )]
    UnknownEviction {
        /// The name asked for.
        name: String,
        /// The builtin names, comma-separated.
        builtins: String,
    },
    /// The policy exists but does not decide evictions.
    #[error("policy {name:?} does not export the eviction interface")]
    NotEviction {
        /// The name asked for.
        name: String,
    },
}

impl PolicyLookupError {
    /// The error for a name nothing answers to.
    pub fn unknown(name: &str) -> Self {
        PolicyLookupError::UnknownEviction {
            name: name.to_string(),
            builtins: BUILTIN_EVICTION.join(", "),
        }
    }
}

/// The deciders a host is built with. Resolvers are asked once, at construction; they
/// decide per call (so a binding changed later takes effect without rebuilding anything).
pub trait PolicyProvider: Send + Sync + std::fmt::Debug {
    /// Decides allocation requests.
    fn quota(&self) -> Arc<dyn QuotaPolicy>;
    /// Ranks pool waiters.
    fn priority(&self) -> Arc<dyn PriorityPolicy>;
    /// Responds to memory pressure.
    fn pressure(&self) -> Arc<dyn PressurePolicy>;
    /// A fresh eviction instance for a cache of `tenant`: the named policy (a builtin such
    /// as `lru` / `builtin:lru`, or a loaded one), else the tenant's binding, else the
    /// native LRU.
    fn eviction(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Box<dyn EvictionPolicy>, PolicyLookupError>;
    /// Linear memory of every policy instance (for leak detection and snapshots).
    fn instance_memory(&self) -> Vec<InstanceMemory> {
        Vec::new()
    }
    /// Binds `policy` for (`tenant`, `kind`) (`None`s: the default binding; unbinds), as
    /// another host did or the shared ledger holds. `Err` says why it cannot (the policy is
    /// not loaded here, or does not decide that kind).
    fn apply_binding(
        &self,
        tenant: Option<&str>,
        kind: PolicyKind,
        policy: Option<&str>,
    ) -> Result<(), String> {
        let _ = (tenant, kind);
        match policy {
            None => Ok(()),
            Some(p) => Err(format!(
                "cannot bind {p:?}: this host has no Wasm policy runtime"
            )),
        }
    }
}

/// The native defaults for every kind; eviction by builtin name.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativePolicies;

impl PolicyProvider for NativePolicies {
    fn quota(&self) -> Arc<dyn QuotaPolicy> {
        Arc::new(NativeQuota)
    }

    fn priority(&self) -> Arc<dyn PriorityPolicy> {
        Arc::new(NativePriority::default())
    }

    fn pressure(&self) -> Arc<dyn PressurePolicy> {
        Arc::new(NativePressure)
    }

    fn eviction(
        &self,
        _tenant: &str,
        name: Option<&str>,
    ) -> Result<Box<dyn EvictionPolicy>, PolicyLookupError> {
        let name = name.unwrap_or("lru");
        builtin_eviction(name).ok_or_else(|| PolicyLookupError::unknown(name))
    }
}
