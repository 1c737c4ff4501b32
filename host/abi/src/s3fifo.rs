//! The native S3-FIFO policy (Yang et al., SOSP'23), after libCacheSim's `S3FIFO.c`
//! (defaults `fifo-size-ratio=0.10,ghost-size-ratio=0.90,move-to-main-threshold=2`):
//!
//! - a **small** FIFO (10% of the capacity in bytes) takes new entries, a **main** FIFO
//!   (the rest) is run as a 2-bit CLOCK, and a **ghost** FIFO remembers the key
//!   fingerprints of entries evicted from small, up to 90% of the capacity in bytes;
//! - a hit adds one to the entry's frequency (capped at 3);
//! - to evict: from main when main is over its share or small is empty, else from small.
//!   From small's tail, an entry with frequency >= 2 moves to main (frequency reset),
//!   otherwise it is the victim and enters the ghost. From main's tail, an entry with
//!   frequency >= 1 is reinserted with one less, otherwise it is the victim;
//! - an insert whose fingerprint is in the ghost goes straight to main (and leaves the
//!   ghost).
//!
//! **One deliberate difference**: libCacheSim refuses an entry of at least small's size
//! (10% of the capacity) that is not a ghost hit; here it goes straight to main, because
//! a production cache that can never hold a value of 10% of its size surprises its users.
//! The cross-check's traces never have such entries, so their miss ratios are unaffected.
//!
//! **Order of insert and eviction.** libCacheSim makes room *before* it inserts the missed
//! object; the host inserts first and then asks for victims. So inserts are held back
//! (deferred) until the victims of the same `observe` are chosen, then placed in order:
//! victims come from the entries that were there before, exactly as in libCacheSim. Any
//! other event for a deferred id places the deferred inserts first.
//!
//! Victims leave their queues when answered and wait, *pending*, for the host's remove
//! event, so none is answered twice; a pending id that is accessed again (the host kept
//! it after all) re-enters main.

use crate::{EVENT_WORDS, EventKind, EvictionPolicy, decode_event};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Queue {
    #[default]
    None,
    /// Inserted in this batch, not yet placed.
    Deferred,
    Small,
    Main,
    /// Answered as a victim; waiting for its remove event.
    Pending,
}

#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    queue: Queue,
    freq: u8,
    /// The insert hit the ghost: place it in main.
    ghost_hit: bool,
    size: u64,
    fingerprint: u64,
    /// Position stamp: queue entries with another stamp are stale.
    stamp: u64,
}

/// Fingerprints are already keyed hashes: hash them by value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub(crate) type FingerprintMap<V> = HashMap<u64, V, BuildHasherDefault<FingerprintHasher>>;

/// The ghost: a FIFO of fingerprints bounded in bytes (the evicted entries' sizes).
#[derive(Debug, Clone, Default)]
struct Ghost {
    fifo: VecDeque<(u64, u64)>,
    /// fingerprint -> (stamp, size) of its live ghost entry.
    map: FingerprintMap<(u64, u64)>,
    bytes: u64,
    cap: u64,
    stamp: u64,
}

impl Ghost {
    /// Removes `fp` if present; true on a ghost hit.
    fn take(&mut self, fp: u64) -> bool {
        match self.map.remove(&fp) {
            Some((_, size)) => {
                self.bytes -= size;
                true
            }
            None => false,
        }
    }

    fn push(&mut self, fp: u64, size: u64) {
        if size > self.cap {
            return;
        }
        self.take(fp);
        while self.bytes + size > self.cap {
            let Some((old, stamp)) = self.fifo.pop_front() else {
                break;
            };
            if let Some(&(s, sz)) = self.map.get(&old)
                && s == stamp
            {
                self.map.remove(&old);
                self.bytes -= sz;
            }
        }
        self.stamp += 1;
        self.fifo.push_back((fp, self.stamp));
        self.map.insert(fp, (self.stamp, size));
        self.bytes += size;
        // Stale entries (taken by a hit) stay in the FIFO until popped; bound them.
        if self.fifo.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.fifo
                .retain(|(f, st)| map.get(f).is_some_and(|&(s, _)| s == *st));
        }
    }
}

