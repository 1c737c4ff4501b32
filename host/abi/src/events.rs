//! The packed eviction-event encoding of `wit/policy.wit` (`rmhost:policy@0.2.0`): four u64
//! per event, `[id, size, at_ms << 16 | kind << 8 | priority, fingerprint]`. Packed because
//! the canonical ABI copies a `list<u64>` in bulk but lowers a list of records field by
//! field (docs/measurements.md).
//!
//! 0.1 had three words per event (no fingerprint); [`strip_fingerprints`] converts a 0.2
//! batch for a guest built against 0.1, which the host still serves.

/// Words per event in `rmhost:policy@0.2.0`.
pub const EVENT_WORDS: usize = 4;
/// Words per event in `rmhost:policy@0.1.0` (no fingerprint).
pub const EVENT_WORDS_V01: usize = 3;

/// What happened to a cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// A new entry (its id was free).
    Insert = 0,
    /// A read of a live entry.
    Hit = 1,
    /// A live entry's size or priority changed; counts as an access.
    Update = 2,
    /// A live entry left (removed, expired or evicted); its id becomes free.
    Remove = 3,
}

impl EventKind {
    /// Decodes the kind byte; `None` for an unknown value.
    pub fn from_u8(v: u8) -> Option<EventKind> {
        match v {
            0 => Some(EventKind::Insert),
            1 => Some(EventKind::Hit),
            2 => Some(EventKind::Update),
            3 => Some(EventKind::Remove),
            _ => None,
        }
    }
}

/// One decoded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedEvent {
    /// Dense entry id.
    pub id: u64,
    /// Entry size in bytes (1 per object in object-count simulations).
    pub size: u64,
    /// Host clock, ms (48 bits).
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// Entry priority.
    pub priority: u8,
    /// The entry's key fingerprint: a keyed 64-bit hash of the key, stable for the life of
    /// the cache and seeded per cache (equal keys of one cache have equal fingerprints;
    /// nothing carries over between caches). Every event of an entry carries it.
    pub fingerprint: u64,
}

/// Appends one event to `out` in the packed form.
#[inline]
pub fn encode_event(out: &mut Vec<u64>, ev: &PackedEvent) {
    out.extend_from_slice(&[
        ev.id,
        ev.size,
        ((ev.at_ms & 0xFFFF_FFFF_FFFF) << 16) | ((ev.kind as u64) << 8) | ev.priority as u64,
        ev.fingerprint,
    ]);
}

/// Decodes the event at `chunk` (four u64); `None` when the kind byte is unknown or the
/// chunk is not four words.
#[inline]
pub fn decode_event(chunk: &[u64]) -> Option<PackedEvent> {
    let [id, size, meta, fingerprint] = *chunk else {
        return None;
    };
    Some(PackedEvent {
        id,
        size,
        at_ms: meta >> 16,
        kind: EventKind::from_u8(((meta >> 8) & 0xFF) as u8)?,
        priority: (meta & 0xFF) as u8,
        fingerprint,
    })
}

/// Rewrites a 0.2 batch in the 0.1 form (drops each event's fingerprint word) into `out`,
/// which is cleared first. A trailing partial event is dropped, as decoders ignore it.
pub fn strip_fingerprints(events: &[u64], out: &mut Vec<u64>) {
    out.clear();
    out.reserve(events.len() / EVENT_WORDS * EVENT_WORDS_V01);
    for chunk in events.chunks_exact(EVENT_WORDS) {
        out.extend_from_slice(&chunk[..EVENT_WORDS_V01]);
    }
}

/// Test helper: appends an event of unit `size` at time 0 with priority 0; the fingerprint
/// is derived from the id (distinct ids, distinct keys).
#[cfg(test)]
pub(crate) fn push_event(out: &mut Vec<u64>, kind: EventKind, id: u64, size: u64) {
    encode_event(
        out,
        &PackedEvent {
            id,
            size,
            at_ms: 0,
            kind,
            priority: 0,
            fingerprint: id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let ev = PackedEvent {
            id: 42,
            size: u64::MAX,
            at_ms: (1 << 48) - 1,
            kind: EventKind::Update,
            priority: 255,
            fingerprint: 0xdead_beef_0123_4567,
        };
        let mut out = Vec::new();
        encode_event(&mut out, &ev);
        assert_eq!(out.len(), EVENT_WORDS);
        assert_eq!(decode_event(&out), Some(ev));
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(decode_event(&[1, 2, 9 << 8, 0]), None);
        assert_eq!(decode_event(&[1, 2, 0]), None);
    }

    #[test]
    fn strips_to_the_v01_form() {
        let mut b = Vec::new();
        push_event(&mut b, EventKind::Insert, 3, 7);
        push_event(&mut b, EventKind::Hit, 3, 7);
        b.push(99); // partial
        let mut out = vec![1, 2, 3];
        strip_fingerprints(&b, &mut out);
        assert_eq!(out, vec![3, 7, 0, 3, 7, 1 << 8]);
    }
}
