//! ARC eviction (Megiddo & Modha, FAST'03) as a Wasm policy: the host's own `builtin:arc`
//! (`rmhost_abi::NativeArc`, after libCacheSim's `ARC.c`, byte weighted: LRU lists T1 and
//! T2 with ghost lists B1 and B2 of key fingerprints and an adaptive target size for T1),
//! compiled to wasm32, so it answers victim for victim like the native twin.
//!
//! The ghosts need `rmhost:policy@0.2.0`: its events carry each key's fingerprint.

pub use rmhost_abi::NativeArc as Policy;

rmhost_policy::export_native_eviction!(Policy);
