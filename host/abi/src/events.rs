//! The packed eviction-event encoding of `wit/policy.wit`: three u64 per event,
//! `[id, size, at_ms << 16 | kind << 8 | priority]`. Packed because the canonical ABI copies
//! a `list<u64>` in bulk but lowers a list of records field by field (docs/measurements.md).

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
}

/// Appends one event to `out` in the packed form.
#[inline]
pub fn encode_event(out: &mut Vec<u64>, ev: &PackedEvent) {
    out.extend_from_slice(&[
        ev.id,
        ev.size,
        ((ev.at_ms & 0xFFFF_FFFF_FFFF) << 16) | ((ev.kind as u64) << 8) | ev.priority as u64,
    ]);
}

/// Decodes the event at `chunk` (three u64); `None` when the kind byte is unknown.
#[inline]
pub fn decode_event(chunk: &[u64]) -> Option<PackedEvent> {
    let [id, size, meta] = *chunk else {
        return None;
    };
    Some(PackedEvent {
        id,
        size,
        at_ms: meta >> 16,
        kind: EventKind::from_u8(((meta >> 8) & 0xFF) as u8)?,
        priority: (meta & 0xFF) as u8,
    })
}

/// Test helper: appends an event of unit `size` at time 0 with priority 0.
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
        };
        let mut out = Vec::new();
        encode_event(&mut out, &ev);
        assert_eq!(out.len(), 3);
        assert_eq!(decode_event(&out), Some(ev));
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(decode_event(&[1, 2, 9 << 8]), None);
        assert_eq!(decode_event(&[1, 2]), None);
    }
}
