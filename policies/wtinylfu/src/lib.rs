//! W-TinyLFU eviction (Einziger, Friedman & Manes, ACM ToS 2017; Caffeine's and
//! libCacheSim's `WTinyLFU`) as a Wasm policy: the host's own `builtin:wtinylfu`
//! (`rmhost_abi::NativeWTinyLfu`: a 1% window LRU, a segmented-LRU main space of 20%
//! probation and 80% protected, and a doorkeeper Bloom filter in front of a 4-bit
//! count-min sketch over key fingerprints), compiled to wasm32, so it answers victim for
//! victim like the native twin.
//!
//! The sketch needs `rmhost:policy@0.2.0`: keyed by fingerprint, a key that is evicted
//! and comes back keeps its frequency history.

pub use rmhost_abi::NativeWTinyLfu as Policy;

rmhost_policy::export_native_eviction!(Policy);
