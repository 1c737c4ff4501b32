//! Memory: caches whose evictions a pluggable policy decides, the pressure monitor, leak
//! detection, `gc` and `snapshot`, and the trace-driven simulator behind `rmhost sim`.
//!
//! Owns: cache storage and the host side of the WIT eviction protocol (dense ids, packed
//! event batches, victim validation, the LRU fallback), pressure levels and carrying out
//! pressure actions through [`ActionSink`], leak heuristics. Must not: touch wasmtime
//! (policies come in as `Box<dyn EvictionPolicy>` / `Arc<dyn PressurePolicy>`), read the
//! OS except through `telemetry` (plus `/proc/self/statm`, `malloc_trim` and `mallinfo2`
//! in `purge`), or know about HTTP.
//!
//! | file | owns |
//! |---|---|
//! | `core.rs` | dense ids, the packed batch, victim validation, fallback, replay |
//! | `victim_run.rs` | victim runs: a stable-order policy's next victims, consumed without a call each |
//! | `cache.rs` | `Cache<K, V>`: sharded storage, lossy hit buffers, TTL |
//! | `cache_inspect.rs` | a cache's counters and its consistency check |
//! | `cache_config.rs`, `hitbuf.rs`, `ids.rs` | config and stats types, the lock-free hit ring, the free-id bitmap |
//! | `registry.rs` | named caches (accounting and typed), trim, stats, snapshot bytes |
//! | `pressure.rs` | levels with hysteresis, `ActionSink`, running the pressure policy |
//! | `leaks.rs` | Theil-Sen trends, stale allocations, growing policy instances |
//! | `purge.rs` | `gc` (trim + `malloc_trim`), `snapshot` (+ `mallinfo2`) |
//! | `trace.rs`, `sim.rs` | trace formats, Zipf generator, `run_sim`, Belady |

mod cache;
mod cache_config;
mod cache_inspect;
mod core;
mod hitbuf;
mod ids;
pub mod leaks;
pub mod pressure;
pub mod purge;
mod registry;
pub mod sim;
pub mod trace;
mod victim_run;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_more;
#[cfg(test)]
mod tests_policies;
#[cfg(test)]
mod tests_runs;

pub use cache::{Cache, CacheConfig, CacheStats};
pub use core::{RemovalCause, RemovalCounts};
pub use leaks::{Leak, LeakConfig, LeakDetector};
pub use pressure::{
    ActionError, ActionSink, MemoryMonitor, MemoryStatus, MonitorParts, OverShare, PressureConfig,
    PressureGauge,
};
pub use purge::{GcReport, InstanceMemory, MemorySnapshot, gc, snapshot};
pub use registry::{
    AccountingCache, CacheBytes, CacheError, CacheHandle, CacheInfo, CacheRegistry,
};
pub use sim::{CacheSize, PolicyFactory, SimResult, run_sim, run_sweep};
pub use trace::{Request, Trace, TraceError, TraceFormat};
