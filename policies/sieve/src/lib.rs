//! SIEVE eviction (Zhang et al., NSDI'24) as a Wasm policy: the host's own `builtin:sieve`
//! (`rmhost_abi::NativeSieve`, as libCacheSim's `Sieve`: one FIFO list, a visited bit set
//! by hits, and a hand that walks from the tail clearing visited bits and evicts the first
//! unvisited entry), compiled to wasm32, so it answers victim for victim like the native
//! twin.

pub use rmhost_abi::NativeSieve as Policy;

rmhost_policy::export_native_eviction!(Policy);
