//! Memory: caches whose evictions a pluggable policy decides, the pressure monitor, leak
//! detection, `gc` and `snapshot`, and the trace-driven simulator behind `rmhost sim`.
//!
//! Owns: cache storage and the host side of the WIT eviction protocol (dense ids, packed
//! event batches, victim validation, the LRU fallback), pressure levels and carrying out
//! pressure actions through [`ActionSink`], leak heuristics. Must not: touch wasmtime
//! (policies come in as `Box<dyn EvictionPolicy>` / `Arc<dyn PressurePolicy>`), read the
//! OS except through `telemetry` (and `/proc/self/statm`, `malloc_trim`, `mallinfo2` in
//! `purge`), or know about HTTP.

mod cache;
mod core;
mod registry;
pub mod sim;
pub mod trace;

pub use cache::{Cache, CacheClock, CacheConfig, CacheStats};
pub use core::RemovalCause;
pub use registry::{AccountingCache, CacheBytes, CacheError, CacheHandle, CacheInfo, CacheRegistry};
pub use sim::{SimResult, run_sim};
pub use trace::{Request, Trace, TraceError, TraceFormat};