/// S3-FIFO with a ghost keyed by fingerprint, over dense ids.
#[derive(Debug, Clone, Default)]
pub struct NativeS3Fifo {
    meta: Vec<Meta>,
    small: VecDeque<(u32, u64)>,
    main: VecDeque<(u32, u64)>,
    deferred: Vec<u32>,
    ghost: Ghost,
    small_bytes: u64,
    main_bytes: u64,
    small_cap: u64,
    main_cap: u64,
    stamp: u64,
}

const MOVE_TO_MAIN: u8 = 2;

impl NativeS3Fifo {
    /// An empty S3-FIFO; sized by `configure`.
    pub fn new() -> Self {
        let mut s = Self::default();
        s.configure(0, 0);
        s
    }

    fn enqueue(&mut self, id: u32, q: Queue) {
        self.stamp += 1;
        let m = &mut self.meta[id as usize];
        m.queue = q;
        m.stamp = self.stamp;
        match q {
            Queue::Small => {
                self.small_bytes += m.size;
                self.small.push_back((id, self.stamp));
            }
            Queue::Main => {
                self.main_bytes += m.size;
                self.main.push_back((id, self.stamp));
            }
            _ => {}
        }
    }

    fn dequeue(&mut self, id: u32) {
        let m = &mut self.meta[id as usize];
        match m.queue {
            Queue::Small => self.small_bytes -= m.size,
            Queue::Main => self.main_bytes -= m.size,
            _ => {}
        }
        m.queue = Queue::None;
        m.stamp = 0;
    }

    fn pop(&mut self, q: Queue) -> Option<u32> {
        let dq = if q == Queue::Small {
            &mut self.small
        } else {
            &mut self.main
        };
        while let Some((id, stamp)) = dq.pop_front() {
            let m = self.meta[id as usize];
            if m.queue == q && m.stamp == stamp {
                return Some(id);
            }
        }
        None
    }

    /// Places the deferred inserts, in order (libCacheSim's `S3FIFO_insert`).
    fn place_deferred(&mut self) {
        for k in 0..self.deferred.len() {
            let id = self.deferred[k];
            let m = self.meta[id as usize];
            if m.queue != Queue::Deferred {
                continue;
            }
            self.meta[id as usize].queue = Queue::None;
            let q = if m.ghost_hit || m.size >= self.small_cap {
                Queue::Main
            } else {
                Queue::Small
            };
            self.enqueue(id, q);
        }
        self.deferred.clear();
    }

    fn apply(&mut self, events: &[u64]) {
        for chunk in events.chunks_exact(EVENT_WORDS) {
            let Some(ev) = decode_event(chunk) else {
                continue;
            };
            let Ok(id) = u32::try_from(ev.id) else {
                continue;
            };
            let i = id as usize;
            if ev.kind != EventKind::Insert
                && self.meta.get(i).is_some_and(|m| m.queue == Queue::Deferred)
            {
                self.place_deferred();
            }
            match ev.kind {
                EventKind::Insert => {
                    if self.meta.len() <= i {
                        self.meta.resize(i + 1, Meta::default());
                    }
                    if self.meta[i].queue == Queue::Deferred {
                        self.place_deferred();
                    }
                    self.dequeue(id);
                    let ghost_hit = self.ghost.take(ev.fingerprint);
                    self.meta[i] = Meta {
                        queue: Queue::Deferred,
                        freq: 0,
                        ghost_hit,
                        size: ev.size,
                        fingerprint: ev.fingerprint,
                        stamp: 0,
                    };
                    self.deferred.push(id);
                }
                EventKind::Hit | EventKind::Update => {
                    let Some(m) = self.meta.get(i).copied() else {
                        continue;
                    };
                    match m.queue {
                        Queue::None | Queue::Deferred => continue,
                        Queue::Pending => {
                            // The host kept a victim after all: readmit it to main.
                            if ev.kind == EventKind::Update {
                                self.meta[i].size = ev.size;
                            }
                            self.enqueue(id, Queue::Main);
                            continue;
                        }
                        Queue::Small | Queue::Main => {}
                    }
                    let m = &mut self.meta[i];
                    m.freq = (m.freq + 1).min(3);
                    if ev.kind == EventKind::Update {
                        let old = std::mem::replace(&mut m.size, ev.size);
                        match m.queue {
                            Queue::Small => self.small_bytes = self.small_bytes - old + ev.size,
                            Queue::Main => self.main_bytes = self.main_bytes - old + ev.size,
                            _ => {}
                        }
                    }
                }
                EventKind::Remove => {
                    if i < self.meta.len() {
                        self.dequeue(id);
                    }
                }
            }
        }
    }

