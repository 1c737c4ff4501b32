//! rmhost-runtime: the WebAssembly policy runtime, the only crate that touches wasmtime.
//!
//! It owns the `Engine` (component model, epoch interruption, pooling allocator where the
//! host allows it), the on-disk artifact cache, the loaded policies (a `{World}Pre` per
//! exported kind per version), the (tenant, kind) -> policy bindings, fault accounting and
//! quarantine per (policy, tenant), and the directory watcher. Managers never see a Wasm type: they get
//! `Arc<dyn QuotaPolicy>` / `Box<dyn EvictionPolicy>` resolvers from [`PolicyRuntime`]
//! that pick the bound policy at call time and fall back to the native defaults.
//!
//! Map: `bindings` (bindgen of contract 0.2 and of 0.1's eviction world + host imports +
//! limits), `contract` (which contract versions are served, and the refusal naming any
//! other), `convert` (WIT <-> domain types),
//! `engine` (engine, epoch ticker, artifact cache), `version` (one loaded version, guarded
//! calls, validation), `registry` (policies, bindings), `health` (faults and quarantine
//! per policy and tenant), `adapters` (the trait implementations), `provider` (the runtime
//! as the host's `PolicyProvider`), `check` (`rmhost policy check`), `timing` (its per-call
//! p50/p99 under the real deadline), `samples` (their inputs, shared with the smoke call),
//! `span` (one `tracing` span per guest call, for OTLP traces), `watch` (hot reload), `stats`.
//!
//! **Blocking**: every guest call is synchronous and may block its thread for up to the
//! policy's deadline (default 10 ms, plus one 1 ms epoch tick). Async callers must wrap
//! resolver calls in `tokio::task::spawn_blocking` (or `block_in_place`).

#![deny(missing_docs)]
// Library code says what went wrong instead of panicking; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod adapters;
mod bindings;
mod check;
mod contract;
mod convert;
mod engine;
mod health;
mod provider;
mod registry;
mod samples;
mod span;
mod stats;
mod timing;
mod version;
mod watch;

#[cfg(test)]
mod tests;

pub use check::{CheckReport, ConformanceReport};
pub use registry::{BindingInfo, PolicyInfo, PolicyRuntime};
pub use span::TARGET as SPAN_TARGET;
pub use stats::{CallHistogram, PolicyMetrics};
pub use timing::{CallTiming, MAX_MISSED, TIMED_CALLS};
pub use watch::{DEBOUNCE, ReloadAction, ReloadOutcome, WatchHandle};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// Per-policy options (`[policies.NAME]` in the config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// What the policy reads with `setting(key)`.
    pub settings: BTreeMap<String, String>,
    /// Overrides [`RuntimeOptions::deadline`].
    pub deadline: Option<Duration>,
    /// Overrides [`RuntimeOptions::memory_cap_bytes`].
    pub memory_cap_bytes: Option<usize>,
}

/// Default of [`RuntimeOptions::max_file_bytes`].
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// How the runtime is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Where precompiled components are kept; `None` disables the cache. Default:
    /// `$XDG_CACHE_HOME/rmhost/cwasm` or `~/.cache/rmhost/cwasm`.
    pub cache_dir: Option<PathBuf>,
    /// Deadline of one guest call (default 10 ms).
    pub deadline: Duration,
    /// Linear memory cap per instance (default 64 MiB).
    pub memory_cap_bytes: usize,
    /// Faults within `fault_window` that quarantine a policy (default 5).
    pub max_faults: u32,
    /// The window faults are counted in (default 60 s).
    pub fault_window: Duration,
    /// Options per policy name.
    pub per_policy: HashMap<String, PolicyOptions>,
    /// Instance slots of the pooling allocator (default 512; each reserves address space,
    /// not memory). 0 disables pooling. When the pool is full, instantiation fails and the
    /// call falls back to the native default, so size it above caches + 3 per policy.
    pub pool_slots: u32,
    /// Largest policy file read (default 64 MiB: the Python policy is ~18 MB, a JavaScript
    /// one 10-20 MB). Larger files are refused before they are read.
    pub max_file_bytes: u64,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: engine::default_cache_dir(),
            deadline: Duration::from_millis(10),
            memory_cap_bytes: 64 << 20,
            max_faults: 5,
            fault_window: Duration::from_secs(60),
            per_policy: HashMap::new(),
            pool_slots: 512,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// What can go wrong in the runtime. Messages name the policy or file and say why.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// A policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A policy file is larger than the configured limit; it was not read (or, when it grew
    /// while being read, not read past the limit).
    #[error(
        "policy file {path} is {size} bytes, over the limit of {limit} bytes ([policies] max_file_bytes)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least this much, when it grew while being read).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A policy file name has no usable stem.
    #[error("policy file {0} has no usable name (expected NAME.wasm)")]
    BadName(PathBuf),
    /// A component was rejected; the old version (if any) keeps serving.
    #[error("policy {name} rejected: {reason}")]
    Invalid {
        /// Policy name.
        name: String,
        /// Why.
        reason: String,
    },
    /// No policy of that name is loaded.
    #[error("policy {0} is not loaded")]
    NotLoaded(String),
    /// The policy does not export the kind a binding asks for.
    #[error("policy {name} does not implement {kind} (it implements: {implements})")]
    WrongKind {
        /// Policy name.
        name: String,
        /// The kind asked for.
        kind: rmhost_core::policy::PolicyKind,
        /// What it implements, comma-separated.
        implements: String,
    },
    /// The directory watcher failed.
    #[error("cannot watch policy directory {path}: {reason}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
