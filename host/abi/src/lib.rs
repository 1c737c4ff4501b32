//! The rmhost policy ABI, shared by the host, the guest SDK and the guest policies.
//!
//! It has no dependencies (only `std`), so a guest compiled for `wasm32-unknown-unknown`
//! uses the very code the host runs natively: a Wasm policy built on these algorithms
//! answers victim for victim like the host's native twin, and the two are checked against
//! each other in CI.
//!
//! # Map
//! | module | owns |
//! |---|---|
//! | [`events`] | the packed eviction-event encoding of `wit/policy.wit` (four u64 per event, with the key fingerprint; 0.1's three-word form) and the event kinds |
//! | [`lru`] | least-recently-used over dense ids: the host's default and fallback |
//! | [`fifo`] | first-in first-out |
//! | [`sieve`] | SIEVE (a visited bit and a moving hand) |
//! | [`s3fifo`] | S3-FIFO (small FIFO, main FIFO with a frequency counter, ghost of fingerprints) |
//! | [`arc`] | ARC (two LRU lists and their fingerprint ghosts, adaptive target) |
//! | [`tinylfu`] | the doorkeeper + count-min frequency sketch and the W-TinyLFU algorithm |
//! | [`wtinylfu`] | W-TinyLFU behind [`EvictionPolicy`] |
//!
//! [`EvictionPolicy`] is the host's eviction seam; it lives here (not in `rmhost-core`) so
//! that guests and their native tests implement the same trait the host calls.

#![deny(missing_docs)]
// Library code says what went wrong instead of panicking; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod arc;
pub mod events;
pub mod fifo;
pub mod lru;
pub mod s3fifo;
pub mod sieve;
pub mod tinylfu;
pub mod wtinylfu;

pub use arc::NativeArc;
pub use events::{
    EVENT_WORDS, EVENT_WORDS_V01, EventKind, PackedEvent, decode_event, encode_event,
    strip_fingerprints,
};
pub use fifo::NativeFifo;
pub use lru::NativeLru;
pub use s3fifo::NativeS3Fifo;
pub use sieve::NativeSieve;
pub use tinylfu::{FrequencySketch, WTinyLfu};
pub use wtinylfu::NativeWTinyLfu;

/// Decides which cache entries to evict. One instance per cache: eviction state is per cache.
///
/// The protocol is the WIT `eviction` interface: events packed four u64 each (see
/// [`encode_event`]), dense ids reused after removal, one `observe` per batch.
pub trait EvictionPolicy: Send {
    /// A short name for logs and stats (`builtin:lru`, `lru.wasm`).
    fn name(&self) -> &str;
    /// Sizing hint, called once before the first `observe`.
    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32);
    /// Applies `events` in order, then, when `bytes_to_free > 0`, answers up to `max_count`
    /// victim ids, best first. The caller validates the answer (unknown ids are ignored, a
    /// shortfall is filled by the native LRU).
    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64>;
    /// True when the policy lost its state (a Wasm instance rebuilt after a fault, or a new
    /// version swapped in) and wants the cache's live entries replayed, oldest access
    /// first, as insert events before its next answer counts. The cache checks this after
    /// every `observe`.
    fn needs_replay(&self) -> bool {
        false
    }
    /// Victim runs (the WIT `eviction-run` interface, for policies whose order is stable):
    /// applies `events` like [`EvictionPolicy::observe`], then answers up to `max_count`
    /// next victims in order without treating them as evicted. The cache evicts from the
    /// run's front without calling again until an event touches an entry of the run.
    ///
    /// `None` means "no runs here (now)", and then `events` were NOT applied: the caller
    /// delivers them through `observe`. A policy that answers `Some` promises that the run
    /// stays its true next victims while only inserts, accesses and removes of other
    /// entries, and evictions from the run's front, happen (see `wit/policy.wit`).
    fn next_victims(&mut self, events: &[u64], max_count: u32) -> Option<Vec<u64>> {
        let _ = (events, max_count);
        None
    }
}
