//! W-TinyLFU eviction (Einziger, Friedman & Manes, ACM ToS 2017; Caffeine's and
//! libCacheSim's `WTinyLFU`), byte-weighted, over the host's dense ids: a 1% window LRU, a
//! segmented-LRU main space (20% probation, 80% protected), and a 4-bit count-min sketch
//! (halved every 10 x expected-entries increments) that decides whether the window's
//! victim may displace main's.
//!
//! The algorithm is `rmhost_abi::tinylfu`, the very code the host runs natively (the ABI
//! crate uses only `std`), so this component answers victim for victim like the native
//! `builtin:wtinylfu` (checked in `tests.rs`). See that module for the rules.
//!
//! **Limitation of the contract**: ids are reused after removal and no key is sent, so the
//! sketch is keyed by `(id, insert generation)`, one key per residency: the admission
//! signal is "accesses since insert", and a key that is evicted and comes back starts from
//! one access. That costs most of TinyLFU's advantage over LRU on skewed workloads.
//!
//! Settings (`[policies.NAME.settings]`): `sketch_key` = `residency` (default) or `id`
//! (keys by id alone: a new key inherits the history of the id's previous owners).

use rmhost_policy::{Eviction, setting};

pub use rmhost_abi::WTinyLfu;

/// The exported policy: [`WTinyLfu`] behind the SDK's event callbacks.
#[derive(Debug)]
pub struct Policy(pub WTinyLfu);

impl Default for Policy {
    fn default() -> Self {
        let by_id = setting("sketch_key").is_some_and(|s| s.trim() == "id");
        Policy(WTinyLfu::new(!by_id))
    }
}

impl Eviction for Policy {
    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        self.0.configure(capacity_bytes, expected_entries);
    }

    #[inline]
    fn on_insert(&mut self, id: u32, size: u64, _priority: u8, _at_ms: u64) {
        self.0.on_insert(id, size);
    }

    #[inline]
    fn on_hit(&mut self, id: u32, _at_ms: u64) {
        self.0.on_access(id, None);
    }

    #[inline]
    fn on_update(&mut self, id: u32, size: u64, _priority: u8, _at_ms: u64) {
        self.0.on_access(id, Some(size));
    }

    #[inline]
    fn on_remove(&mut self, id: u32) {
        self.0.on_remove(id);
    }

    fn victims(&mut self, bytes_to_free: u64, max_count: u32, out: &mut Vec<u64>) {
        self.0.victims(bytes_to_free, max_count, out);
    }
}

rmhost_policy::export_eviction!(Policy);

#[cfg(test)]
mod tests;