    /// One victim, as libCacheSim's `S3FIFO_evict` (which may move entries without
    /// evicting, then is called again).
    fn evict_one(&mut self) -> Option<u32> {
        loop {
            if self.small_bytes == 0 && self.main_bytes == 0 {
                return None;
            }
            if self.main_bytes > self.main_cap || self.small_bytes == 0 {
                while let Some(id) = self.pop(Queue::Main) {
                    let freq = self.meta[id as usize].freq;
                    self.dequeue(id);
                    if freq >= 1 {
                        self.meta[id as usize].freq = freq.min(3) - 1;
                        self.enqueue(id, Queue::Main);
                    } else {
                        return Some(id);
                    }
                }
            } else {
                while let Some(id) = self.pop(Queue::Small) {
                    let m = self.meta[id as usize];
                    self.dequeue(id);
                    if m.freq >= MOVE_TO_MAIN {
                        self.meta[id as usize].freq = 0;
                        self.enqueue(id, Queue::Main);
                    } else {
                        self.ghost.push(m.fingerprint, m.size);
                        return Some(id);
                    }
                }
            }
        }
    }
}

impl EvictionPolicy for NativeS3Fifo {
    fn name(&self) -> &str {
        "builtin:s3fifo"
    }

    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        let cap = if capacity_bytes == 0 {
            u64::MAX / 2
        } else {
            capacity_bytes
        };
        self.small_cap = cap / 10;
        self.main_cap = cap - self.small_cap;
        self.ghost.cap = cap / 10 * 9 + cap % 10 * 9 / 10;
        self.meta.reserve(expected_entries as usize);
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        self.apply(events);
        let mut out = Vec::new();
        let mut freed = 0u64;
        while freed < bytes_to_free && out.len() < max_count as usize {
            let id = match self.evict_one() {
                Some(id) => id,
                None if !self.deferred.is_empty() => {
                    self.place_deferred();
                    continue;
                }
                None => break,
            };
            // A victim leaves our queues now; its remove event later clears it.
            self.meta[id as usize].queue = Queue::Pending;
            freed = freed.saturating_add(self.meta[id as usize].size);
            out.push(u64::from(id));
        }
        self.place_deferred();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(out: &mut Vec<u64>, kind: EventKind, id: u64) {
        crate::events::push_event(out, kind, id, 1);
    }

    #[test]
    fn one_hit_wonders_leave_first() {
        let mut s = NativeS3Fifo::new();
        s.configure(20, 0);
        let mut b = Vec::new();
        for id in 0..20 {
            ev(&mut b, EventKind::Insert, id);
        }
        for _ in 0..2 {
            ev(&mut b, EventKind::Hit, 0);
        }
        assert!(s.observe(&b, 0, 10).is_empty());
        b.clear();
        ev(&mut b, EventKind::Insert, 20);
        let v = s.observe(&b, 1, 10);
        assert_eq!(v.len(), 1);
        assert_ne!(v[0], 0, "a twice-hit entry moves to main instead");
        assert_ne!(
            v[0], 20,
            "the new entry is placed after the victims are chosen"
        );
    }

    #[test]
    fn a_key_that_comes_back_from_the_ghost_goes_to_main() {
        let mut s = NativeS3Fifo::new();
        s.configure(20, 0);
        let mut b = Vec::new();
        for id in 0..20 {
            ev(&mut b, EventKind::Insert, id);
        }
        s.observe(&b, 0, 10);
        // Evict id 0's entry (oldest, cold) and free the id.
        b.clear();
        ev(&mut b, EventKind::Insert, 20);
        let v = s.observe(&b, 1, 10);
        assert_eq!(v, vec![0]);
        b.clear();
        ev(&mut b, EventKind::Remove, 0);
        // The same key (fingerprint of id 0) comes back under id 11.
        let fp = {
            let mut t = Vec::new();
            ev(&mut t, EventKind::Insert, 0);
            t[3]
        };
        crate::encode_event(
            &mut b,
            &crate::PackedEvent {
                id: 21,
                size: 1,
                at_ms: 0,
                kind: EventKind::Insert,
                priority: 0,
                fingerprint: fp,
            },
        );
        s.observe(&b, 0, 10);
        assert_eq!(s.meta[21].queue, Queue::Main);
        assert_eq!(s.meta[20].queue, Queue::Small);
    }
}
