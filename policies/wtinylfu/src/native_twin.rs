//! Test-only: the host's `policy::wtinylfu` and `policy::events` modules (and
//! `policy::tinylfu`, which the crate compiles anyway), with the one trait they need from
//! `host/src/policy/mod.rs` restated.
#![allow(dead_code, unused_imports, missing_debug_implementations)]

#[path = "../../../host/src/policy/events.rs"]
mod events;
// The algorithm file is already the crate's own `tinylfu` module: share it.
use crate::tinylfu;
#[path = "../../../host/src/policy/wtinylfu.rs"]
mod wtinylfu;

pub use events::{EventKind, PackedEvent, decode_event, encode_event};
pub use wtinylfu::NativeWTinyLfu;

/// The host's `EvictionPolicy` (host/src/policy/mod.rs), restated.
pub trait EvictionPolicy: Send {
    fn name(&self) -> &str;
    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32);
    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64>;
    fn needs_replay(&self) -> bool {
        false
    }
}
