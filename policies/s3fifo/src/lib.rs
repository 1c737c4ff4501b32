//! S3-FIFO eviction (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP'23) as a Wasm policy: the host's own `builtin:s3fifo` (`rmhost_abi::NativeS3Fifo`,
//! after libCacheSim's `S3FIFO.c`: small FIFO 10%, main FIFO as a 2-bit CLOCK, a ghost of
//! key fingerprints holding 90% of the capacity in bytes, move-to-main threshold 2),
//! compiled to wasm32. The ABI crate uses only `std`, so this component runs the very code
//! the host runs natively and answers victim for victim alike; `tests/libcachesim/check.py`
//! holds both to libCacheSim's miss ratios.
//!
//! The ghost needs `rmhost:policy@0.2.0`: its events carry each key's fingerprint, so a
//! key that comes back after eviction is recognised (0.1's reused dense ids could not).

pub use rmhost_abi::NativeS3Fifo as Policy;

rmhost_policy::export_native_eviction!(Policy);

#[cfg(test)]
mod tests {
    use super::Policy;
    use rmhost_abi::EvictionPolicy;
    use rmhost_policy::events::{EventKind, encode_keyed};

    /// The ghost at work through the packed events: a key evicted from small that comes
    /// back (a new id, the same fingerprint) is placed in main and so outlives new keys.
    #[test]
    fn a_returning_key_outlives_one_hit_wonders() {
        let mut p = Policy::new();
        p.configure(20, 0);
        let mut b = Vec::new();
        for id in 0..20u64 {
            encode_keyed(&mut b, EventKind::Insert, id, 1000 + id, 1, 0, 0);
        }
        assert!(p.observe(&b, 0, 4).is_empty());
        b.clear();
        encode_keyed(&mut b, EventKind::Insert, 20, 2000, 1, 0, 0);
        assert_eq!(p.observe(&b, 1, 4), vec![0]); // key 1000 evicted, into the ghost
        b.clear();
        encode_keyed(&mut b, EventKind::Remove, 0, 1000, 1, 0, 0);
        encode_keyed(&mut b, EventKind::Insert, 0, 1000, 1, 0, 0); // key 1000 is back
        assert_eq!(p.observe(&b, 1, 4), vec![1]);
        // Cold small entries go first; the returning key sits in main.
        for next in 21..30u64 {
            b.clear();
            encode_keyed(&mut b, EventKind::Insert, next, 3000 + next, 1, 0, 0);
            let v = p.observe(&b, 1, 4);
            assert_eq!(v.len(), 1);
            assert_ne!(
                v[0], 0,
                "the ghost-hit key was evicted before one-hit wonders"
            );
        }
    }
}
