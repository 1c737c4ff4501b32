//! Test-only: the host's `policy::lru` and `policy::events` modules, with the one trait
//! they need from `host/src/policy/mod.rs` restated (the rest of that module pulls in serde
//! and the host's types).
#![allow(dead_code, unused_imports, missing_debug_implementations)]

#[path = "../../../host/src/policy/events.rs"]
mod events;
#[path = "../../../host/src/policy/lru.rs"]
mod lru;

pub use events::{EventKind, PackedEvent, decode_event, encode_event};
pub use lru::NativeLru;

/// The host's `EvictionPolicy` (host/src/policy/mod.rs), restated.
pub trait EvictionPolicy: Send {
    fn name(&self) -> &str;
    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32);
    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64>;
    fn needs_replay(&self) -> bool {
        false
    }
}
