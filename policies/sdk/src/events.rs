//! Decoding of the packed eviction events (`wit/policy.wit`, `eviction.observe`,
//! `rmhost:policy@0.2.0`): four u64 per event,
//! `[id, size, at_ms << 16 | kind << 8 | priority, fingerprint]`.
//!
//! The rules match the host's native LRU (`host/abi/src/lru.rs`) so a policy built on
//! this SDK sees exactly what the native twin sees: a trailing partial event is ignored,
//! an unknown kind byte skips the event, and ids that do not fit a `u32` (or equal
//! `u32::MAX`, the native "nil") are ignored since the host's dense ids never get there.

use crate::Eviction;

/// What happened to a cache entry (the `kind` byte): the ABI crate's own type.
pub use rmhost_abi::EventKind;

/// One decoded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Dense entry id.
    pub id: u32,
    /// Entry size in bytes (meaningful for insert and update).
    pub size: u64,
    /// Host clock, ms (48 bits).
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// Entry priority, 0-255 (meaningful for insert and update).
    pub priority: u8,
    /// The key fingerprint: a per-cache keyed 64-bit hash of the entry's key, the same
    /// whenever the key comes back (ghosts and frequency sketches key by it).
    pub fingerprint: u64,
}

/// Decodes one event from four u64; `None` for an unknown kind or an id out of range.
#[inline(always)]
pub fn decode(chunk: &[u64; 4]) -> Option<Event> {
    let e = rmhost_abi::decode_event(chunk)?;
    let id = u32::try_from(e.id).ok().filter(|&i| i != u32::MAX)?;
    Some(Event {
        id,
        size: e.size,
        at_ms: e.at_ms,
        kind: e.kind,
        priority: e.priority,
        fingerprint: e.fingerprint,
    })
}

/// Appends one event in the packed form (the host's side; for tests and simulators), with
/// the id as its key fingerprint (see [`encode_keyed`] to give one).
pub fn encode(out: &mut Vec<u64>, kind: EventKind, id: u64, size: u64, priority: u8, at_ms: u64) {
    encode_keyed(out, kind, id, id, size, priority, at_ms);
}

/// [`encode`] with an explicit key fingerprint.
pub fn encode_keyed(
    out: &mut Vec<u64>,
    kind: EventKind,
    id: u64,
    fingerprint: u64,
    size: u64,
    priority: u8,
    at_ms: u64,
) {
    rmhost_abi::encode_event(
        out,
        &rmhost_abi::PackedEvent {
            id,
            size,
            at_ms,
            kind,
            priority,
            fingerprint,
        },
    );
}

/// Feeds `events` to `policy` in order, then asks it for victims when `bytes_to_free` > 0.
/// This is the whole `observe` call minus the ABI; it runs natively too, so policies can
/// be tested (and compared with the host's native LRU) without Wasm.
///
/// The answer never exceeds `max_count` ids (more would be a malformed answer).
#[inline]
pub fn observe<P: Eviction>(
    policy: &mut P,
    events: &[u64],
    bytes_to_free: u64,
    max_count: u32,
) -> Vec<u64> {
    let (chunks, _partial) = events.as_chunks::<4>();
    for chunk in chunks {
        let Some(ev) = decode(chunk) else { continue };
        match ev.kind {
            EventKind::Insert => {
                policy.on_insert(ev.id, ev.fingerprint, ev.size, ev.priority, ev.at_ms)
            }
            EventKind::Hit => policy.on_hit(ev.id, ev.at_ms),
            EventKind::Update => policy.on_update(ev.id, ev.size, ev.priority, ev.at_ms),
            EventKind::Remove => policy.on_remove(ev.id),
        }
    }
    if bytes_to_free == 0 || max_count == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    policy.victims(bytes_to_free, max_count, &mut out);
    out.truncate(max_count as usize);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_field() {
        let mut b = Vec::new();
        encode(&mut b, EventKind::Update, 42, u64::MAX, 255, (1 << 48) - 1);
        let ev = decode(&[b[0], b[1], b[2], b[3]]).unwrap();
        assert_eq!(
            ev,
            Event {
                id: 42,
                size: u64::MAX,
                at_ms: (1 << 48) - 1,
                kind: EventKind::Update,
                priority: 255,
                fingerprint: 42,
            }
        );
        encode_keyed(&mut b, EventKind::Remove, 0, 0xfeed, 0, 0, 7);
        let ev = decode(&[b[4], b[5], b[6], b[7]]).unwrap();
        assert_eq!(ev.fingerprint, 0xfeed);
        assert_eq!(
            (ev.kind, ev.id, ev.at_ms, ev.priority),
            (EventKind::Remove, 0, 7, 0)
        );
    }

    #[test]
    fn rejects_unknown_kinds_and_out_of_range_ids() {
        assert_eq!(decode(&[1, 2, 9 << 8, 0]), None);
        assert_eq!(decode(&[u32::MAX as u64, 2, 0, 0]), None);
        assert_eq!(decode(&[1 << 40, 2, 0, 0]), None);
        assert!(decode(&[u32::MAX as u64 - 1, 2, 0, 0]).is_some());
    }

    /// Records the calls it gets, to check the dispatch order and the answer rules.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(char, u32, u64, u8, u64)>,
        fingerprints: Vec<u64>,
    }

    impl Eviction for Recorder {
        fn on_insert(&mut self, id: u32, fingerprint: u64, size: u64, priority: u8, at_ms: u64) {
            self.calls.push(('i', id, size, priority, at_ms));
            self.fingerprints.push(fingerprint);
        }
        fn on_hit(&mut self, id: u32, at_ms: u64) {
            self.calls.push(('h', id, 0, 0, at_ms));
        }
        fn on_update(&mut self, id: u32, size: u64, priority: u8, at_ms: u64) {
            self.calls.push(('u', id, size, priority, at_ms));
        }
        fn on_remove(&mut self, id: u32) {
            self.calls.push(('r', id, 0, 0, 0));
        }
        fn victims(&mut self, bytes_to_free: u64, _max_count: u32, out: &mut Vec<u64>) {
            self.calls.push(('v', 0, bytes_to_free, 0, 0));
            out.extend([1, 2, 3, 4, 5]);
        }
    }

    #[test]
    fn observe_dispatches_in_order_and_bounds_the_answer() {
        let mut b = Vec::new();
        encode_keyed(&mut b, EventKind::Insert, 3, 0xabc, 100, 7, 10);
        encode(&mut b, EventKind::Hit, 3, 0, 0, 11);
        b.extend([5, 5, 77 << 8, 0]); // unknown kind: skipped
        encode(&mut b, EventKind::Update, 3, 50, 1, 12);
        encode(&mut b, EventKind::Remove, 3, 0, 0, 13);
        b.extend([9, 9, 9]); // trailing partial event: ignored
        let mut r = Recorder::default();
        assert!(
            observe(&mut r, &b, 0, 10).is_empty(),
            "no answer without bytes to free"
        );
        assert_eq!(
            r.calls,
            vec![
                ('i', 3, 100, 7, 10),
                ('h', 3, 0, 0, 11),
                ('u', 3, 50, 1, 12),
                ('r', 3, 0, 0, 0)
            ]
        );
        assert_eq!(r.fingerprints, vec![0xabc]);
        assert_eq!(
            observe(&mut r, &[], 64, 3),
            vec![1, 2, 3],
            "truncated to max_count"
        );
        assert_eq!(r.calls.last(), Some(&('v', 0, 64, 0, 0)));
        assert!(observe(&mut r, &[], 64, 0).is_empty());
    }
}
